package dev.panamax.model.backend;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.panamax.cuda.Cuda;
import dev.panamax.kernels.Rope;
import dev.panamax.kernels.testing.Inputs;
import dev.panamax.kernels.testing.ReferenceAttention;
import dev.panamax.kernels.testing.Tolerance;
import dev.panamax.model.backend.Backend.Layout;
import dev.panamax.model.generate.Transformer;
import dev.panamax.model.io.Llama2cCheckpoint;
import dev.panamax.model.nn.ModelConfig;
import dev.panamax.model.nn.ModelConfig.Architecture;
import dev.panamax.model.testing.FloatArrays;
import dev.panamax.model.testing.Segments;
import java.io.IOException;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import java.util.function.Function;
import java.util.stream.IntStream;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Each operation of the {@link CudaBackend}, on the emulated device, against the {@link CpuBackend} on the same inputs.
 * Every operation runs in three schedules of the emulator (blocks and the threads between barriers in index order and
 * in two shuffled orders), which must give the same bits: the kernels' reductions have a fixed order.
 *
 * <p>Tolerances, with ε = 2⁻²⁴ (float's unit roundoff): data movement (add, embedding, zero, argmax) must be exact.
 * Elementwise functions through {@code expf} (GELU, SwiGLU) within 16ε relative: both sides' exponentials are within
 * a few ulps and the rest is two roundings. Reductions over n terms (RMSNorm, LayerNorm, softmax) within (n + 8)ε of
 * the row's magnitude: the two sides sum in different orders, each within nε of the exact sum. Products within (k +
 * 4)ε times the same product on absolute values (the classic bound for a k-term dot product in any order). Attention
 * within 8(keys + headDim)ε of the values' magnitude (a convex combination of value rows, each weight from a
 * headDim-term score and a keys-term sum). A real bug (a wrong row, head, position or mask) moves results by far more.
 */
class CudaBackendTest {
    private static final long[] SCHEDULES = {0, 1, 2};
    private static final double EPS = Tolerance.FLOAT_EPSILON;

    /** Writes inputs into a backend, runs the operation, returns the outputs read back. */
    interface Operation extends Function<Backend, float[]> {}

    /** The CPU's result and the device's ({@link #onDevice}). */
    private float[][] cpuAndCuda(String what, Operation operation) {
        float[] expected;
        try (CpuBackend cpu = new CpuBackend()) {
            expected = operation.apply(cpu);
        }
        return new float[][] {expected, onDevice(what, operation)};
    }

    /**
     * The CUDA backend's result of an operation that the tests compare with the CPU's: here the emulated device's,
     * after checking every schedule gives the same bits; {@link GpuBackendTest} runs it on a GPU.
     */
    float[] onDevice(String what, Operation operation) {
        float[] first = null;
        for (long seed : SCHEDULES) {
            float[] result = EmulatedBackends.run(seed, operation::apply);
            if (first == null) {
                first = result;
            } else {
                assertArrayEquals(bits(first), bits(result), what + ": schedule " + seed + " changed the bits");
            }
        }
        return first;
    }

    private void assertExact(String what, Operation operation) {
        float[][] r = cpuAndCuda(what, operation);
        assertArrayEquals(bits(r[0]), bits(r[1]), what);
    }

    /** Within {@code bound[i]} of the CPU's value. */
    private void assertWithin(String what, Operation operation, Function<float[], double[]> bound) {
        float[][] r = cpuAndCuda(what, operation);
        Tolerance.assertClose(what, widen(r[0]), r[1], bound.apply(r[0]));
    }

    private static int[] bits(float[] values) {
        int[] bits = new int[values.length];
        for (int i = 0; i < values.length; i++) {
            bits[i] = Float.floatToIntBits(values[i]);
        }
        return bits;
    }

    private static double[] widen(float[] values) {
        double[] wide = new double[values.length];
        for (int i = 0; i < values.length; i++) {
            wide[i] = values[i];
        }
        return wide;
    }

    private static Function<float[], double[]> relative(double factor) {
        return expected -> Arrays.stream(widen(expected))
                .map(e -> factor * Math.abs(e) + Float.MIN_NORMAL)
                .toArray();
    }

    /** {@code factor ·} (|value| + the largest |value| of its row of {@code cols}). */
    private static Function<float[], double[]> ofRow(int cols, double factor) {
        return expected -> {
            double[] bound = new double[expected.length];
            for (int i = 0; i < expected.length; i++) {
                int row = i / cols;
                double largest = 0;
                for (int j = row * cols; j < (row + 1) * cols; j++) {
                    largest = Math.max(largest, Math.abs(expected[j]));
                }
                bound[i] = factor * (Math.abs(expected[i]) + largest) + Float.MIN_NORMAL;
            }
            return bound;
        };
    }

    private static float[] random(String name, int length) {
        return Inputs.uniform(Inputs.seed(name), length, -1f, 1f);
    }

    /** A tensor holding {@code values}; with {@code padded}, a column view of a wider matrix (row stride > cols). */
    private static Tensor input(Backend b, int rows, int cols, float[] values, boolean padded) {
        if (!padded) {
            Tensor t = b.allocate(rows, cols);
            b.write(values, t);
            return t;
        }
        Tensor wide = b.allocate(rows, cols + 3);
        b.write(random("padding", rows * (cols + 3)), wide);
        Tensor t = wide.columns(2, cols);
        b.write(values, t);
        return t;
    }

    private static float[] read(Backend b, Tensor t) {
        float[] values = new float[t.rows() * t.cols()];
        b.read(t, values);
        return values;
    }

    private static float[] concat(float[]... parts) {
        return FloatArrays.concat(List.of(parts));
    }

    private static final int[][] SHAPES = {{1, 1}, {3, 5}, {2, 33}, {5, 300}, {1, 513}};

    @Test
    void addIsExactAlsoOnViews() {
        for (int[] s : SHAPES) {
            int rows = s[0];
            int cols = s[1];
            float[] a = random("a" + cols, rows * cols);
            float[] c = random("b" + cols, rows * cols);
            assertExact("add " + rows + " × " + cols, b -> {
                Tensor x = input(b, rows, cols, a, true);
                Tensor y = input(b, rows, cols, c, false);
                b.add(x, y, x);
                return read(b, x);
            });
        }
    }

    /**
     * GELU and SwiGLU within (16 + 4|e|)ε relative, where e is the argument of their exponential: both sides'
     * exponentials are within a few ulps of exp of the argument each computed, and the argument's own roundings (up
     * to four, for GELU's x·(c1 + c2·x²), each at most ε|e|) become a relative error of the exponential.
     */
    @Test
    void geluAndSwigluWithinTheExponentialsBound() {
        for (int[] s : SHAPES) {
            int rows = s[0];
            int cols = s[1];
            float[] x = Inputs.uniform(Inputs.seed("gelu" + cols), rows * cols, -6f, 6f);
            float[] up = random("up" + cols, rows * cols);
            assertWithin(
                    "gelu " + rows + " × " + cols,
                    b -> {
                        // The CPU's elementwise kernels take dense tensors only.
                        Tensor in = input(b, rows, cols, x, false);
                        Tensor out = b.allocate(rows, cols);
                        b.gelu(in, out);
                        return read(b, out);
                    },
                    expected -> exponentialBound(expected, i -> Math.abs(x[i]) * (1.6 + 0.0714 * x[i] * x[i])));
            assertWithin(
                    "swiglu " + rows + " × " + cols,
                    b -> {
                        Tensor gate = input(b, rows, cols, x, false);
                        Tensor u = input(b, rows, cols, up, false);
                        b.swiglu(gate, u, gate);
                        return read(b, gate);
                    },
                    expected -> exponentialBound(expected, i -> Math.abs(x[i])));
        }
    }

    private static double[] exponentialBound(float[] expected, java.util.function.IntToDoubleFunction argument) {
        double[] bound = new double[expected.length];
        for (int i = 0; i < bound.length; i++) {
            bound[i] = (16 + 4 * argument.applyAsDouble(i)) * EPS * Math.abs(expected[i]) + Float.MIN_NORMAL;
        }
        return bound;
    }

    @Test
    void rmsNormAndLayerNormWithinTheReductionBound() {
        for (int[] s : SHAPES) {
            int rows = s[0];
            int cols = s[1];
            float[] x = Inputs.uniform(Inputs.seed("norm" + cols), rows * cols, -3f, 5f);
            float[] w = random("w" + cols, cols);
            float[] bias = random("bias" + cols, cols);
            double factor = (cols + 8) * EPS;
            assertWithin(
                    "rmsNorm " + rows + " × " + cols,
                    b -> {
                        Tensor in = input(b, rows, cols, x, true);
                        Tensor rstd = b.allocate(rows, 1);
                        b.rmsNorm(in, input(b, 1, cols, w, false), 1e-5f, in, rstd);
                        return concat(read(b, in), read(b, rstd));
                    },
                    expected -> concat(
                            ofRow(cols, factor).apply(Arrays.copyOf(expected, rows * cols)),
                            toFloats(relative(factor)
                                    .apply(Arrays.copyOfRange(expected, rows * cols, expected.length)))));
            // Also rows far from 0 with a small spread (1e7 ± 8, integers), whose float sum's mean is off by about the
            // spread: both devices correct it from the deviations, which are exact there.
            float[] far = new float[x.length];
            for (int i = 0; i < far.length; i++) {
                far[i] = 1e7f + Math.round(x[i] * 2) - 2;
            }
            for (float[] values : new float[][] {x, far}) {
                assertWithin(
                        "layerNorm " + rows + " × " + cols + (values == far ? " 1e7 ± 8" : ""),
                        b -> {
                            Tensor in = input(b, rows, cols, values, false);
                            Tensor out = b.allocate(rows, cols);
                            Tensor mean = b.allocate(rows, 1);
                            Tensor rstd = b.allocate(rows, 1);
                            b.layerNorm(
                                    in,
                                    input(b, 1, cols, w, false),
                                    input(b, 1, cols, bias, true),
                                    1e-5f,
                                    out,
                                    mean,
                                    rstd);
                            return concat(read(b, out), read(b, mean), read(b, rstd));
                        },
                        expected -> concat(
                                ofRow(cols, factor).apply(Arrays.copyOf(expected, rows * cols)),
                                toFloats(relative(factor)
                                        .apply(Arrays.copyOfRange(expected, rows * cols, expected.length)))));
            }
        }
    }

