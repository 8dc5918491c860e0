package dev.panamax.kernels;

import static dev.panamax.kernels.testing.Agreement.assertAllRejected;
import static dev.panamax.kernels.testing.Rejection.illegalArgument;
import static dev.panamax.kernels.testing.Rejection.nullArgument;
import static dev.panamax.kernels.testing.Rejection.outOfBounds;
import static dev.panamax.kernels.testing.Tolerance.FLOAT_EPSILON;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.panamax.kernels.testing.Agreement;
import dev.panamax.kernels.testing.FiniteDifferences;
import dev.panamax.kernels.testing.Inputs;
import dev.panamax.kernels.testing.ReferenceOps;
import dev.panamax.kernels.testing.Rejection;
import dev.panamax.kernels.testing.Tolerance;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * LayerNorm and RmsNorm, forward and backward, against {@link ReferenceOps}. Bounds come from a first-order analysis
 * with ε = 2⁻²⁴ and {@code S = ⌈n/4⌉ + 16}, the most additions any term of a row sum passes through at widths of 128
 * to 512 bits (see {@link SoftmaxTest}):
 *
 * <ul>
 *   <li>mean: {@code S·ε·Σ|x|/n + ε|mean|}; variance (from {@code x - mean}): {@code (S + 3)ε} relative plus the
 *       square of the mean's error; rstd: half the relative error of {@code var + epsilon} plus 2ε (root, division);
 *   <li>y: {@code |w|·(|x̂|·(rstd error + 3ε) + rstd·mean error) + 2ε|y| + ε|b|} (RMS: {@code |y|·(rstd error + 2ε)});
 *   <li>dx: the row's two reductions with S terms each, then four roundings per element; dweight and dbias: a sum over
 *       the rows (in chunks, then chunk partials), at most {@code rows + 5} roundings per term, plus ε of the value
 *       they were added to.
 * </ul>
 *
 * <p>The backward formulas are also checked against central finite differences of the float64 forward, with respect
 * to x, the weight and the bias.
 */
@Tag("species")
class NormsTest {
    private static final float EPSILON = 1e-5f;

    /** Storage for one call's operands, with offsets and padded rows; gradients start at random values. */
    static final class Operands {
        final int rows;
        final int cols;
        final int ld;
        final float[] x;
        final float[] w;
        final float[] b;
        final float[] y;
        final float[] mean;
        final float[] rstd;
        final float[] dy;
        final float[] dx;
        final float[] dw;
        final float[] db;

        Operands(String name, int rows, int cols, float[] x) {
            this.rows = rows;
            this.cols = cols;
            this.ld = cols + 3;
            this.x = x;
            w = Inputs.uniform(Inputs.seed(name + " w"), cols + 1, 0.5f, 1.5f);
            b = Inputs.uniform(Inputs.seed(name + " b"), cols + 2, -1, 1);
            y = Inputs.uniform(Inputs.seed(name + " y"), 2 + rows * ld, -1, 1);
            mean = new float[rows + 1];
            rstd = new float[rows + 1];
            dy = Inputs.uniform(Inputs.seed(name + " dy"), 2 + rows * ld, -1, 1);
            dx = Inputs.uniform(Inputs.seed(name + " dx"), 2 + rows * ld, -1, 1);
            dw = Inputs.uniform(Inputs.seed(name + " dw"), cols + 1, -1, 1);
            db = Inputs.uniform(Inputs.seed(name + " db"), cols + 2, -1, 1);
        }

        static Operands of(String name, int rows, int cols, float shift, float spread) {
            float[] x = Inputs.uniform(Inputs.seed(name), 2 + rows * (cols + 3), shift - spread, shift + spread);
            return new Operands(name, rows, cols, x);
        }

        /** Row i of an operand stored with offset 2 and leading dimension ld. */
        double[] row(float[] values, int i) {
            return ReferenceOps.toDouble(values, 2 + i * ld, cols);
        }

        void forward(boolean rms) {
            forward(rms, y);
        }

        /** The forward into {@code out}, stored like y: y itself, or x for the in-place form. */
        void forward(boolean rms, float[] out) {
            if (rms) {
                RmsNorm.forward(rows, cols, EPSILON, x, 2, ld, w, 1, out, 2, ld, rstd, 1);
            } else {
                LayerNorm.forward(rows, cols, EPSILON, x, 2, ld, w, 1, b, 2, out, 2, ld, mean, 1, rstd, 1);
            }
        }

