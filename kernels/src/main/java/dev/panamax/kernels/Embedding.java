package dev.panamax.kernels;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * Token embeddings: the forward gathers a table row per token, the backward scatter-adds each token's gradient into
 * its row. The table is {@code vocab × dim}, stored contiguously (row {@code t} at {@code tableOffset + t·dim}); the
 * token rows of the activations have a leading dimension.
 *
 * <p>Token ids are checked before anything is written: each must be in {@code [0, vocab)}. The backward adds, in token
 * order, so repeated tokens accumulate the same way on every run; it splits the work by columns (never by tokens)
 * over the threads of {@link Parallelism}, so results are bit-identical for every thread count. Offsets count floats
 * (tokens: ints, native byte order for segments). The output must not overlap the table (forward), nor the table's
 * gradient the output's (backward): {@link IllegalArgumentException}.
 */
public final class Embedding {
    // The lines (see Line) the kernels of this class stage their segment operands through, one per operand role.
    private static final ThreadLocal<Line> DOUT_LINE = Line.perThread();
    private static final ThreadLocal<Line> DTABLE_LINE = Line.perThread();

    static {
        VectorApi.require(); // a missing --add-modules flag is named before the first kernel fails to link
    }

    /** Columns per task in the backward: a multiple of every vector width. */
    private static final int COLUMN_BLOCK = 256;

    private Embedding() {}

    /**
     * {@code out[i] = table[tokens[i]]} for {@code rows} tokens, on arrays.
     *
     * @param rows number of tokens, at least 0
     * @param dim floats per embedding, at least 0
     * @param vocab rows of the table, at least 0
     * @param tokens the token ids
     * @param tokensOffset index of the first token
     * @param table the embedding table, {@code vocab × dim}
     * @param tableOffset index of the table's first element
     * @param out the embeddings, {@code rows × dim}
     * @param outOffset index of out's first element
     * @param ldOut leading dimension of out: at least {@code dim}
     */
    public static void forward(
            int rows,
            int dim,
            int vocab,
            int[] tokens,
            int tokensOffset,
            float[] table,
            int tableOffset,
            float[] out,
            int outOffset,
            int ldOut) {
        forward(
                rows,
                dim,
                vocab,
                Checks.wrap("tokens", tokens),
                tokensOffset,
                Checks.wrap("table", table),
                tableOffset,
                Checks.wrap("out", out),
                outOffset,
                ldOut);
    }

    /**
     * The gather on memory segments; as {@link #forward(int, int, int, int[], int, float[], int, float[], int, int)}.
     *
     * @param rows number of tokens, at least 0
     * @param dim floats per embedding, at least 0
     * @param vocab rows of the table, at least 0
     * @param tokens the token ids, as ints
     * @param tokensOffset index (in ints) of the first token
     * @param table the embedding table, {@code vocab × dim}
     * @param tableOffset index (in floats) of the table's first element
     * @param out the embeddings; must be writable
     * @param outOffset index (in floats) of out's first element
     * @param ldOut leading dimension of out: at least {@code dim}
     */
    public static void forward(
            int rows,
            int dim,
            int vocab,
            MemorySegment tokens,
            long tokensOffset,
            MemorySegment table,
            long tableOffset,
            MemorySegment out,
            long outOffset,
            int ldOut) {
        check(rows, dim, vocab, tokens, tokensOffset, "table", table, tableOffset);
        Checks.matrix("out", out, outOffset, rows, "dim", dim, "ldOut", ldOut, true);
        // Token ids are read again as rows are written: the output must not overlap them either.
        Checks.separate(
                Checks.Strided.matrix("out", out, outOffset, rows, dim, ldOut),
                Checks.Strided.matrix("table", table, tableOffset, vocab, dim, dim),
                Checks.Strided.vector("tokens", tokens, tokensOffset, rows));
        Rows.forEach(rows, (long) rows * dim, Parallelism.shareable(tokens, table, out), (from, to) -> {
            for (int i = from; i < to; i++) {
                long row = tableOffset + (long) token(tokens, tokensOffset, i) * dim;
                MemorySegment.copy(
                        table,
                        row * Float.BYTES,
                        out,
                        (outOffset + (long) i * ldOut) * Float.BYTES,
                        (long) dim * Float.BYTES);
            }
        });
    }