    /** Bounds as floats, rounded up, so that bound arrays of parts can be concatenated. */
    private static float[] toFloats(double[] values) {
        float[] f = new float[values.length];
        for (int i = 0; i < values.length; i++) {
            f[i] = Math.nextUp((float) values[i]);
        }
        return f;
    }

    private static double[] concat(double[] head, float[] tail) {
        double[] all = Arrays.copyOf(head, head.length + tail.length);
        for (int i = 0; i < tail.length; i++) {
            all[head.length + i] = tail[i];
        }
        return all;
    }

    @Test
    void ropeAndItsInverseMatchTheCpu() {
        int[][] cases = {{1, 1, 2, 0}, {4, 3, 6, 5}, {7, 2, 16, 9}};
        for (int[] c : cases) {
            int rows = c[0];
            int heads = c[1];
            int headDim = c[2];
            int position = c[3];
            int cols = heads * headDim;
            float[] x = random("rope" + cols, rows * cols);
            Function<float[], double[]> bound = expected -> {
                double[] b = new double[expected.length];
                Arrays.fill(b, 4 * EPS);
                return b;
            };
            assertWithin(
                    "rope " + Arrays.toString(c),
                    b -> {
                        Tensor t = input(b, rows, cols, x, true);
                        Backend.Rotary rotary = b.rotary(headDim, 32, 10000);
                        b.rope(rotary, t, heads, position);
                        float[] rotated = read(b, t);
                        b.ropeBackward(rotary, t, heads, position);
                        return concat(rotated, read(b, t));
                    },
                    bound);
        }
    }

    @Test
    void ropeWithHalvesPairingMatchesTheCpuKernel() {
        int rows = 5;
        int heads = 3;
        int headDim = 8;
        int position = 7;
        int cols = heads * headDim;
        float[] x = random("halves", rows * cols);
        Rope rope = new Rope(headDim, 16, 500000, Rope.Pairing.HALVES);
        float[] expected = new float[rows * cols];
        rope.forward(rows, heads, position, x, 0, cols, expected, 0, cols);
        for (long seed : SCHEDULES) {
            float[] actual = EmulatedBackends.run(seed, b -> {
                Tensor t = input(b, rows, cols, x, true);
                b.rope(b.rotary(headDim, 16, 500000, Rope.Pairing.HALVES), t, heads, position);
                return read(b, t);
            });
            double[] bound = new double[expected.length];
            Arrays.fill(bound, 4 * EPS);
            Tolerance.assertClose("rope halves, schedule " + seed, widen(expected), actual, bound);
        }
    }

    @Test
    void softmaxWithTemperatureWithinTheReductionBound() {
        int[][] shapes = {{1, 1}, {3, 31}, {2, 300}, {1, 1000}};
        for (int[] s : shapes) {
            int rows = s[0];
            int cols = s[1];
            float[] x = Inputs.uniform(Inputs.seed("softmax" + cols), rows * cols, -8f, 8f);
            assertWithin(
                    "softmax " + rows + " × " + cols,
                    b -> {
                        Tensor t = input(b, rows, cols, x, true);
                        b.softmax(t, 0.7f);
                        return read(b, t);
                    },
                    ofRow(cols, (cols + 8) * EPS));
        }
    }

    /** As the CPU's Softmax: -∞ inputs get 0, a row of only -∞ gets zeros (never NaN), a NaN makes its row NaN. */
    @Test
    void softmaxOfMinusInfinityIsZeroAsOnTheCpu() {
        int cols = 37;
        float[] x = new float[3 * cols];
        Arrays.fill(x, Float.NEGATIVE_INFINITY);
        x[cols + 20] = Float.NaN;
        x[2 * cols + 5] = 3;
        assertExact("softmax of -∞ rows", b -> {
            Tensor t = input(b, 3, cols, x, true);
            b.softmax(t, 0.7f);
            return read(b, t);
        });
    }

    /**
     * As the CPU's CrossEntropy: a row of only -∞ has a NaN loss and the gradient -scale at its target, 0 elsewhere; a
     * row whose only finite logit is its target has loss 0 and gradient 0.
     */
    @Test
    void crossEntropyOfMinusInfinityRowsAsOnTheCpu() {
        int cols = 300;
        float[] logits = new float[2 * cols];
        Arrays.fill(logits, Float.NEGATIVE_INFINITY);
        logits[cols + 7] = 2;
        int[] targets = {11, 7};
        assertExact("crossEntropy of -∞ rows", b -> {
            Tensor t = input(b, 2, cols, logits, true);
            Tensor d = b.allocate(2, cols);
            float loss = b.crossEntropy(t, targets, 0, d, 0.5f);
            float single = b.crossEntropy(t.rows(1, 1), targets, 1, null, 1f);
            return concat(new float[] {loss, single}, read(b, d));
        });
    }

    @Test
    void argmaxTakesTheFirstLargestAndNeverNan() {
        float[] ties = random("ties", 1000);
        ties[17] = 5;
        ties[600] = 5;
        ties[999] = 5;
        float[] nans = {Float.NaN, 1, Float.NaN, 3, 3, Float.NaN};
        float[] none = {Float.NaN, Float.NEGATIVE_INFINITY, Float.NaN};
        float[] last = random("last", 300);
        last[299] = 2;
        for (float[] row : List.of(ties, nans, none, last, new float[] {-4}, random("plain", 77))) {
            assertExact("argmax of " + row.length, b -> new float[] {b.argmax(input(b, 1, row.length, row, true))});
        }
    }

    @Test
    void embeddingGathersRowsExactly() {
        int vocab = 50;
        int cols = 37;
        float[] table = random("table", vocab * cols);
        int[] tokens = {3, 49, 0, 0, 17, 3, 8};
        assertExact("embedding", b -> {
            Tensor t = input(b, vocab, cols, table, false);
            Tensor out = b.allocate(5, cols);
            b.embedding(tokens, 2, t, out);
            return read(b, out);
        });
        IllegalArgumentException e = assertThrows(
                IllegalArgumentException.class,
                () -> EmulatedBackends.run(0, b -> {
                    b.embedding(new int[] {50}, 0, b.allocate(vocab, cols), b.allocate(1, cols));
                    return null;
                }));
        assertTrue(e.getMessage().contains("tokens[0] (50) must be in [0, table.rows (50))"), e.getMessage());
    }

    /**
     * The embedding kernels take no table offset: a table that is a view starting at a later row is refused by name and
     * element, forward and backward, while a view from row 0 gathers exactly as the CPU does.
     */
    @Test
    void embeddingRefusesATableViewThatStartsPastItsBuffer() {
        int vocab = 12;
        int cols = 5;
        float[] table = random("table-view", vocab * cols);
        int[] tokens = {0, 3, 1};
        assertExact("embedding from a view of the first rows", b -> {
            Tensor t = input(b, vocab, cols, table, false).rows(0, 4);
            Tensor out = b.allocate(tokens.length, cols);
            b.embedding(tokens, 0, t, out);
            return read(b, out);
        });
        IllegalArgumentException forward = assertThrows(
                IllegalArgumentException.class,
                () -> EmulatedBackends.run(0, b -> {
                    Tensor t = b.allocate(vocab, cols).rows(4, 8);
                    b.embedding(tokens, 0, t, b.allocate(tokens.length, cols));
                    return null;
                }));
        assertEquals(
                "table (CUDA tensor 8 × 5) starts at element 20 of its device buffer, but must start at element 0 on"
                        + " the CUDA backend, whose embedding kernels take no offset: pass a tensor of its own, not a"
                        + " view of a later row or column",
                forward.getMessage());
        IllegalArgumentException backward = assertThrows(
                IllegalArgumentException.class,
                () -> EmulatedBackends.run(0, b -> {
                    Tensor t = b.allocate(vocab, cols).rows(4, 8);
                    b.embeddingBackward(tokens, 0, b.allocate(tokens.length, cols), t);
                    return null;
                }));
        assertTrue(
                backward.getMessage().startsWith("dtable (CUDA tensor 8 × 5) starts at element 20"),
                backward.getMessage());
    }

    @Test
    void zeroClearsOnlyTheView() {
        float[] x = random("zero", 4 * 9);
        assertExact("zero", b -> {
            Tensor wide = input(b, 4, 9, x, false);
            b.zero(wide.columns(3, 4).rows(1, 2));
            return read(b, wide);
        });
    }