        void backward(boolean rms) {
            backward(rms, dx);
        }

        /** The backward into {@code out}, stored like dx: dx itself, or dy for the in-place form. */
        void backward(boolean rms, float[] out) {
            if (rms) {
                RmsNorm.backward(rows, cols, x, 2, ld, w, 1, rstd, 1, dy, 2, ld, out, 2, ld, dw, 1);
            } else {
                LayerNorm.backward(rows, cols, x, 2, ld, w, 1, mean, 1, rstd, 1, dy, 2, ld, out, 2, ld, dw, 1, db, 2);
            }
        }
    }

    @ParameterizedTest
    @ValueSource(ints = {1, 2, 7, 8, 9, 31, 33, 1000, 4096})
    void forwardAndBackwardMatchTheReference(int cols) {
        for (boolean rms : new boolean[] {false, true}) {
            for (int rows : new int[] {1, 3, 40}) {
                String name = (rms ? "rms " : "layer ") + rows + "×" + cols;
                check(rms, Operands.of(name, rows, cols, 5, 3), name);
            }
        }
    }

    @Test
    void extremeInputs() {
        for (boolean rms : new boolean[] {false, true}) {
            for (int cols : new int[] {1, 9, 1000}) {
                String name = (rms ? "rms " : "layer ") + cols;
                check(rms, Operands.of(name + " ±1e4", 4, cols, 0, 1e4f), name + " ±1e4");
                check(rms, Operands.of(name + " tiny", 4, cols, 0, 1e-4f), name + " tiny");
                Operands special = Operands.of(name + " special", 4, cols, 1, 2);
                special.x[2 + cols / 2] = Float.NaN;
                special.x[2 + special.ld + cols - 1] = Float.NEGATIVE_INFINITY;
                Arrays.fill(special.x, 2 + 2 * special.ld, 2 + 2 * special.ld + cols, 3.25f);
                check(rms, special, name + " NaN, -∞ and a constant row");
            }
        }
    }

    /**
     * Rows far from 0 with a small spread, where a float sum's mean is off by about the spread itself (1e7 ± 1: float's
     * spacing there is 1), must still normalise to float accuracy: the check's bounds take the mean's error from the
     * deviations, not from the row's magnitude. The rows hold integers, so the deviations from any float near their
     * mean are exact.
     */
    @Test
    void rowsFarFromZeroWithASmallSpreadNormaliseToFloatAccuracy() {
        for (int cols : new int[] {1, 9, 100, 1000, 4096}) {
            String name = "layer " + cols + " 1e7 ± 8";
            Operands o = Operands.of(name, 5, cols, 0, 1);
            for (int i = 0; i < o.x.length; i++) {
                o.x[i] = 1e7f + Math.round(o.x[i] * 8);
            }
            check(false, o, name);
        }
    }

    /**
     * Rows whose sum of squares overflows float (issue 19: from about 1.8e19 they normalised to 0, so LayerNorm gave the
     * bias and RMSNorm zeros). Up to 1e25 forward and backward are checked against the reference; near float's limits,
     * where the mean's sum and {@code x - mean} overflow too and rstd is subnormal, the forward.
     */
    @Test
    void hugeRowsNormaliseAsInExactArithmetic() {
        for (boolean rms : new boolean[] {false, true}) {
            for (int cols : new int[] {1, 2, 9, 1000}) {
                String name = (rms ? "rms " : "layer ") + cols;
                check(rms, Operands.of(name + " ±1e20", 4, cols, 0, 1e20f), name + " ±1e20");
                check(rms, Operands.of(name + " 1e25 ± 1e24", 4, cols, 1e25f, 1e24f), name + " 1e25 ± 1e24");
                Operands limits = Operands.of(name + " ±1.7e38", 4, cols, 0, 1.7e38f);
                // Row 2: x - mean beyond float's range at its last entry; row 3: constant, its sum overflowing.
                Arrays.fill(limits.x, 2 + 2 * limits.ld, 2 + 2 * limits.ld + cols, 3.3e38f);
                limits.x[2 + 2 * limits.ld + cols - 1] = -3.3e38f;
                Arrays.fill(limits.x, 2 + 3 * limits.ld, 2 + 3 * limits.ld + cols, -3.3e38f);
                limits.forward(rms);
                double[] w = ReferenceOps.toDouble(limits.w, 1, cols);
                double[] b = ReferenceOps.toDouble(limits.b, 2, cols);
                for (int i = 0; i < 4; i++) {
                    double[] x = limits.row(limits.x, i);
                    double[] expected =
                            rms ? ReferenceOps.rmsNorm(x, w, EPSILON) : ReferenceOps.layerNorm(x, w, b, EPSILON);
                    double[] bound = new double[cols];
                    for (int j = 0; j < cols; j++) {
                        // Computed in double and rounded once to float.
                        bound[j] = 2 * FLOAT_EPSILON * (Math.abs(expected[j]) + (rms ? 0 : Math.abs(b[j])));
                    }
                    int at = 2 + i * limits.ld;
                    Tolerance.assertClose(
                            name + " near float's limits, row " + i,
                            expected,
                            Arrays.copyOfRange(limits.y, at, at + cols),
                            bound);
                }
            }
        }
    }

