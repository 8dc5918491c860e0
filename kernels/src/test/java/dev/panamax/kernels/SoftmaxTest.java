package dev.panamax.kernels;

import static dev.panamax.kernels.testing.Agreement.assertAllRejected;
import static dev.panamax.kernels.testing.Rejection.illegalArgument;
import static dev.panamax.kernels.testing.Rejection.nullArgument;
import static dev.panamax.kernels.testing.Rejection.outOfBounds;
import static dev.panamax.kernels.testing.Tolerance.FLOAT_EPSILON;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.panamax.kernels.testing.Agreement;
import dev.panamax.kernels.testing.FiniteDifferences;
import dev.panamax.kernels.testing.Inputs;
import dev.panamax.kernels.testing.ReferenceOps;
import dev.panamax.kernels.testing.Rejection;
import dev.panamax.kernels.testing.Tolerance;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import java.util.List;
import java.util.function.Supplier;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Softmax, log-softmax and their backward kernels against {@link ReferenceOps}, with per-element bounds from a
 * first-order error analysis (ε = 2⁻²⁴; the exponential is within 2 ulp, i.e. 4ε relative, see {@link
 * VectorMathTest}):
 *
 * <ul>
 *   <li>each exponent {@code z - max} carries {@code δ = ε(|z| + |max| + |z - max|)}: rounding {@code scale·x}, the
 *       max (one of those z) and the subtraction; a term {@code exp(z - max)} is then off by {@code δ + 4ε};
 *   <li>the row sum runs over LANES vector accumulators then the lanes: each term passes through at most {@code ⌈n /
 *       LANES⌉ + LANES <= ⌈n/4⌉ + 16} additions for every width from 128 to 512 bits; its relative error is that
 *       count times ε plus the terms' own errors weighted by their probabilities;
 *   <li>softmax: {@code p·(δ + 4ε + sumError + 2ε)} (reciprocal and product) plus 2⁻¹²⁶ for flushed subnormals;
 *       log-softmax: {@code δ + sumError + ε|log Σ| + ε|y|}, absolute;
 *   <li>backward: the row's dot product {@code Σ y·dy} (or {@code Σ dy}) with the same summation bound, then three
 *       roundings per element.
 * </ul>
 *
 * <p>Backward formulas are also checked against central finite differences of the float64 forward (h = 10⁻⁶,
 * agreement to 10⁻⁶ of the gradient's scale: the truncation error h² and rounding 10⁻¹⁶/h are both far below).
 */
@Tag("species")
class SoftmaxTest {
    private static final int[] ROWS = {1, 3, 10};
    /** The last offset makes rows of {@link #WIDE} columns see 8193 columns and more. */
    private static final int[] CAUSAL = {Softmax.UNMASKED, 0, -2, 5, 8192};
    /** Rows of 64 KiB, past L1. */
    private static final int WIDE = 16389;

    private static final float[] SCALES = {1, 0.3f};
    private static final double EXP_ERROR = 4 * FLOAT_EPSILON;

    /** One call's layout: a matrix of {@code rows × cols} inside storage with offsets and padded rows. */
    record Layout(int rows, int cols, int xOffset, int ldx, int yOffset, int ldy) {
        static Layout of(int rows, int cols) {
            return new Layout(rows, cols, 3, cols + 5, 1, cols + 2);
        }

        int xLength() {
            return xOffset + rows * ldx + 3;
        }

        int yLength() {
            return yOffset + rows * ldy + 3;
        }

        /** Softmax (or log-softmax) of x into y, stored as this layout says, through the array form. */
        void forward(boolean log, float scale, int causal, float[] x, float[] y) {
            if (log) {
                Softmax.logForward(rows, cols, scale, causal, x, xOffset, ldx, y, yOffset, ldy);
            } else {
                Softmax.forward(rows, cols, scale, causal, x, xOffset, ldx, y, yOffset, ldy);
            }
        }

        /** The backward from y and dy into dx through the array form: y stored as this layout's y, dy and dx as x. */
        void backward(boolean log, float scale, int causal, float[] y, float[] dy, float[] dx) {
            if (log) {
                Softmax.logBackward(rows, cols, scale, causal, y, yOffset, ldy, dy, xOffset, ldx, dx, xOffset, ldx);
            } else {
                Softmax.backward(rows, cols, scale, causal, y, yOffset, ldy, dy, xOffset, ldx, dx, xOffset, ldx);
            }
        }

        /** This layout with y stored as x is. */
        Layout yLikeX() {
            return new Layout(rows, cols, xOffset, ldx, xOffset, ldx);
        }

        /** This layout with x stored as y is. */
        Layout xLikeY() {
            return new Layout(rows, cols, yOffset, ldy, yOffset, ldy);
        }
    }

    @ParameterizedTest
    @ValueSource(ints = {1, 2, 7, 8, 9, 31, 33, 1000, 4096, WIDE})
    void forwardMatchesTheReference(int cols) {
        for (int rows : ROWS) {
            for (int causal : CAUSAL) {
                for (float scale : SCALES) {
                    Layout layout = Layout.of(rows, cols);
                    String name = rows + "×" + cols + " causal " + causal + " scale " + scale;
                    float[] x = Inputs.uniform(Inputs.seed(name), layout.xLength(), -6, 6);
                    checkForward(false, layout, scale, causal, x, name);
                    checkForward(true, layout, scale, causal, x, name);
                }
            }
        }
    }

    @ParameterizedTest
    @ValueSource(ints = {1, 2, 7, 8, 9, 31, 33, 1000, 4096})
    void backwardMatchesTheReference(int cols) {
        for (int rows : ROWS) {
            for (int causal : CAUSAL) {
                for (float scale : SCALES) {
                    Layout layout = Layout.of(rows, cols);
                    String name = "backward " + rows + "×" + cols + " causal " + causal + " scale " + scale;
                    float[] x = Inputs.uniform(Inputs.seed(name), layout.yLength(), -6, 6);
                    float[] dy = Inputs.uniform(Inputs.seed(name + " dy"), layout.xLength(), -1, 1);
                    checkBackward(false, layout, scale, causal, x, dy, name);
                    checkBackward(true, layout, scale, causal, x, dy, name);
                }
            }
        }
    }

    @ParameterizedTest
    @ValueSource(ints = {1, 2, 7, 9, 33, 1000})
    void referenceBackwardMatchesFiniteDifferences(int cols) {
        double[] x = ReferenceOps.toDouble(Inputs.uniform(Inputs.seed("fd " + cols), cols, -3, 3), 0, cols);
        double[] dy = ReferenceOps.toDouble(Inputs.uniform(Inputs.seed("fd dy " + cols), cols, -1, 1), 0, cols);
        double scale = 0.7;
        for (int visible : new int[] {cols, (cols + 1) / 2}) {
            double[] y = ReferenceOps.softmax(x, scale, visible);
            FiniteDifferences.assertMatches(
                    "softmax " + cols + " visible " + visible,
                    ReferenceOps.softmaxBackward(y, dy, scale, visible),
                    FiniteDifferences.gradient(v -> ReferenceOps.softmax(v, scale, visible), x, dy, 1e-6),
                    1e-6);
        }
        double[] logY = ReferenceOps.logSoftmax(x, scale, cols);
        FiniteDifferences.assertMatches(
                "log-softmax " + cols,
                ReferenceOps.logSoftmaxBackward(logY, dy, scale, cols),
                FiniteDifferences.gradient(v -> ReferenceOps.logSoftmax(v, scale, cols), x, dy, 1e-6),
                1e-6);
    }

    @Test
    void extremeInputsNeitherOverflowNorLoseTheirRows() {
        for (int cols : new int[] {1, 9, 33, 1000, WIDE}) {
            Layout layout = Layout.of(4, cols);
            float[] huge = Inputs.uniform(Inputs.seed("huge " + cols), layout.xLength(), -1e4f, 1e4f);
            checkForward(false, layout, 1, Softmax.UNMASKED, huge, "±1e4 " + cols);
            checkForward(true, layout, 1, Softmax.UNMASKED, huge, "±1e4 " + cols);
            checkForward(false, layout, 0.3f, 1, huge, "±1e4 " + cols);

            float[] infinities = Inputs.uniform(Inputs.seed("inf " + cols), layout.xLength(), -5, 5);
            for (int i = 0; i < infinities.length; i += 3) {
                infinities[i] = Float.NEGATIVE_INFINITY;
            }
            // Row 1 entirely -∞: zeros (log: -∞), not NaN. In a wide row, 8192 columns of -∞ in row 2 too.
            Arrays.fill(infinities, layout.xOffset() + layout.ldx(), layout.xOffset() + layout.ldx() + cols, -1f / 0f);
            if (cols == WIDE) {
                int start = layout.xOffset() + 2 * layout.ldx() + 5;
                Arrays.fill(infinities, start, start + 8192, Float.NEGATIVE_INFINITY);
            }
            checkForward(false, layout, 1, Softmax.UNMASKED, infinities, "-∞ " + cols);
            checkForward(true, layout, 0.5f, Softmax.UNMASKED, infinities, "-∞ " + cols);

            float[] nan = Inputs.uniform(Inputs.seed("nan " + cols), layout.xLength(), -5, 5);
            nan[layout.xOffset() + 2 * layout.ldx() + cols / 2] = Float.NaN;
            nan[layout.xOffset() + 3 * layout.ldx() + cols - 1] = Float.POSITIVE_INFINITY;
            // Row 1 -∞ but for one NaN: NaN, not zeros. Its max is taken in row 0's pass, which skips NaN.
            Arrays.fill(nan, layout.xOffset() + layout.ldx(), layout.xOffset() + layout.ldx() + cols, -1f / 0f);
            nan[layout.xOffset() + layout.ldx() + cols / 3] = Float.NaN;
            checkForward(false, layout, 1, Softmax.UNMASKED, nan, "NaN and +∞ " + cols);
            checkForward(true, layout, 1, Softmax.UNMASKED, nan, "NaN and +∞ " + cols);
        }
    }

    /**
     * Finite inputs whose {@code scale·x} is huge or beyond float's range (issue 19: NaN from |scale·x| ≈ 3e9 on):
     * finite distributions, matching the float64 reference, which forms {@code scale·x} exactly.
     */
    @Test
    void hugeMagnitudesGiveTheExactDistribution() {
        for (int cols : new int[] {1, 9, 33, 1000, WIDE}) {
            Layout layout = Layout.of(4, cols);
            float[] unit = Inputs.uniform(Inputs.seed("unit " + cols), layout.xLength(), -1, 1);
            // Rounding max z was off by up to 128 from 2³¹ on, so exp overflowed; from 1e20 every row was NaN.
            for (float scale : new float[] {3.2e9f, -3.2e9f, 1e20f, -1e20f, Float.MAX_VALUE}) {
                checkHuge(layout, scale, Softmax.UNMASKED, unit, "±1 at scale " + scale + ", " + cols);
            }
            checkHuge(layout, 1e20f, 1, unit, "±1 at scale 1e20, causal, " + cols);
            // Near float's limits, mixed signs: x - x* overflows (halved, it does not) yet z - max z is finite.
            float[] limits = Inputs.uniform(Inputs.seed("limits " + cols), layout.xLength(), -3.4e38f, 3.4e38f);
            for (float scale : new float[] {1, -1, 1e-30f, -1e-30f, 3e-38f, 2}) {
                checkHuge(layout, scale, Softmax.UNMASKED, limits, "±3.4e38 at scale " + scale + ", " + cols);
            }
            // Every z below -Float.MAX_VALUE: the row had looked fully masked and came out zeros.
            float[] negative = Inputs.uniform(Inputs.seed("negative " + cols), layout.xLength(), -1e10f, -1e9f);
            checkHuge(layout, 1e30f, Softmax.UNMASKED, negative, "all z overflowing to -∞, " + cols);
            // z near 2²² with steps of 0.5 between neighbours: many entries weigh, and max z is far from 0.
            float[] close = new float[layout.xLength()];
            float[] offsets = Inputs.uniform(Inputs.seed("close " + cols), close.length, 0, 16);
            for (int i = 0; i < close.length; i++) {
                close[i] = 0x1p22f + Math.round(offsets[i] * 2) / 2f;
            }
            checkHuge(layout, 1, Softmax.UNMASKED, close, "2²² + k/2, " + cols);
            checkHuge(layout, -3, 2, close, "2²² + k/2 at scale -3, causal, " + cols);
            checkHuge(layout, 0x1p20f, Softmax.UNMASKED, unit, "±1 at scale 2²⁰, " + cols);
        }
    }

    /** Both forwards against the reference, held to the wide rows' error model, also in place. */
    private static void checkHuge(Layout layout, float scale, int causal, float[] x, String name) {
        for (boolean log : new boolean[] {false, true}) {
            checkForward(log, layout, scale, causal, x, name, true);
            float[] inPlace = x.clone();
            float[] out = new float[x.length];
            for (float[] y : new float[][] {out, inPlace}) {
                float[] input = y == inPlace ? inPlace : x;
                layout.yLikeX().forward(log, scale, causal, input, y);
            }
            for (int i = 0; i < layout.rows(); i++) {
                int at = layout.xOffset() + i * layout.ldx();
                assertArrayEquals(
                        Arrays.copyOfRange(out, at, at + layout.cols()),
                        Arrays.copyOfRange(inPlace, at, at + layout.cols()),
                        name + (log ? " log" : "") + " in place, row " + i);
            }
        }
    }

    @Test
    void fullyMaskedRowsAreZeroNotNaN() {
        Layout layout = Layout.of(5, 12);
        float[] x = Inputs.uniform(Inputs.seed("masked"), layout.xLength(), -2, 2);
        float[] y = new float[layout.yLength()];
        Softmax.forward(5, 12, 1, -3, x, layout.xOffset(), layout.ldx(), y, layout.yOffset(), layout.ldy());
        for (int i = 0; i < 5; i++) {
            float sum = 0;
            for (int j = 0; j < 12; j++) {
                float value = y[layout.yOffset() + i * layout.ldy() + j];
                assertEquals(j <= i - 3 ? value : 0f, value, "row " + i + " col " + j);
                sum += value;
            }
            assertEquals(i < 3 ? 0 : 1, sum, 1e-6, "row " + i + " sums to");
        }
        float[] dx = new float[layout.yLength()];
        Arrays.fill(dx, Float.NaN);
        float[] dy = Inputs.uniform(Inputs.seed("masked dy"), layout.yLength(), -1, 1);
        Softmax.backward(
                5,
                12,
                1,
                -3,
                y,
                layout.yOffset(),
                layout.ldy(),
                dy,
                layout.yOffset(),
                layout.ldy(),
                dx,
                layout.yOffset(),
                layout.ldy());
        for (int j = 0; j < 12; j++) {
            assertEquals(0f, dx[layout.yOffset() + j], "dx of a fully masked row");
        }
    }

    @Test
    void inPlaceEqualsOutOfPlace() {
        for (boolean log : new boolean[] {false, true}) {
            int rows = 6;
            int cols = 37;
            float[] x = Inputs.uniform(Inputs.seed("in place"), rows * 40, -4, 4);
            float[] out = new float[rows * 40];
            float[] inPlace = x.clone();
            Layout packed = new Layout(rows, cols, 0, 40, 0, 40);
            packed.forward(log, 0.5f, 2, x, out);
            packed.forward(log, 0.5f, 2, inPlace, inPlace);
            for (int i = 0; i < rows; i++) {
                assertArrayEquals(
                        Arrays.copyOfRange(out, i * 40, i * 40 + cols),
                        Arrays.copyOfRange(inPlace, i * 40, i * 40 + cols),
                        "row " + i + (log ? " log" : ""));
            }
            float[] dy = Inputs.uniform(Inputs.seed("in place dy"), rows * 40, -1, 1);
            float[] dx = new float[rows * 40];
            float[] dyInPlace = dy.clone();
            packed.backward(log, 0.5f, 2, out, dy, dx);
            packed.backward(log, 0.5f, 2, out, dyInPlace, dyInPlace);
            for (int i = 0; i < rows; i++) {
                assertArrayEquals(
                        Arrays.copyOfRange(dx, i * 40, i * 40 + cols),
                        Arrays.copyOfRange(dyInPlace, i * 40, i * 40 + cols),
                        "backward row " + i + (log ? " log" : ""));
            }
        }
    }

    @Test
    void arraysAndSegmentsAgreeBitForBit() {
        int rows = 300;
        int cols = 1001;
        float[] x = Inputs.uniform(Inputs.seed("forms"), rows * cols + 2, -8, 8);
        float[] y = new float[rows * cols + 1];
        float[] dy = Inputs.uniform(Inputs.seed("forms dy"), rows * cols, -1, 1);
        Agreement.assertFormsAgree(
                "softmax",
                new float[][] {x, y, dy},
                a -> {
                    Softmax.forward(rows, cols, 0.25f, 100, a[0], 2, cols, a[1], 1, cols);
                    Softmax.backward(rows, cols, 0.25f, 100, a[1], 1, cols, a[2], 0, cols, a[0], 0, cols);
                    Softmax.logForward(rows, cols, 0.25f, 100, a[0], 2, cols, a[2], 0, cols);
                    Softmax.logBackward(rows, cols, 0.25f, 100, a[2], 0, cols, a[1], 1, cols, a[0], 2, cols);
                },
                (s, arena) -> {
                    Softmax.forward(rows, cols, 0.25f, 100, s[0], 2, cols, s[1], 1, cols);
                    Softmax.backward(rows, cols, 0.25f, 100, s[1], 1, cols, s[2], 0, cols, s[0], 0, cols);
                    Softmax.logForward(rows, cols, 0.25f, 100, s[0], 2, cols, s[2], 0, cols);
                    Softmax.logBackward(rows, cols, 0.25f, 100, s[2], 0, cols, s[1], 1, cols, s[0], 2, cols);
                });
    }

    @Test
    void everyThreadCountGivesTheSameBits() {
        int rows = 513;
        int cols = 1000;
        float[] x = Inputs.uniform(Inputs.seed("threads"), rows * cols, -8, 8);
        float[] dy = Inputs.uniform(Inputs.seed("threads dy"), rows * cols, -1, 1);
        Agreement.assertThreadIndependent("softmax", () -> {
            float[] y = new float[rows * cols];
            float[] logY = new float[rows * cols];
            float[] dx = new float[rows * cols];
            float[] logDx = new float[rows * cols];
            Softmax.forward(rows, cols, 1, 7, x, 0, cols, y, 0, cols);
            Softmax.logForward(rows, cols, 1, 7, x, 0, cols, logY, 0, cols);
            Softmax.backward(rows, cols, 1, 7, y, 0, cols, dy, 0, cols, dx, 0, cols);
            Softmax.logBackward(rows, cols, 1, 7, logY, 0, cols, dy, 0, cols, logDx, 0, cols);
            return new float[][] {y, logY, dx, logDx};
        });
    }

    /**
     * Rows holding NaN or +∞ are {@link Float#NaN} to the bit whatever the thread count. A task's first row took its
     * max with NaN counted (NaN) and the task's other rows with NaN skipped, the row's NaN took its sign from that max,
     * and so the bits of such rows (0x7FC00000 or 0xFFC00000) followed the split.
     */
    @Test
    void rowsWithNaNOrInfinityHaveTheSameBitsForEveryThreadCount() {
        int rows = 1024;
        int cols = 512;
        float[] x = Inputs.uniform(Inputs.seed("non-finite rows"), rows * cols, -2, 2);
        for (int r = 0; r < rows; r += 3) {
            x[r * cols + 7] = Float.NaN;
        }
        for (int r = 1; r < rows; r += 5) {
            x[r * cols + 9] = Float.POSITIVE_INFINITY;
        }
        Supplier<float[][]> call = () -> {
            float[] y = new float[rows * cols];
            float[] causal = new float[rows * cols];
            Softmax.forward(rows, cols, 1, Softmax.UNMASKED, x, 0, cols, y, 0, cols);
            Softmax.forward(rows, cols, 0.5f, 0, x, 0, cols, causal, 0, cols);
            return new float[][] {y, causal};
        };
        Agreement.assertThreadIndependentToTheBit("softmax of rows with NaN or ∞", call);
        float[] y = call.get()[0];
        int nan = Float.floatToRawIntBits(Float.NaN);
        for (int c = 0; c < cols; c++) {
            assertEquals(nan, Float.floatToRawIntBits(y[c]), "row 0 (NaN), column " + c);
            assertEquals(nan, Float.floatToRawIntBits(y[cols + c]), "row 1 (+∞), column " + c);
        }
    }

    @Test
    void badArgumentsAreRejectedBeforeAnythingIsWritten() {
        float[] x = new float[20];
        float[] y = Inputs.uniform(1, 20, -1, 1);
        MemorySegment readOnly = MemorySegment.ofArray(y).asReadOnly();
        List<Rejection> rows = List.of(
                illegalArgument("rows (-1) must be >= 0", () -> Softmax.forward(-1, 2, 1, 0, x, 0, 2, y, 0, 2)),
                illegalArgument("cols (-2) must be >= 0", () -> Softmax.logForward(1, -2, 1, 0, x, 0, 2, y, 0, 2)),
                illegalArgument(
                        "scale (NaN) must be finite", () -> Softmax.forward(1, 2, Float.NaN, 0, x, 0, 2, y, 0, 2)),
                illegalArgument(
                        "ldx (3) must be >= cols (4) for x", () -> Softmax.forward(2, 4, 1, 0, x, 0, 3, y, 0, 4)),
                illegalArgument("ldy (0) must be >= 1 for y", () -> Softmax.forward(2, 0, 1, 0, x, 0, 1, y, 0, 0)),
                outOfBounds(
                        "y holds 20 floats, but y needs 19 from yOffset (2), up to index 20",
                        () -> Softmax.forward(2, 9, 1, 0, x, 0, 9, y, 2, 10)),
                outOfBounds("xOffset (-1) must be >= 0", () -> Softmax.forward(2, 4, 1, 0, x, -1, 4, y, 0, 4)),
                nullArgument("dy must not be null", () -> Softmax.backward(2, 4, 1, 0, x, 0, 4, null, 0, 4, y, 0, 4)),
                outOfBounds(
                        "dx holds 20 floats, but dx needs 21 from dxOffset (0), up to index 20",
                        () -> Softmax.logBackward(3, 7, 1, 0, new float[21], 0, 7, new float[21], 0, 7, y, 0, 7)),
                illegalArgument(
                        "y is read-only",
                        () -> Softmax.forward(2, 4, 1, 0, MemorySegment.ofArray(x), 0, 4, readOnly, 0, 4)));
        assertAllRejected(rows, y);
    }

    /** Runs the forward (out of place) and compares each row with the reference; checks the padding is untouched. */
    private static void checkForward(boolean log, Layout l, float scale, int causal, float[] x, String name) {
        checkForward(log, l, scale, causal, x, name, false);
    }

    /**
     * As {@link #checkForward(boolean, Layout, float, int, float[], String)}; {@code wide} rows (|max z| at least
     * {@link Softmax#WIDE_ROW}) are held to their tighter exponent error, and log-probabilities beyond float's range
     * are expected as float rounds them (-∞).
     */
    private static void checkForward(
            boolean log, Layout l, float scale, int causal, float[] x, String name, boolean wide) {
        float[] y = Inputs.uniform(Inputs.seed(name + " y"), l.yLength(), -1, 1);
        float[] before = y.clone();
        l.forward(log, scale, causal, x, y);
        for (int i = 0; i < l.rows(); i++) {
            int n = Softmax.visible(i, l.cols(), causal);
            double[] row = ReferenceOps.toDouble(x, l.xOffset() + i * l.ldx(), l.cols());
            double[] expected = log ? ReferenceOps.logSoftmax(row, scale, n) : ReferenceOps.softmax(row, scale, n);
            for (int j = 0; j < n; j++) {
                if (Math.abs(expected[j]) > Float.MAX_VALUE) {
                    expected[j] = (float) expected[j];
                }
            }
            double[] bound = forwardBounds(log, row, scale, n, expected, wide);
            String what = (log ? "log-softmax " : "softmax ") + name + " row " + i;
            Tolerance.assertRowClose(what, l.cols(), expected, y, l.yOffset() + i * l.ldy(), bound);
        }
        assertPaddingUntouched(before, y, l.yOffset(), l.ldy(), l.rows(), l.cols(), name);
    }

    /**
     * The error terms of one row's stable softmax: per element the exponent's error {@code δ}, and the relative error
     * of the computed {@code Σ exp(z - max)}, whose exact value is {@code sum}.
     */
    record RowErrors(double[] delta, double sumError, double sum) {
        static RowErrors of(double[] x, double scale, int n) {
            return of(x, scale, n, false);
        }

        /**
         * {@code wide}: the exponents of a row whose |max z| is at least {@link Softmax#WIDE_ROW}, the exact {@code z
         * - max} rounded at most twice (once where the entry can weigh at all).
         */
        static RowErrors of(double[] x, double scale, int n, boolean wide) {
            double eps = FLOAT_EPSILON;
            double max = Double.NEGATIVE_INFINITY;
            for (int j = 0; j < n; j++) {
                max = Math.max(max, scale * x[j]);
            }
            double[] delta = new double[x.length];
            double weighted = 0;
            double sum = 0;
            for (int j = 0; j < n; j++) {
                double z = scale * x[j];
                if (wide) {
                    delta[j] = Double.isFinite(z) ? 2 * eps * Math.abs(z - max) : 0;
                } else {
                    delta[j] = Double.isFinite(z) ? eps * (Math.abs(z) + Math.abs(max) + Math.abs(z - max)) : 0;
                }
                double p = Math.exp(z - max);
                if (p > 0) {
                    weighted += p * (delta[j] + EXP_ERROR);
                    sum += p;
                }
            }
            return new RowErrors(delta, (Math.ceil(n / 4.0) + 16) * eps + (sum > 0 ? weighted / sum : 0), sum);
        }

        /** The bound of a computed probability whose exact value at column j is {@code p}. */
        double probability(int j, double p) {
            return p * (delta[j] + EXP_ERROR + sumError + 2 * FLOAT_EPSILON) + 0x1p-126;
        }
    }

    private static double[] forwardBounds(
            boolean log, double[] x, double scale, int n, double[] expected, boolean wide) {
        double eps = FLOAT_EPSILON;
        RowErrors errors = RowErrors.of(x, scale, n, wide);
        double[] delta = errors.delta();
        double sumError = errors.sumError();
        double sum = errors.sum();
        double[] bound = new double[x.length];
        for (int j = 0; j < n; j++) {
            if (log) {
                bound[j] = delta[j] + sumError + eps * Math.abs(Math.log(sum)) + eps * Math.abs(expected[j]);
            } else {
                bound[j] = errors.probability(j, expected[j]);
            }
        }
        return bound;
    }

    private static void checkBackward(
            boolean log, Layout l, float scale, int causal, float[] x, float[] dy, String name) {
        // y is the fast forward's output (stored like x); dy and dx share the other layout.
        float[] y = new float[l.yLength()];
        l.xLikeY().forward(log, 1, causal, x, y);
        float[] dx = Inputs.uniform(Inputs.seed(name + " dx"), l.xLength(), -1, 1);
        float[] before = dx.clone();
        l.backward(log, scale, causal, y, dy, dx);
        double eps = FLOAT_EPSILON;
        for (int i = 0; i < l.rows(); i++) {
            int n = Softmax.visible(i, l.cols(), causal);
            double[] yRow = ReferenceOps.toDouble(y, l.yOffset() + i * l.ldy(), l.cols());
            double[] dyRow = ReferenceOps.toDouble(dy, l.xOffset() + i * l.ldx(), l.cols());
            double[] expected = log
                    ? ReferenceOps.logSoftmaxBackward(yRow, dyRow, scale, n)
                    : ReferenceOps.softmaxBackward(yRow, dyRow, scale, n);
            double terms = Math.ceil(n / 4.0) + 16;
            double magnitude = 0;
            double reduced = 0;
            for (int j = 0; j < n; j++) {
                magnitude += log ? Math.abs(dyRow[j]) : Math.abs(yRow[j] * dyRow[j]);
                reduced += log ? dyRow[j] : yRow[j] * dyRow[j];
            }
            double reducedError = terms * eps * magnitude;
            double[] bound = new double[l.cols()];
            for (int j = 0; j < n; j++) {
                if (log) {
                    double p = Math.exp(yRow[j]);
                    bound[j] = Math.abs(scale)
                            * (2 * eps * Math.abs(dyRow[j] - p * reduced)
                                    + p * reducedError
                                    + 5 * eps * p * Math.abs(reduced));
                } else {
                    bound[j] = Math.abs(scale)
                            * Math.abs(yRow[j])
                            * (3 * eps * Math.abs(dyRow[j] - reduced) + reducedError);
                }
            }
            String what = (log ? "log-softmax backward " : "softmax backward ") + name + " row " + i;
            Tolerance.assertRowClose(what, l.cols(), expected, dx, l.xOffset() + i * l.ldx(), bound);
        }
        assertPaddingUntouched(before, dx, l.xOffset(), l.ldx(), l.rows(), l.cols(), name);
    }

    /** Everything outside the rows' {@code cols} elements must keep its old value. */
    static void assertPaddingUntouched(
            float[] before, float[] after, int offset, int ld, int rows, int cols, String name) {
        for (int i = 0; i < after.length; i++) {
            int row = (i - offset) / ld;
            boolean inside = i >= offset && row < rows && (i - offset) % ld < cols;
            if (!inside) {
                assertEquals(before[i], after[i], name + ": index " + i + " outside the matrix was written");
            }
        }
    }
}
