package dev.panamax.kernels;

import static dev.panamax.kernels.testing.Agreement.assertRejected;
import static dev.panamax.kernels.testing.Agreement.assertThreadIndependent;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.panamax.kernels.testing.Inputs;
import dev.panamax.kernels.testing.Tolerance;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.stream.Stream;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * {@link QuantizedProduct} against a float64 reference that reads every value by the format's definition (written here
 * from the GGML layout, not through the kernels) and computes the documented formula exactly: for Q8_0 and Q4_0
 * {@code Σ_b d_b·(Σ q·x)}, block by block, so that IEEE's special cases (∞·0 and the like) arise as the kernel's do.
 * Tolerance per element: {@code (columns + 2)·2⁻²⁴·Σ|w·x|}, the classical bound of a float dot product of that length
 * (the integer values and the scales are exact in float; the roundings are those of the multiply-adds, the lane sums,
 * and one product by d per block). Non-finite results must match exactly.
 */
@Tag("species")
class QuantizedProductTest {
    private static final ValueLayout.OfShort HALF = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfFloat FLOAT =
            ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    /** A weight matrix's bytes, with {@code offset} bytes before row 0 and 5 after the last row. */
    record Weights(WeightFormat format, byte[] bytes, int offset, int rows, int columns) {
        QuantizedMatrix matrix(MemorySegment data) {
            return new QuantizedMatrix(format, data, offset, rows, columns);
        }

        QuantizedMatrix matrix() {
            return matrix(MemorySegment.ofArray(bytes));
        }

        /** The scale of the block that holds (r, c); 1 for the formats without blocks. */
        double scale(int r, int c) {
            if (format.blockLength() == 1) {
                return 1;
            }
            long block = offset + r * format.rowBytes(columns) + (c / 32) * (long) format.bytesPerBlock();
            return Float.float16ToFloat(MemorySegment.ofArray(bytes).get(HALF, block));
        }

        /** The value at (r, c) before its block's scale: q for Q8_0, nibble − 8 for Q4_0, the element otherwise. */
        double value(int r, int c) {
            MemorySegment s = MemorySegment.ofArray(bytes);
            long row = offset + r * format.rowBytes(columns);
            return switch (format) {
                case F32 -> s.get(FLOAT, row + 4L * c);
                case F16 -> Float.float16ToFloat(s.get(HALF, row + 2L * c));
                case BF16 -> Float.intBitsToFloat(s.get(HALF, row + 2L * c) << 16);
                case Q8_0 -> s.get(ValueLayout.JAVA_BYTE, row + (c / 32) * 34L + 2 + c % 32);
                case Q4_0 -> {
                    int packed = s.get(ValueLayout.JAVA_BYTE, row + (c / 32) * 18L + 2 + c % 16) & 0xFF;
                    yield (c % 32 < 16 ? packed & 0x0F : packed >>> 4) - 8;
                }
            };
        }
    }

    /** Random weights: scales of magnitude about {@code scale} for the block formats, values of about 1 otherwise. */
    static Weights random(WeightFormat format, int rows, int columns, int offset, long seed) {
        SplittableRandom random = new SplittableRandom(seed);
        long rowBytes = format.rowBytes(columns);
        byte[] bytes = new byte[Math.toIntExact(offset + rows * rowBytes + 5)];
        random.nextBytes(bytes);
        MemorySegment s = MemorySegment.ofArray(bytes);
        for (int r = 0; r < rows; r++) {
            long row = offset + r * rowBytes;
            for (int c = 0; c < columns; c += format.blockLength()) {
                float value = (float) (random.nextDouble() * 2 - 1);
                switch (format) {
                    case F32 -> s.set(FLOAT, row + 4L * c, value);
                    case F16 -> s.set(HALF, row + 2L * c, Float.floatToFloat16(value));
                    case BF16 -> s.set(HALF, row + 2L * c, (short) (Float.floatToRawIntBits(value) >>> 16));
                    case Q8_0, Q4_0 ->
                        s.set(HALF, row + (c / 32) * (long) format.bytesPerBlock(), Float.floatToFloat16(value / 64));
                }
            }
        }
        return new Weights(format, bytes, offset, rows, columns);
    }

