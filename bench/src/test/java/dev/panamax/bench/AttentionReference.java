package dev.panamax.bench;

import dev.panamax.kernels.testing.ReferenceAttention;
import dev.panamax.kernels.testing.Tolerance;
import java.util.Arrays;
import java.util.stream.IntStream;

/**
 * Causal attention, forward and backward, for {@link BenchCorrectnessTest}, over tensors {@code [head, position, dim]}
 * with one scale {@code 1/√dim}: the values are the kernels' float64 {@link ReferenceAttention} (one batch entry, as
 * many key/value heads as query heads, query i seeing keys up to {@code i + tk − tq}, no mask); the tolerances are
 * derived here, tighter than ReferenceAttention's own bounds.
 *
 * <p>Tolerance: each output is a weighted sum over positions of probabilities P, each from a score that is a float dot
 * product of {@code dim} terms. A score off by at most δ = {@code γ(dim + 1)·scale·max Σ|q·k|} moves each probability
 * by a factor within {@code e^{±2δ}} (its exponential and its row's normaliser both move); the normaliser's and the
 * output's sums over positions add {@code γ(tk)} each, a third covers the rounding of the online softmax's rescaling
 * and of the saved log-sum-exp, and {@code 16u} the exponential's 2 ulp and the divisions. Every term of an output's sum
 * therefore carries a relative error within {@code ε = 2δ + 3γ(tk) + 2γ(dim) + 16u}, the {@code 2γ(dim)} being the
 * backward's two dot products over {@code dim} ({@code dO·v} and {@code dO·O}), and the output is within ε times the sum
 * of its terms' magnitudes. The backward's {@code dS = P ⊙ (dP − D)} is bounded through {@code P·(|dP| + |D|)}, taken
 * over magnitudes ({@code |dP_j| ≤ Σ|dO·v_j|}, {@code |D| ≤ Σ_j P_j·Σ|dO·v_j|}), since {@code dP − D} cancels.
 *
 * <p>Those sums of magnitudes are ReferenceAttention's results on {@code |v|} and {@code |dO|}: with every value and
 * output gradient non-negative, its output is {@code Σ P·|v|}, and its gradients' bounds are its documented factor
 * {@code 8u·(dim + tq + tk + 16)} times {@code Σ scale·P·(|dP| + |D|)·|k|} (for dQ, and with |q| for dK) and {@code Σ
 * P·|dO|} (for dV), dP and D being then the sums of magnitudes above.
 */
final class AttentionReference {
    final Expected o;
    final Expected dQ;
    final Expected dK;
    final Expected dV;

    /** Forward and backward of the tensors AttentionBench uses, queries and keys both {@code t} long. */
    AttentionReference(AttentionBench.Tensors tensors, int heads, int t, int dim) {
        float[] q = tensors.q();
        float[] k = tensors.k();
        float[] v = tensors.v();
        float[] dO = tensors.dO();
        double epsilon = epsilon(q, k, heads, t, t, dim);
        o = forward(q, k, v, heads, t, t, dim);
        double scale = 1 / Math.sqrt(dim);
        ReferenceAttention.Gradients exact =
                ReferenceAttention.backward(1, heads, heads, t, t, dim, scale, true, q, k, v, null, dO);
        ReferenceAttention.Gradients magnitudes =
                ReferenceAttention.backward(1, heads, heads, t, t, dim, scale, true, q, k, abs(v), null, abs(dO));
        // The bounds of the run on magnitudes, over ReferenceAttention's factor, times ε (see the class comment).
        double perBound = epsilon / (8 * Tolerance.FLOAT_EPSILON * (dim + t + t + 16));
        dQ = new Expected(exact.dq(), times(magnitudes.dqBound(), perBound));
        dK = new Expected(exact.dk(), times(magnitudes.dkBound(), perBound));
        dV = new Expected(exact.dv(), times(magnitudes.dvBound(), perBound));
    }

    /**
     * The forward of {@code tq} queries against {@code tk} keys per head, query i seeing keys up to {@code i + tk −
     * tq} (the last query sees them all).
     */
    static Expected forward(float[] q, float[] k, float[] v, int heads, int tq, int tk, int dim) {
        double epsilon = epsilon(q, k, heads, tq, tk, dim);
        double scale = 1 / Math.sqrt(dim);
        double[] values = ReferenceAttention.forward(1, heads, heads, tq, tk, dim, scale, true, q, k, v, null)
                .output();
        double[] magnitudes = ReferenceAttention.forward(1, heads, heads, tq, tk, dim, scale, true, q, k, abs(v), null)
                .output();
        return new Expected(values, times(magnitudes, epsilon));
    }

    /** The magnitudes of {@code values}. */
    private static float[] abs(float[] values) {
        float[] result = values.clone();
        IntStream.range(0, result.length).forEach(i -> result[i] = Math.abs(result[i]));
        return result;
    }

    private static double[] times(double[] values, double factor) {
        return Arrays.stream(values).map(value -> value * factor).toArray();
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
