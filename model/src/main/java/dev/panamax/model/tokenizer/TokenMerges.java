package dev.panamax.model.tokenizer;

import java.util.Comparator;
import java.util.PriorityQueue;

/**
 * Pairwise merging of adjacent tokens, the pair of highest priority first and the leftmost among equals, as BPE
 * encoders that rescan every pair before each merge do, in O(n log n) instead of O(n²): the possible merges wait in a
 * queue, and one whose tokens a merge has changed since is skipped when it comes out. The GPT-2 encoder merges token
 * ids by rank, the SentencePiece one spans of text by score; a "token" is whatever number the rule gives meaning.
 */
final class TokenMerges {
    /** No merge: {@link Rule#merge}'s answer for a pair that does not merge. */
    static final long NONE = -1L;

    private TokenMerges() {}

    /** What two adjacent tokens merge into, and how soon. */
    interface Rule {
        /**
         * The merge of two adjacent tokens.
         *
         * @param left the left token
         * @param right the right token
         * @return {@link #merge(float, int)} of their merged token and its priority, or {@link #NONE}
         */
        long merge(int left, int right);
    }

    /** A merge into {@code token} (at least 0) of priority {@code priority}, higher first; no allocation. */
    static long merge(float priority, int token) {
        return (long) Float.floatToRawIntBits(priority) << 32 | token;
    }

    /**
     * Merges {@code token[0, count)} in place by {@code rule}.
     *
     * @return how many tokens are left, in order at the front of the array
     */
    static int apply(int[] token, int count, Rule rule) {
        Symbols symbols = new Symbols(token, count);
        PriorityQueue<Merge> merges = new PriorityQueue<>(ORDER);
        for (int i = 0; i + 1 < count; i++) {
            offer(symbols, i, i + 1, rule, merges);
        }
        while (!merges.isEmpty()) {
            Merge merge = merges.poll();
            if (symbols.version[merge.left] != merge.leftVersion
                    || symbols.version[merge.right] != merge.rightVersion) {
                continue;
            }
            symbols.merge(merge.left, merge.right, merge.token);
            if (symbols.previous[merge.left] >= 0) {
                offer(symbols, symbols.previous[merge.left], merge.left, rule, merges);
            }
            if (symbols.next[merge.left] < count) {
                offer(symbols, merge.left, symbols.next[merge.left], rule, merges);
            }
        }
        int left = 0;
        for (int i = 0; i < count; i = symbols.next[i]) {
            token[left++] = token[i];
        }
        return left;
    }

    private static void offer(Symbols symbols, int left, int right, Rule rule, PriorityQueue<Merge> merges) {
        long merge = rule.merge(symbols.token[left], symbols.token[right]);
        if (merge != NONE) {
            merges.add(new Merge(
                    Float.intBitsToFloat((int) (merge >>> 32)),
                    left,
                    right,
                    (int) merge,
                    symbols.version[left],
                    symbols.version[right]));
        }
    }

    /**
     * A possible merge of the tokens at {@code left} and {@code right} into {@code token}, valid while neither has
     * changed since (their versions).
     */
    private record Merge(float priority, int left, int right, int token, int leftVersion, int rightVersion) {}

    /** Highest priority first; among equals the leftmost pair, as a scan from the left finds it. */
    private static final Comparator<Merge> ORDER = (a, b) ->
            a.priority != b.priority ? Float.compare(b.priority, a.priority) : Integer.compare(a.left, b.left);

    /** The tokens being merged, as a doubly linked list over their initial positions. */
    private static final class Symbols {
        final int[] token;
        final int[] previous;
        final int[] next;
        /** Bumped whenever a token changes or leaves the list, so that queued merges involving it are skipped. */
        final int[] version;

        Symbols(int[] token, int count) {
            this.token = token;
            previous = new int[count];
            next = new int[count];
            version = new int[count];
            for (int i = 0; i < count; i++) {
                previous[i] = i - 1;
                next[i] = i + 1;
            }
        }

        void merge(int left, int right, int merged) {
            token[left] = merged;
            version[left]++;
            version[right]++;
            next[left] = next[right];
            if (next[right] < next.length) {
                previous[next[right]] = left;
            }
        }
    }
}
