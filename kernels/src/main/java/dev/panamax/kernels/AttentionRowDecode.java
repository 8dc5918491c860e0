package dev.panamax.kernels;

import static dev.panamax.kernels.AttentionTiles.KEY_TILE;
import static dev.panamax.kernels.AttentionTiles.QUERY_TILE;
import static dev.panamax.kernels.Simd.FLOAT;
import static dev.panamax.kernels.Simd.LANES;

import java.lang.foreign.MemorySegment;
import java.util.Arrays;

/**
 * Decoding one query per head against a cache whose rows hold every key/value head side by side ({@code [position,
 * kvHeads·headDim]}, as a model's projections write it): all heads at once, position by position, so that K and V are
 * each read front to back, as sequential streams. Taking one head at a time instead reads a slice of every row, a
 * strided pattern that runs at a fraction of the memory's bandwidth once the cache has left the caches.
 *
 * <p>The keys are cut into {@link #PARTS} contiguous parts, each a task with its own online softmax per head; the parts
 * are merged in order on the calling thread. The cut does not depend on the thread count, so neither do the results.
 */
final class AttentionRowDecode {
    /** Parts of the key range: tasks for two to four threads, each read as four long sequential streams. */
    private static final int PARTS = 4;

    /**
     * The calling thread's partial results, per batch entry, part and head: the running maximum, the sum, then the
     * head's accumulator; filled by the tasks.
     */
    static final Scratch PARTIALS = new Scratch();

    private AttentionRowDecode() {}

    /**
     * Whether this path takes the call: one query, heads side by side within each key and value row (or a single
     * key/value head), a head size of whole vectors, no more heads than a workspace holds (a score row per query
     * head, and four padded rows of every key/value head), and partial results for the whole batch that fit one array.
     */
    static boolean applies(AttentionCall c) {
        Attention.Shape s = c.shape();
        return s.tq() == 1
                && s.headDim() % LANES == 0
                && s.qHeads() <= QUERY_TILE
                && 4 * s.kvHeads() <= KEY_TILE
                && partialFloats(s) <= Checks.MAX_ARRAY_LENGTH
                && interleaved(c.k(), s)
                && interleaved(c.v(), s);
    }

    private static boolean interleaved(TensorView view, Attention.Shape s) {
        return (s.kvHeads() == 1 || view.headStride() == s.headDim())
                && view.rowStride() >= (long) s.kvHeads() * s.headDim()
                && view.rowStride() <= Integer.MAX_VALUE;
    }

    /** Runs the call: the parts of every batch entry as tasks, then each (batch, head)'s merge and output. */
    static void run(AttentionCall c, boolean parallel) {
        Attention.Shape s = c.shape();
        int heads = s.qHeads();
        int d = s.headDim();
        int stride = d + 2;
        int keyEnd = AttentionTiles.keyEnd(c, 0, 1);
        float[] partials = PARTIALS.take((int) partialFloats(s));
        try {
            Parallelism.forEach(s.batch() * PARTS, parallel, t -> {
                int b = t / PARTS;
                int part = t % PARTS;
                // Parts 0 to 2 are whole groups of four keys; the last takes the rest, and any group left short.
                int partLength = keyEnd / (4 * PARTS) * 4;
                int from = part * partLength;
                int to = part == PARTS - 1 ? keyEnd : from + partLength;
                part(c, b, from, to, partials, t * heads * stride);
            });
            AttentionTiles.Workspace w = AttentionTiles.WORKSPACE.get();
            w.ensure(d);
            for (int b = 0; b < s.batch(); b++) {
                for (int h = 0; h < heads; h++) {
                    merge(c, w, b, h, keyEnd, partials, (b * PARTS * heads + h) * stride, heads * stride);
                }
            }
        } finally {
            PARTIALS.release();
        }
    }

    /** The floats of {@link #PARTIALS} a call of shape s takes. */
    static long partialFloats(Attention.Shape s) {
        return (long) s.batch() * PARTS * s.qHeads() * (s.headDim() + 2);
    }

