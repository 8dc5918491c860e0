package dev.panamax.kernels.testing;

/**
 * Naive float64 attention: materialised scores, a two-pass softmax, then the weighted sum of values. Inputs are dense
 * {@code [batch, heads, rows, headDim]}; the mask is a dense {@code [tq, tk]} shared by every batch entry and head.
 */
public final class ReferenceAttention {
    private ReferenceAttention() {}

    /**
     * A reference forward pass.
     *
     * @param output {@code [batch, qHeads, tq, headDim]}
     * @param logSumExp {@code [batch, qHeads, tq]}; −Inf for a query that sees no key
     * @param bound per output element, the allowed error of a float kernel (see {@link #forward})
     */
    public record Result(double[] output, double[] logSumExp, double[] bound) {}

    /**
     * Computes attention in float64. The bound for output {@code (i, c)} is {@code 2ε·(headDim·scale·A_i + 4·tk +
     * 16)·max_j |v_jc|} with ε float's unit roundoff and {@code A_i = max_j Σ_d |q_id·k_jd|}: a float score is off by
     * at most {@code headDim·ε·scale·A_i}, which moves every softmax weight by that relative amount; the exponential,
     * the sums over keys and the final division add a few ε per key; the weighted sum of values is at most {@code
     * max_j |v_jc|} in size.
     *
     * @param batch batch entries
     * @param qHeads query heads
     * @param kvHeads key/value heads (dividing qHeads)
     * @param tq queries
     * @param tk keys
     * @param headDim row length
     * @param scale score scale
     * @param causal whether query i sees only keys {@code j <= i + tk - tq}
     * @param q dense queries
     * @param k dense keys
     * @param v dense values
     * @param mask dense additive {@code [tq, tk]} mask, or null
     * @return output, log-sum-exp and bounds
     */
    public static Result forward(
            int batch,
            int qHeads,
            int kvHeads,
            int tq,
            int tk,
            int headDim,
            double scale,
            boolean causal,
            float[] q,
            float[] k,
            float[] v,
            float[] mask) {
        double[] out = new double[batch * qHeads * tq * headDim];
        double[] lse = new double[batch * qHeads * tq];
        double[] bound = new double[out.length];
        double[] scores = new double[tk];
        for (int b = 0; b < batch; b++) {
            for (int h = 0; h < qHeads; h++) {
                int kvHead = h / (qHeads / kvHeads);
                for (int i = 0; i < tq; i++) {
                    int qRow = ((b * qHeads + h) * tq + i) * headDim;
                    double max = Double.NEGATIVE_INFINITY;
                    double magnitude = 0;
                    for (int j = 0; j < tk; j++) {
                        int kRow = ((b * kvHeads + kvHead) * tk + j) * headDim;
                        double dot = 0;
                        double abs = 0;
                        for (int c = 0; c < headDim; c++) {
                            dot += (double) q[qRow + c] * k[kRow + c];
                            abs += Math.abs((double) q[qRow + c] * k[kRow + c]);
                        }
                        double score = scale * dot + (mask == null ? 0 : mask[i * tk + j]);
                        if (causal && j > i + tk - tq) {
                            score = Double.NEGATIVE_INFINITY;
                        }
                        scores[j] = score;
                        max = Math.max(max, score);
                        magnitude = Math.max(magnitude, abs);
                    }
                    double sum = 0;
                    for (int j = 0; j < tk; j++) {
                        scores[j] = max == Double.NEGATIVE_INFINITY ? 0 : Math.exp(scores[j] - max);
                        sum += scores[j];
                    }
                    int row = (b * qHeads + h) * tq + i;
                    lse[row] = sum == 0 ? Double.NEGATIVE_INFINITY : max + Math.log(sum);
                    double relative = 2 * Tolerance.FLOAT_EPSILON * (headDim * scale * magnitude + 4 * tk + 16);
                    for (int c = 0; c < headDim; c++) {
                        double value = 0;
                        double largest = 0;
                        for (int j = 0; j < tk; j++) {
                            double vjc = v[((b * kvHeads + kvHead) * tk + j) * headDim + c];
                            value += scores[j] * vjc;
                            largest = Math.max(largest, Math.abs(vjc));
                        }
                        out[qRow + c] = sum == 0 ? 0 : value / sum;
                        bound[qRow + c] = relative * largest;
                    }
                }
            }
        }
        return new Result(out, lse, bound);
    }

