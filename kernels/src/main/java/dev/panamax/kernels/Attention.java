package dev.panamax.kernels;

import static dev.panamax.kernels.Simd.FLOAT;
import static dev.panamax.kernels.Simd.FLOATS;
import static dev.panamax.kernels.Simd.LANES;

import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import java.util.concurrent.atomic.AtomicLong;
import jdk.incubator.vector.FloatVector;

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
 * <p>Finite inputs with a finite scale give finite outputs at any magnitude. Scores are products in float; a query
 * whose scores leave float's range (the float pass gives it no weight: ∞ - ∞, or every score -∞) is computed again
 * in double, its output and log-sum-exp rounded once (the log-sum-exp is ±∞ where it is beyond float's range). The
 * backward does the same for a query whose log-sum-exp is infinite or at least 2²⁰ in magnitude, where its rounding
 * would move the weights.
 *
 * <p>The products inside a tile run on {@link Gemm}'s packed micro-kernel; work is split over (batch, head, query
 * tile) on the threads of {@link Parallelism}, and each output row is computed the same way whatever the split.
 */
public final class Attention {
    /** Queries per tile: their scores, running maxima and sums, and output accumulators stay in L2. */
    static final int QUERY_TILE = 64;
    /** Keys per tile. */
    static final int KEY_TILE = 128;
    /**
     * A query whose log-sum-exp is this large (or infinite: scores beyond float's range, or no key seen) gets its
     * gradients from {@link #exactGradients}: {@code exp(score - lse)} with lse rounded to float is off by up to half
     * its ulp, 2⁻⁴ from here on, and at ±∞ undefined.
     */
    private static final float EXACT_LOG_SUM = 0x1p20f;
    /** Below this many multiply-adds a call stays on the calling thread. */
    private static final long PARALLEL_MIN_MACS = 1L << 20;

    private static final ThreadLocal<Workspace> WORKSPACE = ThreadLocal.withInitial(Workspace::new);
    /** Numbers each call of forward and backward, so that packed tiles never outlive the call they are from. */
    private static final AtomicLong CALLS = new AtomicLong();
    /**
     * Floats of packed key or value tiles a thread keeps per kind of packing for the head it is on: 2 MiB, 63 tiles
     * (8064 keys) at a head size of 64, 7 at 512. The forward keeps two kinds, the backward three, and the buffers stay
     * with the thread for its next call. Tiles past them are packed again for each product.
     */
    private static final int PACKED_FLOATS = 1 << 19;

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
     * Floats of working memory one thread uses for this shape, at most, reused across calls: tiles of scores,
     * gradients and output accumulators, one float per query for the backward, a query row and a tile of key or value
     * rows copied out of their views, the packed query and output-gradient tiles, and the packed key and value tiles of
     * the head it is on (four kinds between forward and backward, at most 2 MiB of tiles each). Linear in {@code tq};
     * bounded in {@code tk}. {@link Gemm}'s fixed packing buffers come on top.
     *
     * @param shape the sizes
     * @return floats per thread
     */
    public static long workspaceFloats(Shape shape) {
        int d = Checks.notNull("shape", shape).headDim();
        int tiles = (shape.tk() + KEY_TILE - 1) / KEY_TILE;
        long packed = 2
                * (keptFloats(tiles, GemmDriver.PackedB.floats(d, KEY_TILE))
                        + keptFloats(tiles, GemmDriver.PackedB.floats(KEY_TILE, d)));
        long rows = 2L * GemmDriver.PackedA.floats(QUERY_TILE, d) + (long) KEY_TILE * d + d;
        return 2L * QUERY_TILE * KEY_TILE + (long) QUERY_TILE * d + 2L * QUERY_TILE + shape.tq() + rows + packed;
    }

    /** How many of a head's {@code tiles} packed tiles of {@code tileFloats} each a thread keeps: see PACKED_FLOATS. */
    private static int keptTiles(int tiles, int tileFloats) {
        return Math.min(tiles, PACKED_FLOATS / tileFloats);
    }

    private static long keptFloats(int tiles, int tileFloats) {
        return (long) keptTiles(tiles, tileFloats) * tileFloats;
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
        forward(shape, Checks.notNull("shape", shape).defaultScale(), causal, q, k, v, null, o, null);
    }

