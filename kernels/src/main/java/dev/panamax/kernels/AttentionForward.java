package dev.panamax.kernels;

import static dev.panamax.kernels.AttentionTiles.KEY_TILE;
import static dev.panamax.kernels.AttentionTiles.QUERY_TILE;
import static dev.panamax.kernels.Simd.FLOAT;
import static dev.panamax.kernels.Simd.LANES;

import java.lang.foreign.MemorySegment;
import java.util.Arrays;

/**
 * Attention's forward for one query tile of one (batch, head): the key tiles in turn with an online softmax that
 * rescales a running maximum and sum, the products on {@link GemmDriver}'s packed micro-kernel; a single query
 * (decoding) reads the key/value cache in place instead, in four streams.
 */
final class AttentionForward {
    private AttentionForward() {}

    /** Queries {@code [q0, q0 + QUERY_TILE)} of one (batch, head): the whole key range in tiles, online softmax. */
    static void tile(AttentionCall c, int b, int head, int q0) {
        tile(c, b, head, q0, false);
    }

    /**
     * {@link #tile(AttentionCall, int, int, int)}; {@code careful}: the pass after one that left NaN or ∞ in an
     * accumulator while V holds NaN or ∞, which multiplies the value tiles holding them without the weights of 0, so
     * that a value row reaches only the queries that see it (0·NaN is NaN). Other tiles, and so all finite inputs, take
     * the same products as the first pass. A query whose accumulator is still not finite, because it sees such a value
     * or overflowed on finite ones, is computed again in double ({@link AttentionExact#exactQuery}).
     */
    private static void tile(AttentionCall c, int b, int head, int q0, boolean careful) {
        Attention.Shape s = c.shape();
        int d = s.headDim();
        int nq = Math.min(QUERY_TILE, s.tq() - q0);
        int kvHead = head / (s.qHeads() / s.kvHeads());
        AttentionTiles.Workspace w = AttentionTiles.WORKSPACE.get();
        w.ensure(d);
        if (nq == 1 && d % LANES == 0) {
            int keyEnd = AttentionTiles.keyEnd(c, q0, 1);
            decode(c, w, d, b, head, kvHead, q0, keyEnd);
            return;
        }
        Arrays.fill(w.max, 0, nq, Float.NEGATIVE_INFINITY);
        Arrays.fill(w.sum, 0, nq, 0f);
        Arrays.fill(w.acc, 0, nq * d, 0f);
        w.packed.moveTo(c.number(), b, kvHead, s.tk());
        int keyEnd = AttentionTiles.keyEnd(c, q0, nq);
        for (int k0 = 0; k0 < keyEnd; k0 += Math.min(KEY_TILE, keyEnd - k0)) {
            int nk = Math.min(KEY_TILE, keyEnd - k0);
            AttentionTiles.maskedScores(w, c, b, head, kvHead, q0, nq, k0, nk, d, false);
            for (int i = 0; i < nq; i++) {
                absorb(w, i, i * KEY_TILE, nk, d);
            }
            if (careful && !AttentionTiles.finiteRows(c.v(), b, kvHead, k0, nk, d, w.rows)) {
                AttentionTiles.multiplySkippingZeros(weightsTimesValues(c, w, b, kvHead, nq, k0, nk, d));
            } else if (nq == 1) {
                // A single query whose head size is not a whole number of vectors (others take decode()).
                AttentionTiles.stage(c.v(), b, kvHead, k0, nk, d, w.rows);
                for (int j = 0; j < nk; j++) {
                    RowMath.axpy(d, w.scores[j], w.rows, j * d, w.acc, 0);
                }
            } else {
                AttentionTiles.multiply(
                        weightsTimesValues(c, w, b, kvHead, nq, k0, nk, d),
                        null,
                        c.number(),
                        b,
                        head,
                        q0,
                        w.packed.values,
                        k0);
            }
        }
        long nonFinite = nonFiniteAccumulators(w, nq, d);
        if (!careful && nonFinite != 0 && !AttentionTiles.finiteRows(c.v(), b, kvHead, 0, keyEnd, d, w.rows)) {
            tile(c, b, head, q0, true);
            return;
        }
        for (int i = 0; i < nq; i++) {
            int query = q0 + i;
            // A non-finite accumulator sees NaN or ∞ in V, or overflowed although the output, a weighted mean, cannot.
            if (w.sum[i] > 0 && (nonFinite & 1L << i) == 0) {
                writeResult(w.acc, i * d, d, w.sum[i], w.max[i], c.o(), c.lse(), b, head, query);
            } else {
                AttentionExact.exactQuery(c, b, head, kvHead, query, AttentionTiles.keyEnd(c, query, 1));
            }
        }
    }

