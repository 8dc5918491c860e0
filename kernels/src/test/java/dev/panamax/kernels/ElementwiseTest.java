package dev.panamax.kernels;

import static dev.panamax.kernels.testing.Agreement.assertAllRejected;
import static dev.panamax.kernels.testing.Agreement.assertRejected;
import static dev.panamax.kernels.testing.Rejection.illegalArgument;
import static dev.panamax.kernels.testing.Rejection.outOfBounds;
import static dev.panamax.kernels.testing.Tolerance.FLOAT_EPSILON;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.panamax.kernels.testing.Agreement;
import dev.panamax.kernels.testing.Inputs;
import dev.panamax.kernels.testing.Rejection;
import dev.panamax.kernels.testing.Tolerance;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Elementwise add, scale and axpy, the sum of squares, and the embedding gather and scatter-add. Each element is one
 * correctly rounded operation (axpy: one fused multiply-add), so results must equal the float64 value rounded once:
 * within ε relative; the gather copies exactly; the scatter-add sums each column's tokens in token order, {@code
 * (count + 1)·ε} of the magnitudes summed. The sum of squares: see {@link #sumOfSquaresBound}.
 */
@Tag("species")
class ElementwiseTest {
    @ParameterizedTest
    @ValueSource(ints = {0, 1, 2, 7, 8, 9, 31, 33, 1000, 4096, 70_000})
    void addScaleAndAxpyRoundOnce(int n) {
        float[] a = Inputs.uniform(Inputs.seed("a " + n), n + 1, -1e4f, 1e4f);
        float[] b = Inputs.uniform(Inputs.seed("b " + n), n + 2, -3, 3);
        float[] y = Inputs.uniform(Inputs.seed("y " + n), n + 3, -1, 1);
        float[] before = y.clone();
        Elementwise.add(n, a, 1, b, 2, y, 3);
        Tolerance.assertClose(
                "add " + n,
                n,
                i -> (double) a[1 + i] + b[2 + i],
                i -> y[3 + i],
                i -> FLOAT_EPSILON * Math.abs((double) a[1 + i] + b[2 + i]));
        assertArrayEquals(java.util.Arrays.copyOf(before, 3), java.util.Arrays.copyOf(y, 3));
        float[] scaled = a.clone();
        Elementwise.scale(n, -0.3f, scaled, 1);
        Tolerance.assertClose(
                "scale " + n,
                n,
                i -> -0.3f * (double) a[1 + i],
                i -> scaled[1 + i],
                i -> FLOAT_EPSILON * Math.abs(0.3f * (double) a[1 + i]));
        float[] z = b.clone();
        Elementwise.axpy(n, 1.7f, a, 1, z, 2);
        Tolerance.assertClose(
                "axpy " + n,
                n,
                i -> 1.7f * (double) a[1 + i] + b[2 + i],
                i -> z[2 + i],
                i -> FLOAT_EPSILON * Math.abs(1.7f * (double) a[1 + i] + b[2 + i]));
        float[] inPlace = a.clone();
        Elementwise.add(n, inPlace, 1, b, 2, inPlace, 1);
        assertArrayEquals(java.util.Arrays.copyOfRange(y, 3, 3 + n), java.util.Arrays.copyOfRange(inPlace, 1, 1 + n));
    }

    @Test
    void nanAndInfinityPropagate() {
        float[] a = {Float.NaN, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY, 1};
        float[] b = {1, Float.NEGATIVE_INFINITY, 2, Float.NaN};
        float[] y = new float[4];
        Elementwise.add(4, a, 0, b, 0, y, 0);
        assertArrayEquals(new float[] {Float.NaN, Float.NaN, Float.NEGATIVE_INFINITY, Float.NaN}, y);
    }

    /**
     * The allowed error of {@link Elementwise#sumOfSquares}: {@code (4096/LANES + 8)·ε·Σx²}. Within a span of 4096
     * elements each lane sums at most 4096/LANES squares in float, each added by one fused multiply-add (one rounding,
     * the square itself exact), its accumulators are then added (at most 3 roundings on a lane's path) and the lanes
     * by a tree (log₂ LANES ≤ 4 roundings): all terms are non-negative, so the span's relative error is at most that
     * many ε, whatever the number of accumulators. The spans are added in double, which adds ~spans·2⁻⁵³: negligible,
     * covered by the last ε.
     */
    private static double sumOfSquaresBound(double sum) {
        return (4096.0 / Simd.LANES + 8) * FLOAT_EPSILON * sum;
    }

    @ParameterizedTest
    @ValueSource(ints = {0, 1, 2, 7, 8, 9, 31, 33, 1000, 4095, 4096, 4097, 70_000, 300_001})
    void sumOfSquaresMatchesTheFloat64Sum(int n) {
        float[] x = Inputs.uniform(Inputs.seed("sumsq " + n), n + 3, -3, 3);
        x[0] = Float.NaN; // outside the range: must not be read
        double expected = 0;
        for (int i = 0; i < n; i++) {
            expected += (double) x[2 + i] * x[2 + i];
        }
        double actual = Elementwise.sumOfSquares(n, x, 2);
        double bound = sumOfSquaresBound(expected);
        assertTrue(
                Math.abs(actual - expected) <= bound,
                "n=" + n + ": expected " + expected + ", actual " + actual + ", bound " + bound);
        if (n == 0) {
            assertEquals(0.0, actual);
        }
        assertEquals(actual, Elementwise.sumOfSquares(n, MemorySegment.ofArray(x), 2), "heap segment");
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment segment = arena.allocateFrom(ValueLayout.JAVA_FLOAT, x);
            assertEquals(actual, Elementwise.sumOfSquares(n, segment, 2), "native segment");
        }
    }

    @Test
    void zeroClearsExactlyItsRangeOnEveryThreadCountAndForm() {
        // Long enough to be split over the threads; NaN and infinities are cleared too.
        int n = 700_001;
        float[] x = Inputs.uniform(Inputs.seed("zero"), n + 3, -1, 1);
        x[2] = Float.NaN;
        x[n / 2] = Float.NEGATIVE_INFINITY;
        x[n + 1] = Float.POSITIVE_INFINITY;
        int saved = Parallelism.threads();
        try {
            for (int threads = 1; threads <= 3; threads++) {
                Parallelism.setThreads(threads);
                float[] expected = x.clone();
                Arrays.fill(expected, 2, n + 2, 0f);
                float[] array = x.clone();
                Elementwise.zero(n, array, 2);
                assertArrayEquals(expected, array, threads + " threads");
                try (Arena arena = Arena.ofShared()) {
                    MemorySegment segment = arena.allocateFrom(ValueLayout.JAVA_FLOAT, x);
                    Elementwise.zero(n, segment, 2);
                    assertArrayEquals(expected, segment.toArray(ValueLayout.JAVA_FLOAT), threads + " threads, native");
                }
            }
        } finally {
            Parallelism.setThreads(saved);
        }
        float[] one = {5f, Float.NaN};
        Elementwise.zero(1, one, 1);
        assertEquals(0, Float.floatToRawIntBits(one[1]), "+0, not -0");
        assertEquals(5f, one[0]);
        Elementwise.zero(0, one, 2);
        assertRejected(IllegalArgumentException.class, "n (-1) must be >= 0", () -> Elementwise.zero(-1, one, 0));
        assertRejected(
                IndexOutOfBoundsException.class,
                "x holds 2 floats, but x needs 2 from xOffset (1)",
                () -> Elementwise.zero(2, one, 1));
    }

    @Test
    void sumOfSquaresOfSmallIntegersIsExact() {
        // Squares of 0..3 summed: every partial is an integer below 2²⁴, so no rounding anywhere.
        int n = 300_005;
        float[] x = new float[n];
        long expected = 0;
        for (int i = 0; i < n; i++) {
            x[i] = (i * 7) % 4 - (i % 2 == 0 ? 0 : 3);
            expected += (long) (x[i] * x[i]);
        }
        assertEquals((double) expected, Elementwise.sumOfSquares(n, x, 0));
    }

    @Test
    void sumOfSquaresIsThreadAndFormIndependent() {
        int n = 1_000_003;
        float[] x = Inputs.gaussian(Inputs.seed("sumsq threads"), n + 1, 10);
        int saved = Parallelism.threads();
        try {
            Parallelism.setThreads(1);
            double first = Elementwise.sumOfSquares(n, x, 1);
            for (int threads = 2; threads <= 3; threads++) {
                Parallelism.setThreads(threads);
                assertEquals(
                        Double.doubleToRawLongBits(first),
                        Double.doubleToRawLongBits(Elementwise.sumOfSquares(n, x, 1)),
                        threads + " threads");
                for (Arena arena : new Arena[] {Arena.ofShared(), Arena.ofConfined()}) {
                    try (arena) {
                        MemorySegment s = arena.allocateFrom(ValueLayout.JAVA_FLOAT, x);
                        assertEquals(
                                Double.doubleToRawLongBits(first),
                                Double.doubleToRawLongBits(Elementwise.sumOfSquares(n, s, 1)),
                                threads + " threads, native segment");
                    }
                }
            }
        } finally {
            Parallelism.setThreads(saved);
        }
    }

    @Test
    void sumOfSquaresPropagatesNanAndInfinity() {
        int n = 100_000;
        float[] x = Inputs.uniform(Inputs.seed("sumsq nan"), n, -1, 1);
        float[] inf = x.clone();
        inf[77_777] = Float.NEGATIVE_INFINITY;
        assertEquals(Double.POSITIVE_INFINITY, Elementwise.sumOfSquares(n, inf, 0));
        float[] nan = x.clone();
        nan[n - 1] = Float.NaN;
        assertTrue(Double.isNaN(Elementwise.sumOfSquares(n, nan, 0)));
        nan[3] = Float.POSITIVE_INFINITY;
        assertTrue(Double.isNaN(Elementwise.sumOfSquares(n, nan, 0)), "NaN wins over infinity");
        assertTrue(Double.isNaN(Elementwise.sumOfSquares(1, new float[] {Float.NaN}, 0)));
        assertRejected(IllegalArgumentException.class, "n (-1) must be >= 0", () -> Elementwise.sumOfSquares(-1, x, 0));
        assertRejected(
                IndexOutOfBoundsException.class,
                "x holds 100000 floats, but x needs 100000 from xOffset (1)",
                () -> Elementwise.sumOfSquares(n, x, 1));
    }

    @Test
    void embeddingGatherAndScatterAdd() {
        int vocab = 50;
        for (int dim : new int[] {1, 7, 8, 33, 300, 768}) {
            int rows = 70;
            int ld = dim + 2;
            SplittableRandom random = new SplittableRandom(Inputs.seed("tokens " + dim));
            int[] tokens = new int[rows + 1];
            for (int i = 0; i < tokens.length; i++) {
                tokens[i] = random.nextInt(vocab);
            }
            tokens[5] = tokens[9];
            float[] table = Inputs.uniform(Inputs.seed("table " + dim), 3 + vocab * dim, -1, 1);
            float[] out = new float[rows * ld];
            Embedding.forward(rows, dim, vocab, tokens, 1, table, 3, out, 0, ld);
            for (int i = 0; i < rows; i++) {
                for (int j = 0; j < dim; j++) {
                    assertEquals(table[3 + tokens[1 + i] * dim + j], out[i * ld + j], "row " + i + " col " + j);
                }
            }
            float[] dout = Inputs.uniform(Inputs.seed("dout " + dim), rows * ld, -1, 1);
            float[] dtable = Inputs.uniform(Inputs.seed("dtable " + dim), 2 + vocab * dim, -1, 1);
            double[] expected = new double[vocab * dim];
            double[] magnitude = new double[vocab * dim];
            int[] count = new int[vocab];
            for (int t = 0; t < vocab * dim; t++) {
                expected[t] = dtable[2 + t];
                magnitude[t] = Math.abs(dtable[2 + t]);
            }
            for (int i = 0; i < rows; i++) {
                count[tokens[1 + i]]++;
                for (int j = 0; j < dim; j++) {
                    expected[tokens[1 + i] * dim + j] += dout[i * ld + j];
                    magnitude[tokens[1 + i] * dim + j] += Math.abs(dout[i * ld + j]);
                }
            }
            float[] result = dtable.clone();
            Embedding.backward(rows, dim, vocab, tokens, 1, dout, 0, ld, result, 2);
            Tolerance.assertClose(
                    "scatter-add dim " + dim,
                    vocab * dim,
                    t -> expected[t],
                    t -> result[2 + t],
                    t -> (count[t / dim] + 1) * FLOAT_EPSILON * magnitude[t],
                    t -> "token " + (t / dim) + " col " + (t % dim));
        }
    }

    @Test
    void formsAndThreadCountsAgreeBitForBit() {
        int n = 400_000;
        int rows = 2048;
        int dim = 768;
        int vocab = 300;
        int[] tokens = new int[rows];
        SplittableRandom random = new SplittableRandom(7);
        for (int i = 0; i < rows; i++) {
            tokens[i] = random.nextInt(vocab);
        }
        float[] x = Inputs.uniform(Inputs.seed("forms x"), n, -1, 1);
        float[] table = Inputs.uniform(Inputs.seed("forms table"), vocab * dim, -1, 1);
        Agreement.assertFormsAgree(
                "elementwise and embedding",
                new float[][] {x, new float[n], table, new float[rows * dim], new float[vocab * dim]},
                a -> {
                    Elementwise.add(n, a[0], 0, a[0], 0, a[1], 0);
                    Elementwise.axpy(n - 3, 0.5f, a[0], 3, a[1], 0);
                    Elementwise.scale(n, 3f, a[1], 0);
                    Embedding.forward(rows, dim, vocab, tokens, 0, a[2], 0, a[3], 0, dim);
                    Embedding.backward(rows, dim, vocab, tokens, 0, a[3], 0, dim, a[4], 0);
                },
                (s, arena) -> {
                    MemorySegment t = arena.allocateFrom(ValueLayout.JAVA_INT, tokens);
                    Elementwise.add(n, s[0], 0, s[0], 0, s[1], 0);
                    Elementwise.axpy(n - 3, 0.5f, s[0], 3, s[1], 0);
                    Elementwise.scale(n, 3f, s[1], 0);
                    Embedding.forward(rows, dim, vocab, t, 0, s[2], 0, s[3], 0, dim);
                    Embedding.backward(rows, dim, vocab, t, 0, s[3], 0, dim, s[4], 0);
                });
        float[] dout = Inputs.uniform(Inputs.seed("forms dout"), rows * dim, -1, 1);
        Agreement.assertThreadIndependent("scatter-add", () -> {
            float[] dtable = new float[vocab * dim];
            Embedding.backward(rows, dim, vocab, tokens, 0, dout, 0, dim, dtable, 0);
            return new float[][] {dtable};
        });
    }

    @Test
    void badArgumentsAreRejectedBeforeAnythingIsWritten() {
        float[] x = new float[10];
        float[] y = Inputs.uniform(1, 10, -1, 1);
        List<Rejection> rows = List.of(
                outOfBounds(
                        "y holds 10 floats, but y needs 10 from yOffset (1), up to index 10",
                        () -> Elementwise.axpy(10, 1, x, 0, y, 1)),
                illegalArgument("n (-3) must be >= 0", () -> Elementwise.scale(-3, 1, y, 0)),
                outOfBounds(
                        "tokens[1] (5) must be in [0, vocab (5))",
                        () -> Embedding.forward(2, 2, 5, new int[] {0, 5}, 0, x, 0, y, 0, 2)),
                outOfBounds(
                        "dtable holds 10 floats, but dtable needs 12 from dtableOffset (0)",
                        () -> Embedding.backward(2, 2, 6, new int[] {0, 1}, 0, x, 0, 2, y, 0)),
                illegalArgument(
                        "ldOut (1) must be >= dim (2) for out",
                        () -> Embedding.forward(2, 2, 5, new int[] {0, 1}, 0, x, 0, y, 0, 1)));
        assertAllRejected(rows, y);
    }
}