    @Test
    void matmulAndItsBackwardInBothLayoutsWithinTheProductBound() {
        int[][] shapes = {{1, 1, 1}, {7, 33, 5}, {3, 64, 130}};
        for (int[] s : shapes) {
            int m = s[0];
            int in = s[1];
            int out = s[2];
            for (Layout layout : Layout.values()) {
                for (boolean withBias : new boolean[] {false, true}) {
                    String what = "matmul " + Arrays.toString(s) + " " + layout + (withBias ? " with bias" : "");
                    float[] x = random("x" + in, m * in);
                    float[] w = random("w" + in + out, in * out);
                    float[] bias = random("bias" + out, out);
                    float[] dy = random("dy" + out, m * out);
                    float[] dx0 = random("dx" + in, m * in);
                    int wRows = layout == Layout.OUT_IN ? out : in;
                    int wCols = layout == Layout.OUT_IN ? in : out;
                    Function<float[][], Operation> forwardAndBackward = v -> b -> {
                        Tensor xt = input(b, m, in, v[0], true);
                        Tensor wt = b.weights(Segments.of(v[1]), wRows, wCols);
                        Tensor bt = withBias ? input(b, 1, out, v[2], false) : null;
                        Tensor y = b.allocate(m, out);
                        b.matmul(xt, wt, layout, bt, y);
                        Tensor dyt = input(b, m, out, v[3], false);
                        Tensor dxt = input(b, m, in, v[4], true);
                        Tensor dw = input(b, wRows, wCols, v[1], false);
                        Tensor db = withBias ? input(b, 1, out, v[2], false) : null;
                        b.matmulBackward(xt, wt, layout, dyt, dxt, true, dw, db);
                        Tensor fresh = b.allocate(m, in);
                        b.matmulBackward(xt, wt, layout, dyt, fresh, false, dw, null);
                        return withBias
                                ? concat(read(b, y), read(b, dxt), read(b, dw), read(b, db), read(b, fresh))
                                : concat(read(b, y), read(b, dxt), read(b, dw), read(b, fresh));
                    };
                    float[][] values = {x, w, bias, dy, dx0};
                    float[] absolute;
                    try (CpuBackend cpu = new CpuBackend()) {
                        absolute = forwardAndBackward.apply(abs(values)).apply(cpu);
                    }
                    int k = Math.max(Math.max(in, out), m) + 4;
                    assertWithin(what, forwardAndBackward.apply(values), expected -> Arrays.stream(widen(absolute))
                            .map(a -> k * EPS * a + Float.MIN_NORMAL)
                            .toArray());
                }
            }
        }
    }

    /**
     * The bias gradient sums dy's columns through a row of ones that grows with the row count: after a product of 3
     * rows, one of 40 (which fits the first row of ones' allocation) must still sum all 40 rows.
     */
    @Test
    void biasGradientsSumEveryRowWhenTheRowCountGrows() {
        int in = 5;
        int out = 7;
        int[] rowCounts = {3, 40, 2, 64, 65};
        int most = Arrays.stream(rowCounts).max().orElseThrow();
        float[] w = random("w-growing", out * in);
        float[] x = random("x-growing", most * in);
        float[] dy = random("dy-growing", most * out);
        // Each bias gradient sums at most `most` terms of magnitude at most 1, in any order.
        double bound = (most + 4) * EPS * most + Float.MIN_NORMAL;
        assertWithin(
                "bias gradients as the rows grow",
                b -> {
                    Tensor wt = b.weights(Segments.of(w), out, in);
                    Tensor dw = b.allocate(out, in);
                    float[][] gradients = new float[rowCounts.length][];
                    for (int i = 0; i < rowCounts.length; i++) {
                        int m = rowCounts[i];
                        Tensor xt = input(b, m, in, Arrays.copyOf(x, m * in), false);
                        Tensor dyt = input(b, m, out, Arrays.copyOf(dy, m * out), false);
                        Tensor db = b.allocate(1, out);
                        b.matmulBackward(xt, wt, Layout.OUT_IN, dyt, null, false, dw, db);
                        gradients[i] = read(b, db);
                    }
                    return concat(gradients);
                },
                expected -> {
                    double[] bounds = new double[expected.length];
                    Arrays.fill(bounds, bound);
                    return bounds;
                });
    }

    private static float[][] abs(float[][] values) {
        float[][] a = new float[values.length][];
        for (int i = 0; i < values.length; i++) {
            a[i] = values[i].clone();
            for (int j = 0; j < a[i].length; j++) {
                a[i][j] = Math.abs(a[i][j]);
            }
        }
        return a;
    }

    /**
     * {sequences, heads, kvHeads, queries per sequence, key rows per sequence, headDim, position}: decode against a
     * cache (one query), a prefill that continues a cache, training batches of several sequences at position 0, GQA
     * ratios 1 to 4, heads of 1 to 72 floats (not multiples of 32), key counts across several 32-key tiles. The last
     * three split their keys over blocks (at most 4 queries seeing more than 64 keys): one with queries that see none
     * of the last split's keys, one decode of 12 query heads sharing one key/value head (two blocks of 6 heads each).
     */
    private static final int[][] ATTENTION = {
        {1, 4, 4, 1, 9, 8, 8},
        {1, 8, 2, 5, 40, 16, 35},
        {2, 6, 3, 37, 37, 12, 0},
        {1, 4, 1, 70, 70, 40, 0},
        {3, 2, 2, 1, 1, 1, 0},
        {1, 3, 1, 2, 100, 72, 97},
        {2, 4, 2, 3, 200, 24, 190},
        {1, 12, 1, 1, 130, 16, 129},
    };

    @Test
    void causalGroupedQueryAttentionMatchesTheCpu() {
        for (int[] c : ATTENTION) {
            AttentionSizes a = new AttentionSizes(c);
            float[] q = random("q" + Arrays.toString(c), a.queryFloats());
            float[] k = random("k" + Arrays.toString(c), a.keyFloats());
            float[] v = random("v" + Arrays.toString(c), a.keyFloats());
            assertWithin("attention " + Arrays.toString(c), a.forward(new float[][] {q, k, v}), attentionBound(a));
        }
    }

    /**
     * The bound of attention's outputs then log-sum-exps against the CPU's where values are in [-1, 1] and scores at
     * most headDim / √headDim in magnitude: 8(keys + headDim)ε for an output, that factor of 1 + |lse| + √headDim for
     * a log-sum-exp.
     */
    private static Function<float[], double[]> attentionBound(AttentionSizes a) {
        int outputs = a.queryFloats();
        double factor = 8 * (a.position() + a.queries() + a.headDim()) * EPS;
        return expected -> {
            double[] bound = new double[expected.length];
            for (int i = 0; i < bound.length; i++) {
                bound[i] = i < outputs ? factor : factor * (1 + Math.abs(expected[i]) + Math.sqrt(a.headDim()));
            }
            return bound;
        };
    }

    /** Attention as another thread's first call on the backend: it makes the device current there, as every op does. */
    @Test
    void attentionFromAnotherThreadMakesTheBackendsDeviceCurrent() {
        int heads = 2;
        int headDim = 8;
        int keys = 5;
        float[] q = random("q other thread", keys * heads * headDim);
        float[] k = random("k other thread", keys * heads * headDim);
        float[] v = random("v other thread", keys * heads * headDim);
        EmulatedBackends.run(0, b -> {
            Tensor qt = input(b, keys, heads * headDim, q, false);
            Tensor kt = input(b, keys, heads * headDim, k, false);
            Tensor vt = input(b, keys, heads * headDim, v, false);
            Tensor here = b.allocate(keys, heads * headDim);
            Tensor there = b.allocate(keys, heads * headDim);
            b.attention(qt, kt, vt, heads, heads, 1, 0, here, null);
            Throwable[] failure = new Throwable[1];
            boolean[] current = new boolean[1];
            Thread other = new Thread(() -> {
                try {
                    b.attention(qt, kt, vt, heads, heads, 1, 0, there, null);
                    current[0] = Cuda.isEmulatedDeviceCurrent();
                } catch (RuntimeException | Error e) {
                    failure[0] = e;
                }
            });
            other.start();
            try {
                other.join();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IllegalStateException(e);
            }
            if (failure[0] != null) {
                throw new AssertionError("attention on another thread failed", failure[0]);
            }
            assertTrue(current[0], "attention made the emulated device current on the calling thread");
            assertArrayEquals(bits(read(b, here)), bits(read(b, there)));
            return null;
        });
    }

    @Test
    void attentionRejectsHeadsWiderThanTheKernelKeeps() {
        int headDim = CudaBackend.MAX_HEAD_DIM + 2;
        IllegalArgumentException e = assertThrows(
                IllegalArgumentException.class,
                () -> EmulatedBackends.run(0, b -> {
                    Tensor q = b.allocate(1, headDim);
                    b.attention(
                            q,
                            b.allocate(1, headDim),
                            b.allocate(1, headDim),
                            1,
                            1,
                            1,
                            0,
                            b.allocate(1, headDim),
                            null);
                    return null;
                }));
        assertTrue(e.getMessage().contains("headDim (258) must be <= 256"), e.getMessage());
    }