    /** {@code acc += weights·V} over keys {@code [k0, k0 + nk)}: the product of a key tile's weights and values. */
    private static Product weightsTimesValues(
            AttentionCall c, AttentionTiles.Workspace w, int b, int kvHead, int nq, int k0, int nk, int d) {
        return new Product(
                false,
                false,
                nq,
                d,
                nk,
                1f,
                w.scoresTile,
                c.v().matrix(b, kvHead, k0),
                1f,
                new Matrix(w.accSegment, 0, d));
    }

    /** The queries of the tile that saw keys and have NaN or ∞ in their accumulator, as bit {@code i} per query. */
    private static long nonFiniteAccumulators(AttentionTiles.Workspace w, int nq, int d) {
        long nonFinite = 0;
        for (int i = 0; i < nq; i++) {
            if (w.sum[i] > 0 && !RowMath.allFinite(d, w.acc, i * d)) {
                nonFinite |= 1L << i;
            }
        }
        return nonFinite;
    }

    /**
     * Folds one row of masked scores (query {@code i} of the tile, at {@code row} of the scores) into the online
     * softmax: updates the row's running max and sum, rescales its accumulator, and turns the scores into weights.
     */
    static void absorb(AttentionTiles.Workspace w, int i, int row, int nk, int d) {
        float previous = w.max[i];
        float max = Math.max(previous, RowMath.max(nk, 1f, w.scores, row));
        if (max == Float.NEGATIVE_INFINITY) {
            // Nothing visible yet: the row's weights are all zero.
            Arrays.fill(w.scores, row, row + nk, 0f);
            return;
        }
        float correction = previous == Float.NEGATIVE_INFINITY ? 0f : (float) StrictMath.exp(previous - max);
        w.sum[i] = w.sum[i] * correction + RowMath.expSum(nk, 1f, max, w.scores, row, w.scores, row);
        w.max[i] = max;
        if (correction != 1f) {
            RowMath.scale(d, correction, w.acc, i * d);
        }
    }

