package dev.panamax.kernels;

import static dev.panamax.kernels.Simd.FLOAT;
import static dev.panamax.kernels.Simd.FLOATS;
import static dev.panamax.kernels.Simd.LANES;
import static dev.panamax.kernels.Simd.ORDER;

import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import java.util.function.IntConsumer;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;

/**
 * Fused multi-head attention, {@code O = softmax(scale·Q·Kᵀ + mask)·V}, computed flash-style: queries in tiles,
 * keys in tiles, with an online softmax that rescales a running maximum and sum, so memory stays linear in the
 * sequence length (no {@code tq × tk} score matrix is ever formed).
 *
 * <p>Q and O are {@code [batch, qHeads, tq, headDim]}, K and V {@code [batch, kvHeads, tk, headDim]}, each a {@link
 * TensorView} with explicit strides. Grouped-query attention: query head {@code h} reads key/value head {@code h /
 * (qHeads / kvHeads)}. {@code causal} lets query {@code i} see keys {@code j <= i + (tk - tq)}: the KV-cache
 * convention, so decoding one token against a cache of {@code tk} keys is the same call with {@code tq = 1}. A query
 * that sees no key (fully masked) gets an output of zeros and a log-sum-exp of −Inf, never NaN.
 *
 * <p>The products inside a tile run on {@link Gemm}'s packed micro-kernel; work is split over (batch, head, query
 * tile) on the threads of {@link Parallelism}, and each output row is computed the same way whatever the split.
 */
public final class Attention {
    /** Queries per tile: their scores, running maxima and sums, and output accumulators stay in L2. */
    static final int QUERY_TILE = 64;
    /** Keys per tile. */
    static final int KEY_TILE = 128;
    /** Below this many multiply-adds a call stays on the calling thread. */
    private static final long PARALLEL_MIN_MACS = 1L << 20;

    private static final ThreadLocal<Workspace> WORKSPACE = ThreadLocal.withInitial(Workspace::new);

    private Attention() {}

    /**
     * The sizes of one attention call.
     *
     * @param batch batch entries
     * @param qHeads query heads
     * @param kvHeads key/value heads; must divide {@code qHeads}
     * @param tq queries per head
     * @param tk keys per head
     * @param headDim elements per query, key and value row
     */
    public record Shape(int batch, int qHeads, int kvHeads, int tq, int tk, int headDim) {
        /**
         * Checks the sizes.
         *
         * @throws IllegalArgumentException if a size is negative, {@code kvHeads} or {@code headDim} is below 1, or
         *     {@code kvHeads} does not divide {@code qHeads}
         */
        public Shape {
            Checks.nonNegative("batch", batch);
            Checks.nonNegative("qHeads", qHeads);
            Checks.nonNegative("tq", tq);
            Checks.nonNegative("tk", tk);
            if (kvHeads < 1) {
                throw new IllegalArgumentException("kvHeads (" + kvHeads + ") must be >= 1");
            }
            if (headDim < 1) {
                throw new IllegalArgumentException("headDim (" + headDim + ") must be >= 1");
            }
            if (qHeads % kvHeads != 0) {
                throw new IllegalArgumentException(
                        "qHeads (" + qHeads + ") must be a multiple of kvHeads (" + kvHeads + ")");
            }
        }

        /**
         * The usual scale, {@code 1/√headDim}.
         *
         * @return the default scale
         */
        public float defaultScale() {
            return (float) (1 / Math.sqrt(headDim));
        }
    }

    /**
     * Floats of working memory one thread uses for this shape, reused across calls: a tile of scores and a tile of
     * output accumulators, independent of {@code tk} (plus {@link Gemm}'s fixed packing buffers).
     *
     * @param shape the sizes
     * @return floats per thread
     */
    public static long workspaceFloats(Shape shape) {
        return (long) QUERY_TILE * KEY_TILE + (long) QUERY_TILE * shape.headDim() + 2L * QUERY_TILE;
    }

    /**
     * Causal or full attention with the default scale, no mask and no log-sum-exp output.
     *
     * @param shape the sizes
     * @param causal whether query i sees only keys {@code j <= i + (tk - tq)}
     * @param q queries {@code [batch, qHeads, tq, headDim]}
     * @param k keys {@code [batch, kvHeads, tk, headDim]}
     * @param v values {@code [batch, kvHeads, tk, headDim]}
     * @param o output {@code [batch, qHeads, tq, headDim]}
     */
    public static void forward(Shape shape, boolean causal, TensorView q, TensorView k, TensorView v, TensorView o) {
        forward(shape, shape.defaultScale(), causal, q, k, v, null, o, null);
    }