    /**
     * A constant row near float's limit, whose length leaves a partial vector: the backward's tail once computed (0 −
     * mean)·rstd in its inactive lanes, an overflow that made the whole row's gradient NaN. Its xhat is 0, so dx is
     * rstd·(dy·w − mean(dy·w)).
     */
    @Test
    void aConstantRowNearFloatsLimitHasTheGradientOfExactArithmetic() {
        for (int cols : new int[] {1, 9, 33}) {
            float[] x = new float[cols];
            Arrays.fill(x, -3.3e38f);
            float[] w = Inputs.uniform(Inputs.seed("limit w" + cols), cols, 0.5f, 1.5f);
            float[] b = new float[cols];
            float[] y = new float[cols];
            float[] mean = new float[1];
            float[] rstd = new float[1];
            LayerNorm.forward(1, cols, EPSILON, x, 0, cols, w, 0, b, 0, y, 0, cols, mean, 0, rstd, 0);
            float[] dy = Inputs.uniform(Inputs.seed("limit dy" + cols), cols, -1, 1);
            float[] dx = new float[cols];
            LayerNorm.backward(
                    1,
                    cols,
                    x,
                    0,
                    cols,
                    w,
                    0,
                    mean,
                    0,
                    rstd,
                    0,
                    dy,
                    0,
                    cols,
                    dx,
                    0,
                    cols,
                    new float[cols],
                    0,
                    new float[cols],
                    0);
            double meanDnorm = 0;
            for (int j = 0; j < cols; j++) {
                meanDnorm += (double) dy[j] * w[j] / cols;
            }
            double[] expected = new double[cols];
            double[] bound = new double[cols];
            for (int j = 0; j < cols; j++) {
                expected[j] = rstd[0] * ((double) dy[j] * w[j] - meanDnorm);
                // A few roundings of terms of size rstd·|dy·w|, and of the float sum of dnorm over the row.
                bound[j] = 8 * FLOAT_EPSILON * rstd[0] * (Math.abs((double) dy[j] * w[j]) + 2 * cols);
            }
            Tolerance.assertClose("layer " + cols + ": dx of a constant row of -3.3e38", expected, dx, bound);
        }
    }

    /** A constant row has variance 0: epsilon = 0 made it 0/0 (NaN), so epsilon must be above 0. */
    @Test
    void epsilonMustBePositive() {
        float[] x = new float[8];
        float[] w = new float[4];
        float[] y = Inputs.uniform(2, 8, -1, 1);
        List<Rejection> rows = new ArrayList<>();
        for (float epsilon : new float[] {0f, -0f, -1e-5f, Float.NaN, Float.POSITIVE_INFINITY}) {
            String message = "epsilon (" + epsilon + ") must be finite and > 0";
            rows.add(illegalArgument(
                    message, () -> LayerNorm.forward(2, 4, epsilon, x, 0, 4, w, 0, w, 0, y, 0, 4, null, 0, null, 0)));
            rows.add(illegalArgument(message, () -> RmsNorm.forward(2, 4, epsilon, x, 0, 4, w, 0, y, 0, 4, null, 0)));
        }
        assertAllRejected(rows, y);
    }

