package dev.panamax.kernels;

import java.util.concurrent.atomic.AtomicLong;

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
 * <p>A query depends only on the keys it sees: a NaN or ±∞ in a row of K or V that a query does not see (past the
 * causal limit, or hidden by a −Inf in the mask) leaves that query's output, log-sum-exp and gradients within the
 * same bounds as without it (not always the same bits: such a query may be computed on a slower path), although IEEE
 * arithmetic would make the weight 0 of the hidden key times NaN a NaN. Outputs that do see such a value are NaN or
 * ±∞ as IEEE arithmetic makes them, except that a key whose weight is 0 (a score of −∞, or one so far below the
 * largest that its exponential underflows) adds nothing.
 *
 * <p>Finite inputs with a finite scale give finite outputs at any magnitude. Scores are products in float; a query
 * whose scores leave float's range (the float pass gives it no weight: ∞ - ∞, or every score -∞) is computed again
 * in double, its output and log-sum-exp rounded once (the log-sum-exp is ±∞ where it is beyond float's range). The
 * backward does the same for a query whose log-sum-exp is infinite or at least 2²⁰ in magnitude, where its rounding
 * would move the weights; for a query whose float score with a key it sees is NaN or ±∞ although the query, the key
 * and the mask are finite ({@code q·k} overflowed, as ∞ - ∞, while its log-sum-exp may be moderate); and for a query
 * whose products {@code dO·v} with the value rows may overflow float (values near its limit), although its gradients
 * need not.
 *
 * <p>The products inside a tile run on {@link Gemm}'s packed micro-kernel; work is split over (batch, head, query
 * tile) on the threads of {@link Parallelism}, and each output row is computed the same way whatever the split.
 */
public final class Attention {
    static {
        VectorApi.require(); // a missing --add-modules flag is named before the first kernel fails to link
    }

    /**
     * Below this many multiply-adds a call stays on the calling thread. Low enough that a decode step's single query
     * spreads its heads over the threads once the cache holds a few dozen positions.
     */
    private static final long PARALLEL_MIN_MACS = 1L << 16;

    /** Numbers each call of forward and backward, so that packed tiles never outlive the call they are from. */
    private static final AtomicLong CALLS = new AtomicLong();

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
         * @throws IllegalArgumentException if a size is negative, {@code kvHeads} or {@code headDim} is below 1,
         *     {@code headDim} is above 16777215 (a tile of 128 key rows is kept in one array), or {@code kvHeads} does
         *     not divide {@code qHeads}
         */
        public Shape {
            Checks.nonNegative("batch", batch, "qHeads", qHeads);
            Checks.nonNegative("tq", tq, "tk", tk);
            if (kvHeads < 1) {
                throw new IllegalArgumentException("kvHeads (" + kvHeads + ") must be >= 1");
            }
            if (headDim < 1) {
                throw new IllegalArgumentException("headDim (" + headDim + ") must be >= 1");
            }
            if (headDim > AttentionTiles.MAX_HEAD_DIM) {
                throw new IllegalArgumentException("headDim (" + headDim + ") must be <= " + AttentionTiles.MAX_HEAD_DIM
                        + ": a tile of " + AttentionTiles.KEY_TILE + " key rows of headDim floats must fit one array");
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
     * gradients and output accumulators, the backward's row terms of a query tile, a query row and a tile of key or
     * value rows copied out of their views, the packed query and output-gradient tiles, and the packed key and value
     * tiles of the head it is on (four kinds between forward and backward, at most 2 MiB of tiles each); for a single
     * query ({@code tq} 1, decoding), every head's query row, and the partial results of every batch entry and head,
     * which the calling thread keeps for its next call only up to 16 MiB. The same for every {@code tq} above 1, and
     * for every {@code tk} past the packed tiles kept (8064 keys at a head size of 64). {@link Gemm}'s packing
     * buffers, sized to the tile products, come on top.
     *
     * @param shape the sizes
     * @return floats per thread
     */
    public static long workspaceFloats(Shape shape) {
        Checks.notNull("shape", shape);
        return AttentionTiles.workspaceFloats(shape);
    }

    /**
     * Causal or full attention with the default scale, no mask and no log-sum-exp output. Causal, query i's output
     * depends on rows {@code j <= i + (tk - tq)} of K and V only, whatever (NaN, ±∞) the others hold.
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
     * exp(scale·q·k_j + mask_j)} for the backward. Query i's output and log-sum-exp depend only on the rows of K and V
     * it sees: a key past the causal limit, or where its mask is −Inf, does not reach them even if its rows hold NaN or
     * ±∞.
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
        AttentionCall c = new AttentionCall(
                shape, scale, causal, q, k, v, mask, o, lse, null, null, null, null, CALLS.incrementAndGet());
        AttentionChecks.forward(c);
        int tiles = AttentionTiles.queryTiles(shape.tq());
        int tasks = shape.batch() * shape.qHeads() * tiles;
        long macs = 2L * shape.batch() * shape.qHeads() * shape.tq() * shape.tk() * shape.headDim();
        boolean parallel = macs >= PARALLEL_MIN_MACS && c.shareable();
        if (AttentionRowDecode.applies(c)) {
            AttentionRowDecode.run(c, parallel);
            return;
        }
        Parallelism.forEach(tasks, parallel, t -> {
            int tile = t % tiles;
            int head = t / tiles % shape.qHeads();
            int b = t / tiles / shape.qHeads();
            AttentionForward.tile(c, b, head, tile * AttentionTiles.QUERY_TILE);
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
     * <p>A query that sees no key (log-sum-exp −Inf) adds nothing: its dQ row is zeros. A query and a key that do not
     * see each other add nothing to each other's gradients, whatever their rows hold: a NaN in query i's row of Q or
     * dO makes its dQ row NaN and puts NaN in the dK and dV rows of the keys it sees, and nowhere else; a NaN or ±∞ in
     * a row of K or V reaches the dQ of the queries that see that key (and the dK and dV of the keys those see), no
     * others.
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
        AttentionCall c =
                new AttentionCall(shape, scale, causal, q, k, v, mask, o, lse, dO, dQ, dK, dV, CALLS.incrementAndGet());
        AttentionChecks.backward(c);
        int tasks = shape.batch() * shape.kvHeads();
        long macs = 5L * shape.batch() * shape.qHeads() * shape.tq() * shape.tk() * shape.headDim();
        boolean parallel = macs >= PARALLEL_MIN_MACS && c.shareable();
        Parallelism.forEach(tasks, parallel, t -> AttentionBackward.group(c, t / shape.kvHeads(), t % shape.kvHeads()));
    }
}