    /**
     * {@code O = softmax(scale·Q·Kᵀ + mask)·V}, optionally writing each query's log-sum-exp {@code log Σ_j
     * exp(scale·q·k_j + mask_j)} for the backward.
     *
     * @param shape the sizes
     * @param scale the factor applied to every score before the mask; finite
     * @param causal whether query i sees only keys {@code j <= i + (tk - tq)}
     * @param q queries {@code [batch, qHeads, tq, headDim]}
     * @param k keys {@code [batch, kvHeads, tk, headDim]}
     * @param v values {@code [batch, kvHeads, tk, headDim]}
     * @param mask additive mask {@code [batch, qHeads, tq, tk]} (−Inf hides a key; strides of 0 broadcast), or null
     * @param o output {@code [batch, qHeads, tq, headDim]}; must not overlap the inputs (checked)
     * @param lse output {@code [batch, qHeads, tq, 1]} of log-sum-exps, or null; must not overlap the inputs or o
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
        Checks.finite("scale", scale);
        checkViews(shape, q, k, v, mask, o, true, lse);
        View[] inputs = inputs(shape, q, k, v, mask);
        View output = new View("o", o, shape.qHeads(), shape.tq(), shape.headDim());
        checkOutput(shape.batch(), output, inputs);
        if (lse != null) {
            checkOutput(shape.batch(), new View("lse", lse, shape.qHeads(), shape.tq(), 1), append(inputs, output));
        }
        int tiles = (shape.tq() + QUERY_TILE - 1) / QUERY_TILE;
        int tasks = shape.batch() * shape.qHeads() * tiles;
        long macs = 2L * shape.batch() * shape.qHeads() * shape.tq() * shape.tk() * shape.headDim();
        boolean parallel = macs >= PARALLEL_MIN_MACS && shareable(q, k, v, mask, o, lse);
        long call = CALLS.incrementAndGet();
        Parallelism.forEach(tasks, parallel, t -> {
            int tile = t % tiles;
            int head = t / tiles % shape.qHeads();
            int b = t / tiles / shape.qHeads();
            forwardTile(shape, scale, causal, q, k, v, mask, o, lse, b, head, tile * QUERY_TILE, call);
        });
    }

    /**
     * Gradients of {@link #forward(Shape, float, boolean, TensorView, TensorView, TensorView, TensorView, TensorView,
     * TensorView) forward} with respect to Q, K and V, FlashAttention-2 style: the scores and weights of each tile are
     * recomputed from Q, K and the saved log-sum-exp, so no {@code tq × tk} matrix is formed. The gradients are
     * written, not added to, and must not overlap one another or any input (checked: dK and dV are zeroed before K
     * and V are read). Work is split over (batch, key/value head); each gradient element is reduced in one fixed
     * order, so results do not depend on the thread count.
     *
     * @param shape the sizes
     * @param scale the forward pass's scale; finite
     * @param causal the forward pass's causal flag
     * @param q queries {@code [batch, qHeads, tq, headDim]}
     * @param k keys {@code [batch, kvHeads, tk, headDim]}
     * @param v values {@code [batch, kvHeads, tk, headDim]}
     * @param mask the forward pass's additive mask, or null
     * @param o the forward pass's output
     * @param lse the forward pass's log-sum-exp {@code [batch, qHeads, tq, 1]}
     * @param dO gradient of the loss with respect to O
     * @param dQ output: gradient with respect to Q
     * @param dK output: gradient with respect to K
     * @param dV output: gradient with respect to V
     */
    public static void backward(
            Shape shape,
            float scale,
            boolean causal,
            TensorView q,
            TensorView k,
            TensorView v,
            TensorView mask,
            TensorView o,
            TensorView lse,
            TensorView dO,
            TensorView dQ,
            TensorView dK,
            TensorView dV) {
        Checks.notNull("shape", shape);
        Checks.finite("scale", scale);
        checkViews(shape, q, k, v, mask, o, false, null);
        Checks.notNull("lse", lse).check("lse", shape.batch(), shape.qHeads(), shape.tq(), 1, false);
        Checks.notNull("dO", dO).check("dO", shape.batch(), shape.qHeads(), shape.tq(), shape.headDim(), false);
        Checks.notNull("dQ", dQ).check("dQ", shape.batch(), shape.qHeads(), shape.tq(), shape.headDim(), true);
        Checks.notNull("dK", dK).check("dK", shape.batch(), shape.kvHeads(), shape.tk(), shape.headDim(), true);
        Checks.notNull("dV", dV).check("dV", shape.batch(), shape.kvHeads(), shape.tk(), shape.headDim(), true);
        checkIntStride("dO", dO);
        checkIntStride("dQ", dQ);
        checkIntStride("dK", dK);
        checkIntStride("dV", dV);
        View[] read = append(
                inputs(shape, q, k, v, mask),
                new View("o", o, shape.qHeads(), shape.tq(), shape.headDim()),
                new View("lse", lse, shape.qHeads(), shape.tq(), 1),
                new View("dO", dO, shape.qHeads(), shape.tq(), shape.headDim()));
        View dq = new View("dQ", dQ, shape.qHeads(), shape.tq(), shape.headDim());
        View dk = new View("dK", dK, shape.kvHeads(), shape.tk(), shape.headDim());
        checkOutput(shape.batch(), dq, read);
        checkOutput(shape.batch(), dk, append(read, dq));
        checkOutput(
                shape.batch(), new View("dV", dV, shape.kvHeads(), shape.tk(), shape.headDim()), append(read, dq, dk));
        int tasks = shape.batch() * shape.kvHeads();
        long macs = 5L * shape.batch() * shape.qHeads() * shape.tq() * shape.tk() * shape.headDim();
        boolean parallel = macs >= PARALLEL_MIN_MACS && shareable(q, k, v, mask, o, lse, dO, dQ, dK, dV);
        long call = CALLS.incrementAndGet();
        Parallelism.forEach(
                tasks,
                parallel,
                t -> backwardGroup(
                        shape,
                        scale,
                        causal,
                        q,
                        k,
                        v,
                        mask,
                        o,
                        lse,
                        dO,
                        dQ,
                        dK,
                        dV,
                        t / shape.kvHeads(),
                        t % shape.kvHeads(),
                        call));
    }

