package dev.panamax.kernels;

import static dev.panamax.kernels.AttentionTiles.KEY_TILE;
import static dev.panamax.kernels.AttentionTiles.QUERY_TILE;
import static dev.panamax.kernels.Simd.FLOAT;
import static dev.panamax.kernels.Simd.FLOATS;
import static dev.panamax.kernels.Simd.LANES;

import java.util.Arrays;
import java.util.HashSet;
import java.util.Set;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;

/**
 * Attention's backward for one (batch, key/value head), FlashAttention-2 style: each tile's scores and weights are
 * recomputed from Q, K and the saved log-sum-exp, then {@code dV += Pᵀ·dO}, {@code dS = P ∘ (dO·Vᵀ - D)}, {@code dQ +=
 * scale·dS·K} and {@code dK += scale·dSᵀ·Q}. The group owns its dK and dV, so each gradient element is reduced in one
 * fixed order.
 */
final class AttentionBackward {
    /**
     * The bound on {@code |dO·v|} below which a query's tiles run in float: it also bounds {@code D = dO·O}, O being
     * a weighted mean of value rows, so {@code dP - D} and its rounding stay finite. A query past it (values near
     * float's limit) is computed in double, where {@code dO·v} overflows although the gradients need not.
     */
    private static final double PRODUCT_BOUND = Float.MAX_VALUE / 4.0;

    private AttentionBackward() {}

    /**
     * One (batch, key/value head): its dK and dV, and dQ of the query heads that share it. A pass that finds queries
     * whose float scores overflow ({@link #overflows}) is made again with them computed in double: the keys they see
     * got the products of earlier tiles before the scores showed it. The second pass finds none, and a call without
     * such queries takes one pass, its bits unchanged.
     */
    static void group(AttentionCall c, int b, int kvHead) {
        Set<Long> overflowing = gradients(c, b, kvHead, Set.of());
        if (!overflowing.isEmpty()) {
            gradients(c, b, kvHead, overflowing);
        }
    }