    /**
     * {sequences, heads, kvHeads, queries per sequence, key rows per sequence, headDim, position}: a prefill over three
     * key tiles, decodes against caches of 40 and 300 keys (grouped heads, a head of 13 floats), and two sequences
     * continuing a cache, once with their keys split over blocks and the last key seen by one query of three.
     */
    private static final int[][] HUGE_VALUES = {
        {1, 2, 1, 70, 70, 64, 0},
        {1, 2, 2, 1, 300, 64, 299},
        {1, 4, 2, 1, 40, 32, 39},
        {1, 2, 1, 1, 40, 13, 39},
        {2, 2, 1, 5, 9, 12, 4},
        {2, 2, 1, 3, 143, 12, 140},
    };

    /**
     * Values near float's limit: a sum {@code Σ p·v} overflows although the output, a weighted mean of value rows,
     * cannot. Q and K are 0, so every visible key weighs the same and the output is the mean of the values the query
     * sees, within 2(keys + 16)ε of the CPU's (which computes such a query again in double). Then a NaN in column 0 of
     * each sequence's last value row, which must reach only the outputs of the queries that see that key.
     */
    @Test
    void valuesNearFloatsLimitGiveFiniteOutputs() {
        for (int[] c : HUGE_VALUES) {
            AttentionSizes a = new AttentionSizes(c);
            float[] q = new float[a.queryFloats()];
            float[] k = new float[a.keyFloats()];
            float[] v = Inputs.uniform(Inputs.seed("huge v" + Arrays.toString(c)), k.length, 2e38f, Float.MAX_VALUE);
            double factor = 2 * (a.keys() + 16) * EPS;
            String what = "attention, values near float's limit, " + Arrays.toString(c);
            assertWithin(what, a.forward(new float[][] {q, k, v}), relative(factor));
            float[] poisoned = v.clone();
            int width = a.kvHeads() * a.headDim();
            for (int s = 0; s < a.sequences(); s++) {
                for (int h = 0; h < a.kvHeads(); h++) {
                    poisoned[(s * a.keys() + a.keys() - 1) * width + h * a.headDim()] = Float.NaN;
                }
            }
            // Query i of a sequence sees the last key once position + i reaches it.
            int pairs = a.rows() * a.heads();
            boolean[] seen = new boolean[pairs];
            for (int r = 0; r < a.rows(); r++) {
                boolean sees = a.position() + r % a.queries() >= a.keys() - 1;
                Arrays.fill(seen, r * a.heads(), (r + 1) * a.heads(), sees);
            }
            assertLikeTheCpu(
                    what + ", a NaN in the last value row",
                    a.forward(new float[][] {q, k, poisoned}),
                    new boolean[][] {seen, new boolean[pairs]},
                    new int[] {a.headDim(), 1},
                    factor,
                    0);
        }
    }

    /**
     * Scores beyond float's range: products q·k overflow float, so the float pass gives ∞ − ∞ (NaN before the fix)
     * and the query is computed again in double, as on the CPU. Keys of a pattern tie exactly, so the output is the
     * mean of the value rows of the visible keys of the best pattern, computed in double on both sides with sums in
     * other orders: within 8(keys + headDim)ε of the CPU's (values in [-1, 1]), as are the outputs of the queries
     * with small entries beside them, which take the float pass (the bound of
     * causalGroupedQueryAttentionMatchesTheCpu). Log-sum-exps within that factor of 1 + |lse| + √headDim, and ±∞
     * exactly where the CPU's is beyond float's range. No output is NaN, but where a query row holds one, as on the
     * CPU. The shapes of
     * causalGroupedQueryAttentionMatchesTheCpu: prefills over several key tiles, decodes whose keys are split over
     * blocks, grouped heads, heads of 1 to 72 floats.
     */
    @Test
    void scoresBeyondFloatsRangeGiveTheCpusOutputs() {
        for (int[] c : ATTENTION) {
            AttentionSizes a = new AttentionSizes(c);
            String what = "attention, scores beyond float's range, " + Arrays.toString(c);
            float[][] t = hugeScores(a, Arrays.toString(c), 1e20f, 1e-20f, 0f);
            float[][] r = cpuAndCuda(what, a.forward(new float[][] {t[0], t[1], t[2]}));
            Tolerance.assertClose(what, widen(r[0]), r[1], attentionBound(a).apply(r[0]));
            for (int i = 0; i < a.queryFloats(); i++) {
                assertTrue(Float.isFinite(r[1][i]), what + ": output " + i + " is " + r[1][i]);
            }
            // A NaN still reaches the query that holds it, and no other.
            float[] poisoned = t[0].clone();
            poisoned[(a.rows() - 1) * a.heads() * a.headDim()] = Float.NaN;
            boolean[] seen = new boolean[a.rows() * a.heads()];
            seen[(a.rows() - 1) * a.heads()] = true;
            assertLikeTheCpu(
                    what + ", a NaN in the last query row",
                    a.forward(new float[][] {poisoned, t[1], t[2]}),
                    new boolean[][] {seen, seen},
                    new int[] {a.headDim(), 1},
                    8 * (a.position() + a.queries() + a.headDim()) * EPS,
                    1 + Math.sqrt(a.headDim()));
        }
    }

    /**
     * A key whose score is 250 below the others weighs 0 in float, so a NaN in its value row adds nothing, on the
     * device as on the CPU, in prefill and in split decodes: the device's double pass, which takes a query whose
     * float accumulator is NaN, leaves out a key whose weight underflows in float as the float pass does.
     */
    @Test
    void aValueRowWhoseWeightUnderflowsAddsNothingAsOnTheCpu() {
        int[][] cases = {{2, 6, 3, 37, 37, 12, 0}, {1, 8, 2, 5, 40, 16, 35}, {1, 12, 1, 1, 130, 16, 129}};
        for (int[] c : cases) {
            AttentionSizes a = new AttentionSizes(c);
            String what = "attention, a NaN value of a key of weight 0, " + Arrays.toString(c);
            float[] q = random(what + " q", a.queryFloats());
            float[] k = random(what + " k", a.keyFloats());
            float[] v = random(what + " v", a.keyFloats());
            int d = a.headDim();
            for (int i = 0; i < q.length; i += d) {
                q[i] = 10;
            }
            // The last key, which no query sees alone: with scale 1/√d ≥ 1/4, its score is 250 or more below.
            int kvWidth = a.kvHeads() * d;
            for (int s = 0; s < a.sequences(); s++) {
                int row = (s * a.keys() + a.keys() - 1) * kvWidth;
                for (int h = 0; h < a.kvHeads(); h++) {
                    k[row + h * d] = -100;
                    v[row + h * d + d / 2] = Float.NaN;
                }
            }
            float[][] r = cpuAndCuda(what, a.forward(new float[][] {q, k, v}));
            Tolerance.assertClose(what, widen(r[0]), r[1], attentionBound(a).apply(r[0]));
            for (int i = 0; i < r[1].length; i++) {
                assertTrue(Float.isFinite(r[0][i]) && Float.isFinite(r[1][i]), what + ": element " + i);
            }
        }
    }

    /**
     * The backward of {@link #scoresBeyondFloatsRangeGiveTheCpusOutputs}'s inputs (an infinite or huge log-sum-exp),
     * and of scores near 4·10⁶ a few units apart (entries near 1000), whose float log-sum-exp is finite but past
     * 2²⁰, where its rounding would move the weights by up to e^(1/4): the device computes those queries in double
     * (beside queries of small entries, which take the float pass) as the CPU does. Each side is within the float64
     * reference's bound, so the device is within twice it of the CPU. No gradient is NaN.
     */
    @Test
    void scoresBeyondFloatsRangeGiveTheCpusGradients() {
        int[][] cases = {{2, 4, 2, 37, 16}, {1, 2, 1, 70, 64}, {1, 4, 1, 33, 4}};
        for (int[] c : cases) {
            AttentionSizes a = AttentionSizes.training(c);
            String name = Arrays.toString(c);
            float[][][] families = {hugeScores(a, name, 1e20f, 1e-20f, 0f), hugeScores(a, name, 1e-3f, 1e-3f, 1000f)};
            for (int f = 0; f < families.length; f++) {
                float[][] t = families[f];
                String what =
                        "attentionBackward, " + (f == 0 ? "scores beyond float's range, " : "scores near 4e6, ") + name;
                assertFiniteGradientsNearTheCpus(what, a, t);
            }
        }
    }

    /**
     * The backward's gradients of Q, K, V and dO {@code t} on the device: finite, and within twice the float64
     * reference's bound of the CPU's (each side is within it of the reference).
     */
    private void assertFiniteGradientsNearTheCpus(String what, AttentionSizes a, float[][] t) {
        float[][] r = cpuAndCuda(what, a.backward(t));
        ReferenceAttention.Gradients expected = a.referenceGradients(t);
        int[] sizes = {t[0].length, t[1].length, t[1].length};
        double[][] bounds = {expected.dqBound(), expected.dkBound(), expected.dvBound()};
        int[] widths = {a.heads(), a.kvHeads(), a.kvHeads()};
        int from = 0;
        for (int g = 0; g < 3; g++) {
            String gradient = what + " " + new String[] {"dq", "dk", "dv"}[g];
            float[] cpu = a.headMajor(Arrays.copyOfRange(r[0], from, from + sizes[g]), widths[g]);
            float[] device = a.headMajor(Arrays.copyOfRange(r[1], from, from + sizes[g]), widths[g]);
            double[] twice = Arrays.stream(bounds[g]).map(b -> 2 * b).toArray();
            Tolerance.assertClose(gradient, widen(cpu), device, twice);
            for (int i = 0; i < device.length; i++) {
                assertTrue(Float.isFinite(device[i]), gradient + ": element " + i + " is " + device[i]);
            }
            from += sizes[g];
        }
    }

