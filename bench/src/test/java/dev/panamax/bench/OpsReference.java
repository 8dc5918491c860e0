package dev.panamax.bench;

import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.panamax.kernels.testing.ReferenceOps;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;
import java.util.List;

/**
 * OpsBench's op on the benchmark's own inputs, for {@link BenchCorrectnessTest}: the values are the kernels' float64
 * references ({@link ReferenceOps}, with the epsilon, GELU variant and cross-entropy weighting OpsBench runs), the
 * tolerances derived here from the float computation each benchmark does.
 *
 * <p>Tolerances, each twice the bound derived here for the float computation (the factor covers the bounds'
 * second-order terms). Softmax: the row's sum of {@code cols} positive terms is within {@code γ(cols)} relative, each
 * exponential within {@code u·|x − max| + 4u} (the rounded difference, then 2 ulp), and the division adds u. LayerNorm
 * and RMSNorm: the mean and the mean of squares are sums of {@code cols} terms, within {@code γ(cols + 1)} of the sum
 * of their magnitudes, which moves the mean, and the reciprocal square root by half the variance's relative error;
 * then the scaling and the bias add a few u. GELU (tanh form) and SiLU sum nothing: GELU's argument {@code z =
 * 0.798·(x + 0.0447·x³)} is within {@code 4u·|z|}, which moves {@code y = x·σ(2z)} by {@code 8u·|z|} relative at most,
 * and the exponential and the division add {@code 8u}. Cross-entropy's gradient {@code (softmax − onehot)/rows} is the
 * softmax's bound, plus the subtraction's and division's rounding; its loss, a mean over {@code rows} of per-row losses
 * each within the error of its log-sum-exp, is within {@code γ(rows)} of the sum of their magnitudes.
 */
final class OpsReference {
    private static final double U = Expected.U;
    /** The epsilon OpsBench passes to LayerNorm and RmsNorm. */
    private static final double NORM_EPSILON = 1e-5;

    private final String op;
    private final Expected y;
    /** The mean loss, for cross-entropy only. */
    private final Expected loss;