    @ParameterizedTest
    @ValueSource(ints = {1, 2, 9, 33, 200})
    void referenceBackwardMatchesFiniteDifferences(int cols) {
        double[] x = ReferenceOps.toDouble(Inputs.uniform(Inputs.seed("fd " + cols), cols, -2, 3), 0, cols);
        double[] w = ReferenceOps.toDouble(Inputs.uniform(Inputs.seed("fd w " + cols), cols, 0.5f, 1.5f), 0, cols);
        double[] b = ReferenceOps.toDouble(Inputs.uniform(Inputs.seed("fd b " + cols), cols, -1, 1), 0, cols);
        double[] dy = ReferenceOps.toDouble(Inputs.uniform(Inputs.seed("fd dy " + cols), cols, -1, 1), 0, cols);
        double eps = 1e-5;
        double[] stats = ReferenceOps.layerNormStats(x, eps);
        double[][] layer = ReferenceOps.layerNormBackward(x, w, stats[0], stats[1], dy);
        FiniteDifferences.assertMatches(
                "layer norm dx " + cols,
                layer[0],
                FiniteDifferences.gradient(v -> ReferenceOps.layerNorm(v, w, b, eps), x, dy, 1e-6),
                1e-6);
        FiniteDifferences.assertMatches(
                "layer norm dweight " + cols,
                layer[1],
                FiniteDifferences.gradient(v -> ReferenceOps.layerNorm(x, v, b, eps), w, dy, 1e-6),
                1e-6);
        FiniteDifferences.assertMatches(
                "layer norm dbias " + cols,
                layer[2],
                FiniteDifferences.gradient(v -> ReferenceOps.layerNorm(x, w, v, eps), b, dy, 1e-6),
                1e-6);
        double[][] rms = ReferenceOps.rmsNormBackward(x, w, ReferenceOps.rmsNormRstd(x, eps), dy);
        FiniteDifferences.assertMatches(
                "rms norm dx " + cols,
                rms[0],
                FiniteDifferences.gradient(v -> ReferenceOps.rmsNorm(v, w, eps), x, dy, 1e-6),
                1e-6);
        FiniteDifferences.assertMatches(
                "rms norm dweight " + cols,
                rms[1],
                FiniteDifferences.gradient(v -> ReferenceOps.rmsNorm(x, v, eps), w, dy, 1e-6),
                1e-6);
    }

    /** No rows means nothing read: the kernels take a row's statistics before their loop, so this once threw. */
    @Test
    void noRowsReadNothing() {
        float[] none = new float[0];
        float[] w = new float[8];
        RmsNorm.forward(0, 8, EPSILON, none, 0, 8, w, 0, none, 0, 8, none, 0);
        LayerNorm.forward(0, 8, EPSILON, none, 0, 8, w, 0, w, 0, none, 0, 8, none, 0, none, 0);
        Softmax.forward(0, 8, 1f, Softmax.UNMASKED, none, 0, 8, none, 0, 8);
        Softmax.logForward(0, 8, 1f, Softmax.UNMASKED, none, 0, 8, none, 0, 8);
    }

    @Test
    void inPlaceEqualsOutOfPlace() {
        for (boolean rms : new boolean[] {false, true}) {
            Operands out = Operands.of("in place", 5, 37, 1, 2);
            Operands in = Operands.of("in place", 5, 37, 1, 2);
            out.forward(rms);
            in.forward(rms, in.x);
            for (int i = 0; i < 5; i++) {
                assertArrayEquals(out.row(out.y, i), in.row(in.x, i), "row " + i);
            }
            out.backward(rms);
            Operands again = Operands.of("in place", 5, 37, 1, 2);
            again.forward(rms);
            again.backward(rms, again.dy);
            for (int i = 0; i < 5; i++) {
                assertArrayEquals(out.row(out.dx, i), again.row(again.dy, i), "backward row " + i);
            }
            assertArrayEquals(out.dw, again.dw);
        }
    }