    /**
     * A query whose float scores overflow although its exact ones, and so its log-sum-exp, are moderate: in the first
     * two entries of each head, q rows {@code (x, x)} and k rows {@code (y, -y)}, zero but for one query row per
     * sequence ({@code x = 1e20}) and one key row it sees ({@code y = ±1e20}, the sign alternating by key/value
     * head), so that its {@code q·k} is ∞ - ∞ in float (NaN, or ±∞ with a fused multiply-add) and the rest of the row
     * in double. Only a look at the scores sends that query to the double path; the device's gradients are finite and
     * near the CPU's.
     */
    @Test
    void scoresOverflowingFloatWithAModerateLogSumExpGiveTheCpusGradients() {
        int[][] cases = {{1, 1, 1, 2, 2}, {1, 2, 1, 9, 3}, {2, 4, 2, 37, 16}, {1, 2, 1, 70, 64}};
        for (int[] c : cases) {
            AttentionSizes a = AttentionSizes.training(c);
            String name = Arrays.toString(c);
            int d = a.headDim();
            float[] q = random("overflowing q" + name, a.queryFloats());
            float[] k = random("overflowing k" + name, a.keyFloats());
            // The last query; its key half way, in the second key tile of 32 at 70 rows.
            int query = a.queries() - 1;
            for (int row = 0; row < a.rows(); row++) {
                for (int h = 0; h < a.heads(); h++) {
                    float x = row % a.queries() == query ? 1e20f : 0f;
                    q[(row * a.heads() + h) * d] = x;
                    q[(row * a.heads() + h) * d + 1] = x;
                }
            }
            for (int row = 0; row < a.sequences() * a.keys(); row++) {
                for (int h = 0; h < a.kvHeads(); h++) {
                    float y = row % a.keys() != query / 2 ? 0f : h % 2 == 0 ? 1e20f : -1e20f;
                    k[(row * a.kvHeads() + h) * d] = y;
                    k[(row * a.kvHeads() + h) * d + 1] = -y;
                }
            }
            float[][] t = {q, k, random("overflowing v" + name, k.length), random("overflowing dO" + name, q.length)};
            assertFiniteGradientsNearTheCpus("attentionBackward, overflowing scores, " + name, a, t);
        }
    }

    /**
     * Q, K, V and dO (rows as the backends take them) for the tests of scores beyond float's range: each key/value
     * head's key rows repeat three patterns of entries {@code offset + magnitude·[-1, 1]} (rows of one pattern tie
     * exactly), the query rows entries {@code offset + magnitude·[-1, 1]} too, except the (row, head)s where row + head
     * is 3 modulo 4, whose entries are in {@code small·[-1, 1]} so that their scores stay within float's range and
     * below 2²⁰; values and dO in [-1, 1].
     */
    private static float[][] hugeScores(AttentionSizes a, String name, float magnitude, float small, float offset) {
        SplittableRandom random = new SplittableRandom(Inputs.seed("huge scores " + name + magnitude));
        int d = a.headDim();
        float[][][] patterns = new float[a.kvHeads()][3][d];
        for (float[][] head : patterns) {
            for (float[] pattern : head) {
                for (int e = 0; e < d; e++) {
                    pattern[e] = offset + magnitude * (float) (2 * random.nextDouble() - 1);
                }
            }
        }
        float[] k = new float[a.keyFloats()];
        for (int row = 0; row < a.sequences() * a.keys(); row++) {
            for (int h = 0; h < a.kvHeads(); h++) {
                System.arraycopy(patterns[h][random.nextInt(3)], 0, k, (row * a.kvHeads() + h) * d, d);
            }
        }
        float[] q = new float[a.queryFloats()];
        for (int row = 0; row < a.rows(); row++) {
            for (int h = 0; h < a.heads(); h++) {
                boolean ordinary = (row + h) % 4 == 3;
                for (int e = 0; e < d; e++) {
                    float entry = (float) (2 * random.nextDouble() - 1);
                    q[(row * a.heads() + h) * d + e] = ordinary ? small * entry : offset + magnitude * entry;
                }
            }
        }
        return new float[][] {q, k, random("huge scores v" + name, k.length), random("huge scores dO" + name, q.length)
        };
    }

    /**
     * One attention call's sizes: {@code sequences} of {@code queries} query rows at {@code position} over {@code
     * keys} key rows each, {@code heads} query heads sharing {@code kvHeads} key/value heads of {@code headDim} floats.
     */
    private record AttentionSizes(
            int sequences, int heads, int kvHeads, int queries, int keys, int headDim, int position) {
        /** From {sequences, heads, kvHeads, queries, keys, headDim, position}. */
        AttentionSizes(int[] c) {
            this(c[0], c[1], c[2], c[3], c[4], c[5], c[6]);
        }

        /** From {sequences, heads, kvHeads, T, headDim}: T queries over T keys at position 0, as in training. */
        static AttentionSizes training(int[] c) {
            return new AttentionSizes(c[0], c[1], c[2], c[3], c[3], c[4], 0);
        }

        int rows() {
            return sequences * queries;
        }

        int queryFloats() {
            return rows() * heads * headDim;
        }

        int keyFloats() {
            return sequences * keys * kvHeads * headDim;
        }

        /** Each backend's attention over {q, k, v}; returns the output and the log-sum-exps. */
        Operation forward(float[][] t) {
            return b -> {
                Tensor out = b.allocate(rows(), heads * headDim);
                Tensor lse = b.allocate(rows(), heads);
                b.attention(
                        input(b, rows(), heads * headDim, t[0], false),
                        input(b, sequences * keys, kvHeads * headDim, t[1], false),
                        input(b, sequences * keys, kvHeads * headDim, t[2], false),
                        heads,
                        kvHeads,
                        sequences,
                        position,
                        out,
                        lse);
                return concat(read(b, out), read(b, lse));
            };
        }

        /** Each backend's forward then its backward on {q, k, v, dO}; returns dQ, dK and dV. */
        Operation backward(float[][] t) {
            return b -> {
                Tensor qt = input(b, rows(), heads * headDim, t[0], false);
                Tensor kt = input(b, sequences * keys, kvHeads * headDim, t[1], false);
                Tensor vt = input(b, sequences * keys, kvHeads * headDim, t[2], false);
                Tensor out = b.allocate(rows(), heads * headDim);
                Tensor lse = b.allocate(rows(), heads);
                b.attention(qt, kt, vt, heads, kvHeads, sequences, position, out, lse);
                Tensor dq = b.allocate(rows(), heads * headDim);
                Tensor dk = b.allocate(sequences * keys, kvHeads * headDim);
                Tensor dv = b.allocate(sequences * keys, kvHeads * headDim);
                b.attentionBackward(
                        qt,
                        kt,
                        vt,
                        out,
                        lse,
                        input(b, rows(), heads * headDim, t[3], false),
                        heads,
                        kvHeads,
                        sequences,
                        dq,
                        dk,
                        dv);
                return concat(read(b, dq), read(b, dk), read(b, dv));
            };
        }

        /**
         * The float64 reference's gradients (head-major) and their bounds for {q, k, v, dO} as the backends take them,
         * for sizes from {@link #training}.
         */
        ReferenceAttention.Gradients referenceGradients(float[][] t) {
            return ReferenceAttention.backward(
                    sequences,
                    heads,
                    kvHeads,
                    queries,
                    keys,
                    headDim,
                    1 / Math.sqrt(headDim),
                    true,
                    headMajor(t[0], heads),
                    headMajor(t[1], kvHeads),
                    headMajor(t[2], kvHeads),
                    null,
                    headMajor(t[3], heads));
        }

        /**
         * A backend's {@code [sequences·length, width·headDim]} rows ({@code width} heads) as the reference's {@code
         * [sequences, width, length, headDim]}.
         */
        float[] headMajor(float[] rows, int width) {
            int length = rows.length / (sequences * width * headDim);
            float[] dense = new float[rows.length];
            for (int s = 0; s < sequences; s++) {
                for (int t = 0; t < length; t++) {
                    for (int h = 0; h < width; h++) {
                        System.arraycopy(
                                rows,
                                ((s * length + t) * width + h) * headDim,
                                dense,
                                ((s * width + h) * length + t) * headDim,
                                headDim);
                    }
                }
            }
            return dense;
        }
    }

    /**
     * {sequences, heads, kvHeads, T, headDim}: training-shaped batches at position 0 with GQA ratios 1 to 4, one token,
     * heads not multiples of 32, several 32-query tiles.
     */
    private static final int[][] ATTENTION_BACKWARD = {
        {2, 6, 3, 37, 12}, {1, 4, 1, 70, 40}, {3, 2, 2, 1, 1}, {1, 8, 2, 33, 72}, {1, 4, 4, 5, 8},
    };