    /** One (batch, key/value head): its dK and dV, and dQ of the query heads that share it. */
    private static void backwardGroup(
            Shape s,
            float scale,
            boolean causal,
            TensorView q,
            TensorView k,
            TensorView v,
            TensorView mask,
            TensorView o,
            TensorView lse,
            TensorView dO,
            TensorView dQ,
            TensorView dK,
            TensorView dV,
            int b,
            int kvHead,
            long call) {
        int d = s.headDim();
        int group = s.qHeads() / s.kvHeads();
        int shift = s.tk() - s.tq();
        Workspace w = WORKSPACE.get();
        w.ensure(d);
        zeroRows(dK, b, kvHead, s.tk(), d);
        zeroRows(dV, b, kvHead, s.tk(), d);
        w.packed.moveTo(call, b, kvHead, s.tk());
        for (int head = kvHead * group; head < (kvHead + 1) * group; head++) {
            zeroRows(dQ, b, head, s.tq(), d);
            // D_i = dO_i · O_i, the softmax backward's row term.
            float[] rowDots = w.rowDots(s.tq());
            for (int i = 0; i < s.tq(); i++) {
                stage(dO, b, head, i, 1, d, w.query);
                stage(o, b, head, i, 1, d, w.rows);
                rowDots[i] = RowMath.dot(w.query, w.rows, 0, d);
            }
            for (int q0 = 0; q0 < s.tq(); q0 += QUERY_TILE) {
                int nq = Math.min(QUERY_TILE, s.tq() - q0);
                int keyEnd = causal ? Math.max(0, Math.min(s.tk(), q0 + nq + shift)) : s.tk();
                for (int k0 = 0; k0 < keyEnd; k0 += KEY_TILE) {
                    int nk = Math.min(KEY_TILE, keyEnd - k0);
                    // P = exp(scale·Q·Kᵀ + mask - lse), recomputed.
                    scores(w, call, scale, q, k, b, head, kvHead, q0, nq, k0, nk, d);
                    for (int i = 0; i < nq; i++) {
                        int row = i * KEY_TILE;
                        maskRow(w.scores, row, nk, mask, b, head, q0 + i, k0, causal ? q0 + i + shift - k0 + 1 : nk);
                        float logSum = lse.data().getAtIndex(FLOAT, lse.row(b, head, q0 + i));
                        if (!(Math.abs(logSum) < EXACT_LOG_SUM)) {
                            // Weights of 0 leave the products untouched: the row's gradients come from exactGradients.
                            Arrays.fill(w.scores, row, row + nk, 0f);
                        } else {
                            RowMath.expSum(nk, 1f, logSum, w.scores, row, w.scores, row);
                        }
                    }
                    // dV += Pᵀ·dO
                    GemmDriver.run(
                            new Product(
                                    true,
                                    false,
                                    nk,
                                    d,
                                    nq,
                                    1f,
                                    w.scoresTile,
                                    dO.matrix(b, head, q0),
                                    1f,
                                    dV.matrix(b, kvHead, k0)),
                            false);
                    // dP = dO·Vᵀ, then dS = P ∘ (dP - D) in place.
                    multiply(
                            new Product(
                                    false,
                                    true,
                                    nq,
                                    nk,
                                    d,
                                    1f,
                                    dO.matrix(b, head, q0),
                                    v.matrix(b, kvHead, k0),
                                    0f,
                                    w.gradientsTile),
                            w.outputGradients,
                            call,
                            b,
                            head,
                            q0,
                            w.packed.valuesAcross,
                            k0);
                    for (int i = 0; i < nq; i++) {
                        softmaxGradientRow(w.scores, w.gradients, i * KEY_TILE, nk, rowDots[q0 + i]);
                    }
                    // dQ += scale·dS·K and dK += scale·dSᵀ·Q
                    multiply(
                            new Product(
                                    false,
                                    false,
                                    nq,
                                    d,
                                    nk,
                                    scale,
                                    w.gradientsTile,
                                    k.matrix(b, kvHead, k0),
                                    1f,
                                    dQ.matrix(b, head, q0)),
                            null,
                            call,
                            b,
                            head,
                            q0,
                            w.packed.keys,
                            k0);
                    GemmDriver.run(
                            new Product(
                                    true,
                                    false,
                                    nk,
                                    d,
                                    nq,
                                    scale,
                                    w.gradientsTile,
                                    q.matrix(b, head, q0),
                                    1f,
                                    dK.matrix(b, kvHead, k0)),
                            false);
                }
            }
            for (int i = 0; i < s.tq(); i++) {
                if (!(Math.abs(lse.data().getAtIndex(FLOAT, lse.row(b, head, i))) < EXACT_LOG_SUM)) {
                    int visible = causal ? Math.max(0, Math.min(s.tk(), i + shift + 1)) : s.tk();
                    exactGradients(d, scale, q, k, v, mask, dO, dQ, dK, dV, b, head, kvHead, i, visible);
                }
            }
        }
    }