    @Test
    void formsAndThreadCountsAgreeBitForBit() {
        int rows = 700;
        int cols = 768;
        for (boolean rms : new boolean[] {false, true}) {
            Operands o = Operands.of("forms", rows, cols, 1, 2);
            int ld = o.ld;
            // Each kernel on its own operands: x, w, b, y, mean, rstd, dy, dx, dweight and dbias.
            float[][] operands = {o.x, o.w, o.b, o.y, o.mean, o.rstd, o.dy, o.dx, o.dw, o.db};
            if (rms) {
                Agreement.assertFormsAgree(
                        "rms norm",
                        operands,
                        a -> {
                            RmsNorm.forward(rows, cols, EPSILON, a[0], 2, ld, a[1], 1, a[3], 2, ld, a[5], 1);
                            RmsNorm.backward(
                                    rows, cols, a[0], 2, ld, a[1], 1, a[5], 1, a[6], 2, ld, a[7], 2, ld, a[8], 1);
                        },
                        (s, arena) -> {
                            RmsNorm.forward(rows, cols, EPSILON, s[0], 2, ld, s[1], 1, s[3], 2, ld, s[5], 1);
                            RmsNorm.backward(
                                    rows, cols, s[0], 2, ld, s[1], 1, s[5], 1, s[6], 2, ld, s[7], 2, ld, s[8], 1);
                        });
            } else {
                Agreement.assertFormsAgree(
                        "layer norm",
                        operands,
                        a -> {
                            LayerNorm.forward(
                                    rows, cols, EPSILON, a[0], 2, ld, a[1], 1, a[2], 2, a[3], 2, ld, a[4], 1, a[5], 1);
                            LayerNorm.backward(
                                    rows, cols, a[0], 2, ld, a[1], 1, a[4], 1, a[5], 1, a[6], 2, ld, a[7], 2, ld, a[8],
                                    1, a[9], 2);
                        },
                        (s, arena) -> {
                            LayerNorm.forward(
                                    rows, cols, EPSILON, s[0], 2, ld, s[1], 1, s[2], 2, s[3], 2, ld, s[4], 1, s[5], 1);
                            LayerNorm.backward(
                                    rows, cols, s[0], 2, ld, s[1], 1, s[4], 1, s[5], 1, s[6], 2, ld, s[7], 2, ld, s[8],
                                    1, s[9], 2);
                        });
            }
            Agreement.assertThreadIndependent(rms ? "rms norm" : "layer norm", () -> {
                Operands fresh = Operands.of("forms", rows, cols, 1, 2);
                fresh.forward(rms);
                fresh.backward(rms);
                return new float[][] {fresh.y, fresh.mean, fresh.rstd, fresh.dx, fresh.dw, fresh.db};
            });
        }
    }

    /**
     * The backward's driver sums the parameter gradients of many rows over two threads in waves of chunks, holding at
     * most 16 MiB of partials and keeping none above that after the call, with the bits of the sums in chunk order.
     * The chunk bodies are stand-ins: each sets its partials to values whose float sums depend on the order.
     */
    @Test
    void partialSumsStayBoundedWhateverTheRows() {
        int rows = 40 * 1024;
        int cols = 4096;
        int chunks = rows / Norms.CHUNK;
        float[] expected0 = new float[cols];
        float[] expected1 = new float[cols];
        for (int c = 0; c < chunks; c++) {
            for (int j = 0; j < cols; j++) {
                expected0[j] += partial(c, j);
                expected1[j] += partial(c, cols + j);
            }
        }
        int saved = Parallelism.threads();
        try {
            Parallelism.setThreads(2);
            float[] g0 = new float[cols];
            float[] g1 = new float[cols];
            long[] held = {0};
            Norms.backward(
                    rows,
                    cols,
                    true,
                    (from, to, partial, at) -> {
                        for (int j = 0; j < 2 * cols; j++) {
                            partial[at + j] = partial(from / Norms.CHUNK, j);
                        }
                        held[0] = Math.max(held[0], partial.length);
                    },
                    Operand.of(MemorySegment.ofArray(g0)),
                    0,
                    Operand.of(MemorySegment.ofArray(g1)),
                    0);
            assertArrayEquals(expected0, g0, "first gradient, in chunk order");
            assertArrayEquals(expected1, g1, "second gradient, in chunk order");
            assertTrue(held[0] <= Scratch.RETAINED_FLOATS, "partials of " + held[0] + " floats");
            assertTrue(Norms.PARTIALS.retained() <= Scratch.RETAINED_FLOATS, Norms.PARTIALS.retained() + " kept");
        } finally {
            Parallelism.setThreads(saved);
        }
    }

    /** A stand-in partial sum of chunk c at index j, irrational enough that adding them rounds. */
    private static float partial(int c, int j) {
        return (float) Math.sqrt(c + 0.5 * j);
    }

