package dev.panamax.cuda;

import static dev.panamax.cuda.Transpose.NO_TRANSPOSE;
import static dev.panamax.cuda.Transpose.TRANSPOSE;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.panamax.kernels.testing.Inputs;
import dev.panamax.kernels.testing.ReferenceBlas;
import dev.panamax.kernels.testing.Tolerance;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * cuBLAS and the runtime on a real device, against the float64 reference of the kernels' tests: every transpose,
 * odd sizes, offsets and padded leading dimensions. Tagged {@code gpu} (not run by {@code ./mvnw verify}); skipped with
 * the reason when CUDA is not available. Run with {@code ./mvnw -pl cuda-bindings -am test -Pgpu} or {@code bench/gpu/check.sh}.
 */
@Tag("gpu")
class GpuTest {
    private static final List<Transpose> BOTH = List.of(NO_TRANSPOSE, TRANSPOSE);

    @BeforeEach
    void needsDevice() {
        assumeTrue(
                Cuda.isAvailable(), () -> "no GPU: " + Cuda.unavailableReason().orElseThrow());
    }

    @Test
    void describesTheDevice() {
        DeviceProperties device = Cuda.device(Cuda.currentDevice());
        System.out.println(device + ", runtime " + Cuda.runtimeVersion().orElseThrow() + ", driver "
                + Cuda.driverVersion().orElseThrow() + ", cuBLAS " + Cublas.libraryVersion());
        assertTrue(
                device.totalMemory() > 0
                        && device.multiprocessors() > 0
                        && !device.name().isEmpty(),
                device::toString);
        assertThrows(IndexOutOfBoundsException.class, () -> Cuda.device(Cuda.deviceCount()));
    }

    @Test
    void copiesRoundTripInEveryType() {
        float[] values = Inputs.uniform(Inputs.seed("copies"), 1001, -4, 4);
        for (ElementType type : ElementType.values()) {
            float[] expected = new float[values.length];
            for (int i = 0; i < values.length; i++) {
                expected[i] = type.round(values[i]);
            }
            try (DeviceBuffer buffer = DeviceBuffer.allocate(type, values.length + 7);
                    DeviceBuffer copy = DeviceBuffer.allocate(type, values.length);
                    PinnedBuffer pinned = PinnedBuffer.allocate(type, values.length);
                    CudaStream stream = CudaStream.create()) {
                buffer.copyFrom(7, values, 0, values.length);
                copy.copyFrom(0, buffer, 7, values.length);
                float[] back = new float[values.length];
                copy.copyTo(back);
                assertArrayEquals(expected, back, type + " sync");

                pinned.copyFrom(0, values, 0, values.length);
                buffer.copyFromAsync(0, pinned.segment(), values.length, stream);
                pinned.copyFrom(0, new float[values.length], 0, values.length - 1);
                stream.synchronize();
                buffer.copyToAsync(0, pinned.segment(), values.length, stream);
                stream.synchronize();
                Arrays.fill(back, 0);
                pinned.copyTo(0, back, 0, values.length);
                assertArrayEquals(expected, back, type + " async through pinned memory");

                Arrays.fill(back, 0);
                buffer.copyFromAsync(1, values, 0, values.length, stream);
                buffer.copyToAsync(1, back, 0, values.length, stream);
                assertArrayEquals(expected, back, type + " async arrays");
            }
        }
    }

    @Test
    void synchronousCopiesAreOrderedWithTheWorkOfStreams() {
        int n = 2048;
        float[] ones = new float[n * n];
        Arrays.fill(ones, 1f);
        try (CudaStream stream = CudaStream.create();
                DeviceBuffer a = DeviceBuffer.allocate(ElementType.FLOAT, (long) n * n);
                DeviceBuffer b = DeviceBuffer.allocate(ElementType.FLOAT, (long) n * n);
                DeviceBuffer c = DeviceBuffer.allocate(ElementType.FLOAT, (long) n * n);
                Cublas cublas = Cublas.create()) {
            a.copyFrom(ones);
            cublas.setStream(stream);
            for (int round = 0; round < 3; round++) {
                // A product long enough to still be running when the host queues the synchronous copies.
                cublas.sgemm(
                        n,
                        n,
                        n,
                        1f,
                        Cublas.Matrix.of(a, 0, n),
                        Cublas.Matrix.of(a, 0, n),
                        0f,
                        Cublas.Matrix.of(b, 0, n));
                c.copyFrom(0, b, 0, (long) n * n);
                float[] corner = new float[4];
                c.copyTo(0, corner, 0, 4);
                assertArrayEquals(new float[] {n, n, n, n}, corner, "round " + round);
                b.copyFrom(new float[n * n]);
            }
        }
    }