    /** The reference Y (tokens × rows, dense) and per element the bound on its error. */
    record Expected(double[] values, double[] bounds) {}

    static Expected reference(Weights w, int tokens, float[] xs, int xOffset, int ldx) {
        double[] values = new double[tokens * w.rows()];
        double[] bounds = new double[values.length];
        int block = w.format().blockLength() == 1 ? Math.max(1, w.columns()) : 32;
        double[][] scales = new double[w.rows()][w.columns()];
        double[][] quanta = new double[w.rows()][w.columns()];
        for (int r = 0; r < w.rows(); r++) {
            for (int c = 0; c < w.columns(); c++) {
                scales[r][c] = w.scale(r, c);
                quanta[r][c] = w.value(r, c);
            }
        }
        for (int t = 0; t < tokens; t++) {
            for (int r = 0; r < w.rows(); r++) {
                double sum = 0;
                double magnitude = 0;
                for (int from = 0; from < w.columns(); from += block) {
                    double blockSum = 0;
                    for (int c = from; c < from + block; c++) {
                        double x = xs[xOffset + t * ldx + c];
                        blockSum += quanta[r][c] * x;
                        magnitude += Math.abs(scales[r][c] * quanta[r][c] * x);
                    }
                    sum += scales[r][from] * blockSum;
                }
                values[t * w.rows() + r] = sum;
                bounds[t * w.rows() + r] = (w.columns() + 2) * Tolerance.FLOAT_EPSILON * magnitude;
            }
        }
        return new Expected(values, bounds);
    }

    /** Runs the product into a fresh Y with leading dimension {@code ldy} and returns it dense. */
    static float[] multiply(Weights w, int tokens, float[] x, int xOffset, int ldx, int ldy) {
        float[] y = new float[3 + tokens * ldy];
        Arrays.fill(y, Float.NaN);
        QuantizedProduct.multiply(w.matrix(), tokens, x, xOffset, ldx, y, 3, ldy);
        float[] dense = new float[tokens * w.rows()];
        for (int t = 0; t < tokens; t++) {
            System.arraycopy(y, 3 + t * ldy, dense, t * w.rows(), w.rows());
        }
        return dense;
    }

    static Stream<WeightFormat> formats() {
        return Stream.of(WeightFormat.values());
    }

    @ParameterizedTest
    @MethodSource("formats")
    void matchesTheReferenceOverShapes(WeightFormat format) {
        List<Integer> columnCounts = new ArrayList<>(List.of(0, 32, 64, 96, 4096 + 32));
        if (format.blockLength() == 1) {
            columnCounts.addAll(List.of(1, 7, 33, 100));
        }
        for (int rows : new int[] {0, 1, 3, 37, 130}) {
            for (int columns : columnCounts) {
                for (int tokens : new int[] {1, 2, 7}) {
                    String what = format + " " + rows + "x" + columns + ", " + tokens + " tokens";
                    Weights w = random(format, rows, columns, 3, Inputs.seed(what));
                    int ldx = columns + 5;
                    float[] x = Inputs.uniform(Inputs.seed(what + " x"), 2 + tokens * ldx, -1, 1);
                    Expected expected = reference(w, tokens, x, 2, ldx);
                    Tolerance.assertClose(
                            what, expected.values(), multiply(w, tokens, x, 2, ldx, rows + 4), expected.bounds());
                }
            }
        }
    }