    /** Keys {@code [from, to)} of batch entry b for every head, into the partials from {@code at}. */
    private static void part(AttentionCall c, int b, int from, int to, float[] partials, int at) {
        Attention.Shape s = c.shape();
        int heads = s.qHeads();
        int d = s.headDim();
        int group = heads / s.kvHeads();
        TensorView k = c.k(), v = c.v();
        AttentionTiles.Workspace w = AttentionTiles.WORKSPACE.get();
        w.ensure(d);
        float[] queries = w.decodeQueries(heads * d);
        for (int h = 0; h < heads; h++) {
            MemorySegment.copy(c.q().data(), FLOAT, c.q().row(b, h, 0) * Float.BYTES, queries, h * d, d);
        }
        Arrays.fill(w.max, 0, heads, Float.NEGATIVE_INFINITY);
        Arrays.fill(w.sum, 0, heads, 0f);
        Arrays.fill(w.acc, 0, heads * d, 0f);
        Operand keys = Operand.of(k.data());
        Operand values = Operand.of(v.data());
        int rowWidth = s.kvHeads() * d;
        float scale = c.scale();
        // Four streams, the quarters of the range, each read row by row with every head in the row taken in turn: four
        // sequential reads at once, which the prefetchers follow (four rows side by side are not).
        int quarter = (to - from) / 4;
        long kSpacing = quarter * k.rowStride();
        long vSpacing = quarter * v.rowStride();
        for (int j0 = 0; j0 < quarter; j0 += KEY_TILE / 4) {
            int steps = Math.min(KEY_TILE / 4, quarter - j0);
            for (int j = 0; j < steps; j++) {
                for (int h = 0; h < heads; h++) {
                    long key = k.row(b, h / group, from + j0 + j);
                    if (keys.array != null) {
                        RowMath.dots4(
                                queries,
                                h * d,
                                keys.array,
                                keys.arrayBase + (int) key,
                                (int) kSpacing,
                                d,
                                scale,
                                w.scores,
                                h * KEY_TILE + 4 * j,
                                1);
                    } else {
                        RowMath.dots4(
                                queries,
                                h * d,
                                keys.segment,
                                key,
                                kSpacing,
                                d,
                                scale,
                                w.scores,
                                h * KEY_TILE + 4 * j,
                                1);
                    }
                }
            }
            for (int h = 0; h < heads; h++) {
                if (c.mask() != null) {
                    maskStreams(w.scores, h * KEY_TILE, steps, c.mask(), b, h, from + j0, quarter);
                }
                AttentionForward.absorb(w, h, h * KEY_TILE, 4 * steps, d);
            }
            for (int j = 0; j < steps; j++) {
                for (int h = 0; h < heads; h++) {
                    long value = v.row(b, h / group, from + j0 + j);
                    if (values.array != null) {
                        RowMath.weightedSum4(
                                w.scores,
                                h * KEY_TILE + 4 * j,
                                values.array,
                                values.arrayBase + (int) value,
                                (int) vSpacing,
                                d,
                                w.acc,
                                h * d);
                    } else {
                        RowMath.weightedSum4(
                                w.scores, h * KEY_TILE + 4 * j, values.segment, value, vSpacing, d, w.acc, h * d);
                    }
                }
            }
        }
        int first = from + 4 * quarter;
        int left = to - first;
        if (left > 0) {
            // The last few keys, padded with zero rows to a group of four: their scores are not used, and the
            // padding's weights are set to 0 below, so it adds exact zeros.
            stagePadded(k, b, first, left, rowWidth, w.rows);
            for (int h = 0; h < heads; h++) {
                RowMath.dots4(queries, h * d, w.rows, (h / group) * d, rowWidth, d, scale, w.scores, h * KEY_TILE, 1);
                AttentionTiles.maskRow(w.scores, h * KEY_TILE, left, c.mask(), b, h, 0, first, left, false);
                AttentionForward.absorb(w, h, h * KEY_TILE, left, d);
            }
            stagePadded(v, b, first, left, rowWidth, w.rows);
            for (int h = 0; h < heads; h++) {
                Arrays.fill(w.scores, h * KEY_TILE + left, h * KEY_TILE + 4, 0f);
                RowMath.weightedSum4(w.scores, h * KEY_TILE, w.rows, (h / group) * d, rowWidth, d, w.acc, h * d);
            }
        }
        int stride = d + 2;
        for (int h = 0; h < heads; h++) {
            int p = at + h * stride;
            partials[p] = w.max[h];
            partials[p + 1] = w.sum[h];
            System.arraycopy(w.acc, h * d, partials, p + 2, d);
        }
    }

    /**
     * Adds the mask to a row of scores taken from four streams {@code quarter} keys apart: score {@code 4·j + s} is key
     * {@code first + s·quarter + j}.
     */
    private static void maskStreams(
            float[] scores, int row, int steps, TensorView mask, int b, int head, int first, int quarter) {
        long maskRow = mask.row(b, head, 0);
        for (int j = 0; j < steps; j++) {
            for (int stream = 0; stream < 4; stream++) {
                scores[row + 4 * j + stream] +=
                        mask.data().getAtIndex(FLOAT, maskRow + first + (long) stream * quarter + j);
            }
        }
    }

    /** Rows {@code [first, first + count)} of batch entry b, every head, then zero rows up to four, into {@code into}. */
    private static void stagePadded(TensorView view, int b, int first, int count, int rowWidth, float[] into) {
        Rows.copy(view.data(), view.row(b, 0, first), view.rowStride(), count, rowWidth, into);
        Arrays.fill(into, count * rowWidth, 4 * rowWidth, 0f);
    }

    /**
     * Head h of batch entry b: each part's sum and accumulator rescaled to the largest maximum and added in part order,
     * then written out (or computed again: see {@link AttentionForward#finishDecoded}).
     */
    private static void merge(
            AttentionCall c, AttentionTiles.Workspace w, int b, int h, int keyEnd, float[] partials, int at, int step) {
        int d = c.shape().headDim();
        float max = Float.NEGATIVE_INFINITY;
        for (int p = 0; p < PARTS; p++) {
            max = Math.max(max, partials[at + p * step]);
        }
        float total = 0f;
        if (max != Float.NEGATIVE_INFINITY) {
            Arrays.fill(w.acc, 0, d, 0f);
            for (int p = 0; p < PARTS; p++) {
                int part = at + p * step;
                float partMax = partials[part];
                float factor = partMax == Float.NEGATIVE_INFINITY ? 0f : (float) StrictMath.exp(partMax - max);
                total += partials[part + 1] * factor;
                RowMath.axpy(d, factor, partials, part + 2, w.acc, 0);
            }
        }
        int kvHead = h / (c.shape().qHeads() / c.shape().kvHeads());
        AttentionForward.finishDecoded(c, w, b, h, kvHead, 0, keyEnd, total, max);
    }
}