    /** The score tile {@code scale·Q[q0, q0+nq)·K[k0, k0+nk)ᵀ} into the workspace, rows {@link #KEY_TILE} apart. */
    private static void scores(
            Workspace w,
            long call,
            float scale,
            TensorView q,
            TensorView k,
            int b,
            int head,
            int kvHead,
            int q0,
            int nq,
            int k0,
            int nk,
            int d) {
        if (nq == 1) {
            // Decoding: a matrix-vector product over the tile's keys, copied once out of the cache.
            stage(q, b, head, q0, 1, d, w.query);
            stage(k, b, kvHead, k0, nk, d, w.rows);
            int j = 0;
            for (; j + 4 <= nk && d % LANES == 0; j += 4) {
                RowMath.dots4(w.query, w.rows, j * d, d, d, scale, w.scores, j, 1);
            }
            for (; j < nk; j++) {
                w.scores[j] = scale * RowMath.dot(w.query, w.rows, j * d, d);
            }
        } else {
            Product product = new Product(
                    false, true, nq, nk, d, scale, q.matrix(b, head, q0), k.matrix(b, kvHead, k0), 0f, w.scoresTile);
            multiply(product, w.queries, call, b, head, q0, w.packed.keysAcross, k0);
        }
    }

    /**
     * Computes a product on the calling thread, taking its A from {@code rows} (null: none) and its B from {@code
     * tiles} where they have them.
     */
    private static void multiply(
            Product product, PackedRows rows, long call, int b, int head, int q0, PackedHead.Tiles tiles, int k0) {
        if (!GemmDriver.singleBlock(product)) {
            GemmDriver.run(product, false);
            return;
        }
        GemmDriver.PackedA packedA = rows == null ? null : rows.of(product, call, b, head, q0);
        GemmDriver.runPacked(product, packedA, tiles.of(product, k0));
    }

    /** Adds the mask to a row of scores and hides the columns from {@code visible} on (the causal limit). */
    private static void maskRow(
            float[] scores, int row, int nk, TensorView mask, int b, int head, int query, int k0, int visible) {
        if (mask != null) {
            long maskRow = mask.row(b, head, query) + k0;
            for (int j = 0; j < nk; j++) {
                scores[row + j] += mask.data().getAtIndex(FLOAT, maskRow + j);
            }
        }
        Arrays.fill(scores, row + Math.max(0, Math.min(nk, visible)), row + nk, Float.NEGATIVE_INFINITY);
    }

    /** {@code gradients[j] = weights[j]·(gradients[j] - rowDot)} over one row. */
    private static void softmaxGradientRow(float[] weights, float[] gradients, int from, int count, float rowDot) {
        int j = 0;
        for (; j <= count - LANES; j += LANES) {
            FloatVector p = FloatVector.fromArray(FLOATS, weights, from + j);
            p.mul(FloatVector.fromArray(FLOATS, gradients, from + j).sub(rowDot))
                    .intoArray(gradients, from + j);
        }
        for (; j < count; j++) {
            gradients[from + j] = weights[from + j] * (gradients[from + j] - rowDot);
        }
    }

    /**
     * Copies rows {@code [first, first + count)} of one (batch, head) of a view, {@code width} floats each, back to back
     * into an array. The loops below read arrays: vector loads from a shared arena's segment in loops this short are
     * much slower than from an array, and the copy costs little since each key and value is read once anyway.
     */
    private static void stage(TensorView view, int b, int head, int first, int count, int width, float[] into) {
        Rows.copy(view.data(), view.row(b, head, first), view.rowStride(), count, width, into);
    }

    private static void zeroRows(TensorView view, int b, int head, int rows, int width) {
        for (int r = 0; r < rows; r++) {
            view.data()
                    .asSlice(view.row(b, head, r) * Float.BYTES, (long) width * Float.BYTES)
                    .fill((byte) 0);
        }
    }

    /** A view with its sizes and its argument's name, for the overlap checks. */
    private record View(String name, TensorView view, int heads, int rows, int width) {
        /** Batch entry b's heads as {@link Checks.Strided} matrices; a stride of 0 (broadcast) counts one of a kind. */
        Checks.Strided entry(int b) {
            boolean oneRow = rows == 1 || view.rowStride() == 0;
            return new Checks.Strided(
                    name,
                    name + ".row(" + b + ", 0, 0) at",
                    view.data(),
                    view.row(b, 0, 0),
                    rows == 0 ? 0 : oneRow ? 1 : rows,
                    width,
                    oneRow ? Math.max(1, width) : view.rowStride(),
                    view.headStride());
        }

        int matrices() {
            return heads == 0 ? 0 : view.headStride() == 0 ? 1 : heads;
        }

        int entries(int batch) {
            return view.batchStride() == 0 ? Math.min(1, batch) : batch;
        }

