package dev.panamax.model.backend;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.panamax.kernels.Quantization;
import dev.panamax.kernels.QuantizedMatrix;
import dev.panamax.kernels.WeightFormat;
import dev.panamax.kernels.testing.Inputs;
import dev.panamax.kernels.testing.Tolerance;
import dev.panamax.model.backend.Backend.Layout;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/**
 * Weights in GGML's block formats on the CUDA backend (emulated device): a lookup gives exactly the floats the CPU's
 * dequantization gives, for every binary16 bit pattern and every special scale; a product is within the bound of a
 * float sum of a float64 reference over the same dequantized weights, the same bits under every emulator schedule; what
 * such weights cannot do is refused by name.
 *
 * <p>Tolerance for products: {@code (in + 16)·ε·Σ|w·x|} per output, ε = 2⁻²⁴. Dequantized weights are exact floats
 * (d·q has at most 19 significant bits), so an output is a float sum of {@code in} rounded products, whatever the order
 * of its additions, in {@code quantized_matvec} and in cuBLAS on dequantized weights alike.
 */
class CudaQuantizedTest {
    private static final WeightFormat[] FORMATS = {
        WeightFormat.Q8_0, WeightFormat.Q4_0, WeightFormat.F16, WeightFormat.BF16
    };

    /** {out, in}: one block, odd row counts, a single output. */
    private static final int[][] MATRICES = {{5, 32}, {37, 96}, {1, 64}};

    /**
     * Rows of x: one token, a few, quantized_matvec's most, several passes of it, and products through weights
     * dequantized for cuBLAS (70 rows for Q8_0, F16 and BF16, 130 for Q4_0, whose passes read fewer bytes).
     */
    private static final int[] ROWS = {1, 3, 8, 9, 21, 70, 130};

    /** A rows × cols matrix of random weights in {@code format}, in native memory of {@code arena}. */
    private static QuantizedMatrix matrix(Arena arena, WeightFormat format, int rows, int cols, String seed) {
        float[] values = Inputs.uniform(Inputs.seed(seed), rows * cols, -2f, 2f);
        MemorySegment src = arena.allocateFrom(ValueLayout.JAVA_FLOAT, values);
        MemorySegment dst = arena.allocate(Math.max(1, rows * format.rowBytes(cols)));
        Quantization.quantize(format, src, 0, rows, cols, cols, dst, 0);
        return new QuantizedMatrix(format, dst, 0, rows, cols);
    }

    /** The matrix's rows as the CPU decodes them. */
    private static float[] dequantized(QuantizedMatrix w) {
        float[] values = new float[w.rows() * w.columns()];
        for (int r = 0; r < w.rows(); r++) {
            Quantization.dequantizeRow(w, r, values, r * w.columns());
        }
        return values;
    }

    /** x·Wᵀ through the backend, x and y column views of wider tensors. */
    private static float[] product(Backend b, QuantizedMatrix matrix, int firstRow, int outputs, float[] x, int m) {
        int in = matrix.columns();
        Tensor w = b.weights(matrix).rows(firstRow, outputs);
        Tensor xt = b.allocate(m, in + 5).columns(3, in);
        b.write(x, xt);
        Tensor y = b.allocate(m, outputs + 2).columns(1, outputs);
        b.matmul(xt, w, Layout.OUT_IN, null, y);
        float[] values = new float[m * outputs];
        b.read(y, values);
        return values;
    }

    /** Checks {@code got} against the float64 product of x and rows [firstRow, firstRow + outputs) of the weights. */
    private static void assertProduct(
            String what, float[] weights, int in, int firstRow, int outputs, float[] x, int m, float[] got) {
        double[] expected = new double[m * outputs];
        double[] bound = new double[m * outputs];
        for (int i = 0; i < m; i++) {
            for (int o = 0; o < outputs; o++) {
                double sum = 0;
                double magnitude = 0;
                for (int k = 0; k < in; k++) {
                    double term = (double) weights[(firstRow + o) * in + k] * x[i * in + k];
                    sum += term;
                    magnitude += Math.abs(term);
                }
                expected[i * outputs + o] = sum;
                bound[i * outputs + o] = (in + 16) * Tolerance.FLOAT_EPSILON * magnitude + Float.MIN_NORMAL;
            }
        }
        Tolerance.assertClose(what, expected, got, bound);
    }

    @Test
    void productsOfEveryFormatMatchAFloat64Reference() {
        for (WeightFormat format : FORMATS) {
            for (int[] shape : MATRICES) {
                int out = shape[0];
                int in = shape[1];
                for (int m : ROWS) {
                    String what = format + " " + out + "×" + in + ", " + m + " rows";
                    float[] x = Inputs.uniform(Inputs.seed("x " + what), m * in, -1f, 1f);
                    // The whole matrix, then a view of its rows from the second (when it has more than two).
                    int first = out > 2 ? 1 : 0;
                    int outputs = out > 2 ? out - 2 : out;
                    try (Arena arena = Arena.ofShared()) {
                        QuantizedMatrix matrix = matrix(arena, format, out, in, "w " + what);
                        float[] weights = dequantized(matrix);
                        float[] whole = EmulatedBackends.run(0, b -> product(b, matrix, 0, out, x, m));
                        assertProduct(what, weights, in, 0, out, x, m, whole);
                        float[] view = EmulatedBackends.run(0, b -> product(b, matrix, first, outputs, x, m));
                        assertProduct(what + ", rows from " + first, weights, in, first, outputs, x, m, view);
                        float[] again = EmulatedBackends.run(5, b -> product(b, matrix, 0, out, x, m));
                        assertArrayEquals(bits(whole), bits(again), what + ": another schedule changed the bits");
                    }
                }
            }
        }
    }