    /**
     * From {@link QuantizedRows#DECODED_PANEL_TOKENS} tokens on, W is decoded to floats a panel of 64 rows at a time
     * and multiplied by the SGEMM: the same reference and bound, across panel edges (65 and 130 rows), with strides and
     * offsets, an infinite and a NaN activation, and the same bits for every thread count. The panels are decoded 1024
     * columns at a time, and each result is to the bit the SGEMM of the activations by its whole decoded panel (see
     * {@link #wholePanelProducts}): across slice edges (1024 + 32 and 2048 + 64 columns, and widths that are not whole
     * slices), panels of one row (1 and 65 rows: a matrix-vector product), and 0 columns (zeros).
     */
    @ParameterizedTest
    @MethodSource("formats")
    void manyTokensGoThroughDecodedPanels(WeightFormat format) {
        int many = QuantizedRows.DECODED_PANEL_TOKENS;
        List<Integer> columnCounts = new ArrayList<>(List.of(0, 32, 96, 1024 + 32, 2048 + 64, 4096 + 32));
        if (format.blockLength() == 1) {
            columnCounts.addAll(List.of(1, 33, 1024 + 7));
        }
        for (int rows : new int[] {1, 64, 65, 130}) {
            for (int columns : columnCounts) {
                for (int tokens : new int[] {many, many + 5}) {
                    String what = format + " " + rows + "x" + columns + ", " + tokens + " tokens";
                    Weights w = random(format, rows, columns, 3, Inputs.seed(what));
                    int ldx = columns + 5;
                    float[] x = Inputs.uniform(Inputs.seed(what + " x"), 2 + tokens * ldx, -1, 1);
                    if (columns == 96) {
                        x[2 + 5] = Float.POSITIVE_INFINITY;
                        x[2 + ldx + 7] = Float.NaN;
                    }
                    Expected expected = reference(w, tokens, x, 2, ldx);
                    float[] y = multiply(w, tokens, x, 2, ldx, rows + 4);
                    Tolerance.assertClose(what, expected.values(), y, expected.bounds());
                    assertArrayEquals(wholePanelProducts(w, tokens, x, 2, ldx), y, what + ", bits");
                }
            }
        }
        Weights w = random(format, 1001, 2048, 0, 23);
        float[] x = Inputs.uniform(24, (many + 1) * 2048, -1, 1);
        assertThreadIndependent(
                format + " " + (many + 1) + " tokens", () -> new float[][] {multiply(w, many + 1, x, 0, 2048, 1001)});
    }

    /**
     * Y of the decoded path as it was computed before its panels were decoded in slices of columns: each panel of 64
     * rows decoded whole, then one SGEMM of the activations by it.
     */
    private static float[] wholePanelProducts(Weights w, int tokens, float[] x, int xOffset, int ldx) {
        int columns = w.columns();
        float[] y = new float[tokens * w.rows()];
        float[] panel = new float[64 * columns];
        for (int from = 0; from < w.rows(); from += 64) {
            int n = Math.min(64, w.rows() - from);
            for (int r = 0; r < n; r++) {
                Quantization.dequantizeRow(w.matrix(), from + r, panel, r * columns);
            }
            Gemm.sgemm(
                    Transpose.NO_TRANSPOSE,
                    Transpose.TRANSPOSE,
                    tokens,
                    n,
                    columns,
                    1f,
                    x,
                    xOffset,
                    ldx,
                    panel,
                    0,
                    Math.max(1, columns),
                    0f,
                    y,
                    from,
                    w.rows());
        }
        return y;
    }

    /**
     * A thread keeps 1024 columns of a decoded panel's 64 rows, not the whole rows: here 64 × 4096 floats would be 1
     * MiB. The call runs on a fresh thread, whose scratch holds what this call took and nothing earlier.
     */
    @Test
    void decodedPanelHoldsOneSliceOfColumns() throws Exception {
        int columns = 4096;
        int tokens = QuantizedRows.DECODED_PANEL_TOKENS;
        Weights w = random(WeightFormat.Q8_0, 64, columns, 0, 31);
        float[] x = Inputs.uniform(32, tokens * columns, -1, 1);
        int[] retained = new int[1];
        Thread caller = new Thread(() -> {
            QuantizedProduct.multiply(w.matrix(), tokens, x, 0, columns, new float[tokens * 64], 0, 64);
            retained[0] = QuantizedRows.PANEL.retained();
        });
        caller.start();
        caller.join();
        assertEquals(64 * GemmDriver.KC, retained[0], "floats of decoded panel kept");
    }

