package dev.panamax.bench;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.reflect.Field;
import java.lang.reflect.Method;
import java.util.Arrays;
import java.util.List;

/**
 * OpsBench's op in float64 on the benchmark's own inputs, for {@link BenchCorrectnessTest}. OpsBench keeps its inputs
 * and outputs in private fields, read here by reflection: an accessor of its own would replace that.
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

    private final String op;
    private final Expected y;
    /** The mean loss, for cross-entropy only. */
    private final Expected loss;

    OpsReference(OpsBench bench) {
        op = bench.op;
        int cols = bench.cols;
        int rows = (Integer) field(bench, "rows");
        float[] x = (float[]) field(bench, "x");
        float[] weight = (float[]) field(bench, "weight");
        float[] bias = (float[]) field(bench, "bias");
        int[] targets = (int[]) field(bench, "targets");
        y = new Expected(rows * cols);
        loss = new Expected(1);
        double lossSum = 0, lossTolerance = 0, lossMagnitude = 0;
        for (int i = 0; i < rows; i++) {
            int at = i * cols;
            switch (op) {
                case "softmax", "crossentropy" -> {
                    double max = Double.NEGATIVE_INFINITY;
                    for (int j = 0; j < cols; j++) {
                        max = Math.max(max, x[at + j]);
                    }
                    double sum = 0;
                    for (int j = 0; j < cols; j++) {
                        sum += Math.exp(x[at + j] - max);
                    }
                    // The relative error of the row's sum of exponentials, each off by at most u·(max − min) + 4u.
                    double sumError = Expected.gamma(cols) + U * (max - minimum(x, at, cols)) + 4 * U;
                    for (int j = 0; j < cols; j++) {
                        double p = Math.exp(x[at + j] - max) / sum;
                        double relative = sumError + U * (max - x[at + j]) + 5 * U;
                        if (op.equals("softmax")) {
                            y.set(at + j, p, 2 * relative * p);
                        } else {
                            double target = j == targets[i] ? 1 : 0;
                            y.set(at + j, (p - target) / rows, 2 * (relative * p + 2 * U * (p + target)) / rows);
                        }
                    }
                    if (op.equals("crossentropy")) {
                        double logSumExp = max + Math.log(sum);
                        double rowLoss = logSumExp - x[at + targets[i]];
                        lossSum += rowLoss;
                        lossTolerance += sumError
                                + U * (Math.abs(logSumExp) + Math.abs(x[at + targets[i]]))
                                + 2 * U * Math.abs(rowLoss);
                        lossMagnitude += Math.abs(rowLoss);
                    }
                }
                case "layernorm", "rmsnorm" -> {
                    double sum = 0, magnitude = 0, squares = 0;
                    for (int j = 0; j < cols; j++) {
                        sum += x[at + j];
                        magnitude += Math.abs(x[at + j]);
                        squares += (double) x[at + j] * x[at + j];
                    }
                    boolean layer = op.equals("layernorm");
                    double mean = layer ? sum / cols : 0;
                    double meanMagnitude = magnitude / cols;
                    double variance = layer ? 0 : squares / cols;
                    if (layer) {
                        for (int j = 0; j < cols; j++) {
                            variance += (x[at + j] - mean) * (x[at + j] - mean) / cols;
                        }
                    }
                    double rstd = 1 / Math.sqrt(variance + 1e-5);
                    // The errors of the mean and of the variance, whether it is formed in one pass or two.
                    double meanError = layer ? Expected.gamma(cols + 1) * meanMagnitude : 0;
                    double varianceError = Expected.gamma(cols + 3) * (squares / cols + mean * mean)
                            + 2 * meanError * (meanMagnitude + Math.abs(mean))
                            + meanError * meanError;
                    double rstdError = varianceError / (2 * (variance + 1e-5)) + 3 * U;
                    for (int j = 0; j < cols; j++) {
                        double centred = x[at + j] - mean;
                        double scaled = centred * rstd * weight[j];
                        double b = layer ? bias[j] : 0;
                        double error = Math.abs(weight[j]) * rstd * (meanError + U * Math.abs(centred))
                                + Math.abs(scaled) * (rstdError + 3 * U)
                                + U * (2 * Math.abs(scaled) + 2 * Math.abs(b));
                        y.set(at + j, scaled + b, 2 * error);
                    }
                }
                case "gelu" -> {
                    for (int j = 0; j < cols; j++) {
                        double v = x[at + j];
                        double z = Math.sqrt(2 / Math.PI) * (v + 0.044715 * v * v * v);
                        double value = 0.5 * v * (1 + Math.tanh(z));
                        y.set(at + j, value, 2 * (8 * U * Math.abs(z) + 8 * U) * Math.abs(value));
                    }
                }
                case "silu" -> {
                    for (int j = 0; j < cols; j++) {
                        double v = x[at + j];
                        double value = v / (1 + Math.exp(-v));
                        y.set(at + j, value, 2 * 8 * U * Math.abs(value));
                    }
                }
                default -> throw new AssertionError("no reference for op " + op);
            }
        }
        loss.set(0, lossSum / rows, 2 * (lossTolerance + Expected.gamma(rows) * lossMagnitude) / rows);
    }

    private static double minimum(float[] x, int at, int cols) {
        double min = Double.POSITIVE_INFINITY;
        for (int j = 0; j < cols; j++) {
            min = Math.min(min, x[at + j]);
        }
        return min;
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

    /** A private field of OpsBench. */
    static Object field(OpsBench bench, String name) {
        try {
            Field field = OpsBench.class.getDeclaredField(name);
            field.setAccessible(true);
            return field.get(bench);
        } catch (ReflectiveOperationException e) {
            throw new AssertionError("OpsBench has no field " + name + " any more: update this check", e);
        }
    }

    /**
     * The output the array forms wrote (y of the pair the last operation used), filled with NaN once read, as {@code
     * BenchCorrectnessTest.take} does, so that a later benchmark on the same state cannot pass by leaving it as it was.
     */
    static float[] takeOutput(OpsBench bench) {
        float[] y = (float[]) field(bench, "y");
        float[] output = y.clone();
        Arrays.fill(y, Float.NaN);
        return output;
    }

    /** The output the native form wrote (its operands' y), filled with NaN once read. */
    static float[] takeNativeOutput(OpsBench bench) {
        Object operands = field(bench, "offHeap");
        try {
            Method accessor = operands.getClass().getDeclaredMethod("y");
            accessor.setAccessible(true);
            MemorySegment y = (MemorySegment) accessor.invoke(operands);
            float[] output = y.toArray(ValueLayout.JAVA_FLOAT);
            y.fill((byte) 0xff); // all ones: a NaN in every float
            return output;
        } catch (ReflectiveOperationException e) {
            throw new AssertionError("OpsBench's native operands have no y any more: update this check", e);
        }
    }
}