    /**
     * {@code O = softmax(scale·Q·Kᵀ + mask)·V}, optionally writing each query's log-sum-exp {@code log Σ_j
     * exp(scale·q·k_j + mask_j)} for the backward.
     *
     * @param shape the sizes
     * @param scale the factor applied to every score before the mask
     * @param causal whether query i sees only keys {@code j <= i + (tk - tq)}
     * @param q queries {@code [batch, qHeads, tq, headDim]}
     * @param k keys {@code [batch, kvHeads, tk, headDim]}
     * @param v values {@code [batch, kvHeads, tk, headDim]}
     * @param mask additive mask {@code [batch, qHeads, tq, tk]} (−Inf hides a key; strides of 0 broadcast), or null
     * @param o output {@code [batch, qHeads, tq, headDim]}; must not overlap the inputs
     * @param lse output {@code [batch, qHeads, tq, 1]} of log-sum-exps, or null
     */
    public static void forward(
            Shape shape,
            float scale,
            boolean causal,
            TensorView q,
            TensorView k,
            TensorView v,
            TensorView mask,
            TensorView o,
            TensorView lse) {
        Checks.notNull("shape", shape);
        checkViews(shape, q, k, v, mask, o, lse);
        int tiles = (shape.tq() + QUERY_TILE - 1) / QUERY_TILE;
        int tasks = shape.batch() * shape.qHeads() * tiles;
        long macs = 2L * shape.batch() * shape.qHeads() * shape.tq() * shape.tk() * shape.headDim();
        boolean parallel = macs >= PARALLEL_MIN_MACS && shareable(q, k, v, mask, o, lse);
        IntConsumer task = t -> {
            int tile = t % tiles;
            int head = t / tiles % shape.qHeads();
            int b = t / tiles / shape.qHeads();
            forwardTile(shape, scale, causal, q, k, v, mask, o, lse, b, head, tile * QUERY_TILE);
        };
        if (parallel) {
            Parallelism.forEach(tasks, task);
        } else {
            for (int t = 0; t < tasks; t++) {
                task.accept(t);
            }
        }
    }

    private static boolean shareable(TensorView... views) {
        for (TensorView view : views) {
            if (view != null && !Parallelism.shareable(view.data())) {
                return false;
            }
        }
        return true;
    }

    private static void checkViews(
            Shape s, TensorView q, TensorView k, TensorView v, TensorView mask, TensorView o, TensorView lse) {
        Checks.notNull("q", q).check("q", s.batch(), s.qHeads(), s.tq(), s.headDim(), false);
        Checks.notNull("k", k).check("k", s.batch(), s.kvHeads(), s.tk(), s.headDim(), false);
        Checks.notNull("v", v).check("v", s.batch(), s.kvHeads(), s.tk(), s.headDim(), false);
        Checks.notNull("o", o).check("o", s.batch(), s.qHeads(), s.tq(), s.headDim(), true);
        if (mask != null) {
            mask.check("mask", s.batch(), s.qHeads(), s.tq(), s.tk(), false);
        }
        if (lse != null) {
            lse.check("lse", s.batch(), s.qHeads(), s.tq(), 1, true);
        }
        for (TensorView view : new TensorView[] {q, k, v}) {
            if (view.rowStride() > Integer.MAX_VALUE) {
                throw new IllegalArgumentException(
                        "rowStride (" + view.rowStride() + ") must be <= " + Integer.MAX_VALUE);
            }
        }
    }

    /** Per-thread tiles, grown to the largest head size seen and reused. */
    private static final class Workspace {
        final float[] scores = new float[QUERY_TILE * KEY_TILE];
        final MemorySegment scoresSegment = MemorySegment.ofArray(scores);
        final float[] max = new float[QUERY_TILE];
        final float[] sum = new float[QUERY_TILE];
        float[] acc = new float[0];
        MemorySegment accSegment = MemorySegment.ofArray(acc);

        void ensure(int headDim) {
            if (acc.length < QUERY_TILE * headDim) {
                acc = new float[QUERY_TILE * headDim];
                accSegment = MemorySegment.ofArray(acc);
            }
        }
    }

