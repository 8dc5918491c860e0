package dev.panamax.bench;

/**
 * Causal attention in float64, forward and backward, for {@link BenchCorrectnessTest}, over tensors {@code [head,
 * position, dim]} with one scale {@code 1/√dim}.
 *
 * <p>Tolerance: each output is a weighted sum over positions of probabilities P, each from a score that is a float dot
 * product of {@code dim} terms. A score off by at most δ = {@code γ(dim + 1)·scale·max Σ|q·k|} moves each probability
 * by a factor within {@code e^{±2δ}} (its exponential and its row's normaliser both move); the normaliser's and the
 * output's sums over positions add {@code γ(tk)} each, a third covers the rounding of the online softmax's rescaling
 * and of the saved log-sum-exp, and {@code 16u} the exponential's 2 ulp and the divisions. Every term of an output's sum
 * therefore carries a relative error within {@code ε = 2δ + 3γ(tk) + 2γ(dim) + 16u}, the {@code 2γ(dim)} being the
 * backward's two dot products over {@code dim} ({@code dO·v} and {@code dO·O}), and the output is within ε times the sum
 * of its terms' magnitudes. The backward's {@code dS = P ⊙ (dP − D)} is bounded through {@code P·(|dP| + |D|)}, taken
 * over magnitudes, since {@code dP − D} cancels.
 */
final class AttentionReference {
    final Expected o;
    final Expected dQ;
    final Expected dK;
    final Expected dV;

    /** Forward and backward of the tensors AttentionBench uses, queries and keys both {@code t} long. */
    AttentionReference(AttentionBench.Tensors tensors, int heads, int t, int dim) {
        int size = heads * t * dim;
        o = new Expected(size);
        dQ = new Expected(size);
        dK = new Expected(size);
        dV = new Expected(size);
        double epsilon = epsilon(tensors.q(), tensors.k(), heads, t, t, dim);
        double scale = 1 / Math.sqrt(dim);
        float[] q = tensors.q();
        float[] k = tensors.k();
        float[] v = tensors.v();
        float[] dO = tensors.dO();
        double[] p = new double[t];
        double[] dP = new double[t];
        double[] dPMagnitude = new double[t];
        double[] out = new double[dim];
        for (int h = 0; h < heads; h++) {
            int base = h * t * dim;
            for (int i = 0; i < t; i++) {
                int qi = base + i * dim;
                probabilities(q, qi, k, base, i + 1, dim, scale, p);
                double d = 0;
                double dMagnitude = 0;
                for (int c = 0; c < dim; c++) {
                    double sum = 0, magnitude = 0;
                    for (int j = 0; j <= i; j++) {
                        sum += p[j] * v[base + j * dim + c];
                        magnitude += p[j] * Math.abs(v[base + j * dim + c]);
                    }
                    out[c] = sum;
                    o.set(qi + c, sum, epsilon * magnitude);
                    d += dO[qi + c] * sum;
                }
                for (int j = 0; j <= i; j++) {
                    double dot = 0, magnitude = 0;
                    for (int c = 0; c < dim; c++) {
                        dot += (double) dO[qi + c] * v[base + j * dim + c];
                        magnitude += Math.abs((double) dO[qi + c] * v[base + j * dim + c]);
                    }
                    dP[j] = dot;
                    dPMagnitude[j] = magnitude;
                    dMagnitude += p[j] * magnitude;
                }
                for (int j = 0; j <= i; j++) {
                    double dS = p[j] * (dP[j] - d);
                    double dSMagnitude = p[j] * (dPMagnitude[j] + dMagnitude);
                    int kj = base + j * dim;
                    for (int c = 0; c < dim; c++) {
                        add(dQ, qi + c, scale * dS * k[kj + c], epsilon * scale * dSMagnitude * Math.abs(k[kj + c]));
                        add(dK, kj + c, scale * dS * q[qi + c], epsilon * scale * dSMagnitude * Math.abs(q[qi + c]));
                        add(dV, kj + c, p[j] * dO[qi + c], epsilon * p[j] * Math.abs(dO[qi + c]));
                    }
                }
            }
        }
    }

    private static void add(Expected expected, int i, double value, double tolerance) {
        expected.set(i, expected.values()[i] + value, expected.tolerances()[i] + tolerance);
    }

    /**
     * The forward of {@code tq} queries against {@code tk} keys per head, query i seeing keys up to {@code i + tk −
     * tq} (the last query sees them all).
     */
    static Expected forward(float[] q, float[] k, float[] v, int heads, int tq, int tk, int dim) {
        Expected o = new Expected(heads * tq * dim);
        double epsilon = epsilon(q, k, heads, tq, tk, dim);
        double scale = 1 / Math.sqrt(dim);
        double[] p = new double[tk];
        for (int h = 0; h < heads; h++) {
            for (int i = 0; i < tq; i++) {
                int qi = (h * tq + i) * dim;
                int seen = i + tk - tq + 1;
                probabilities(q, qi, k, h * tk * dim, seen, dim, scale, p);
                for (int c = 0; c < dim; c++) {
                    double sum = 0, magnitude = 0;
                    for (int j = 0; j < seen; j++) {
                        float value = v[(h * tk + j) * dim + c];
                        sum += p[j] * value;
                        magnitude += p[j] * Math.abs(value);
                    }
                    o.set(qi + c, sum, epsilon * magnitude);
                }
            }
        }
        return o;
    }

    /** Softmax of the scaled scores of the query at {@code qi} against the first {@code seen} keys from {@code kBase}. */
    private static void probabilities(
            float[] q, int qi, float[] k, int kBase, int seen, int dim, double scale, double[] p) {
        double max = Double.NEGATIVE_INFINITY;
        for (int j = 0; j < seen; j++) {
            double dot = 0;
            for (int c = 0; c < dim; c++) {
                dot += (double) q[qi + c] * k[kBase + j * dim + c];
            }
            p[j] = scale * dot;
            max = Math.max(max, p[j]);
        }
        double sum = 0;
        for (int j = 0; j < seen; j++) {
            p[j] = Math.exp(p[j] - max);
            sum += p[j];
        }
        for (int j = 0; j < seen; j++) {
            p[j] /= sum;
        }
    }

    /** The relative error ε every term of an output may carry (see the class comment). */
    private static double epsilon(float[] q, float[] k, int heads, int tq, int tk, int dim) {
        double largest = 0;
        for (int h = 0; h < heads; h++) {
            for (int i = 0; i < tq; i++) {
                for (int j = 0; j < tk; j++) {
                    double magnitude = 0;
                    for (int c = 0; c < dim; c++) {
                        magnitude += Math.abs((double) q[(h * tq + i) * dim + c] * k[(h * tk + j) * dim + c]);
                    }
                    largest = Math.max(largest, magnitude);
                }
            }
        }
        double delta = Expected.gamma(dim + 1) * largest / Math.sqrt(dim);
        return 2 * delta + 3 * Expected.gamma(tk) + 2 * Expected.gamma(dim) + 16 * Expected.U;
    }
}