    /**
     * One pass of {@link #group}, computing in double the queries of {@code overflowing} (by {@link #queryIndex}) as
     * well as those {@link #exact} picks; returns the queries it found overflowing besides them. After the first, the
     * pass only computes scores to find the others: its gradients are made again anyway.
     */
    private static Set<Long> gradients(AttentionCall c, int b, int kvHead, Set<Long> overflowing) {
        Attention.Shape s = c.shape();
        int d = s.headDim();
        int group = s.qHeads() / s.kvHeads();
        AttentionTiles.Workspace w = AttentionTiles.WORKSPACE.get();
        w.ensure(d);
        zeroRows(c.dK(), b, kvHead, s.tk(), d);
        zeroRows(c.dV(), b, kvHead, s.tk(), d);
        w.packed.moveTo(c.number(), b, kvHead, s.tk());
        // Tiles of rows that hold NaN or ∞ are multiplied without the coefficients of 0 (see multiplySkippingZeros).
        boolean[] keysFinite = new boolean[Math.ceilDiv(s.tk(), KEY_TILE)];
        for (int t = 0; t < keysFinite.length; t++) {
            int k0 = t * KEY_TILE;
            keysFinite[t] = AttentionTiles.finiteRows(c.k(), b, kvHead, k0, Math.min(KEY_TILE, s.tk() - k0), d, w.rows);
        }
        float largestValue = 0;
        for (int k0 = 0; k0 < s.tk(); k0 += Math.min(KEY_TILE, s.tk() - k0)) {
            int nk = Math.min(KEY_TILE, s.tk() - k0);
            AttentionTiles.stage(c.v(), b, kvHead, k0, nk, d, w.rows);
            largestValue = Math.max(largestValue, RowMath.largestFiniteMagnitude(nk * d, w.rows, 0));
        }
        Set<Long> found = Set.of();
        for (int head = kvHead * group; head < (kvHead + 1) * group; head++) {
            zeroRows(c.dQ(), b, head, s.tq(), d);
            boolean anyExact = false;
            for (int q0 = 0; q0 < s.tq(); q0 += Math.min(QUERY_TILE, s.tq() - q0)) {
                int nq = Math.min(QUERY_TILE, s.tq() - q0);
                // D_i = dO_i · O_i, the softmax backward's row term, and bit i set where query q0 + i is computed in
                // double: a tile's worth, so that a thread holds no buffer per query of the call.
                long exact = 0;
                for (int i = 0; i < nq; i++) {
                    AttentionTiles.stage(c.dO(), b, head, q0 + i, 1, d, w.query);
                    AttentionTiles.stage(c.o(), b, head, q0 + i, 1, d, w.rows);
                    w.rowDots[i] = RowMath.dot(w.query, w.rows, 0, d);
                    exact |= exact(c, b, head, q0 + i, w.query, largestValue, overflowing) ? 1L << i : 0;
                }
                anyExact |= exact != 0;
                int keyEnd = AttentionTiles.keyEnd(c, q0, nq);
                boolean queriesFinite = AttentionTiles.finiteRows(c.q(), b, head, q0, nq, d, w.rows);
                boolean gradientsFinite = AttentionTiles.finiteRows(c.dO(), b, head, q0, nq, d, w.rows);
                for (int k0 = 0; k0 < keyEnd; k0 += Math.min(KEY_TILE, keyEnd - k0)) {
                    int nk = Math.min(KEY_TILE, keyEnd - k0);
                    // P = exp(scale·Q·Kᵀ + mask - lse), recomputed.
                    AttentionTiles.maskedScores(w, c, b, head, kvHead, q0, nq, k0, nk, d, true);
                    for (int i = 0; i < nq; i++) {
                        if ((exact & 1L << i) == 0
                                && overflows(c, w.scores, b, head, kvHead, q0 + i, i * KEY_TILE, k0, nk)) {
                            found = found.isEmpty() ? new HashSet<>() : found;
                            found.add(queryIndex(c, head, q0 + i));
                        }
                    }
                    if (!found.isEmpty()) {
                        continue;
                    }
                    for (int i = 0; i < nq; i++) {
                        int row = i * KEY_TILE;
                        if ((exact & 1L << i) != 0) {
                            // Weights of 0 leave the products untouched: the row's gradients come from exactGradients.
                            Arrays.fill(w.scores, row, row + nk, 0f);
                        } else {
                            float logSum =
                                    c.lse().data().getAtIndex(FLOAT, c.lse().row(b, head, q0 + i));
                            RowMath.expSum(nk, 1f, logSum, w.scores, row, w.scores, row);
                        }
                    }
                    // dV += Pᵀ·dO
                    addTransposed(
                            nk,
                            d,
                            nq,
                            1f,
                            w.scoresTile,
                            c.dO().matrix(b, head, q0),
                            c.dV().matrix(b, kvHead, k0),
                            gradientsFinite);
                    // dP = dO·Vᵀ, then dS = P ∘ (dP - D) in place.
                    AttentionTiles.multiply(
                            new Product(
                                    false,
                                    true,
                                    nq,
                                    nk,
                                    d,
                                    1f,
                                    c.dO().matrix(b, head, q0),
                                    c.v().matrix(b, kvHead, k0),
                                    0f,
                                    w.gradientsTile),
                            w.outputGradients,
                            c.number(),
                            b,
                            head,
                            q0,
                            w.packed.valuesAcross,
                            k0);
                    for (int i = 0; i < nq; i++) {
                        softmaxGradientRow(w.scores, w.gradients, i * KEY_TILE, nk, w.rowDots[i]);
                    }
                    // dQ += scale·dS·K and dK += scale·dSᵀ·Q
                    Product dq = new Product(
                            false,
                            false,
                            nq,
                            d,
                            nk,
                            c.scale(),
                            w.gradientsTile,
                            c.k().matrix(b, kvHead, k0),
                            1f,
                            c.dQ().matrix(b, head, q0));
                    if (keysFinite[k0 / KEY_TILE]) {
                        AttentionTiles.multiply(dq, null, c.number(), b, head, q0, w.packed.keys, k0);
                    } else {
                        AttentionTiles.multiplySkippingZeros(dq);
                    }
                    addTransposed(
                            nk,
                            d,
                            nq,
                            c.scale(),
                            w.gradientsTile,
                            c.q().matrix(b, head, q0),
                            c.dK().matrix(b, kvHead, k0),
                            queriesFinite);
                }
            }
            // After every tile, as their products must come first in dK and dV; the test is made again, which costs
            // a pass over dO only for a head that has such a query.
            for (int i = 0; anyExact && found.isEmpty() && i < s.tq(); i++) {
                AttentionTiles.stage(c.dO(), b, head, i, 1, d, w.query);
                if (exact(c, b, head, i, w.query, largestValue, overflowing)) {
                    AttentionExact.exactGradients(c, b, head, kvHead, i, AttentionTiles.keyEnd(c, i, 1));
                }
            }
        }
        return found;
    }