    /** Large activations (up to 10³⁰) stay finite and as accurate, relative to their size, as small ones. */
    @ParameterizedTest
    @MethodSource("formats")
    void hugeActivations(WeightFormat format) {
        Weights w = random(format, 9, 256, 0, 7);
        float[] x = Inputs.uniform(8, 3 * 256, -1e30f, 1e30f);
        Expected expected = reference(w, 3, x, 0, 256);
        Tolerance.assertClose(format + " huge", expected.values(), multiply(w, 3, x, 0, 256, 9), expected.bounds());
    }

    /**
     * A Q8_0 block's sum {@code Σ q·x} is a float: beyond float's range it is infinite, although d·Σ would be finite
     * (here 32·127·10³⁷·2⁻¹⁰ ≈ 4·10³⁷).
     */
    @Test
    void overflowingBlockSumIsInfinite() {
        Weights w = random(WeightFormat.Q8_0, 1, 32, 0, 1);
        MemorySegment s = MemorySegment.ofArray(w.bytes());
        s.set(HALF, 0, Float.floatToFloat16(0x1p-10f));
        for (int c = 0; c < 32; c++) {
            s.set(ValueLayout.JAVA_BYTE, 2 + c, (byte) 127);
        }
        float[] x = new float[32];
        Arrays.fill(x, 1e37f);
        assertEquals(Float.POSITIVE_INFINITY, multiply(w, 1, x, 0, 32, 1)[0]);
    }

    /** Partial sums beyond float's range overflow to infinity: the sum is a float sum. */
    @Test
    void overflowingSumIsInfinite() {
        Weights w = random(WeightFormat.F32, 1, 64, 0, 1);
        MemorySegment s = MemorySegment.ofArray(w.bytes());
        for (int c = 0; c < 64; c++) {
            s.set(FLOAT, 4L * c, 1f);
        }
        float[] x = new float[64];
        Arrays.fill(x, Float.MAX_VALUE);
        assertEquals(Float.POSITIVE_INFINITY, multiply(w, 1, x, 0, 64, 1)[0]);
    }

    /**
     * Block scales of 0, subnormal, infinite and NaN, with zero, equal and random values: IEEE decides, as the class
     * documents. An infinite Q8_0 scale multiplies the block's per-lane partial sums, and an infinite Q4_0 scale makes
     * each weight ±∞ or NaN, so where the exact block sum gives ±∞ the kernel may give NaN (values of both signs, or a
     * zero one); where the reference is NaN, so is the kernel.
     */
    @ParameterizedTest
    @MethodSource("blockFormats")
    void specialScales(WeightFormat format) {
        short[] scales = {0, (short) 0x8000, 0x0001, 0x03FF, (short) 0x8001, 0x7C00, (short) 0xFC00, 0x7E00, 0x7BFF};
        int columns = 64;
        for (short scale : scales) {
            for (int pattern = 0; pattern < 3; pattern++) {
                Weights w = random(format, 5, columns, 1, scale * 3L + pattern);
                MemorySegment s = MemorySegment.ofArray(w.bytes());
                long rowBytes = format.rowBytes(columns);
                for (int r = 0; r < w.rows(); r++) {
                    long block = 1 + r * rowBytes;
                    s.set(HALF, block, scale);
                    // pattern 0: random values; 1: all values zero; 2: all values one positive quantum
                    for (int b = 2; b < format.bytesPerBlock() && pattern > 0; b++) {
                        byte zero = format == WeightFormat.Q8_0 ? 0 : (byte) 0x88;
                        byte one = format == WeightFormat.Q8_0 ? 1 : (byte) 0x99;
                        s.set(ValueLayout.JAVA_BYTE, block + b, pattern == 1 ? zero : one);
                    }
                }
                float[] x = Inputs.uniform(scale + pattern, columns, 0.5f, 1);
                Expected expected = reference(w, 1, x, 0, columns);
                String what = format + " scale 0x" + Integer.toHexString(scale & 0xFFFF) + " pattern " + pattern;
                float[] actual = multiply(w, 1, x, 0, columns, 5);
                if (Float.isInfinite(Float.float16ToFloat(scale))) {
                    for (int r = 0; r < w.rows(); r++) {
                        double e = expected.values()[r];
                        assertTrue(
                                Double.isNaN(e) ? Float.isNaN(actual[r]) : Float.isNaN(actual[r]) || e == actual[r],
                                what + " row " + r + ": expected " + e + " (or NaN), got " + actual[r]);
                    }
                } else {
                    Tolerance.assertClose(what, expected.values(), actual, expected.bounds());
                }
            }
        }
    }

