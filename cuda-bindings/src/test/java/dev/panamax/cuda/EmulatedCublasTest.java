package dev.panamax.cuda;

import static dev.panamax.cuda.Transpose.NO_TRANSPOSE;
import static dev.panamax.cuda.Transpose.TRANSPOSE;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.panamax.cuda.spi.HostGemm;
import dev.panamax.kernels.Gemm;
import dev.panamax.kernels.testing.Inputs;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * cuBLAS on the emulated device. {@link EmulatedCublas} is checked against a float64 column-major reference (cuBLAS's
 * documented contract) for every transpose, odd sizes, padded leading dimensions, batches and each element type, and
 * must leave C's padding alone; {@link Cublas} on emulated buffers must give exactly what the kernels' {@link Gemm}
 * gives for the same row-major call.
 */
class EmulatedCublasTest {
    private static final List<Transpose> BOTH = List.of(NO_TRANSPOSE, TRANSPOSE);

    /** {@code m, n, k} triples: odd, degenerate and unequal sizes. */
    private static final int[][] SIZES = {{7, 5, 3}, {1, 1, 1}, {13, 17, 9}, {4, 1, 6}, {1, 9, 2}, {3, 4, 0}};

    private static final HostGemm<?> GEMM = new KernelsHostGemm();

    @AfterEach
    void leaveTheEmulatedDevice() {
        EmulatedDevice.deselect();
    }

    @Test
    void columnMajorContractMatchesTheFloat64ReferenceForEveryTypeAndTranspose() {
        for (ElementType inputs : ElementType.values()) {
            for (ElementType output : List.of(ElementType.FLOAT, inputs)) {
                for (Transpose opA : BOTH) {
                    for (Transpose opB : BOTH) {
                        for (int[] size : SIZES) {
                            for (float beta : new float[] {0f, 0.75f}) {
                                columnMajorCase(inputs, output, opA, opB, size[0], size[1], size[2], 1, beta);
                            }
                        }
                        columnMajorCase(inputs, output, opA, opB, 6, 5, 7, 3, 0.5f);
                    }
                }
            }
        }
    }

