package dev.panamax.kernels;

import static dev.panamax.kernels.Simd.FLOAT;

/**
 * Attention for single queries computed again in double, where the float tiles cannot give their results: a forward
 * query whose scores leave float's range or whose accumulator overflows on values near float's limit, and a backward
 * query whose float log-sum-exp would move its weights or whose float scores overflow.
 */
final class AttentionExact {
    /**
     * A query whose log-sum-exp is this large (or infinite: scores beyond float's range, or no key seen) gets its
     * gradients from {@link #exactGradients}: {@code exp(score - lse)} with lse rounded to float is off by up to half
     * its ulp, 2⁻⁴ from here on, and at ±∞ undefined.
     */
    static final float EXACT_LOG_SUM = 0x1p20f;

    private AttentionExact() {}

    /**
     * {@code scale·q·k + mask} of one query and key in double, where no product or sum overflows; -∞ where the mask
     * hides the key, even if its row holds NaN or ∞.
     */
    static double exactScore(AttentionCall c, int b, int head, int kvHead, int query, int key) {
        float mask = c.mask() == null
                ? 0f
                : c.mask().data().getAtIndex(FLOAT, c.mask().row(b, head, query) + key);
        if (mask == Float.NEGATIVE_INFINITY) {
            return Double.NEGATIVE_INFINITY;
        }
        int d = c.shape().headDim();
        double score = c.scale() * exactDot(d, c.q(), c.q().row(b, head, query), c.k(), c.k().row(b, kvHead, key));
        return c.mask() == null ? score : score + mask;
    }

    /**
     * {@code exp(score - max)} of one key; 0 for a score of -∞ (a hidden key) even where max is NaN, so that the key is
     * left out rather than given a NaN weight, and 0 where the weight underflows in float, as in the float tiles, so
     * that a NaN or ∞ in the value row of a key that weighs nothing there adds nothing here either.
     */
    static double exactWeight(AttentionCall c, int b, int head, int kvHead, int query, int key, double max) {
        double score = exactScore(c, b, head, kvHead, query, key);
        double weight = score == Double.NEGATIVE_INFINITY ? 0 : Math.exp(score - max);
        return (float) weight == 0 ? 0 : weight;
    }

    /** The largest exact score of a query over keys {@code [0, visible)}: -∞ for none, NaN if one is NaN. */
    static double exactMax(AttentionCall c, int b, int head, int kvHead, int query, int visible) {
        int d = c.shape().headDim();
        double max = Double.NEGATIVE_INFINITY;
        for (int j = 0; j < visible; j++) {
            max = Math.max(max, exactScore(c, b, head, kvHead, query, j));
        }
        return max;
    }

    /**
     * One query of the forward computed again in double, for the queries the float pass gives no weight (total 0 or
     * NaN): a score beyond float's range is +∞ there, making ∞ - ∞, or -∞ everywhere, which looks fully masked; and for
     * those whose float accumulator overflowed on finite values, whose weighted mean cannot. Writes
     * {@code softmax(scores)·V} and the log-sum-exp, each rounded to float once; a query that truly sees no key gets
     * zeros and -∞ as before, and a NaN input NaN.
     */
    static void exactQuery(AttentionCall c, int b, int head, int kvHead, int query, int visible) {
        int d = c.shape().headDim();
        double max = exactMax(c, b, head, kvHead, query, visible);
        double[] acc = new double[d];
        double sum = 0;
        if (max != Double.NEGATIVE_INFINITY) {
            for (int j = 0; j < visible; j++) {
                double p = exactWeight(c, b, head, kvHead, query, j, max);
                if (p != 0) {
                    sum += p;
                    long vi = c.v().row(b, kvHead, j);
                    for (int e = 0; e < d; e++) {
                        acc[e] += p * c.v().data().getAtIndex(FLOAT, vi + e);
                    }
                }
            }
        }
        long oi = c.o().row(b, head, query);
        for (int e = 0; e < d; e++) {
            c.o().data().setAtIndex(FLOAT, oi + e, sum == 0 ? 0f : (float) (acc[e] / sum));
        }
        if (c.lse() != null) {
            float value = sum == 0 ? Float.NEGATIVE_INFINITY : (float) (max + Math.log(sum));
            c.lse().data().setAtIndex(FLOAT, c.lse().row(b, head, query), value);
        }
    }

    /**
     * One query's contribution to dQ, dK and dV computed in double from Q, K, V and dO, for the queries whose float
     * log-sum-exp cannot give their weights (see {@link #EXACT_LOG_SUM}), whose float scores overflow on finite
     * inputs, or whose {@code dO·v} may overflow in float (values near float's limit); the tiles gave them weight 0.
     * Adds {@code dV_j += P_j·dO}, {@code dK_j += scale·dS_j·q} and {@code dQ += scale·Σ dS_j·k_j}, with {@code dS_j =
     * P_j·(dO·v_j - Σ P·(dO·v))}.
     */
    static void exactGradients(AttentionCall c, int b, int head, int kvHead, int query, int visible) {
        int d = c.shape().headDim();
        double max = exactMax(c, b, head, kvHead, query, visible);
        if (max == Double.NEGATIVE_INFINITY) {
            return;
        }
        long qi = c.q().row(b, head, query);
        long gi = c.dO().row(b, head, query);
        double sum = 0;
        double rowDot = 0;
        for (int j = 0; j < visible; j++) {
            double p = exactWeight(c, b, head, kvHead, query, j, max);
            if (p != 0) {
                // A hidden key adds nothing, not 0·NaN from its value row.
                sum += p;
                rowDot += p * exactDot(d, c.dO(), gi, c.v(), c.v().row(b, kvHead, j));
            }
        }
        rowDot /= sum;
        double[] dq = new double[d];
        for (int j = 0; j < visible; j++) {
            double weight = exactWeight(c, b, head, kvHead, query, j, max);
            double p = weight / sum;
            if (weight == 0 || p == 0) {
                // A hidden key stays out even where sum is NaN (0/NaN is NaN).
                continue;
            }
            double ds = p * (exactDot(d, c.dO(), gi, c.v(), c.v().row(b, kvHead, j)) - rowDot);
            long ki = c.k().row(b, kvHead, j);
            long dki = c.dK().row(b, kvHead, j);
            long dvi = c.dV().row(b, kvHead, j);
            for (int e = 0; e < d; e++) {
                dq[e] += c.scale() * ds * c.k().data().getAtIndex(FLOAT, ki + e);
                addAt(c.dK(), dki + e, c.scale() * ds * c.q().data().getAtIndex(FLOAT, qi + e));
                addAt(c.dV(), dvi + e, p * c.dO().data().getAtIndex(FLOAT, gi + e));
            }
        }
        long dqi = c.dQ().row(b, head, query);
        for (int e = 0; e < d; e++) {
            addAt(c.dQ(), dqi + e, dq[e]);
        }
    }

    /** The dot product of two rows of {@code d} floats in double. */
    static double exactDot(int d, TensorView a, long ai, TensorView b, long bi) {
        double dot = 0;
        for (int e = 0; e < d; e++) {
            dot += (double) a.data().getAtIndex(FLOAT, ai + e) * b.data().getAtIndex(FLOAT, bi + e);
        }
        return dot;
    }

    /** {@code view[index] += value}, rounded to float. */
    static void addAt(TensorView view, long index, double value) {
        view.data().setAtIndex(FLOAT, index, (float) (view.data().getAtIndex(FLOAT, index) + value));
    }
}