    /**
     * Whether query i of the head, whose dO row is {@code outputGradient}, is computed in double: its scores overflow
     * float ({@code overflowing} holds it), its float log-sum-exp cannot give its weights, or
     * {@code dO_i·v} may overflow, v's entries being at most {@code largestValue} in magnitude.
     */
    private static boolean exact(
            AttentionCall c,
            int b,
            int head,
            int i,
            float[] outputGradient,
            float largestValue,
            Set<Long> overflowing) {
        float logSum = c.lse().data().getAtIndex(FLOAT, c.lse().row(b, head, i));
        double productBound =
                (double) RowMath.finiteMagnitudeSum(c.shape().headDim(), outputGradient, 0) * largestValue;
        return !(Math.abs(logSum) < AttentionExact.EXACT_LOG_SUM)
                || !(productBound <= PRODUCT_BOUND)
                || !overflowing.isEmpty() && overflowing.contains(queryIndex(c, head, i));
    }

    /**
     * Whether a row of masked scores holds NaN or ±∞ at a key the query sees (before its causal limit, and not hidden
     * by the mask's -∞) where the scale, the query and key rows and the mask are finite: {@code q·k} overflowed float
     * (∞ - ∞, or a product past its limit), and only the double scores give that query's weights, although its
     * log-sum-exp may be moderate. A NaN or ∞ of the inputs keeps the float path, which carries it as IEEE arithmetic
     * does.
     */
    private static boolean overflows(
            AttentionCall c, float[] scores, int b, int head, int kvHead, int query, int row, int k0, int nk) {
        if (RowMath.allFinite(nk, scores, row) || !Float.isFinite(c.scale())) {
            return false;
        }
        int d = c.shape().headDim();
        int visible = c.causal() ? query + c.shape().tk() - c.shape().tq() - k0 + 1 : nk;
        // Inputs are read only at non-finite scores: a causal or masked row's -∞ entries are most of what gets here.
        for (int j = 0; j < Math.min(nk, visible); j++) {
            if (Float.isFinite(scores[row + j])) {
                continue;
            }
            float mask = c.mask() == null
                    ? 0f
                    : c.mask().data().getAtIndex(FLOAT, c.mask().row(b, head, query) + k0 + j);
            if (Float.isFinite(mask) && finiteRow(c.k(), c.k().row(b, kvHead, k0 + j), d)) {
                return finiteRow(c.q(), c.q().row(b, head, query), d);
            }
        }
        return false;
    }

    /** Query {@code query} of {@code head}, counted across the heads, as the sets of overflowing queries hold it. */
    private static long queryIndex(AttentionCall c, int head, int query) {
        return (long) head * c.shape().tq() + query;
    }

    private static boolean finiteRow(TensorView view, long index, int width) {
        for (int e = 0; e < width; e++) {
            if (!Float.isFinite(view.data().getAtIndex(FLOAT, index + e))) {
                return false;
            }
        }
        return true;
    }

    /**
     * {@code into += alpha·tileᵀ·rows}: a key tile's gradient (dV or dK) from the query tile's rows (dO or Q), which
     * are {@code finite} or else multiplied without the tile's zeros.
     */
    private static void addTransposed(
            int nk, int d, int nq, float alpha, Matrix tile, Matrix rows, Matrix into, boolean finite) {
        Product product = new Product(true, false, nk, d, nq, alpha, tile, rows, 1f, into);
        if (finite) {
            GemmDriver.run(product, false);
        } else {
            AttentionTiles.multiplySkippingZeros(product);
        }
    }

    /**
     * {@code gradients[j] = weights[j]·(gradients[j] - rowDot)} over one row; 0 where the weight is 0 and the product
     * NaN (dO·v or D not finite), so that a hidden key or query is not reached by it.
     */
    private static void softmaxGradientRow(float[] weights, float[] gradients, int from, int count, float rowDot) {
        int j = 0;
        for (; j <= count - LANES; j += LANES) {
            FloatVector p = FloatVector.fromArray(FLOATS, weights, from + j);
            FloatVector g =
                    p.mul(FloatVector.fromArray(FLOATS, gradients, from + j).sub(rowDot));
            g.blend(0f, p.eq(0f).and(g.test(VectorOperators.IS_NAN))).intoArray(gradients, from + j);
        }
        for (; j < count; j++) {
            float g = weights[from + j] * (gradients[from + j] - rowDot);
            gradients[from + j] = weights[from + j] == 0 && Float.isNaN(g) ? 0f : g;
        }
    }

    private static void zeroRows(TensorView view, int b, int head, int rows, int width) {
        for (int r = 0; r < rows; r++) {
            view.data()
                    .asSlice(view.row(b, head, r) * Float.BYTES, (long) width * Float.BYTES)
                    .fill((byte) 0);
        }
    }
}