    /**
     * One batch of {@code C_i = 1.25·op(A_i)·op(B_i) + beta·C_i}, column-major, with leading dimensions 2 and 3 past the
     * stored column lengths, a gap between batch entries, and C's padding holding a sentinel that must survive.
     */
    private static void columnMajorCase(
            ElementType inputs,
            ElementType output,
            Transpose opA,
            Transpose opB,
            int m,
            int n,
            int k,
            int batch,
            float beta) {
        String what = inputs + "→" + output + " op(A)=" + opA + " op(B)=" + opB + " m=" + m + " n=" + n + " k=" + k
                + " batch=" + batch + " beta=" + beta;
        boolean ta = opA == TRANSPOSE;
        boolean tb = opB == TRANSPOSE;
        int aRows = ta ? k : m;
        int aCols = ta ? m : k;
        int bRows = tb ? n : k;
        int bCols = tb ? k : n;
        int lda = Math.max(1, aRows) + 2;
        int ldb = Math.max(1, bRows) + 3;
        int ldc = m + 2;
        long strideA = (long) lda * aCols + 5;
        long strideB = (long) ldb * bCols + 1;
        long strideC = (long) ldc * n + 4;
        long offsetA = 3;
        long offsetB = 1;
        long offsetC = 2;
        float alpha = 1.25f;
        int aLength = (int) (offsetA + strideA * batch);
        int bLength = (int) (offsetB + strideB * batch);
        int cLength = (int) (offsetC + strideC * batch);
        float[] a = rounded(inputs, Inputs.uniform(Inputs.seed(what + "a"), aLength, -1, 1));
        float[] b = rounded(inputs, Inputs.uniform(Inputs.seed(what + "b"), bLength, -1, 1));
        float[] c = rounded(output, Inputs.uniform(Inputs.seed(what + "c"), cLength, -1, 1));
        float sentinel = -96.5f; // exact in every element type
        boolean[] inC = new boolean[cLength];
        for (int i = 0; i < batch; i++) {
            for (int col = 0; col < n; col++) {
                for (int row = 0; row < m; row++) {
                    inC[(int) (offsetC + i * strideC + (long) col * ldc + row)] = true;
                }
            }
        }
        for (int i = 0; i < cLength; i++) {
            if (!inC[i]) {
                c[i] = sentinel;
            } else if (beta == 0) {
                c[i] = Float.NaN; // cuBLAS does not read C when beta is 0
            }
        }
        double[] expected = new double[cLength];
        double[] bound = new double[cLength];
        for (int i = 0; i < batch; i++) {
            for (int col = 0; col < n; col++) {
                for (int row = 0; row < m; row++) {
                    double sum = 0;
                    double magnitude = 0;
                    for (int p = 0; p < k; p++) {
                        // Column-major: element (r, c) of X at r + c·ld.
                        double av =
                                a[(int) (offsetA + i * strideA + (ta ? row * (long) lda + p : p * (long) lda + row))];
                        double bv =
                                b[(int) (offsetB + i * strideB + (tb ? p * (long) ldb + col : col * (long) ldb + p))];
                        sum += av * bv;
                        magnitude += Math.abs(av * bv);
                    }
                    int index = (int) (offsetC + i * strideC + (long) col * ldc + row);
                    double old = beta == 0 ? 0 : (double) beta * c[index];
                    expected[index] = alpha * sum + old;
                    bound[index] = (k + 2) * 0x1p-23 * (Math.abs(alpha) * magnitude + Math.abs(old))
                            + relativeRounding(output) * Math.abs(expected[index]);
                }
            }
        }
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment da = device(arena, inputs, a);
            MemorySegment db = device(arena, inputs, b);
            MemorySegment dc = device(arena, output, c);
            EmulatedCublas.gemm(
                    GEMM, false, opA, opB, m, n, k, alpha, da, inputs, offsetA, lda, strideA, db, offsetB, ldb, strideB,
                    beta, dc, output, offsetC, ldc, strideC, batch);
            float[] got = new float[cLength];
            output.load(dc, 0, got, 0, cLength);
            for (int i = 0; i < cLength; i++) {
                if (!inC[i]) {
                    assertEquals(sentinel, got[i], what + ": padding element " + i + " was written");
                } else {
                    int index = i;
                    assertTrue(
                            Math.abs(got[i] - expected[i]) <= bound[i],
                            () -> what + ": C[" + index + "] = " + got[index] + ", expected " + expected[index] + " ± "
                                    + bound[index]);
                }
            }
        }
    }

    /** Relative rounding of a C element stored in {@code type}: half an ulp of its significand. */
    private static double relativeRounding(ElementType type) {
        return switch (type) {
            case FLOAT -> 0x1p-24;
            case HALF -> 0x1p-11;
            case BFLOAT16 -> 0x1p-8;
        };
    }

    private static float[] rounded(ElementType type, float[] values) {
        for (int i = 0; i < values.length; i++) {
            values[i] = type.round(values[i]);
        }
        return values;
    }

    private static MemorySegment device(Arena arena, ElementType type, float[] values) {
        MemorySegment memory = arena.allocate((long) values.length * type.byteSize(), 4);
        type.store(values, 0, memory, 0, values.length);
        return memory;
    }

    @Test
    void cublasOnTheEmulatedDeviceGivesExactlyWhatGemmGives() {
        Emulator.require();
        Cuda.useEmulatedDevice();
        int m = 9;
        int n = 7;
        int k = 5;
        int batch = 3;
        for (Transpose transA : BOTH) {
            for (Transpose transB : BOTH) {
                String what = "op(A)=" + transA + " op(B)=" + transB;
                int lda = (transA == TRANSPOSE ? m : k) + 1;
                int ldb = (transB == TRANSPOSE ? k : n) + 2;
                int ldc = n + 3;
                int strideA = lda * (transA == TRANSPOSE ? k : m) + 2;
                int strideB = ldb * (transB == TRANSPOSE ? n : k);
                int strideC = ldc * m + 1;
                float[] a = Inputs.uniform(Inputs.seed(what + "a"), strideA * batch, -1, 1);
                float[] b = Inputs.uniform(Inputs.seed(what + "b"), strideB * batch, -1, 1);
                float[] c = Inputs.uniform(Inputs.seed(what + "c"), strideC * batch, -1, 1);

                float[] expected = c.clone();
                Gemm.sgemm(
                        kernels(transA), kernels(transB), m, n, k, 0.5f, a, 0, lda, b, 0, ldb, 0.25f, expected, 0, ldc);
                float[] host = c.clone();
                try (Cublas cublas = Cublas.create()) {
                    assertTrue(cublas.isEmulated());
                    cublas.sgemm(transA, transB, m, n, k, 0.5f, a, 0, lda, b, 0, ldb, 0.25f, host, 0, ldc);
                }
                assertArrayEquals(expected, host, what + ": sgemm on host arrays");

                float[] batched = c.clone();
                Gemm.sgemmStridedBatched(
                        kernels(transA),
                        kernels(transB),
                        m,
                        n,
                        k,
                        0.5f,
                        a,
                        0,
                        lda,
                        strideA,
                        b,
                        0,
                        ldb,
                        strideB,
                        0.25f,
                        batched,
                        0,
                        ldc,
                        strideC,
                        batch);
                try (Cublas cublas = Cublas.create();
                        DeviceBuffer da = upload(ElementType.FLOAT, a);
                        DeviceBuffer db = upload(ElementType.FLOAT, b);
                        DeviceBuffer dc = upload(ElementType.FLOAT, c)) {
                    cublas.sgemmStridedBatched(
                            m,
                            n,
                            k,
                            0.5f,
                            new Cublas.Matrix(da, 0, lda, transA, strideA),
                            new Cublas.Matrix(db, 0, ldb, transB, strideB),
                            0.25f,
                            Cublas.Matrix.of(dc, 0, ldc).strided(strideC),
                            batch);
                    assertArrayEquals(batched, download(dc), what + ": sgemmStridedBatched");
                }

                for (ElementType inputs : List.of(ElementType.HALF, ElementType.BFLOAT16)) {
                    float[] ra = rounded(inputs, a.clone());
                    float[] rb = rounded(inputs, b.clone());
                    float[] mixed = c.clone();
                    Gemm.sgemmStridedBatched(
                            kernels(transA),
                            kernels(transB),
                            m,
                            n,
                            k,
                            0.5f,
                            ra,
                            0,
                            lda,
                            strideA,
                            rb,
                            0,
                            ldb,
                            strideB,
                            0.25f,
                            mixed,
                            0,
                            ldc,
                            strideC,
                            batch);
                    try (Cublas cublas = Cublas.create();
                            DeviceBuffer da = upload(inputs, ra);
                            DeviceBuffer db = upload(inputs, rb);
                            DeviceBuffer dc = upload(ElementType.FLOAT, c);
                            DeviceBuffer dcSame = upload(inputs, c)) {
                        Cublas.Matrix ma = new Cublas.Matrix(da, 0, lda, transA, strideA);
                        Cublas.Matrix mb = new Cublas.Matrix(db, 0, ldb, transB, strideB);
                        cublas.gemmExStridedBatched(
                                m,
                                n,
                                k,
                                0.5f,
                                ma,
                                mb,
                                0.25f,
                                Cublas.Matrix.of(dc, 0, ldc).strided(strideC),
                                batch);
                        assertArrayEquals(mixed, download(dc), what + ": gemmEx " + inputs + " → FLOAT");
                        // The unbatched product reads one matrix of each operand, whatever its stride.
                        cublas.gemmEx(
                                Cublas.ComputeType.FP32,
                                m,
                                n,
                                k,
                                0.5f,
                                ma,
                                mb,
                                0.25f,
                                Cublas.Matrix.of(dcSame, 0, ldc));
                        // A C of the input type: the FP32 result from its rounded old value, rounded once; its
                        // padding keeps the old value.
                        float[] expectedSame = rounded(inputs, c.clone());
                        float[] fromRoundedC = expectedSame.clone();
                        Gemm.sgemm(
                                kernels(transA),
                                kernels(transB),
                                m,
                                n,
                                k,
                                0.5f,
                                ra,
                                0,
                                lda,
                                rb,
                                0,
                                ldb,
                                0.25f,
                                fromRoundedC,
                                0,
                                ldc);
                        for (int row = 0; row < m; row++) {
                            for (int col = 0; col < n; col++) {
                                expectedSame[row * ldc + col] = inputs.round(fromRoundedC[row * ldc + col]);
                            }
                        }
                        assertArrayEquals(expectedSame, download(dcSame), what + ": gemmEx " + inputs + " → " + inputs);
                    }
                }
            }
        }
    }

    /**
     * TF32 keeps 10 of FP32's 23 explicit mantissa bits, rounding to nearest and ties to even: {@code 1 + 2⁻¹¹} is
     * halfway between 1 and {@code 1 + 2⁻¹⁰} and goes to 1 (even), {@code 1 + 3·2⁻¹¹} goes up to {@code 1 + 2⁻⁹}
     * (even); anything past halfway goes up, carries ripple into the exponent, and the largest float overflows.
     */
    @Test
    void tf32RoundsToTenMantissaBitsToNearestEven() {
        assertEquals(1f, EmulatedCublas.toTf32(1f + 0x1p-11f));
        assertEquals(1f + 0x1p-9f, EmulatedCublas.toTf32(1f + 3 * 0x1p-11f));
        assertEquals(1f + 0x1p-10f, EmulatedCublas.toTf32(1f + 0x1p-11f + 0x1p-23f));
        assertEquals(1f, EmulatedCublas.toTf32(1f + 0x1p-11f - 0x1p-23f));
        assertEquals(-2f, EmulatedCublas.toTf32(-(2f - 0x1p-23f)));
        assertEquals(Float.POSITIVE_INFINITY, EmulatedCublas.toTf32(Float.MAX_VALUE));
        assertEquals(Float.NEGATIVE_INFINITY, EmulatedCublas.toTf32(Float.NEGATIVE_INFINITY));
        assertTrue(Float.isNaN(EmulatedCublas.toTf32(Float.NaN)));
        assertEquals(Float.MIN_VALUE * 0, EmulatedCublas.toTf32(Float.MIN_VALUE)); // a subnormal below TF32's ulp
        float[] values = Inputs.uniform(Inputs.seed("tf32"), 10_000, -1e6f, 1e6f);
        for (float v : values) {
            float t = EmulatedCublas.toTf32(v);
            assertEquals(0, Float.floatToRawIntBits(t) & 0x1FFF, "low bits of " + t);
            // Nearest: within half a TF32 ulp of the input.
            assertTrue(Math.abs(t - v) <= Math.ulp(v) * 0x1p12f, v + " → " + t);
        }
    }

    /** FAST_TF32 on the emulated device is exactly the FP32 product of the TF32-rounded inputs. */
    @Test
    void fastTf32GemmIsTheFp32ProductOfTheRoundedInputs() {
        Emulator.require();
        Cuda.useEmulatedDevice();
        int m = 11;
        int n = 6;
        int k = 37;
        for (Transpose transA : BOTH) {
            for (Transpose transB : BOTH) {
                String what = "TF32 op(A)=" + transA + " op(B)=" + transB;
                float[] a = Inputs.uniform(Inputs.seed(what + "a"), m * k, -1, 1);
                float[] b = Inputs.uniform(Inputs.seed(what + "b"), k * n, -1, 1);
                float[] ra = a.clone();
                float[] rb = b.clone();
                for (int i = 0; i < ra.length; i++) {
                    ra[i] = EmulatedCublas.toTf32(ra[i]);
                }
                for (int i = 0; i < rb.length; i++) {
                    rb[i] = EmulatedCublas.toTf32(rb[i]);
                }
                int lda = transA == TRANSPOSE ? m : k;
                int ldb = transB == TRANSPOSE ? k : n;
                float[] expected = new float[m * n];
                Gemm.sgemm(kernels(transA), kernels(transB), m, n, k, 1f, ra, 0, lda, rb, 0, ldb, 0f, expected, 0, n);
                try (Cublas cublas = Cublas.create();
                        DeviceBuffer da = upload(ElementType.FLOAT, a);
                        DeviceBuffer db = upload(ElementType.FLOAT, b);
                        DeviceBuffer dc = DeviceBuffer.allocate(ElementType.FLOAT, (long) m * n)) {
                    cublas.gemmEx(
                            Cublas.ComputeType.FP32_FAST_TF32,
                            m,
                            n,
                            k,
                            1f,
                            new Cublas.Matrix(da, 0, lda, transA, 0),
                            new Cublas.Matrix(db, 0, ldb, transB, 0),
                            0f,
                            Cublas.Matrix.of(dc, 0, n));
                    assertArrayEquals(expected, download(dc), what);
                    // The inputs were rounded in a copy, never in device memory.
                    assertArrayEquals(a, download(da), what + ": A unchanged");
                }
            }
        }
        try (Cublas cublas = Cublas.create();
                DeviceBuffer half = DeviceBuffer.allocate(ElementType.BFLOAT16, 1);
                DeviceBuffer c = DeviceBuffer.allocate(ElementType.FLOAT, 1)) {
            IllegalArgumentException e = assertThrows(
                    IllegalArgumentException.class,
                    () -> cublas.gemmEx(
                            Cublas.ComputeType.FP32_FAST_TF32,
                            1,
                            1,
                            1,
                            1f,
                            Cublas.Matrix.of(half, 0, 1),
                            Cublas.Matrix.of(half, 0, 1),
                            0f,
                            Cublas.Matrix.of(c, 0, 1)));
            assertEquals(
                    "compute FP32_FAST_TF32 needs FLOAT A and B (cuBLAS rounds them to TF32 itself), got BFLOAT16",
                    e.getMessage());
        }
    }

    @Test
    void emulatedHandlesTakeOnlyEmulatedBuffersAndKeepTheirMathMode() {
        Emulator.require();
        // An empty buffer needs no device, so one can be made for a GPU here.
        DeviceBuffer gpu = DeviceBuffer.allocate(ElementType.FLOAT, 0);
        Cuda.useEmulatedDevice();
        Cublas cublas = Cublas.create();
        assertEquals(Cublas.MathMode.DEFAULT, cublas.mathMode());
        cublas.setMathMode(Cublas.MathMode.PEDANTIC);
        assertEquals(Cublas.MathMode.PEDANTIC, cublas.mathMode());
        IllegalArgumentException e = assertThrows(
                IllegalArgumentException.class,
                () -> cublas.sgemm(
                        0,
                        0,
                        0,
                        1f,
                        Cublas.Matrix.of(gpu, 0, 1),
                        Cublas.Matrix.of(gpu, 0, 1),
                        0f,
                        Cublas.Matrix.of(gpu, 0, 1)));
        assertEquals("a (" + gpu + ") is on a GPU, but emulated Cublas is on the emulated device", e.getMessage());
        try (CudaStream stream = CudaStream.create();
                DeviceBuffer three = upload(ElementType.FLOAT, new float[] {3f});
                DeviceBuffer product = DeviceBuffer.allocate(ElementType.FLOAT, 1)) {
            cublas.setStream(stream);
            Cublas.Matrix x = Cublas.Matrix.of(three, 0, 1);
            cublas.sgemm(1, 1, 1, 2f, x, x, 0f, Cublas.Matrix.of(product, 0, 1));
            stream.synchronize();
            assertArrayEquals(new float[] {18f}, download(product));
        }
        cublas.close();
        cublas.close();
        assertThrows(IllegalStateException.class, cublas::mathMode);
        gpu.close();
    }

    private static DeviceBuffer upload(ElementType type, float[] values) {
        DeviceBuffer buffer = DeviceBuffer.allocate(type, values.length);
        buffer.copyFrom(values);
        return buffer;
    }

    private static float[] download(DeviceBuffer buffer) {
        float[] values = new float[(int) buffer.length()];
        buffer.copyTo(values);
        return values;
    }

    private static dev.panamax.kernels.Transpose kernels(Transpose transpose) {
        return transpose == TRANSPOSE
                ? dev.panamax.kernels.Transpose.TRANSPOSE
                : dev.panamax.kernels.Transpose.NO_TRANSPOSE;
    }
}