    @Test
    void badArgumentsAreRejectedBeforeAnythingIsWritten() {
        float[] x = new float[20];
        float[] w = new float[4];
        float[] y = Inputs.uniform(1, 20, -1, 1);
        MemorySegment xs = MemorySegment.ofArray(x);
        MemorySegment ws = MemorySegment.ofArray(w);
        MemorySegment ys = MemorySegment.ofArray(y);
        List<Rejection> rows = List.of(
                illegalArgument(
                        "epsilon (-1.0) must be finite and > 0",
                        () -> LayerNorm.forward(2, 4, -1, x, 0, 4, w, 0, w, 0, y, 0, 4, null, 0, null, 0)),
                outOfBounds(
                        "bias holds 4 floats, but bias needs 4 from biasOffset (1), up to index 4",
                        () -> LayerNorm.forward(2, 4, EPSILON, x, 0, 4, w, 0, w, 1, y, 0, 4, null, 0, null, 0)),
                outOfBounds(
                        "rstd holds 4 floats, but rstd needs 5 from rstdOffset (0)",
                        () -> RmsNorm.forward(5, 4, EPSILON, x, 0, 4, w, 0, y, 0, 4, w, 0)),
                illegalArgument(
                        "lddx (3) must be >= cols (4) for dx",
                        () -> RmsNorm.backward(2, 4, x, 0, 4, w, 0, w, 0, x, 0, 4, y, 0, 3, w, 0)),
                nullArgument(
                        "dbias must not be null",
                        () -> LayerNorm.backward(2, 4, x, 0, 4, w, 0, w, 0, w, 0, x, 0, 4, y, 0, 4, w, 0, null, 0)),
                illegalArgument(
                        "dweight is read-only",
                        () -> RmsNorm.backward(2, 4, xs, 0, 4, ws, 0, ws, 0, xs, 0, 4, ys, 0, 4, ws.asReadOnly(), 0)));
        assertAllRejected(rows, y);
    }