    /**
     * One query against keys {@code [0, keyEnd)}, flash-decoding style: the keys are cut into four contiguous parts
     * that are processed in step, each with its own online softmax (rows 0 to 3 of the workspace), and merged at the
     * end; the at most three keys left over form a fifth part. The cache is then read in place as four long
     * sequential streams, which the prefetchers follow, rather than copied out one tile after another, which does not
     * overlap the copy with the arithmetic.
     */
    private static void decode(
            AttentionCall c, AttentionTiles.Workspace w, int d, int b, int head, int kvHead, int query, int keyEnd) {
        // Read once: the loops below use them for every key.
        TensorView k = c.k(), v = c.v();
        float scale = c.scale();
        int part = keyEnd / 4;
        int parts = keyEnd % 4 == 0 ? 4 : 5;
        Arrays.fill(w.max, 0, parts, Float.NEGATIVE_INFINITY);
        Arrays.fill(w.sum, 0, parts, 0f);
        Arrays.fill(w.acc, 0, parts * d, 0f);
        AttentionTiles.stage(c.q(), b, head, query, 1, d, w.query);
        Operand keys = Operand.of(k.data());
        Operand values = Operand.of(v.data());
        long kSpacing = part * k.rowStride();
        long vSpacing = part * v.rowStride();
        for (int t = 0; t < part; t += KEY_TILE) {
            int nt = Math.min(KEY_TILE, part - t);
            for (int j = 0; j < nt; j++) {
                long key = k.row(b, kvHead, t + j);
                if (keys.array != null) {
                    RowMath.dots4(
                            w.query,
                            0,
                            keys.array,
                            keys.arrayBase + (int) key,
                            (int) kSpacing,
                            d,
                            scale,
                            w.scores,
                            j,
                            KEY_TILE);
                } else {
                    RowMath.dots4(w.query, 0, keys.segment, key, kSpacing, d, scale, w.scores, j, KEY_TILE);
                }
            }
            for (int p = 0; p < 4; p++) {
                AttentionTiles.maskRow(w.scores, p * KEY_TILE, nt, c.mask(), b, head, query, p * part + t, nt, false);
                absorb(w, p, p * KEY_TILE, nt, d);
            }
            for (int j = 0; j < nt; j++) {
                long value = v.row(b, kvHead, t + j);
                if (values.array != null) {
                    RowMath.add4(
                            w.scores,
                            j,
                            KEY_TILE,
                            values.array,
                            values.arrayBase + (int) value,
                            (int) vSpacing,
                            d,
                            w.acc);
                } else {
                    RowMath.add4(w.scores, j, KEY_TILE, values.segment, value, vSpacing, d, w.acc);
                }
            }
        }
        if (parts == 5) {
            int first = 4 * part;
            int nk = keyEnd - first;
            int row = 4 * KEY_TILE;
            AttentionTiles.stage(k, b, kvHead, first, nk, d, w.rows);
            for (int j = 0; j < nk; j++) {
                w.scores[row + j] = scale * RowMath.dot(w.query, w.rows, j * d, d);
            }
            AttentionTiles.maskRow(w.scores, row, nk, c.mask(), b, head, query, first, nk, false);
            absorb(w, 4, row, nk, d);
            AttentionTiles.stage(v, b, kvHead, first, nk, d, w.rows);
            for (int j = 0; j < nk; j++) {
                RowMath.axpy(d, w.scores[row + j], w.rows, j * d, w.acc, 4 * d);
            }
        }
        // Merge: each part's sum and accumulator, rescaled to the largest max, into part 0's.
        float max = Float.NEGATIVE_INFINITY;
        for (int p = 0; p < parts; p++) {
            max = Math.max(max, w.max[p]);
        }
        float total = 0f;
        if (max != Float.NEGATIVE_INFINITY) {
            for (int p = 0; p < parts; p++) {
                float factor = w.max[p] == Float.NEGATIVE_INFINITY ? 0f : (float) StrictMath.exp(w.max[p] - max);
                total += w.sum[p] * factor;
                if (p == 0) {
                    RowMath.scale(d, factor, w.acc, 0);
                } else {
                    RowMath.axpy(d, factor, w.acc, p * d, w.acc, 0);
                }
            }
        }
        finishDecoded(c, w, b, head, kvHead, query, keyEnd, total, max);
    }

    /**
     * Writes a decoded query's result from the accumulator at 0, or computes it again in double where the float pass
     * cannot give it: where nothing weighs (total 0 or NaN), where the accumulator overflowed on finite values (their
     * weighted mean cannot), and where it holds NaN or ∞ from V, maybe as 0·NaN from a key the query does not see,
     * which the exact pass leaves out.
     */
    static void finishDecoded(
            AttentionCall c,
            AttentionTiles.Workspace w,
            int b,
            int head,
            int kvHead,
            int query,
            int keyEnd,
            float total,
            float max) {
        int d = c.shape().headDim();
        if (total > 0 && RowMath.allFinite(d, w.acc, 0)) {
            writeResult(w.acc, 0, d, total, max, c.o(), c.lse(), b, head, query);
        } else {
            AttentionExact.exactQuery(c, b, head, kvHead, query, keyEnd);
        }
    }

    /**
     * One query's output row, {@code acc/total}, and its log-sum-exp {@code max + log(total)} when asked for; a query
     * that saw no key ({@code total} 0) gets zeros and -∞.
     */
    static void writeResult(
            float[] acc,
            int from,
            int d,
            float total,
            float max,
            TensorView o,
            TensorView lse,
            int b,
            int head,
            int query) {
        writeRow(acc, from, d, total == 0f ? 0f : 1f / total, o.data(), o.row(b, head, query));
        if (lse != null) {
            float value = total == 0f ? Float.NEGATIVE_INFINITY : max + (float) StrictMath.log(total);
            lse.data().setAtIndex(FLOAT, lse.row(b, head, query), value);
        }
    }

    /**
     * {@code out[index ...] = values[from ...]·factor} for one row of {@code count} floats, scaling {@code values} in
     * place first: a bulk copy out rather than segment vector stores, which C2 compiles slowly for heap segments.
     */
    private static void writeRow(float[] values, int from, int count, float factor, MemorySegment out, long index) {
        RowMath.scale(count, factor, values, from);
        MemorySegment.copy(values, from, out, FLOAT, index * Float.BYTES, count);
    }
}