    /**
     * Attention's gradients (after each backend's own forward) within 16(T + headDim)ε of the largest gradient of the
     * same tensor: each is a sum over up to T keys or queries of products of headDim-term dot products, and dq and dk
     * sum terms p·(dp − D) of both signs, so the bound is on the tensor's scale rather than each element.
     */
    @Test
    void attentionBackwardMatchesTheCpu() {
        for (int[] c : ATTENTION_BACKWARD) {
            AttentionSizes a = AttentionSizes.training(c);
            float[] q = random("bq" + Arrays.toString(c), a.queryFloats());
            float[] k = random("bk" + Arrays.toString(c), a.keyFloats());
            float[] v = random("bv" + Arrays.toString(c), a.keyFloats());
            float[] dOut = random("bdo" + Arrays.toString(c), a.queryFloats());
            int[] sizes = {a.queryFloats(), a.keyFloats(), a.keyFloats()};
            double factor = 16 * (a.queries() + a.headDim()) * EPS;
            assertWithin(
                    "attentionBackward " + Arrays.toString(c), a.backward(new float[][] {q, k, v, dOut}), expected -> {
                        double[] bound = new double[expected.length];
                        int from = 0;
                        for (int size : sizes) {
                            double largest = 0;
                            for (int i = from; i < from + size; i++) {
                                largest = Math.max(largest, Math.abs(expected[i]));
                            }
                            Arrays.fill(bound, from, from + size, factor * largest + Float.MIN_NORMAL);
                            from += size;
                        }
                        return bound;
                    });
        }
    }

    /**
     * Gradients with values near float's limit: every dO·v and D = dO·O is beyond float's range (V in [2e38,
     * FLT_MAX], dO in [2, 3]/headDim), although dS = P∘(dO·v − D) = P∘(dO·(v − O)) and the gradients are not. Q and K
     * in [-1, 1] make the weights differ. Against the float64 reference within its bounds.
     */
    @Test
    void valuesNearFloatsLimitGiveFiniteGradients() {
        int[][] cases = {{2, 4, 2, 37, 16}, {1, 2, 1, 70, 64}};
        for (int[] c : cases) {
            AttentionSizes a = AttentionSizes.training(c);
            String name = Arrays.toString(c);
            float[] q = random("huge bq" + name, a.queryFloats());
            float[] k = random("huge bk" + name, a.keyFloats());
            float[] v = Inputs.uniform(Inputs.seed("huge bv" + name), k.length, 2e38f, Float.MAX_VALUE);
            float[] dOut = Inputs.uniform(Inputs.seed("huge bdo" + name), q.length, 2f / a.headDim(), 3f / a.headDim());
            String what = "attentionBackward, values near float's limit, " + name;
            float[] gradients = onDevice(what, a.backward(new float[][] {q, k, v, dOut}));
            ReferenceAttention.Gradients expected = a.referenceGradients(new float[][] {q, k, v, dOut});
            float[] dq = Arrays.copyOfRange(gradients, 0, q.length);
            float[] dk = Arrays.copyOfRange(gradients, q.length, q.length + k.length);
            float[] dv = Arrays.copyOfRange(gradients, q.length + k.length, gradients.length);
            Tolerance.assertClose(what + " dq", expected.dq(), a.headMajor(dq, a.heads()), expected.dqBound());
            Tolerance.assertClose(what + " dk", expected.dk(), a.headMajor(dk, a.kvHeads()), expected.dkBound());
            Tolerance.assertClose(what + " dv", expected.dv(), a.headMajor(dv, a.kvHeads()), expected.dvBound());
        }
    }

    /**
     * NaN and ±∞ in one element of a key or value row that other queries of the same block do not see (key 5, beside
     * query 4), or of a query or output-gradient row whose query does not see keys of the same block (query 4, beside
     * key 5), in the second sequence and the last head: the kernels keep it from every output and gradient that does
     * not see it, where the device is within the bounds above of the CPU. Where the CPU's result is not finite, neither
     * is the device's; what sees the poison may be NaN on the device where the CPU, which leaves keys of score -∞ and
     * weight 0 out, is finite.
     */
    @Test
    void poisonReachesOnlyWhatSeesItAsOnTheCpu() {
        int sequences = 2;
        int heads = 4;
        int kvHeads = 2;
        int group = heads / kvHeads;
        int length = 9;
        int headDim = 12;
        int rows = sequences * length;
        AttentionSizes sizes = new AttentionSizes(sequences, heads, kvHeads, length, length, headDim, 0);
        float[][] clean = {
            random("poison q", rows * heads * headDim),
            random("poison k", rows * kvHeads * headDim),
            random("poison v", rows * kvHeads * headDim),
            random("poison dO", rows * heads * headDim)
        };
        for (int tensor = 0; tensor < 4; tensor++) {
            boolean keySide = tensor == 1 || tensor == 2;
            int width = keySide ? kvHeads : heads;
            int row = length + (keySide ? 5 : 4);
            // The (row, head)s of queries that see the poison, and of the keys those queries see.
            boolean[] queries = new boolean[rows * heads];
            boolean[] keys = new boolean[rows * kvHeads];
            for (int r = length; r < rows; r++) {
                for (int h = 0; h < heads; h++) {
                    queries[r * heads + h] =
                            keySide ? h / group == kvHeads - 1 && r >= row : h == heads - 1 && r == row;
                    for (int j = length; j <= r; j++) {
                        keys[j * kvHeads + h / group] |= queries[r * heads + h];
                    }
                }
            }
            for (float poison : new float[] {Float.NaN, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY}) {
                float[][] t = clean.clone();
                t[tensor] = clean[tensor].clone();
                t[tensor][(row * width + width - 1) * headDim + 3] = poison;
                String what = new String[] {"q", "k", "v", "dO"}[tensor] + " row " + row + " = " + poison;
                if (tensor < 3) {
                    assertLikeTheCpu(
                            "attention, " + what,
                            sizes.forward(t),
                            new boolean[][] {queries, queries},
                            new int[] {headDim, 1},
                            8 * (length + headDim) * EPS,
                            1 + Math.sqrt(headDim));
                }
                assertLikeTheCpu(
                        "attentionBackward, " + what,
                        sizes.backward(t),
                        new boolean[][] {queries, keys, keys},
                        new int[] {headDim, headDim, headDim},
                        16 * (length + headDim) * EPS,
                        0);
            }
        }
    }

    /**
     * Compares the device with the CPU on results made of parts, one per {@code seen} entry: part p has an element per
     * {@code widths[p]} floats of each (row, head), and {@code seen[p]} says which (row, head)s see the poison. An
     * element that does not is within {@code factor·(largest + extra)} of the CPU's, largest the part's largest finite
     * magnitude on the CPU; where the CPU is not finite, the device is not either.
     */
    private void assertLikeTheCpu(
            String what, Operation operation, boolean[][] seen, int[] widths, double factor, double extra) {
        float[][] r = cpuAndCuda(what, operation);
        double[] bound = new double[r[0].length];
        boolean[] compared = new boolean[r[0].length];
        int from = 0;
        for (int part = 0; part < seen.length; part++) {
            int size = seen[part].length * widths[part];
            double largest = 0;
            for (int i = from; i < from + size; i++) {
                largest = Float.isFinite(r[0][i]) ? Math.max(largest, Math.abs(r[0][i])) : largest;
                compared[i] = !seen[part][(i - from) / widths[part]];
            }
            Arrays.fill(bound, from, from + size, factor * (largest + extra) + Float.MIN_NORMAL);
            from += size;
        }
        int[] checked = IntStream.range(0, r[0].length).filter(i -> compared[i]).toArray();
        Tolerance.assertClose(
                what,
                checked.length,
                i -> r[0][checked[i]],
                i -> r[1][checked[i]],
                i -> bound[checked[i]],
                i -> "index " + checked[i]);
        for (int i = 0; i < r[0].length; i++) {
            assertTrue(
                    Float.isFinite(r[0][i]) || !Float.isFinite(r[1][i]),
                    what + ": index " + i + " is " + r[1][i] + " on the device, " + r[0][i] + " on the CPU");
        }
    }

    /**
     * GELU's and SwiGLU's gradients within (16 + 4|e|)ε of the magnitude of their terms (the derivatives are sums of
     * terms of opposite signs, so the bound is relative to |dy| times the terms' magnitudes, not to the result).
     */
    @Test
    void geluAndSwigluBackwardWithinTheExponentialsBound() {
        for (int[] s : SHAPES) {
            int rows = s[0];
            int cols = s[1];
            int n = rows * cols;
            float[] x = Inputs.uniform(Inputs.seed("gelu'" + cols), n, -6f, 6f);
            float[] up = random("up'" + cols, n);
            float[] dy = random("dy'" + cols, n);
            assertWithin(
                    "geluBackward " + rows + " × " + cols,
                    b -> {
                        Tensor in = input(b, rows, cols, x, false);
                        Tensor d = input(b, rows, cols, dy, false);
                        b.geluBackward(in, d, d);
                        return read(b, d);
                    },
                    expected -> termsBound(
                            n,
                            i -> Math.abs(x[i]) * (1.6 + 0.0714 * x[i] * x[i]),
                            i -> Math.abs(dy[i]) * (1 + Math.abs(x[i]) * (1.6 + 0.22 * x[i] * x[i]))));
            assertWithin(
                    "swigluBackward " + rows + " × " + cols,
                    b -> {
                        Tensor gate = input(b, rows, cols, x, false);
                        Tensor u = input(b, rows, cols, up, false);
                        Tensor d = input(b, rows, cols, dy, false);
                        Tensor dGate = b.allocate(rows, cols);
                        Tensor dUp = b.allocate(rows, cols);
                        b.swigluBackward(gate, u, d, dGate, dUp);
                        return concat(read(b, dGate), read(b, dUp));
                    },
                    expected -> {
                        double[] gate =
                                termsBound(n, i -> Math.abs(x[i]), i -> Math.abs(dy[i] * up[i]) * (1 + Math.abs(x[i])));
                        double[] upBound = termsBound(n, i -> Math.abs(x[i]), i -> Math.abs(dy[i] * x[i]));
                        return concat(gate, toFloats(upBound));
                    });
        }
    }