    /** Queries {@code [q0, q0 + QUERY_TILE)} of one (batch, head): the whole key range in tiles, online softmax. */
    private static void forwardTile(
            Shape s,
            float scale,
            boolean causal,
            TensorView q,
            TensorView k,
            TensorView v,
            TensorView mask,
            TensorView o,
            TensorView lse,
            int b,
            int head,
            int q0) {
        int d = s.headDim();
        int nq = Math.min(QUERY_TILE, s.tq() - q0);
        int kvHead = head / (s.qHeads() / s.kvHeads());
        int shift = s.tk() - s.tq();
        Workspace w = WORKSPACE.get();
        w.ensure(d);
        Arrays.fill(w.max, 0, nq, Float.NEGATIVE_INFINITY);
        Arrays.fill(w.sum, 0, nq, 0f);
        Arrays.fill(w.acc, 0, nq * d, 0f);
        int keyEnd = causal ? Math.max(0, Math.min(s.tk(), q0 + nq + shift)) : s.tk();
        for (int k0 = 0; k0 < keyEnd; k0 += KEY_TILE) {
            int nk = Math.min(KEY_TILE, keyEnd - k0);
            GemmDriver.run(
                    new GemmDriver.Operands(
                            false,
                            true,
                            nq,
                            nk,
                            d,
                            scale,
                            q.data(),
                            q.row(b, head, q0),
                            (int) q.rowStride(),
                            k.data(),
                            k.row(b, kvHead, k0),
                            (int) k.rowStride(),
                            0f,
                            w.scoresSegment,
                            0,
                            KEY_TILE),
                    false);
            for (int i = 0; i < nq; i++) {
                int row = i * KEY_TILE;
                if (mask != null) {
                    long maskRow = mask.row(b, head, q0 + i) + k0;
                    for (int j = 0; j < nk; j++) {
                        w.scores[row + j] += mask.data().getAtIndex(FLOAT, maskRow + j);
                    }
                }
                int visible = causal ? Math.max(0, Math.min(nk, q0 + i + shift - k0 + 1)) : nk;
                Arrays.fill(w.scores, row + visible, row + nk, Float.NEGATIVE_INFINITY);
                float previous = w.max[i];
                float max = Math.max(previous, rowMax(w.scores, row, nk));
                if (max == Float.NEGATIVE_INFINITY) {
                    // Nothing visible yet: the row's weights are all zero.
                    Arrays.fill(w.scores, row, row + nk, 0f);
                    continue;
                }
                float correction = previous == Float.NEGATIVE_INFINITY ? 0f : (float) StrictMath.exp(previous - max);
                w.sum[i] = w.sum[i] * correction + VectorMath.expShifted(w.scores, row, nk, max);
                w.max[i] = max;
                if (correction != 1f) {
                    scaleRow(w.acc, i * d, d, correction);
                }
            }
            GemmDriver.run(
                    new GemmDriver.Operands(
                            false,
                            false,
                            nq,
                            d,
                            nk,
                            1f,
                            w.scoresSegment,
                            0,
                            KEY_TILE,
                            v.data(),
                            v.row(b, kvHead, k0),
                            (int) v.rowStride(),
                            1f,
                            w.accSegment,
                            0,
                            d),
                    false);
        }
        for (int i = 0; i < nq; i++) {
            float total = w.sum[i];
            float inverse = total == 0f ? 0f : 1f / total;
            writeRow(w.acc, i * d, d, inverse, o.data(), o.row(b, head, q0 + i));
            if (lse != null) {
                float value = total == 0f ? Float.NEGATIVE_INFINITY : w.max[i] + (float) StrictMath.log(total);
                lse.data().setAtIndex(FLOAT, lse.row(b, head, q0 + i), value);
            }
        }
    }

    /** The largest of {@code values[from, from + count)}; NaN if any is NaN. */
    static float rowMax(float[] values, int from, int count) {
        int vectorEnd = count - count % LANES;
        FloatVector max = FloatVector.broadcast(FLOATS, Float.NEGATIVE_INFINITY);
        for (int j = 0; j < vectorEnd; j += LANES) {
            max = max.max(FloatVector.fromArray(FLOATS, values, from + j));
        }
        // Maximum is exact and order-free, so a lane reduction is safe here.
        float result = max.reduceLanes(VectorOperators.MAX);
        for (int j = vectorEnd; j < count; j++) {
            result = Math.max(result, values[from + j]);
        }
        return result;
    }

    private static void scaleRow(float[] values, int from, int count, float factor) {
        int j = 0;
        for (; j <= count - LANES; j += LANES) {
            FloatVector.fromArray(FLOATS, values, from + j).mul(factor).intoArray(values, from + j);
        }
        for (; j < count; j++) {
            values[from + j] *= factor;
        }
    }

    /** {@code out[index ...] = values[from ...]·factor} for one row of {@code count} floats. */
    private static void writeRow(float[] values, int from, int count, float factor, MemorySegment out, long index) {
        int j = 0;
        for (; j <= count - LANES; j += LANES) {
            FloatVector.fromArray(FLOATS, values, from + j)
                    .mul(factor)
                    .intoMemorySegment(out, (index + j) * Float.BYTES, ORDER);
        }
        for (; j < count; j++) {
            out.setAtIndex(FLOAT, index + j, values[from + j] * factor);
        }
    }
}