    /**
     * {@code dtable[tokens[i]] += dout[i]} for {@code rows} tokens in order, on arrays.
     *
     * @param rows number of tokens, at least 0
     * @param dim floats per embedding, at least 0
     * @param vocab rows of the table, at least 0
     * @param tokens the forward's token ids
     * @param tokensOffset index of the first token
     * @param dout the gradient with respect to the embeddings, {@code rows × dim}
     * @param doutOffset index of dout's first element
     * @param ldDout leading dimension of dout: at least {@code dim}
     * @param dtable the table's gradient, {@code vocab × dim}, added to
     * @param dtableOffset index of dtable's first element
     */
    public static void backward(
            int rows,
            int dim,
            int vocab,
            int[] tokens,
            int tokensOffset,
            float[] dout,
            int doutOffset,
            int ldDout,
            float[] dtable,
            int dtableOffset) {
        backward(
                rows,
                dim,
                vocab,
                Checks.wrap("tokens", tokens),
                tokensOffset,
                Checks.wrap("dout", dout),
                doutOffset,
                ldDout,
                Checks.wrap("dtable", dtable),
                dtableOffset);
    }

    /**
     * The scatter-add on memory segments; as {@link #backward(int, int, int, int[], int, float[], int, int, float[],
     * int)}.
     *
     * @param rows number of tokens, at least 0
     * @param dim floats per embedding, at least 0
     * @param vocab rows of the table, at least 0
     * @param tokens the forward's token ids, as ints
     * @param tokensOffset index (in ints) of the first token
     * @param dout the gradient with respect to the embeddings
     * @param doutOffset index (in floats) of dout's first element
     * @param ldDout leading dimension of dout: at least {@code dim}
     * @param dtable the table's gradient, added to; must be writable
     * @param dtableOffset index (in floats) of dtable's first element
     */
    public static void backward(
            int rows,
            int dim,
            int vocab,
            MemorySegment tokens,
            long tokensOffset,
            MemorySegment dout,
            long doutOffset,
            int ldDout,
            MemorySegment dtable,
            long dtableOffset) {
        check(rows, dim, vocab, tokens, tokensOffset, "dtable", dtable, dtableOffset);
        Checks.matrix("dout", dout, doutOffset, rows, "dim", dim, "ldDout", ldDout, false);
        Checks.writable("dtable", dtable);
        Checks.separate(
                Checks.Strided.matrix("dtable", dtable, dtableOffset, vocab, dim, dim),
                Checks.Strided.matrix("dout", dout, doutOffset, rows, dim, ldDout),
                Checks.Strided.vector("tokens", tokens, tokensOffset, rows));
        int blocks = Math.ceilDiv(dim, COLUMN_BLOCK);
        Operand douts = Operand.of(dout);
        Operand dtables = Operand.of(dtable);
        Rows.forEach(blocks, (long) rows * dim, Parallelism.shareable(tokens, dout, dtable), (from, to) -> {
            int c0 = from * COLUMN_BLOCK;
            int width = Math.min(dim, to * COLUMN_BLOCK) - c0;
            for (int i = 0; i < rows; i++) {
                long row = dtableOffset + (long) token(tokens, tokensOffset, i) * dim + c0;
                Line d = DOUT_LINE.get().read(douts, doutOffset + (long) i * ldDout + c0, width);
                Line t = DTABLE_LINE.get().update(dtables, row, width);
                RowMath.axpy(width, 1f, d.array, d.offset, t.array, t.offset);
                t.commit();
            }
        });
    }

    /** Checks sizes, the table's extent and every token id. */
    private static void check(
            int rows,
            int dim,
            int vocab,
            MemorySegment tokens,
            long tokensOffset,
            String name,
            MemorySegment table,
            long offset) {
        Checks.nonNegative("rows", rows, "dim", dim, "vocab", vocab);
        Checks.intRange("tokens", tokens, "tokensOffset", tokensOffset, rows, "tokens");
        Checks.range(name, table, name + "Offset", offset, (long) vocab * dim, name);
        for (int i = 0; i < rows; i++) {
            int token = token(tokens, tokensOffset, i);
            if (token < 0 || token >= vocab) {
                throw new IndexOutOfBoundsException(
                        "tokens[" + (tokensOffset + i) + "] (" + token + ") must be in [0, vocab (" + vocab + "))");
            }
        }
    }

    private static int token(MemorySegment tokens, long tokensOffset, int i) {
        return tokens.getAtIndex(ValueLayout.JAVA_INT_UNALIGNED, tokensOffset + i);
    }
}