    private static double[] termsBound(
            int n, java.util.function.IntToDoubleFunction argument, java.util.function.IntToDoubleFunction terms) {
        double[] bound = new double[n];
        for (int i = 0; i < n; i++) {
            bound[i] = (16 + 4 * argument.applyAsDouble(i)) * EPS * terms.applyAsDouble(i) + Float.MIN_NORMAL;
        }
        return bound;
    }

    /**
     * The norms' gradients within (rows + cols + 16)ε of the magnitude of their terms: with g = dy ⊙ w and x̂ the
     * normalised row, dx = rstd·(g − mean(g) − x̂·mean(g·x̂)) is at most rstd·G·(2 + H²) in its terms (G the row's
     * largest |g|, H its largest |x̂|), and can cancel to far less (one column: dx ≈ 0), so the bound is on the terms;
     * each weight gradient adds a column sum of rows terms of at most H (|dy| ≤ 1) to a start of at most 1.
     */
    @Test
    void normBackwardsWithinTheReductionBound() {
        // The last two have more rows than one partial column sum covers (NORM_ROWS_SPAN, 64).
        for (int[] s : Stream.concat(Arrays.stream(SHAPES), Stream.of(new int[] {150, 7}, new int[] {129, 300}))
                .toList()) {
            int rows = s[0];
            int cols = s[1];
            float[] x = Inputs.uniform(Inputs.seed("norm'" + cols), rows * cols, -3f, 5f);
            float[] w = random("w'" + cols, cols);
            float[] bias = random("bias'" + cols, cols);
            float[] dy = random("dy norm" + cols, rows * cols);
            double factor = (rows + cols + 16) * EPS;
            assertWithin(
                    "rmsNormBackward " + rows + " × " + cols,
                    b -> {
                        Tensor in = input(b, rows, cols, x, true);
                        Tensor weight = input(b, 1, cols, w, false);
                        Tensor rstd = b.allocate(rows, 1);
                        b.rmsNorm(in, weight, 1e-5f, b.allocate(rows, cols), rstd);
                        Tensor d = input(b, rows, cols, dy, true);
                        Tensor dWeight = input(b, 1, cols, bias, false);
                        b.rmsNormBackward(in, weight, rstd, d, d, dWeight);
                        return concat(read(b, d), read(b, dWeight));
                    },
                    expected -> normBound(x, w, dy, rows, cols, false, factor, expected.length));
            assertWithin(
                    "layerNormBackward " + rows + " × " + cols,
                    b -> {
                        Tensor in = input(b, rows, cols, x, false);
                        Tensor weight = input(b, 1, cols, w, false);
                        Tensor mean = b.allocate(rows, 1);
                        Tensor rstd = b.allocate(rows, 1);
                        b.layerNorm(
                                in, weight, input(b, 1, cols, bias, false), 1e-5f, b.allocate(rows, cols), mean, rstd);
                        Tensor d = input(b, rows, cols, dy, false);
                        Tensor dx = b.allocate(rows, cols);
                        Tensor dWeight = input(b, 1, cols, bias, false);
                        Tensor dBias = input(b, 1, cols, w, false);
                        b.layerNormBackward(in, weight, mean, rstd, d, dx, dWeight, dBias);
                        return concat(read(b, dx), read(b, dWeight), read(b, dBias));
                    },
                    expected -> normBound(x, w, dy, rows, cols, true, factor, expected.length));
        }
    }

    private static double[] normBound(
            float[] x, float[] w, float[] dy, int rows, int cols, boolean centred, double factor, int length) {
        double[] bound = new double[length];
        double largestNormalised = 0;
        for (int r = 0; r < rows; r++) {
            double mean = 0;
            for (int c = 0; c < cols; c++) {
                mean += centred ? x[r * cols + c] / (double) cols : 0;
            }
            double squares = 0;
            for (int c = 0; c < cols; c++) {
                squares += (x[r * cols + c] - mean) * (x[r * cols + c] - mean);
            }
            double rstd = 1 / Math.sqrt(squares / cols + 1e-5);
            double g = 0;
            double h = 0;
            for (int c = 0; c < cols; c++) {
                g = Math.max(g, Math.abs(dy[r * cols + c] * w[c]));
                h = Math.max(h, Math.abs(x[r * cols + c] - mean) * rstd);
            }
            largestNormalised = Math.max(largestNormalised, h);
            Arrays.fill(bound, r * cols, (r + 1) * cols, factor * rstd * g * (2 + h * h) + Float.MIN_NORMAL);
        }
        Arrays.fill(bound, rows * cols, length, factor * (1 + rows * largestNormalised));
        return bound;
    }

    /**
     * Cross-entropy's mean loss within (cols + 8)ε of |loss| plus the largest |logit| (a log-sum-exp of cols terms),
     * its gradient in place within (cols + 8)ε of the scale per row; accuracy counting exactly.
     */
    @Test
    void crossEntropyAndAccuracyMatchTheCpu() {
        int[][] shapes = {{1, 1}, {3, 31}, {5, 300}, {2, 1000}};
        for (int[] s : shapes) {
            int rows = s[0];
            int cols = s[1];
            float[] logits = Inputs.uniform(Inputs.seed("ce" + cols), rows * cols, -8f, 8f);
            int[] targets = new int[rows + 1];
            for (int i = 0; i < targets.length; i++) {
                targets[i] = (i * 37 + 5) % cols;
            }
            // Row 0's target is its largest logit, so at least one prediction is right.
            logits[targets[1]] = 9;
            assertWithin(
                    "crossEntropy " + rows + " × " + cols,
                    b -> {
                        Tensor t = input(b, rows, cols, logits, true);
                        int correct = b.countCorrect(t, targets, 1);
                        float loss = b.crossEntropy(t, targets, 1, t, 0.5f);
                        return concat(new float[] {loss, correct}, read(b, t));
                    },
                    expected -> {
                        double[] bound = new double[expected.length];
                        bound[0] = (cols + 8) * EPS * (Math.abs(expected[0]) + 9);
                        for (int i = 2; i < bound.length; i++) {
                            bound[i] = (cols + 8) * EPS * (Math.abs(expected[i]) + 0.5 / rows) + Float.MIN_NORMAL;
                        }
                        return bound;
                    });
        }
    }

    /**
     * A small loss beside a large winning logit (the target): within (cols + 8)ε of 1 + |loss|, the log-sum-exp's own
     * error, with nothing of the logits' magnitude, which cancels when the loss is formed as a difference first.
     */
    @Test
    void crossEntropyKeepsASmallLossBesideALargeLogit() {
        int cols = 8;
        float[] winners = {20, 300, 1000, 4000};
        int rows = winners.length;
        float[] logits = new float[rows * cols];
        int[] targets = new int[rows];
        for (int r = 0; r < rows; r++) {
            targets[r] = (3 * r + 1) % cols;
            for (int c = 0; c < cols; c++) {
                logits[r * cols + c] = c == targets[r] ? winners[r] : winners[r] - 8;
            }
        }
        assertWithin(
                "crossEntropy beside large logits",
                b -> new float[] {b.crossEntropy(input(b, rows, cols, logits, false), targets, 0, null, 1f)},
                expected -> new double[] {(cols + 8) * EPS * (1 + Math.abs(expected[0]))});
    }

    @Test
    void sumOfSquaresOverViewsWithinTheCpusFloatSums() {
        // The last has more partial sums (269) than the block that adds them has threads (256).
        int[][] shapes = {{1, 1}, {3, 5}, {70, 301}, {1100, 1001}};
        for (int[] s : shapes) {
            int rows = s[0];
            int cols = s[1];
            float[] x = Inputs.uniform(Inputs.seed("squares" + cols), rows * cols, -2f, 2f);
            double[] results = new double[2];
            for (int backend = 0; backend < 2; backend++) {
                Function<Backend, Double> sum = b -> b.sumOfSquares(input(b, rows, cols, x, true));
                if (backend == 0) {
                    Tensor dense;
                    try (CpuBackend cpu = new CpuBackend()) {
                        // The CPU backend sums dense tensors only.
                        dense = input(cpu, rows, cols, x, false);
                        results[0] = cpu.sumOfSquares(dense);
                    }
                } else {
                    double first = EmulatedBackends.run(SCHEDULES[0], sum::apply);
                    for (long seed : SCHEDULES) {
                        assertEquals(first, EmulatedBackends.run(seed, sum::apply), "schedule " + seed);
                    }
                    results[1] = first;
                }
            }
            // The CPU sums spans of 4096 in float (each within 4096ε of its exact sum), the GPU in double.
            assertEquals(results[0], results[1], Math.min(rows * cols, 4096) * EPS * results[0] + Double.MIN_NORMAL);
        }
    }