    @Test
    void streamsAndEventsOrderAndTimeWork() {
        try (CudaStream first = CudaStream.create();
                CudaStream second = CudaStream.create();
                CudaEvent start = CudaEvent.create(true);
                CudaEvent end = CudaEvent.create(true);
                CudaEvent handoff = CudaEvent.create(false);
                DeviceBuffer a = DeviceBuffer.allocate(ElementType.FLOAT, 1 << 22);
                DeviceBuffer b = DeviceBuffer.allocate(ElementType.FLOAT, 1 << 22);
                Cublas cublas = Cublas.create()) {
            float[] ones = new float[1 << 22];
            Arrays.fill(ones, 1f);
            start.record(first);
            a.copyFromAsync(0, ones, 0, ones.length, first);
            handoff.record(first);
            second.waitFor(handoff);
            cublas.setStream(second);
            Cublas.Matrix square = Cublas.Matrix.of(a, 0, 2048);
            cublas.sgemm(2048, 2048, 2048, 1f, square, square, 0f, Cublas.Matrix.of(b, 0, 2048));
            end.record(second);
            end.synchronize();
            assertTrue(end.isDone() && handoff.isDone());
            second.synchronize();
            assertTrue(first.isDone() && second.isDone());
            float millis = end.elapsedMillis(start);
            assertTrue(millis > 0, () -> "elapsed " + millis);
            float[] corner = new float[4];
            b.copyTo(0, corner, 0, 4);
            assertArrayEquals(new float[] {2048, 2048, 2048, 2048}, corner);
        }
    }

    @Test
    void sgemmMatchesTheReferenceForEveryTranspose() {
        try (Cublas cublas = Cublas.create()) {
            for (Transpose ta : BOTH) {
                for (Transpose tb : BOTH) {
                    for (int[] size : new int[][] {{1, 1, 1}, {37, 53, 29}, {64, 17, 130}, {129, 3, 257}}) {
                        for (boolean plain : new boolean[] {true, false}) {
                            checkProduct(
                                    cublas,
                                    ElementType.FLOAT,
                                    ElementType.FLOAT,
                                    ta,
                                    tb,
                                    size[0],
                                    size[1],
                                    size[2],
                                    1,
                                    plain);
                        }
                    }
                }
            }
        }
    }

    @Test
    void hostArraySgemmMatchesTheReference() {
        try (Cublas cublas = Cublas.create();
                CudaStream stream = CudaStream.create()) {
            int m = 45, n = 31, k = 70, lda = 75, ldb = 33, ldc = 40;
            float[] a = Inputs.uniform(Inputs.seed("host a"), 3 + m * lda, -1, 1);
            float[] b = Inputs.uniform(Inputs.seed("host b"), 5 + k * ldb, -1, 1);
            for (CudaStream on : Arrays.asList(null, stream)) {
                float[] c = Inputs.uniform(Inputs.seed("host c"), 2 + m * ldc, -1, 1);
                ReferenceBlas.Result expected =
                        ReferenceBlas.gemm(false, false, m, n, k, 0.5, a, 3, lda, b, 5, ldb, -2, c, 2, ldc);
                float[] gaps = c.clone();
                cublas.setStream(on);
                cublas.sgemm(NO_TRANSPOSE, NO_TRANSPOSE, m, n, k, 0.5f, a, 3, lda, b, 5, ldb, -2f, c, 2, ldc);
                Tolerance.assertClose("host sgemm", expected.values(), dense(c, 2, m, n, ldc), expected.bounds(k));
                for (int i = 0; i < m; i++) {
                    for (int j = n; j < ldc && 2 + i * ldc + j < c.length; j++) {
                        assertEquals(gaps[2 + i * ldc + j], c[2 + i * ldc + j], "gap left untouched");
                    }
                }
            }
            cublas.setStream(null);
        }
    }

    @Test
    void gemmExInHalfAndBfloat16AccumulatesInFloat() {
        try (Cublas cublas = Cublas.create()) {
            for (ElementType in : List.of(ElementType.HALF, ElementType.BFLOAT16, ElementType.FLOAT)) {
                for (ElementType out : List.of(ElementType.FLOAT, in)) {
                    for (Transpose ta : BOTH) {
                        for (Transpose tb : BOTH) {
                            checkProduct(cublas, in, out, ta, tb, 67, 45, 129, 1, true);
                        }
                    }
                }
            }
        }
    }

    @Test
    void stridedBatchesMatchTheReference() {
        try (Cublas cublas = Cublas.create()) {
            for (Transpose ta : BOTH) {
                for (Transpose tb : BOTH) {
                    checkProduct(cublas, ElementType.FLOAT, ElementType.FLOAT, ta, tb, 19, 23, 41, 5, true);
                    checkProduct(cublas, ElementType.BFLOAT16, ElementType.FLOAT, ta, tb, 19, 23, 41, 3, true);
                }
            }
        }
    }