        /** The whole tensor as one run of floats, from its first element to the end of its last row. */
        Checks.Strided span(int batch) {
            if (batch == 0 || heads == 0 || rows == 0 || width == 0) {
                return null;
            }
            return Checks.Strided.vector(name, view.data(), view.offset(), view.span(batch, heads, rows, width));
        }
    }

    private static View[] inputs(Shape s, TensorView q, TensorView k, TensorView v, TensorView mask) {
        View[] inputs = {
            new View("q", q, s.qHeads(), s.tq(), s.headDim()),
            new View("k", k, s.kvHeads(), s.tk(), s.headDim()),
            new View("v", v, s.kvHeads(), s.tk(), s.headDim())
        };
        return mask == null ? inputs : append(inputs, new View("mask", mask, s.qHeads(), s.tq(), s.tk()));
    }

    private static View[] append(View[] views, View... more) {
        View[] all = java.util.Arrays.copyOf(views, views.length + more.length);
        System.arraycopy(more, 0, all, views.length, more.length);
        return all;
    }

    /**
     * The output shares no float with any input: every pair of batch entries, heads as the matrices compared. An output
     * written over an input (dK over K, zeroed before it is read) would give a silently wrong answer.
     */
    private static void checkOutput(int batch, View output, View... inputs) {
        Checks.Strided outputSpan = output.span(batch);
        if (outputSpan == null) {
            return;
        }
        for (View input : inputs) {
            Checks.Strided inputSpan = input.span(batch);
            // Tensors in different buffers (the usual case) are told apart at once, without a pair of entries.
            if (inputSpan == null || !Checks.mayShare(outputSpan, inputSpan)) {
                continue;
            }
            Checks.Strided[] read = new Checks.Strided[input.entries(batch)];
            for (int c = 0; c < read.length; c++) {
                read[c] = input.entry(c);
            }
            for (int b = 0; b < output.entries(batch); b++) {
                Checks.Strided written = output.entry(b);
                for (Checks.Strided entry : read) {
                    Checks.unshared(written, output.matrices(), entry, input.matrices());
                }
            }
        }
    }