    /** Runs forward and backward and compares everything with the reference. */
    private static void check(boolean rms, Operands o, String name) {
        float[] dw0 = o.dw.clone();
        float[] db0 = o.db.clone();
        o.forward(rms);
        o.backward(rms);
        double eps = FLOAT_EPSILON;
        int n = o.cols;
        double sumTerms = Math.ceil(n / 4.0) + 16;
        double[] dwExpected = new double[n];
        double[] dbExpected = new double[n];
        double[] dwMagnitude = new double[n];
        double[] dbMagnitude = new double[n];
        double[] w = ReferenceOps.toDouble(o.w, 1, n);
        double[] b = ReferenceOps.toDouble(o.b, 2, n);
        for (int i = 0; i < o.rows; i++) {
            double[] x = o.row(o.x, i);
            double[] dy = o.row(o.dy, i);
            double absSum = 0;
            for (double v : x) {
                absSum += Math.abs(v);
            }
            double[] expectedY;
            double[] yBound = new double[n];
            double rstd;
            double[][] grads;
            double[] dxBound = new double[n];
            if (rms) {
                rstd = ReferenceOps.rmsNormRstd(x, EPSILON);
                expectedY = ReferenceOps.rmsNorm(x, w, EPSILON);
                double ms = 1 / (rstd * rstd) - EPSILON;
                double rstdError = 0.5 * (sumTerms + 1) * eps * ms / (ms + EPSILON) + 2 * eps;
                for (int j = 0; j < n; j++) {
                    yBound[j] = Math.abs(expectedY[j]) * (rstdError + 2 * eps);
                }
                assertNear(name + " rstd", i, rstd, o.rstd[1 + i], rstd * rstdError);
                double r = o.rstd[1 + i];
                grads = ReferenceOps.rmsNormBackward(x, w, r, dy);
                double dot = 0;
                double dotMagnitude = 0;
                for (int j = 0; j < n; j++) {
                    dot += dy[j] * w[j] * x[j];
                    dotMagnitude += Math.abs(dy[j] * w[j] * x[j]);
                }
                double dotError = (sumTerms + 2) * eps * dotMagnitude + 4 * eps * Math.abs(dot);
                for (int j = 0; j < n; j++) {
                    double c = Math.abs(x[j]) * r * r * r;
                    dxBound[j] = 3 * eps * r * Math.abs(dy[j] * w[j])
                            + c * dotError / n
                            + eps * (Math.abs(grads[0][j]) + c * Math.abs(dot) / n);
                    dwMagnitude[j] += Math.abs(grads[1][j]);
                }
            } else {
                double[] stats = ReferenceOps.layerNormStats(x, EPSILON);
                rstd = stats[1];
                expectedY = ReferenceOps.layerNorm(x, w, b, EPSILON);
                double variance = 1 / (rstd * rstd) - EPSILON;
                double deviation = 0;
                for (double v : x) {
                    deviation += Math.abs(v - stats[0]);
                }
                // The corrected two-pass mean: the first, a float sum, is off by up to firstMeanError; the correction
                // sums the deviations from it, so its own error scales with their size, not the row's magnitude.
                double firstMeanError = sumTerms * eps * absSum / n + eps * Math.abs(stats[0]);
                double meanError = (sumTerms + 2) * eps * (deviation / n + firstMeanError);
                // The squares are taken around the first mean: Σd²/n = variance + (mean - first mean)², less c².
                double varianceError = (sumTerms + 3) * eps * (variance + firstMeanError * firstMeanError)
                        + 2 * firstMeanError * meanError
                        + meanError * meanError;
                double rstdError = 0.5 * varianceError / (variance + EPSILON) + 2 * eps;
                for (int j = 0; j < n; j++) {
                    double xhat = (x[j] - stats[0]) * rstd;
                    yBound[j] = Math.abs(w[j]) * (Math.abs(xhat) * (rstdError + 3 * eps) + rstd * meanError)
                            + 2 * eps * Math.abs(expectedY[j])
                            + eps * Math.abs(b[j]);
                }
                // The mean written is rounded to float once more.
                assertNear(name + " mean", i, stats[0], o.mean[1 + i], meanError + eps * Math.abs(stats[0]));
                assertNear(name + " rstd", i, rstd, o.rstd[1 + i], rstd * rstdError);
                double m = o.mean[1 + i];
                double r = o.rstd[1 + i];
                grads = ReferenceOps.layerNormBackward(x, w, m, r, dy);
                double a = 0;
                double c = 0;
                double aMagnitude = 0;
                double cMagnitude = 0;
                for (int j = 0; j < n; j++) {
                    double dnorm = dy[j] * w[j];
                    double xhat = (x[j] - m) * r;
                    a += dnorm;
                    c += dnorm * xhat;
                    aMagnitude += Math.abs(dnorm);
                    cMagnitude += Math.abs(dnorm * xhat);
                }
                for (int j = 0; j < n; j++) {
                    double xhat = Math.abs((x[j] - m) * r);
                    dxBound[j] = r
                                    * (4 * eps * (Math.abs(dy[j] * w[j]) + Math.abs(a) / n + xhat * Math.abs(c) / n)
                                            + (sumTerms + 1) * eps * aMagnitude / n
                                            + xhat * (sumTerms + 4) * eps * cMagnitude / n
                                            + 2 * eps * xhat * Math.abs(c) / n)
                            + 2 * eps * Math.abs(grads[0][j]);
                    dwMagnitude[j] += Math.abs(grads[1][j]);
                    dbMagnitude[j] += Math.abs(grads[2][j]);
                    dbExpected[j] += grads[2][j];
                }
            }
            for (int j = 0; j < n; j++) {
                dwExpected[j] += grads[1][j];
            }
            int at = 2 + i * o.ld;
            Tolerance.assertClose(
                    name + " y row " + i, n, j -> expectedY[j], j -> o.y[at + j], j -> yBound[j], j -> "col " + j);
            double[] dx = grads[0];
            Tolerance.assertClose(
                    name + " dx row " + i, n, j -> dx[j], j -> o.dx[at + j], j -> dxBound[j], j -> "col " + j);
        }
        assertSums(name + " dweight", dw0, 1, dwExpected, dwMagnitude, o.dw, o.rows);
        if (!rms) {
            assertSums(name + " dbias", db0, 2, dbExpected, dbMagnitude, o.db, o.rows);
        }
    }

    private static void assertNear(String what, int row, double expected, float actual, double bound) {
        Tolerance.assertClose(
                what + " row " + row, new double[] {expected}, new float[] {actual}, new double[] {bound});
    }

    /** A gradient summed over rows onto its initial values {@code start}. */
    private static void assertSums(
            String what, float[] start, int offset, double[] sums, double[] magnitudes, float[] actual, int rows) {
        double[] expected = new double[sums.length];
        double[] bound = new double[sums.length];
        for (int j = 0; j < sums.length; j++) {
            expected[j] = start[offset + j] + sums[j];
            bound[j] = (rows + 5) * FLOAT_EPSILON * magnitudes[j] + FLOAT_EPSILON * Math.abs(expected[j]);
        }
        Tolerance.assertClose(
                what, sums.length, j -> expected[j], j -> actual[offset + j], j -> bound[j], j -> "col " + j);
    }
}