    @Test
    void mathModeRoundTripsAndClosedHandlesAreCaught() {
        Cublas cublas = Cublas.create();
        for (Cublas.MathMode mode : Cublas.MathMode.values()) {
            cublas.setMathMode(mode);
            assertEquals(mode, cublas.mathMode());
        }
        cublas.close();
        cublas.close();
        assertThrows(IllegalStateException.class, () -> cublas.setMathMode(Cublas.MathMode.DEFAULT));
    }

    /**
     * One product (or batch) on random data with offsets and padded leading dimensions, through sgemm / gemmEx (when
     * {@code batch == 1}) or their strided batched forms, checked against the float64 reference on the same rounded
     * inputs. The bound adds a rounding of the output to a 16-bit type where C is one.
     */
    private static void checkProduct(
            Cublas cublas,
            ElementType in,
            ElementType out,
            Transpose ta,
            Transpose tb,
            int m,
            int n,
            int k,
            int batch,
            boolean plain) {
        boolean tA = ta == TRANSPOSE;
        boolean tB = tb == TRANSPOSE;
        int lda = (tA ? m : k) + 3;
        int ldb = (tB ? k : n) + 1;
        int ldc = n + 2;
        long strideA = (long) (tA ? k : m) * lda + 5;
        long strideB = (long) (tB ? n : k) * ldb;
        long strideC = (long) m * ldc + 1;
        int offset = 4;
        String seed = in + "→" + out + " " + ta + "·" + tb + " " + m + "×" + n + "×" + k + "×" + batch;
        float[] a = rounded(in, Inputs.uniform(Inputs.seed(seed + " a"), (int) (offset + strideA * batch), -1, 1));
        float[] b = rounded(in, Inputs.uniform(Inputs.seed(seed + " b"), (int) (offset + strideB * batch), -1, 1));
        float[] c = rounded(out, Inputs.uniform(Inputs.seed(seed + " c"), (int) (offset + strideC * batch), -1, 1));
        float alpha = plain ? 1f : 0.75f;
        float beta = plain ? 0f : -0.5f;
        float[] result = new float[c.length];
        try (DeviceBuffer da = DeviceBuffer.allocate(in, a.length);
                DeviceBuffer db = DeviceBuffer.allocate(in, b.length);
                DeviceBuffer dc = DeviceBuffer.allocate(out, c.length)) {
            da.copyFrom(a);
            db.copyFrom(b);
            dc.copyFrom(c);
            Cublas.Matrix ma = new Cublas.Matrix(da, offset, lda, ta, strideA);
            Cublas.Matrix mb = new Cublas.Matrix(db, offset, ldb, tb, strideB);
            Cublas.Matrix mc = Cublas.Matrix.of(dc, offset, ldc).strided(strideC);
            boolean sgemm = in == ElementType.FLOAT && out == ElementType.FLOAT;
            if (batch == 1 && sgemm) {
                cublas.sgemm(m, n, k, alpha, ma, mb, beta, mc);
            } else if (batch == 1) {
                cublas.gemmEx(Cublas.ComputeType.FP32, m, n, k, alpha, ma, mb, beta, mc);
            } else if (sgemm) {
                cublas.sgemmStridedBatched(m, n, k, alpha, ma, mb, beta, mc, batch);
            } else {
                cublas.gemmExStridedBatched(m, n, k, alpha, ma, mb, beta, mc, batch);
            }
            dc.copyTo(result);
        }
        for (int i = 0; i < batch; i++) {
            ReferenceBlas.Result expected = ReferenceBlas.gemm(
                    tA,
                    tB,
                    m,
                    n,
                    k,
                    alpha,
                    a,
                    (int) (offset + i * strideA),
                    lda,
                    b,
                    (int) (offset + i * strideB),
                    ldb,
                    beta,
                    c,
                    (int) (offset + i * strideC),
                    ldc);
            double[] bounds = expected.bounds(k);
            if (out != ElementType.FLOAT) {
                double unit = out == ElementType.HALF ? 0x1p-11 : 0x1p-8;
                for (int j = 0; j < bounds.length; j++) {
                    bounds[j] += unit * Math.abs(expected.values()[j]) + 2 * unit * bounds[j] + 0x1p-24;
                }
            }
            Tolerance.assertClose(
                    seed + " batch " + i,
                    expected.values(),
                    dense(result, (int) (offset + i * strideC), m, n, ldc),
                    bounds);
        }
    }

    private static float[] rounded(ElementType type, float[] values) {
        for (int i = 0; i < values.length; i++) {
            values[i] = type.round(values[i]);
        }
        return values;
    }

    private static float[] dense(float[] c, int offset, int m, int n, int ldc) {
        float[] dense = new float[m * n];
        for (int i = 0; i < m; i++) {
            System.arraycopy(c, offset + i * ldc, dense, i * n, n);
        }
        return dense;
    }
}