    /** Two AdamW steps on param, m and v: each within 32ε relative plus 64ε·lr (the update's few roundings). */
    @Test
    void adamwMatchesTheCpu() {
        int rows = 7;
        int cols = 33;
        int n = rows * cols;
        float[] param = random("param", n);
        float[] grad = random("grad", n);
        float lr = 1e-2f;
        assertWithin(
                "adamw",
                b -> {
                    Tensor p = input(b, rows, cols, param, false);
                    Tensor g = input(b, rows, cols, grad, false);
                    Tensor m = b.allocate(rows, cols);
                    Tensor v = b.allocate(rows, cols);
                    b.adamw(p, g, m, v, new Backend.AdamWStep(lr, 0.9f, 0.95f, 1e-8f, 0.1f, 1, 1));
                    b.adamw(p, g, m, v, new Backend.AdamWStep(lr, 0.9f, 0.95f, 1e-8f, 0.1f, 2, 0.5f));
                    return concat(read(b, p), read(b, m), read(b, v));
                },
                expected -> Arrays.stream(widen(expected))
                        .map(e -> 32 * EPS * Math.abs(e) + 64 * EPS * lr)
                        .toArray());
        IllegalArgumentException e = assertThrows(
                IllegalArgumentException.class,
                () -> EmulatedBackends.run(0, b -> {
                    Tensor t = b.allocate(1, 1);
                    b.adamw(
                            t,
                            t,
                            b.allocate(1, 1),
                            b.allocate(1, 1),
                            new Backend.AdamWStep(lr, 1f, 0.9f, 1e-8f, 0, 1, 1));
                    return null;
                }));
        assertTrue(e.getMessage().contains("beta1"), e.getMessage());
    }

    @Test
    void embeddingBackwardAddsRepeatedTokensInOrder() {
        int vocab = 20;
        int[] tokens = {4, 4, 19, 0, 4, 7, 19};
        embeddingBackwardIsExact(vocab, 300, tokens);
        // Every token of the vocabulary among 700 rows, and one token that takes most of them.
        int[] many = new SplittableRandom(Inputs.seed("many tokens"))
                .ints(700, 0, vocab)
                .toArray();
        Arrays.fill(many, 100, 600, 3);
        embeddingBackwardIsExact(vocab, 33, many);
    }

    /** embeddingBackward of {@code tokens[1..]} onto a random table gives the CPU's bits. */
    private void embeddingBackwardIsExact(int vocab, int cols, int[] tokens) {
        float[] dout = random("dout", tokens.length * cols);
        float[] table = random("dtable", vocab * cols);
        assertExact("embeddingBackward " + tokens.length + " × " + cols, b -> {
            Tensor d = input(b, tokens.length - 1, cols, Arrays.copyOfRange(dout, cols, dout.length), true);
            Tensor t = input(b, vocab, cols, table, false);
            b.embeddingBackward(tokens, 1, d, t);
            return read(b, t);
        });
    }

    @Test
    void aTensorPastTheDeviceMemoryIsRefusedBeforeAllocation() {
        InsufficientMemoryException e = assertThrows(
                InsufficientMemoryException.class,
                () -> EmulatedBackends.run(0, 1000, b -> {
                    b.allocate(10, 10);
                    try {
                        b.allocate(20, 10);
                    } finally {
                        assertEquals(400, b.allocatedBytes(), "a refused tensor takes nothing");
                    }
                    return null;
                }));
        assertEquals(
                "a 20 × 10 tensor needs 800 bytes but 600 bytes of device memory (the device's 1000 bytes less what"
                        + " this backend holds) is available",
                e.getMessage());
    }

    /**
     * A scratch buffer that cannot grow (the device is full) is refused, and the backend goes on with what it holds:
     * a later, smaller use gets a working buffer, and the bytes it counts are those of its live buffers.
     */
    @Test
    void aScratchBufferThatCannotGrowLeavesTheBackendUsable() {
        int rows = 2000;
        float[] values = new float[rows];
        values[0] = 3;
        EmulatedBackends.run(0, 10_000, b -> {
            Tensor x = b.allocate(rows, 1);
            b.write(values, x);
            Tensor first = x.rows(0, 1);
            assertEquals(0, b.argmax(first));
            long held = b.allocatedBytes();
            assertThrows(InsufficientMemoryException.class, () -> b.countCorrect(x, new int[rows], 0));
            assertEquals(rows * Float.BYTES, b.allocatedBytes(), "the old scratch buffer was freed, no new one taken");
            assertEquals(0, b.argmax(first));
            assertEquals(held, b.allocatedBytes());
            return null;
        });
    }

    /**
     * A model one byte larger than the device: the last tensor that does not fit is refused with the bytes it needs and
     * those left, and nothing past the bound is ever allocated.
     */
    @Test
    void aModelPastTheDeviceMemoryIsRefusedWithTheSizes(@TempDir Path dir) throws IOException {
        ModelConfig config = new ModelConfig(Architecture.LLAMA, 32, 48, 2, 4, 2, 61, 256, 1e-5f, 10000f, false);
        Path file = dir.resolve("llama.bin");
        Llama2cCheckpoint.writeRandom(file, config, 3);
        try (Llama2cCheckpoint checkpoint = Llama2cCheckpoint.open(file)) {
            long needed = EmulatedBackends.run(0, b -> {
                Transformer.llama(b, config, checkpoint.weights(), 4);
                return b.allocatedBytes();
            });
            long capacity = needed - 1;
            InsufficientMemoryException e = assertThrows(
                    InsufficientMemoryException.class,
                    () -> EmulatedBackends.run(0, capacity, b -> {
                        try {
                            return Transformer.llama(b, config, checkpoint.weights(), 4);
                        } finally {
                            assertTrue(b.allocatedBytes() <= capacity, "allocated " + b.allocatedBytes());
                        }
                    }));
            assertTrue(
                    e.getMessage()
                            .matches(".* needs .* but .* of device memory \\(the device's "
                                    + InsufficientMemoryException.bytes(capacity)
                                    + " less what this backend holds\\) is available"),
                    e.getMessage());
        }
    }

    /**
     * Memory freed and reused at the same address (here the same bytes under a new arena, then under the global scope,
     * which cannot tell) holds other weights: each must be uploaded, not served from the earlier upload.
     */
    @Test
    @SuppressWarnings("restricted") // views of memory the test owns and keeps alive, to reuse its address
    void weightsAtAReusedAddressAreUploadedAgain() {
        float[] first = random("first weights", 6 * 4);
        float[] second = random("second weights", 6 * 4);
        float[][] read = EmulatedBackends.run(0, b -> {
            try (java.lang.foreign.Arena backing = java.lang.foreign.Arena.ofConfined()) {
                var memory = backing.allocate(first.length * (long) Float.BYTES, Float.BYTES);
                memory.copyFrom(Segments.of(first));
                Tensor fromFirst;
                try (java.lang.foreign.Arena owner = java.lang.foreign.Arena.ofConfined()) {
                    fromFirst = b.weights(memory.reinterpret(owner, null), 6, 4);
                }
                memory.copyFrom(Segments.of(second));
                Tensor fromSecond;
                try (java.lang.foreign.Arena owner = java.lang.foreign.Arena.ofConfined()) {
                    fromSecond = b.weights(memory.reinterpret(owner, null), 6, 4);
                }
                var global = java.lang.foreign.MemorySegment.ofAddress(memory.address())
                        .reinterpret(memory.byteSize());
                Tensor fromGlobal = b.weights(global, 6, 4);
                memory.copyFrom(Segments.of(first));
                Tensor fromGlobalAgain = b.weights(global, 6, 4);
                return new float[][] {
                    read(b, fromFirst), read(b, fromSecond), read(b, fromGlobal), read(b, fromGlobalAgain)
                };
            }
        });
        assertArrayEquals(first, read[0]);
        assertArrayEquals(second, read[1], "a freed segment's address reused by other weights");
        assertArrayEquals(second, read[2]);
        assertArrayEquals(first, read[3], "a global-scope segment rewritten between calls");
    }

    @Test
    void tiedWeightsAreUploadedOnceAndForeignTensorsRefused() {
        float[] w = random("tied", 6 * 4);
        EmulatedBackends.run(0, b -> {
            // Weights are memory-mapped files in practice: native memory, which is recognised by its address.
            var segment = java.lang.foreign.Arena.ofAuto().allocate(w.length * (long) Float.BYTES);
            segment.copyFrom(Segments.of(w));
            Tensor first = b.weights(segment, 6, 4);
            long after = b.allocatedBytes();
            assertTrue(first == b.weights(segment, 6, 4), "the same segment gives the same device tensor");
            assertEquals(after, b.allocatedBytes());
            try (CpuBackend cpu = new CpuBackend()) {
                Tensor foreign = cpu.allocate(6, 4);
                IllegalArgumentException e =
                        assertThrows(IllegalArgumentException.class, () -> b.add(first, foreign, first));
                assertTrue(e.getMessage().startsWith("b ("), e.getMessage());
                assertTrue(e.getMessage().endsWith("must be a tensor of this CudaBackend"), e.getMessage());
            }
            return null;
        });
    }
}