    /** A product through dequantized weights that takes two slices of rows (more than 2²² floats of weights). */
    @Test
    void aProductOfManyRowsDequantizesTheWeightsInSlices() {
        int out = 4100;
        int in = 1024;
        int m = 130;
        float[] x = Inputs.uniform(Inputs.seed("x slices"), m * in, -1f, 1f);
        try (Arena arena = Arena.ofShared()) {
            QuantizedMatrix matrix = matrix(arena, WeightFormat.Q4_0, out, in, "w slices");
            float[] got = EmulatedBackends.run(0, b -> product(b, matrix, 0, out, x, m));
            assertProduct("Q4_0 in two slices", dequantized(matrix), in, 0, out, x, m, got);
        }
    }

    /**
     * Every binary16 bit pattern (zeros, subnormals, the largest, ±∞, NaNs with their payloads) as F16 weights, the
     * same upper halves as BF16, and Q8_0 and Q4_0 blocks with such scales over every byte: the rows looked up are the
     * CPU's dequantized floats, bit for bit.
     */
    @Test
    void lookupsGiveTheCpusFloatsForEveryBitPattern() {
        short[] specialScales = {
            0x0000,
            (short) 0x8000,
            0x0001,
            (short) 0x8001,
            0x03ff,
            0x0400,
            0x3c00,
            0x7bff,
            0x7c00,
            (short) 0xfc00,
            0x7e01,
            (short) 0xfe00
        };
        try (Arena arena = Arena.ofShared()) {
            int patterns = 1 << 16;
            MemorySegment halves = arena.allocate(2L * patterns);
            for (int i = 0; i < patterns; i++) {
                halves.setAtIndex(ValueLayout.JAVA_SHORT_UNALIGNED, i, (short) i);
            }
            assertLookups(new QuantizedMatrix(WeightFormat.F16, halves, 0, 64, 1024));
            assertLookups(new QuantizedMatrix(WeightFormat.BF16, halves, 0, 64, 1024));
            for (WeightFormat format : new WeightFormat[] {WeightFormat.Q8_0, WeightFormat.Q4_0}) {
                int blocks = 3 * specialScales.length;
                MemorySegment data = arena.allocate((long) blocks * format.bytesPerBlock());
                SplittableRandom random = new SplittableRandom(Inputs.seed("blocks " + format));
                for (int b = 0; b < blocks; b++) {
                    long at = (long) b * format.bytesPerBlock();
                    data.set(ValueLayout.JAVA_SHORT_UNALIGNED, at, specialScales[b % specialScales.length]);
                    for (int k = 2; k < format.bytesPerBlock(); k++) {
                        data.set(ValueLayout.JAVA_BYTE, at + k, (byte) random.nextInt(256));
                    }
                }
                assertLookups(new QuantizedMatrix(format, data, 0, blocks / 3, 96));
            }
        }
    }

    /** The embedding lookup of every row, in a shuffled order with repeats, against Quantization.dequantizeRow. */
    private static void assertLookups(QuantizedMatrix table) {
        int[] ids = new SplittableRandom(Inputs.seed("ids " + table.format()))
                .ints(2L * table.rows() + 1, 0, table.rows())
                .toArray();
        for (int r = 0; r < table.rows(); r++) {
            ids[2 * r] = r;
        }
        float[] rows = dequantized(table);
        float[] expected = new float[ids.length * table.columns()];
        for (int i = 0; i < ids.length; i++) {
            System.arraycopy(rows, ids[i] * table.columns(), expected, i * table.columns(), table.columns());
        }
        float[] got = EmulatedBackends.run(0, b -> {
            Tensor out = b.allocate(ids.length, table.columns());
            b.embedding(ids, 0, b.weights(table), out);
            float[] values = new float[ids.length * table.columns()];
            b.read(out, values);
            return values;
        });
        assertArrayEquals(bits(expected), bits(got), table.format() + " lookups");
    }

    @Test
    void whatQuantizedWeightsCannotDoIsRefusedByName() {
        try (Arena arena = Arena.ofShared()) {
            QuantizedMatrix matrix = matrix(arena, WeightFormat.Q8_0, 4, 64, "refused");
            EmulatedBackends.run(0, b -> {
                Tensor w = b.weights(matrix);
                Tensor x = b.allocate(2, 64);
                Tensor y = b.allocate(2, 4);
                IllegalArgumentException layout =
                        assertThrows(IllegalArgumentException.class, () -> b.matmul(x, w, Layout.IN_OUT, null, y));
                assertTrue(layout.getMessage().contains("must be OUT_IN and bias null"), layout.getMessage());
                assertThrows(IllegalArgumentException.class, () -> b.matmul(x, w, Layout.OUT_IN, b.allocate(1, 4), y));
                IllegalArgumentException width = assertThrows(
                        IllegalArgumentException.class, () -> b.matmul(b.allocate(2, 32), w, Layout.OUT_IN, null, y));
                assertTrue(width.getMessage().contains("x.cols (32)"), width.getMessage());
                IllegalArgumentException training = assertThrows(
                        IllegalArgumentException.class,
                        () -> b.matmulBackward(x, w, Layout.OUT_IN, y, null, false, b.allocate(4, 64), null));
                assertTrue(
                        training.getMessage().contains("w (CUDA Q8_0 tensor 4 × 64) must be a float32 tensor"),
                        training.getMessage());
                assertThrows(UnsupportedOperationException.class, () -> w.columns(0, 32));
                return null;
            });
        }
    }

    private static int[] bits(float[] values) {
        int[] bits = new int[values.length];
        for (int i = 0; i < values.length; i++) {
            bits[i] = Float.floatToRawIntBits(values[i]);
        }
        return bits;
    }
}