    static Stream<WeightFormat> blockFormats() {
        return Stream.of(WeightFormat.Q8_0, WeightFormat.Q4_0);
    }

    /** NaN and infinite activations: IEEE decides (a zero weight times ∞ is NaN). */
    @ParameterizedTest
    @MethodSource("formats")
    void nonFiniteActivations(WeightFormat format) {
        Weights w = random(format, 6, 96, 0, 11);
        for (float special : new float[] {Float.NaN, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY}) {
            float[] x = Inputs.uniform(12, 2 * 96, -1, 1);
            x[5] = special;
            x[96 + 70] = special;
            x[96 + 71] = -special;
            Expected expected = reference(w, 2, x, 0, 96);
            Tolerance.assertClose(
                    format + " x " + special, expected.values(), multiply(w, 2, x, 0, 96, 6), expected.bounds());
        }
    }

    @ParameterizedTest
    @MethodSource("formats")
    void sameBitsForEveryThreadCountAndForm(WeightFormat format) {
        Weights w = random(format, 1001, 2048, 0, 21);
        float[] x = Inputs.uniform(22, 3 * 2048, -1, 1);
        assertThreadIndependent(format + " decode", () -> new float[][] {multiply(w, 1, x, 0, 2048, 1001)});
        assertThreadIndependent(format + " three tokens", () -> new float[][] {multiply(w, 3, x, 0, 2048, 1001)});
        float[] expected = multiply(w, 3, x, 0, 2048, 1001);
        // Token t's results do not depend on the other tokens of the call.
        assertArrayEquals(Arrays.copyOf(expected, 1001), multiply(w, 1, x, 0, 2048, 1001), format + " one token");
        try (Arena arena = Arena.ofShared()) {
            MemorySegment data = arena.allocate(w.bytes().length);
            data.copyFrom(MemorySegment.ofArray(w.bytes()));
            MemorySegment xs = arena.allocateFrom(ValueLayout.JAVA_FLOAT, x);
            MemorySegment ys = arena.allocate(3L * 1001 * Float.BYTES);
            QuantizedProduct.multiply(w.matrix(data.asReadOnly()), 3, xs, 0, 2048, ys, 0, 1001);
            assertArrayEquals(expected, ys.toArray(ValueLayout.JAVA_FLOAT), format + " native segments");
        }
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment data = arena.allocate(w.bytes().length);
            data.copyFrom(MemorySegment.ofArray(w.bytes()));
            MemorySegment ys = arena.allocate(3L * 1001 * Float.BYTES);
            QuantizedProduct.multiply(
                    w.matrix(data), 3, MemorySegment.ofArray(x).asReadOnly(), 0, 2048, ys, 0, 1001);
            assertArrayEquals(expected, ys.toArray(ValueLayout.JAVA_FLOAT), format + " confined segments");
        }
    }

    /** Callers on several threads at once, each with its own matrix, get what each gets alone. */
    @Test
    void concurrentCallers() throws Exception {
        WeightFormat[] formats = WeightFormat.values();
        Weights[] weights = new Weights[formats.length];
        float[] x = Inputs.uniform(31, 2 * 1024, -1, 1);
        float[][] alone = new float[formats.length][];
        for (int i = 0; i < formats.length; i++) {
            weights[i] = random(formats[i], 700, 1024, 2, 30 + i);
            alone[i] = multiply(weights[i], 2, x, 0, 1024, 700);
        }
        ExecutorService callers = Executors.newFixedThreadPool(formats.length);
        try {
            List<Future<float[]>> results = new ArrayList<>();
            for (int round = 0; round < 4; round++) {
                for (Weights w : weights) {
                    results.add(callers.submit(() -> multiply(w, 2, x, 0, 1024, 700)));
                }
            }
            for (int i = 0; i < results.size(); i++) {
                assertArrayEquals(alone[i % formats.length], results.get(i).get(), "caller " + i);
            }
        } finally {
            callers.shutdown();
        }
    }

    /** The array product called with these arguments must throw type with message. */
    private record BadProduct(
            Class<? extends RuntimeException> type,
            String message,
            int tokens,
            int xOffset,
            int ldx,
            int yOffset,
            int ldy) {}

    /**
     * An X that is not a float array is copied into one, which cannot hold 2³¹ floats: refused with a message naming
     * tokens and columns. X is the mapping of a sparse file, never read.
     */
    @Test
    void activationsTooLargeToStageAreRefusedByName() throws IOException {
        int tokens = 65536, columns = 32768;
        Path file = Files.createTempFile("quantized-activations", ".bin");
        try (Arena arena = Arena.ofConfined()) {
            long bytes = (long) tokens * columns * Float.BYTES;
            try (RandomAccessFile sparse = new RandomAccessFile(file.toFile(), "rw")) {
                sparse.setLength(bytes);
            }
            MemorySegment x;
            try (FileChannel channel = FileChannel.open(file, StandardOpenOption.READ, StandardOpenOption.WRITE)) {
                x = channel.map(FileChannel.MapMode.READ_WRITE, 0, bytes, arena);
            }
            QuantizedMatrix w = new QuantizedMatrix(
                    WeightFormat.F32, MemorySegment.ofArray(new byte[columns * Float.BYTES]), 0, 1, columns);
            float[] y = new float[tokens];
            assertRejected(
                    IllegalArgumentException.class,
                    "x is not a float array, so it is copied into one: tokens (65536) × w.columns() (32768) ="
                            + " 2147483648 must be <= 2147483639",
                    () -> QuantizedProduct.multiply(w, tokens, x, 0, columns, MemorySegment.ofArray(y), 0, 1));
        } finally {
            Files.delete(file);
        }
    }

    /**
     * Activations staged out of native memory are reused by the thread's next call up to 16 MiB and let go above it, so
     * that a thread does not hold the copy of the largest X it has multiplied.
     */
    @Test
    void stagedActivationsAboveTheCapAreNotKept() {
        int columns = 1 << 20;
        QuantizedMatrix w =
                new QuantizedMatrix(WeightFormat.F32, MemorySegment.ofArray(new byte[columns * 4]), 0, 1, columns);
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment x = arena.allocate(ValueLayout.JAVA_FLOAT, 5L * columns);
            float[] y = new float[5];
            QuantizedProduct.multiply(w, 2, x, 0, columns, MemorySegment.ofArray(y), 0, 1);
            assertEquals(2 * columns, QuantizedRows.STAGED.retained(), "2 tokens of 2^20 floats: 8 MiB, kept");
            QuantizedProduct.multiply(w, 5, x, 0, columns, MemorySegment.ofArray(y), 0, 1);
            assertEquals(0, QuantizedRows.STAGED.retained(), "5 tokens of 2^20 floats: 20 MiB, let go");
        }
    }

    @Test
    void rejectsBadArguments() {
        byte[] bytes = new byte[34 * 2 * 4];
        MemorySegment data = MemorySegment.ofArray(bytes);
        assertRejected(
                IllegalArgumentException.class,
                "columns (48) must be a multiple of 32",
                () -> new QuantizedMatrix(WeightFormat.Q8_0, data, 0, 1, 48));
        assertRejected(
                IllegalArgumentException.class,
                "columns (33) must be a multiple of 32",
                () -> new QuantizedMatrix(WeightFormat.Q4_0, data, 0, 1, 33));
        assertRejected(
                IllegalArgumentException.class,
                "rows (-1) must be >= 0",
                () -> new QuantizedMatrix(WeightFormat.Q8_0, data, 0, -1, 32));
        assertRejected(
                IndexOutOfBoundsException.class,
                "data holds 272 bytes, but 5 rows of 64 Q8_0 columns needs 340",
                () -> new QuantizedMatrix(WeightFormat.Q8_0, data, 0, 5, 64));
        assertRejected(
                IndexOutOfBoundsException.class,
                "byteOffset (-1) must be >= 0",
                () -> new QuantizedMatrix(WeightFormat.Q8_0, data, -1, 1, 64));
        QuantizedMatrix w = new QuantizedMatrix(WeightFormat.Q8_0, data, 0, 4, 64);
        float[] x = new float[2 * 64];
        float[] y = new float[2 * 4];
        // One bad argument each, with everything else as the valid call (w, 2, x, 0, 64, y, 0, 4) has it.
        BadProduct[] cases = {
            new BadProduct(IllegalArgumentException.class, "tokens (-1) must be >= 0", -1, 0, 64, 0, 4),
            new BadProduct(IllegalArgumentException.class, "ldx (63) must be >= w.columns() (64)", 2, 0, 63, 0, 4),
            new BadProduct(IllegalArgumentException.class, "ldy (3) must be >= w.rows() (4)", 2, 0, 64, 0, 3),
            new BadProduct(IndexOutOfBoundsException.class, "x holds 128 floats", 2, 1, 64, 0, 4),
            new BadProduct(IndexOutOfBoundsException.class, "y holds 8 floats", 2, 0, 64, 1, 4)
        };
        for (BadProduct c : cases) {
            assertRejected(
                    c.type(),
                    c.message(),
                    () -> QuantizedProduct.multiply(w, c.tokens(), x, c.xOffset(), c.ldx(), y, c.yOffset(), c.ldy()));
        }
        assertRejected(
                IllegalArgumentException.class,
                "y is read-only",
                () -> QuantizedProduct.multiply(
                        w,
                        2,
                        MemorySegment.ofArray(x),
                        0,
                        64,
                        MemorySegment.ofArray(y).asReadOnly(),
                        0,
                        4));
        float[] shared = new float[200];
        assertRejected(
                IllegalArgumentException.class,
                "shares memory with x",
                () -> QuantizedProduct.multiply(w, 1, shared, 0, 64, shared, 60, 4));
        MemorySegment both = MemorySegment.ofArray(new byte[34 * 2 * 4 + 64]);
        QuantizedMatrix inside = new QuantizedMatrix(WeightFormat.Q8_0, both, 0, 4, 64);
        assertRejected(
                IllegalArgumentException.class,
                "shares memory with w.data()",
                () -> QuantizedProduct.multiply(inside, 1, MemorySegment.ofArray(x), 0, 64, both, 10, 4));
        Arena arena = Arena.ofConfined();
        MemorySegment closed = arena.allocate(34 * 8);
        arena.close();
        assertRejected(
                IllegalStateException.class,
                "w.data()'s memory segment is closed",
                () -> QuantizedProduct.multiply(
                        new QuantizedMatrix(WeightFormat.Q8_0, closed, 0, 4, 64), 1, x, 0, 64, y, 0, 4));
    }
}