    OpsReference(OpsBench bench) {
        op = bench.op;
        int cols = bench.cols;
        OpsBench.Inputs inputs = bench.inputs();
        int rows = inputs.rows();
        float[] x = inputs.x();
        double[] weight = ReferenceOps.toDouble(inputs.weight(), 0, cols);
        double[] bias = ReferenceOps.toDouble(inputs.bias(), 0, cols);
        int[] targets = inputs.targets();
        y = new Expected(rows * cols);
        loss = new Expected(1);
        double lossSum = 0, lossTolerance = 0, lossMagnitude = 0;
        for (int i = 0; i < rows; i++) {
            int at = i * cols;
            double[] row = ReferenceOps.toDouble(x, at, cols);
            switch (op) {
                case "softmax", "crossentropy" -> {
                    double[] p = ReferenceOps.softmax(row, 1, cols);
                    double max = Arrays.stream(row).max().orElseThrow();
                    double min = Arrays.stream(row).min().orElseThrow();
                    // The relative error of the row's sum of exponentials, each off by at most u·(max − min) + 4u.
                    double sumError = Expected.gamma(cols) + U * (max - min) + 4 * U;
                    double[] gradient =
                            op.equals("softmax") ? p : ReferenceOps.crossEntropyBackward(row, targets[i], 1.0 / rows);
                    for (int j = 0; j < cols; j++) {
                        double relative = sumError + U * (max - row[j]) + 5 * U;
                        if (op.equals("softmax")) {
                            y.set(at + j, p[j], 2 * relative * p[j]);
                        } else {
                            double target = j == targets[i] ? 1 : 0;
                            y.set(at + j, gradient[j], 2 * (relative * p[j] + 2 * U * (p[j] + target)) / rows);
                        }
                    }
                    if (op.equals("crossentropy")) {
                        double rowLoss = ReferenceOps.crossEntropy(row, targets[i]);
                        double logSumExp = rowLoss + row[targets[i]];
                        lossSum += rowLoss;
                        lossTolerance += sumError
                                + U * (Math.abs(logSumExp) + Math.abs(row[targets[i]]))
                                + 2 * U * Math.abs(rowLoss);
                        lossMagnitude += Math.abs(rowLoss);
                    }
                }
                case "layernorm", "rmsnorm" -> {
                    boolean layer = op.equals("layernorm");
                    double mean, rstd;
                    double[] values;
                    if (layer) {
                        double[] stats = ReferenceOps.layerNormStats(row, NORM_EPSILON);
                        mean = stats[0];
                        rstd = stats[1];
                        values = ReferenceOps.layerNorm(row, weight, bias, NORM_EPSILON);
                    } else {
                        mean = 0;
                        rstd = ReferenceOps.rmsNormRstd(row, NORM_EPSILON);
                        values = ReferenceOps.rmsNorm(row, weight, NORM_EPSILON);
                    }
                    double magnitude = 0, squares = 0;
                    for (double v : row) {
                        magnitude += Math.abs(v);
                        squares += v * v;
                    }
                    double meanMagnitude = magnitude / cols;
                    // variance + epsilon, whether the variance is the centred one (LayerNorm) or the mean square.
                    double shifted = 1 / (rstd * rstd);
                    // The errors of the mean and of the variance, whether it is formed in one pass or two.
                    double meanError = layer ? Expected.gamma(cols + 1) * meanMagnitude : 0;
                    double varianceError = Expected.gamma(cols + 3) * (squares / cols + mean * mean)
                            + 2 * meanError * (meanMagnitude + Math.abs(mean))
                            + meanError * meanError;
                    double rstdError = varianceError / (2 * shifted) + 3 * U;
                    for (int j = 0; j < cols; j++) {
                        double b = layer ? bias[j] : 0;
                        double scaled = values[j] - b;
                        double error = Math.abs(weight[j]) * rstd * (meanError + U * Math.abs(row[j] - mean))
                                + Math.abs(scaled) * (rstdError + 3 * U)
                                + U * (2 * Math.abs(scaled) + 2 * Math.abs(b));
                        y.set(at + j, values[j], 2 * error);
                    }
                }
                case "gelu" -> {
                    for (int j = 0; j < cols; j++) {
                        double v = row[j];
                        // GELU's argument, for its error bound only: the value is ReferenceOps', the same tanh form.
                        double z = Math.sqrt(2 / Math.PI) * (v + 0.044715 * v * v * v);
                        double value = ReferenceOps.geluTanh(v);
                        y.set(at + j, value, 2 * (8 * U * Math.abs(z) + 8 * U) * Math.abs(value));
                    }
                }
                case "silu" -> {
                    for (int j = 0; j < cols; j++) {
                        double value = ReferenceOps.silu(row[j]);
                        y.set(at + j, value, 2 * 8 * U * Math.abs(value));
                    }
                }
                default -> throw new AssertionError("no reference for op " + op);
            }
        }
        loss.set(0, lossSum / rows, 2 * (lossTolerance + Expected.gamma(rows) * lossMagnitude) / rows);
    }

    /**
     * The checks of one benchmark's result: its output tensor, and for cross-entropy the loss it returned (the other
     * ops return an element of the output, checked with it).
     */
    List<BenchCorrectnessTest.Checked> check(float[] output, Object returned) {
        if (!op.equals("crossentropy")) {
            return List.of(new BenchCorrectnessTest.Checked(output, y));
        }
        assertEquals(Float.class, returned.getClass());
        return List.of(
                new BenchCorrectnessTest.Checked(output, y),
                new BenchCorrectnessTest.Checked(new float[] {(Float) returned}, loss));
    }

    /**
     * The output the array forms wrote (y of the pair the last operation used), filled with NaN once read, as {@code
     * BenchCorrectnessTest.take} does, so that a later benchmark on the same state cannot pass by leaving it as it was.
     */
    static float[] takeOutput(OpsBench bench) {
        float[] y = bench.output();
        float[] output = y.clone();
        Arrays.fill(y, Float.NaN);
        return output;
    }

    /** The output the native form wrote (its operands' y), filled with NaN once read. */
    static float[] takeNativeOutput(OpsBench bench) {
        MemorySegment y = bench.nativeOutput();
        float[] output = y.toArray(ValueLayout.JAVA_FLOAT);
        y.fill((byte) 0xff); // all ones: a NaN in every float
        return output;
    }
}