    /**
     * Reference gradients with their error bounds: for each of dQ, dK and dV, the bound of an element is {@code 8ε·(d
     * + tq + tk + 16)} times the sum of the absolute values of the terms that make it up (weights, score gradients
     * and the rows they multiply), the classical bound for sums of that many products, with room for the
     * recomputed weights' own error.
     *
     * @param dq gradient with respect to Q
     * @param dk gradient with respect to K
     * @param dv gradient with respect to V
     * @param dqBound bounds for dq
     * @param dkBound bounds for dk
     * @param dvBound bounds for dv
     */
    public record Gradients(
            double[] dq, double[] dk, double[] dv, double[] dqBound, double[] dkBound, double[] dvBound) {}

    /**
     * The gradients of {@code L = Σ O ∘ dO} with respect to Q, K and V, from materialised weights: {@code dV = Pᵀ·dO},
     * {@code dP = dO·Vᵀ}, {@code dS = P ∘ (dP - rowsum(dO ∘ O))}, {@code dQ = scale·dS·K}, {@code dK = scale·dSᵀ·Q}.
     * Dense layouts as in {@link #forward}.
     *
     * @param batch batch entries
     * @param qHeads query heads
     * @param kvHeads key/value heads
     * @param tq queries
     * @param tk keys
     * @param d row length
     * @param scale score scale
     * @param causal causal flag
     * @param q queries
     * @param k keys
     * @param v values
     * @param mask dense {@code [tq, tk]} mask or null
     * @param dO gradient of the loss with respect to the output
     * @return the gradients and their bounds
     */
    public static Gradients backward(
            int batch,
            int qHeads,
            int kvHeads,
            int tq,
            int tk,
            int d,
            double scale,
            boolean causal,
            float[] q,
            float[] k,
            float[] v,
            float[] mask,
            float[] dO) {
        double[] dq = new double[q.length];
        double[] dk = new double[k.length];
        double[] dv = new double[v.length];
        double[] dqm = new double[q.length];
        double[] dkm = new double[k.length];
        double[] dvm = new double[v.length];
        double factor = 8 * Tolerance.FLOAT_EPSILON * (d + tq + tk + 16);
        double[] p = new double[tk];
        double[] dp = new double[tk];
        for (int b = 0; b < batch; b++) {
            for (int h = 0; h < qHeads; h++) {
                int kvHead = h / (qHeads / kvHeads);
                int kvBase = (b * kvHeads + kvHead) * tk * d;
                for (int i = 0; i < tq; i++) {
                    int qRow = ((b * qHeads + h) * tq + i) * d;
                    double max = Double.NEGATIVE_INFINITY;
                    for (int j = 0; j < tk; j++) {
                        double dot = 0;
                        for (int c = 0; c < d; c++) {
                            dot += (double) q[qRow + c] * k[kvBase + j * d + c];
                        }
                        p[j] = causal && j > i + tk - tq
                                ? Double.NEGATIVE_INFINITY
                                : scale * dot + (mask == null ? 0 : mask[i * tk + j]);
                        max = Math.max(max, p[j]);
                    }
                    double sum = 0;
                    for (int j = 0; j < tk; j++) {
                        p[j] = max == Double.NEGATIVE_INFINITY ? 0 : Math.exp(p[j] - max);
                        sum += p[j];
                    }
                    double rowDot = 0;
                    for (int j = 0; j < tk; j++) {
                        p[j] = sum == 0 ? 0 : p[j] / sum;
                        dp[j] = 0;
                        for (int c = 0; c < d; c++) {
                            dp[j] += (double) dO[qRow + c] * v[kvBase + j * d + c];
                        }
                        rowDot += p[j] * dp[j];
                    }
                    for (int j = 0; j < tk; j++) {
                        double ds = p[j] * (dp[j] - rowDot);
                        double dsMagnitude = p[j] * (Math.abs(dp[j]) + Math.abs(rowDot));
                        for (int c = 0; c < d; c++) {
                            int kv = kvBase + j * d + c;
                            dv[kv] += p[j] * dO[qRow + c];
                            dvm[kv] += p[j] * Math.abs(dO[qRow + c]);
                            dq[qRow + c] += scale * ds * k[kv];
                            dqm[qRow + c] += Math.abs(scale) * dsMagnitude * Math.abs(k[kv]);
                            dk[kv] += scale * ds * q[qRow + c];
                            dkm[kv] += Math.abs(scale) * dsMagnitude * Math.abs(q[qRow + c]);
                        }
                    }
                }
            }
        }
        for (double[] m : new double[][] {dqm, dkm, dvm}) {
            for (int i = 0; i < m.length; i++) {
                m[i] *= factor;
            }
        }
        return new Gradients(dq, dk, dv, dqm, dkm, dvm);
    }
}