    /** The kernels step through these views' rows with int indices into arrays. */
    private static void checkIntStride(String name, TensorView view) {
        if (view.rowStride() > Integer.MAX_VALUE) {
            throw new IllegalArgumentException(
                    name + ".rowStride (" + view.rowStride() + ") must be <= " + Integer.MAX_VALUE);
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

    /** Checks the views forward and backward share; {@code oWritten}: o is the forward's output, not an input. */
    private static void checkViews(
            Shape s,
            TensorView q,
            TensorView k,
            TensorView v,
            TensorView mask,
            TensorView o,
            boolean oWritten,
            TensorView lse) {
        Checks.notNull("q", q).check("q", s.batch(), s.qHeads(), s.tq(), s.headDim(), false);
        Checks.notNull("k", k).check("k", s.batch(), s.kvHeads(), s.tk(), s.headDim(), false);
        Checks.notNull("v", v).check("v", s.batch(), s.kvHeads(), s.tk(), s.headDim(), false);
        Checks.notNull("o", o).check("o", s.batch(), s.qHeads(), s.tq(), s.headDim(), oWritten);
        if (mask != null) {
            mask.check("mask", s.batch(), s.qHeads(), s.tq(), s.tk(), false);
        }
        if (lse != null) {
            lse.check("lse", s.batch(), s.qHeads(), s.tq(), 1, true);
        }
        checkIntStride("q", q);
        checkIntStride("k", k);
        checkIntStride("v", v);
    }

    /**
     * The key and value tiles of one (batch, key/value head), packed as the B operands of the products that take them,
     * the first time a query tile of this call needs them, then reused by the thread's other query tiles (and, in the
     * backward, query heads) of that head, so that a tile is packed once per call rather than once per query tile.
     * The results are the same bits: only where B's packing happens changes.
     */
    private static final class PackedHead {
        /** Keys as the transposed B of {@code Q·Kᵀ}, a tile wide and the head size deep. */
        final Tiles keysAcross = new Tiles(false);
        /** Values as the B of {@code P·V}, a tile deep. */
        final Tiles values = new Tiles(true);
        /** Values as the transposed B of the backward's {@code dO·Vᵀ}. */
        final Tiles valuesAcross = new Tiles(false);
        /** Keys as the B of the backward's {@code dS·K}, a tile deep. */
        final Tiles keys = new Tiles(true);

        private long call = -1;
        private int batch;
        private int kvHead;
        /** Bumped on every move to another head, so that a tile packed for an earlier one is never taken as current. */
        private long generation;
        /** Keys in the head: a tile is packed whole, up to here, whatever part of it a query tile sees. */
        private int tk;

        /** Makes (call, batch, kvHead) the head whose tiles are kept; a new one drops the old tiles. */
        void moveTo(long call, int batch, int kvHead, int tk) {
            if (call == this.call && batch == this.batch && kvHead == this.kvHead) {
                return;
            }
            this.call = call;
            this.batch = batch;
            this.kvHead = kvHead;
            this.tk = tk;
            generation++;
        }

        /** One operand's tiles of the current head, packed on first use. */
        final class Tiles {
            /** Whether the tile runs along the product's depth (k), not its width (n). */
            private final boolean deep;

            private GemmDriver.PackedB[] packed = new GemmDriver.PackedB[0];
            private long[] generations = new long[0];

            Tiles(boolean deep) {
                this.deep = deep;
            }

            /**
             * The packed B of {@code product}, a {@link GemmDriver#singleBlock} product, for the key tile at {@code
             * k0}; null where the product covers only part of a tile along its depth (the packing's depth is the whole tile's), or the
             * tile is past those kept ({@link #PACKED_FLOATS}). Along the width a product may take the tile's first
             * keys.
             */
            GemmDriver.PackedB of(Product product, int k0) {
                int tile = k0 / KEY_TILE;
                int size = Math.min(KEY_TILE, tk - k0);
                if (deep && product.k() != size) {
                    return null;
                }
                int n = deep ? product.n() : size;
                // Counted in whole tiles, as workspaceFloats counts them.
                int tiles = keptTiles(
                        (tk + KEY_TILE - 1) / KEY_TILE,
                        deep
                                ? GemmDriver.PackedB.floats(KEY_TILE, product.n())
                                : GemmDriver.PackedB.floats(product.k(), KEY_TILE));
                if (tile >= tiles) {
                    return null;
                }
                if (tile >= packed.length) {
                    packed = Arrays.copyOf(packed, tiles);
                    generations = Arrays.copyOf(generations, tiles);
                }
                if (generations[tile] != generation) {
                    if (packed[tile] == null) {
                        packed[tile] = new GemmDriver.PackedB();
                    }
                    packed[tile].pack(product, n);
                    generations[tile] = generation;
                }
                return packed[tile];
            }
        }
    }

    /**
     * One tile of rows (queries, or the backward's output gradients) packed as the A of the products of a query tile
     * against each of its key tiles: packed for the first, reused by the others, as {@link PackedHead} does for B.
     */
    private static final class PackedRows {
        private long call = -1;
        private int batch;
        private int head;
        private int q0;
        private final GemmDriver.PackedA packed = new GemmDriver.PackedA();

        /** The packed A of {@code product}, a {@link GemmDriver#singleBlock} product over rows q0 of (batch, head). */
        GemmDriver.PackedA of(Product product, long call, int batch, int head, int q0) {
            if (call != this.call || batch != this.batch || head != this.head || q0 != this.q0) {
                packed.pack(product);
                this.call = call;
                this.batch = batch;
                this.head = head;
                this.q0 = q0;
            }
            return packed;
        }
    }

    /** Per-thread tiles, grown to the largest head size seen and reused. */
    private static final class Workspace {
        final float[] scores = new float[QUERY_TILE * KEY_TILE];
        /** The scores as a product's operand, rows a key tile apart. */
        final Matrix scoresTile = new Matrix(MemorySegment.ofArray(scores), 0, KEY_TILE);

        final float[] max = new float[QUERY_TILE];
        final float[] sum = new float[QUERY_TILE];
        final float[] gradients = new float[QUERY_TILE * KEY_TILE];
        final Matrix gradientsTile = new Matrix(MemorySegment.ofArray(gradients), 0, KEY_TILE);
        float[] acc = new float[0];
        MemorySegment accSegment = MemorySegment.ofArray(acc);
        float[] rowDots = new float[0];
        /** One query (or output) row and a tile of key or value rows, copied out of their views by {@link #stage}. */
        float[] query = new float[0];

        float[] rows = new float[0];
        final PackedHead packed = new PackedHead();
        /** The query tile as the A of {@code Q·Kᵀ}, and the backward's output-gradient tile as the A of {@code dO·Vᵀ}. */
        final PackedRows queries = new PackedRows();

        final PackedRows outputGradients = new PackedRows();

        void ensure(int headDim) {
            if (acc.length < QUERY_TILE * headDim) {
                acc = new float[QUERY_TILE * headDim];
                accSegment = MemorySegment.ofArray(acc);
                query = new float[headDim];
                rows = new float[KEY_TILE * headDim];
            }
        }

        float[] rowDots(int rows) {
            if (rowDots.length < rows) {
                rowDots = new float[rows];
            }
            return rowDots;
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
            int q0,
            long call) {
        int d = s.headDim();
        int nq = Math.min(QUERY_TILE, s.tq() - q0);
        int kvHead = head / (s.qHeads() / s.kvHeads());
        int shift = s.tk() - s.tq();
        Workspace w = WORKSPACE.get();
        w.ensure(d);
        if (nq == 1 && d % LANES == 0) {
            int keyEnd = causal ? Math.max(0, Math.min(s.tk(), q0 + 1 + shift)) : s.tk();
            decode(w, d, scale, q, k, v, mask, o, lse, b, head, kvHead, q0, keyEnd);
            return;
        }
        Arrays.fill(w.max, 0, nq, Float.NEGATIVE_INFINITY);
        Arrays.fill(w.sum, 0, nq, 0f);
        Arrays.fill(w.acc, 0, nq * d, 0f);
        w.packed.moveTo(call, b, kvHead, s.tk());
        int keyEnd = causal ? Math.max(0, Math.min(s.tk(), q0 + nq + shift)) : s.tk();
        for (int k0 = 0; k0 < keyEnd; k0 += KEY_TILE) {
            int nk = Math.min(KEY_TILE, keyEnd - k0);
            scores(w, call, scale, q, k, b, head, kvHead, q0, nq, k0, nk, d);
            for (int i = 0; i < nq; i++) {
                int row = i * KEY_TILE;
                maskRow(w.scores, row, nk, mask, b, head, q0 + i, k0, causal ? q0 + i + shift - k0 + 1 : nk);
                absorb(w, i, row, nk, d);
            }
            if (nq == 1) {
                // A single query whose head size is not a whole number of vectors (others take decode()).
                stage(v, b, kvHead, k0, nk, d, w.rows);
                for (int j = 0; j < nk; j++) {
                    RowMath.axpy(d, w.scores[j], w.rows, j * d, w.acc, 0);
                }
            } else {
                Product product = new Product(
                        false,
                        false,
                        nq,
                        d,
                        nk,
                        1f,
                        w.scoresTile,
                        v.matrix(b, kvHead, k0),
                        1f,
                        new Matrix(w.accSegment, 0, d));
                multiply(product, null, call, b, head, q0, w.packed.values, k0);
            }
        }
        for (int i = 0; i < nq; i++) {
            int query = q0 + i;
            if (w.sum[i] > 0) {
                writeResult(w.acc, i * d, d, w.sum[i], w.max[i], o, lse, b, head, query);
            } else {
                int visible = causal ? Math.max(0, Math.min(s.tk(), query + shift + 1)) : s.tk();
                exactQuery(d, scale, q, k, v, mask, o, lse, b, head, kvHead, query, visible);
            }
        }
    }

    /**
     * Folds one row of masked scores (query {@code i} of the tile, at {@code row} of the scores) into the online
     * softmax: updates the row's running max and sum, rescales its accumulator, and turns the scores into weights.
     */
    private static void absorb(Workspace w, int i, int row, int nk, int d) {
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
            Workspace w,
            int d,
            float scale,
            TensorView q,
            TensorView k,
            TensorView v,
            TensorView mask,
            TensorView o,
            TensorView lse,
            int b,
            int head,
            int kvHead,
            int query,
            int keyEnd) {
        int part = keyEnd / 4;
        int parts = keyEnd % 4 == 0 ? 4 : 5;
        Arrays.fill(w.max, 0, parts, Float.NEGATIVE_INFINITY);
        Arrays.fill(w.sum, 0, parts, 0f);
        Arrays.fill(w.acc, 0, parts * d, 0f);
        stage(q, b, head, query, 1, d, w.query);
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
                            keys.array,
                            keys.arrayBase + (int) key,
                            (int) kSpacing,
                            d,
                            scale,
                            w.scores,
                            j,
                            KEY_TILE);
                } else {
                    RowMath.dots4(w.query, keys.segment, key, kSpacing, d, scale, w.scores, j, KEY_TILE);
                }
            }
            for (int p = 0; p < 4; p++) {
                maskRow(w.scores, p * KEY_TILE, nt, mask, b, head, query, p * part + t, nt);
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
            stage(k, b, kvHead, first, nk, d, w.rows);
            for (int j = 0; j < nk; j++) {
                w.scores[row + j] = scale * RowMath.dot(w.query, w.rows, j * d, d);
            }
            maskRow(w.scores, row, nk, mask, b, head, query, first, nk);
            absorb(w, 4, row, nk, d);
            stage(v, b, kvHead, first, nk, d, w.rows);
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
        if (total > 0) {
            writeResult(w.acc, 0, d, total, max, o, lse, b, head, query);
        } else {
            exactQuery(d, scale, q, k, v, mask, o, lse, b, head, kvHead, query, keyEnd);
        }
    }

    /** {@code scale·q·k + mask} of one query and key in double, where no product or sum overflows. */
    private static double exactScore(
            int d,
            float scale,
            TensorView q,
            TensorView k,
            TensorView mask,
            int b,
            int head,
            int kvHead,
            int query,
            int key) {
        double score = scale * exactDot(d, q, q.row(b, head, query), k, k.row(b, kvHead, key));
        return mask == null ? score : score + mask.data().getAtIndex(FLOAT, mask.row(b, head, query) + key);
    }

    /** The largest exact score of a query over keys {@code [0, visible)}: -∞ for none, NaN if one is NaN. */
    private static double exactMax(
            int d,
            float scale,
            TensorView q,
            TensorView k,
            TensorView mask,
            int b,
            int head,
            int kvHead,
            int query,
            int visible) {
        double max = Double.NEGATIVE_INFINITY;
        for (int j = 0; j < visible; j++) {
            max = Math.max(max, exactScore(d, scale, q, k, mask, b, head, kvHead, query, j));
        }
        return max;
    }

    /**
     * One query of the forward computed again in double, for the queries the float pass gives no weight (total 0 or
     * NaN): a score beyond float's range is +∞ there, making ∞ - ∞, or -∞ everywhere, which looks fully masked. Writes
     * {@code softmax(scores)·V} and the log-sum-exp, each rounded to float once; a query that truly sees no key gets
     * zeros and -∞ as before, and a NaN input NaN.
     */
    private static void exactQuery(
            int d,
            float scale,
            TensorView q,
            TensorView k,
            TensorView v,
            TensorView mask,
            TensorView o,
            TensorView lse,
            int b,
            int head,
            int kvHead,
            int query,
            int visible) {
        double max = exactMax(d, scale, q, k, mask, b, head, kvHead, query, visible);
        double[] acc = new double[d];
        double sum = 0;
        if (max != Double.NEGATIVE_INFINITY) {
            for (int j = 0; j < visible; j++) {
                double p = Math.exp(exactScore(d, scale, q, k, mask, b, head, kvHead, query, j) - max);
                if (p != 0) {
                    sum += p;
                    long vi = v.row(b, kvHead, j);
                    for (int e = 0; e < d; e++) {
                        acc[e] += p * v.data().getAtIndex(FLOAT, vi + e);
                    }
                }
            }
        }
        long oi = o.row(b, head, query);
        for (int e = 0; e < d; e++) {
            o.data().setAtIndex(FLOAT, oi + e, sum == 0 ? 0f : (float) (acc[e] / sum));
        }
        if (lse != null) {
            float value = sum == 0 ? Float.NEGATIVE_INFINITY : (float) (max + Math.log(sum));
            lse.data().setAtIndex(FLOAT, lse.row(b, head, query), value);
        }
    }

    /**
     * One query's contribution to dQ, dK and dV computed in double from Q, K, V and dO, for the queries whose float
     * log-sum-exp cannot give their weights (see {@link #EXACT_LOG_SUM}); the tiles gave them weight 0. Adds {@code
     * dV_j += P_j·dO}, {@code dK_j += scale·dS_j·q} and {@code dQ += scale·Σ dS_j·k_j}, with {@code dS_j = P_j·(dO·v_j -
     * Σ P·(dO·v))}.
     */
    private static void exactGradients(
            int d,
            float scale,
            TensorView q,
            TensorView k,
            TensorView v,
            TensorView mask,
            TensorView dO,
            TensorView dQ,
            TensorView dK,
            TensorView dV,
            int b,
            int head,
            int kvHead,
            int query,
            int visible) {
        double max = exactMax(d, scale, q, k, mask, b, head, kvHead, query, visible);
        if (max == Double.NEGATIVE_INFINITY) {
            return;
        }
        long qi = q.row(b, head, query);
        long gi = dO.row(b, head, query);
        double sum = 0;
        double rowDot = 0;
        for (int j = 0; j < visible; j++) {
            double p = Math.exp(exactScore(d, scale, q, k, mask, b, head, kvHead, query, j) - max);
            sum += p;
            rowDot += p * exactDot(d, dO, gi, v, v.row(b, kvHead, j));
        }
        rowDot /= sum;
        double[] dq = new double[d];
        for (int j = 0; j < visible; j++) {
            double p = Math.exp(exactScore(d, scale, q, k, mask, b, head, kvHead, query, j) - max) / sum;
            if (p == 0) {
                continue;
            }
            double ds = p * (exactDot(d, dO, gi, v, v.row(b, kvHead, j)) - rowDot);
            long ki = k.row(b, kvHead, j);
            long dki = dK.row(b, kvHead, j);
            long dvi = dV.row(b, kvHead, j);
            for (int e = 0; e < d; e++) {
                dq[e] += scale * ds * k.data().getAtIndex(FLOAT, ki + e);
                addAt(dK, dki + e, scale * ds * q.data().getAtIndex(FLOAT, qi + e));
                addAt(dV, dvi + e, p * dO.data().getAtIndex(FLOAT, gi + e));
            }
        }
        long dqi = dQ.row(b, head, query);
        for (int e = 0; e < d; e++) {
            addAt(dQ, dqi + e, dq[e]);
        }
    }

    /** The dot product of two rows of {@code d} floats in double. */
    private static double exactDot(int d, TensorView a, long ai, TensorView b, long bi) {
        double dot = 0;
        for (int e = 0; e < d; e++) {
            dot += (double) a.data().getAtIndex(FLOAT, ai + e) * b.data().getAtIndex(FLOAT, bi + e);
        }
        return dot;
    }

    /** {@code view[index] += value}, rounded to float. */
    private static void addAt(TensorView view, long index, double value) {
        view.data().setAtIndex(FLOAT, index, (float) (view.data().getAtIndex(FLOAT, index) + value));
    }

    /**
     * One query's output row, {@code acc/total}, and its log-sum-exp {@code max + log(total)} when asked for; a query
     * that saw no key ({@code total} 0) gets zeros and -∞.
     */
    private static void writeResult(
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
