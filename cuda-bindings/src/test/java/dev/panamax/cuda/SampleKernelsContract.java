package dev.panamax.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.panamax.kernels.testing.Inputs;
import dev.panamax.kernels.testing.ReferenceBlas;
import dev.panamax.kernels.testing.Tolerance;
import java.util.Arrays;
import java.util.function.Supplier;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * The sample kernels (src/main/cuda/samples.cu) against float64 references, and the launch checks, on one device:
 * {@link EmulatedKernelTest} runs them on the emulated device, {@link GpuKernelTest} on a GPU. Each launch happens
 * inside {@link #results}, which the emulated device repeats in several schedule orders.
 */
abstract class SampleKernelsContract {
    static final String SAMPLES = "dev/panamax/cuda/ptx/samples.ptx";

    CudaModule module;

    /** Makes the device under test the calling thread's current one. */
    abstract void useDevice();

    /** Runs {@code launch} (allocate, launch, copy back) and returns what it copied back. */
    abstract float[] results(String what, Supplier<float[]> launch);

    @BeforeEach
    void loadSamples() {
        useDevice();
        module = CudaModule.load(SAMPLES);
    }

    @AfterEach
    void unload() {
        if (module != null) {
            module.close();
        }
    }

    static DeviceBuffer upload(float[] values) {
        DeviceBuffer buffer = DeviceBuffer.allocate(ElementType.FLOAT, values.length);
        buffer.copyFrom(values);
        return buffer;
    }

    static float[] download(DeviceBuffer buffer) {
        float[] values = new float[(int) buffer.length()];
        buffer.copyTo(values);
        return values;
    }

    @Test
    void vectorAddCoversARaggedLastBlock() {
        int n = 1000;
        float[] a = Inputs.uniform(Inputs.seed("vector_add a"), n, -8, 8);
        float[] b = Inputs.uniform(Inputs.seed("vector_add b"), n, -8, 8);
        float[] c = results("vector_add", () -> {
            try (DeviceBuffer da = upload(a);
                    DeviceBuffer db = upload(b);
                    DeviceBuffer dc = DeviceBuffer.allocate(ElementType.FLOAT, n)) {
                module.kernel("vector_add").launch(Dim3.of((n + 255) / 256), Dim3.of(256), 0, null, da, db, dc, n);
                return download(dc);
            }
        });
        for (int i = 0; i < n; i++) {
            // One correctly rounded addition: exactly the double sum rounded to float.
            assertEquals((float) ((double) a[i] + b[i]), c[i], "c[" + i + "]");
        }
    }

    @Test
    void aThreadThatNeverUsedCudaLooksUpAndLaunchesAKernel() throws Exception {
        int n = 300;
        float[] a = Inputs.uniform(Inputs.seed("fresh thread a"), n, -8, 8);
        try (DeviceBuffer da = upload(a);
                DeviceBuffer dc = DeviceBuffer.allocate(ElementType.FLOAT, n)) {
            Throwable[] failure = new Throwable[1];
            // A new thread has no current CUDA context: the lookup and the launch must make the module's current.
            Thread fresh = new Thread(() -> {
                try {
                    module.kernel("vector_add").launch(Dim3.of(2), Dim3.of(256), 0, null, da, da, dc, n);
                } catch (Throwable e) {
                    failure[0] = e;
                }
            });
            fresh.start();
            fresh.join();
            if (failure[0] != null) {
                throw new AssertionError("lookup or launch on a fresh thread failed", failure[0]);
            }
            float[] c = download(dc);
            for (int i = 0; i < n; i++) {
                assertEquals(a[i] + a[i], c[i], "c[" + i + "]");
            }
        }
    }

    @Test
    void blockSumReducesInSharedMemory() {
        checkBlockSums("block_sum", 256, 256 * Float.BYTES, 8);
    }

    @Test
    void warpSumReducesByShuffles() {
        checkBlockSums("warp_sum", 256, 0, 10);
    }

    /**
     * Per-block sums of 1000 values (the last block ragged) against float64: a reduction tree of {@code depth} levels
     * errs by at most {@code depth·ε·Σ|x|} per block.
     */
    private void checkBlockSums(String kernel, int block, int sharedBytes, int depth) {
        int n = 1000;
        int blocks = (n + block - 1) / block;
        float[] x = Inputs.uniform(Inputs.seed(kernel), n, -1, 1);
        float[] sums = results(kernel, () -> {
            try (DeviceBuffer dx = upload(x);
                    DeviceBuffer partial = DeviceBuffer.allocate(ElementType.FLOAT, blocks)) {
                module.kernel(kernel).launch(Dim3.of(blocks), Dim3.of(block), sharedBytes, null, dx, partial, n);
                return download(partial);
            }
        });
        double[] expected = new double[blocks];
        double[] bounds = new double[blocks];
        for (int i = 0; i < n; i++) {
            expected[i / block] += x[i];
            bounds[i / block] += depth * Tolerance.FLOAT_EPSILON * Math.abs(x[i]);
        }
        Tolerance.assertClose(kernel, expected, sums, bounds);
    }

    @Test
    void countAboveVotesAndAddsAtomically() {
        int n = 1000;
        float[] x = Inputs.uniform(Inputs.seed("count_above"), n, -1, 1);
        float threshold = 0.25f;
        float[] count = results("count_above", () -> {
            try (DeviceBuffer dx = upload(x);
                    DeviceBuffer dcount = upload(new float[1])) {
                module.kernel("count_above")
                        .launch(Dim3.of((n + 127) / 128), Dim3.of(128), 0, null, dx, dcount, n, threshold);
                return download(dcount);
            }
        });
        int expected = 0;
        for (float v : x) {
            expected += v > threshold ? 1 : 0;
        }
        assertEquals(expected, count[0]);
    }

    @Test
    void tiledSgemmMatchesTheReferenceWithOddSizesAndPaddedRows() {
        int m = 37;
        int n = 45;
        int k = 70;
        int lda = k + 3;
        int ldb = n + 5;
        int ldc = n + 2;
        float alpha = 1.5f;
        float beta = -0.5f;
        float[] a = Inputs.uniform(Inputs.seed("sgemm a"), m * lda, -1, 1);
        float[] b = Inputs.uniform(Inputs.seed("sgemm b"), k * ldb, -1, 1);
        float[] c = Inputs.uniform(Inputs.seed("sgemm c"), m * ldc, -1, 1);
        float[] result = results("sgemm_tiled", () -> sgemm(m, n, k, alpha, a, lda, b, ldb, beta, c, ldc));
        ReferenceBlas.Result expected =
                ReferenceBlas.gemm(false, false, m, n, k, alpha, a, 0, lda, b, 0, ldb, beta, c, 0, ldc);
        Tolerance.assertClose("sgemm_tiled", expected.values(), dense(result, m, n, ldc), expected.bounds(k));
        for (int i = 0; i < m; i++) {
            for (int j = n; j < ldc; j++) {
                assertEquals(c[i * ldc + j], result[i * ldc + j], "padding of row " + i + " is not written");
            }
        }
    }

    @Test
    void tiledSgemmDoesNotReadCWhenBetaIsZero() {
        int m = 20;
        int n = 17;
        int k = 33;
        float[] a = Inputs.uniform(Inputs.seed("sgemm beta0 a"), m * k, -1, 1);
        float[] b = Inputs.uniform(Inputs.seed("sgemm beta0 b"), k * n, -1, 1);
        float[] c = new float[m * n];
        Arrays.fill(c, Float.NaN);
        float[] result = results("sgemm_tiled beta 0", () -> sgemm(m, n, k, 1f, a, k, b, n, 0f, c, n));
        ReferenceBlas.Result expected = ReferenceBlas.gemm(false, false, m, n, k, 1, a, 0, k, b, 0, n, 0, c, 0, n);
        Tolerance.assertClose("sgemm_tiled, beta 0", expected.values(), result, expected.bounds(k));
    }

    float[] sgemm(
            int m, int n, int k, float alpha, float[] a, int lda, float[] b, int ldb, float beta, float[] c, int ldc) {
        try (DeviceBuffer da = upload(a);
                DeviceBuffer db = upload(b);
                DeviceBuffer dc = upload(c)) {
            module.kernel("sgemm_tiled")
                    .launch(
                            Dim3.of((n + 15) / 16, (m + 15) / 16),
                            Dim3.of(16, 16),
                            0,
                            null,
                            m,
                            n,
                            k,
                            alpha,
                            da,
                            lda,
                            db,
                            ldb,
                            beta,
                            dc,
                            ldc);
            return download(dc);
        }
    }

    static float[] dense(float[] c, int m, int n, int ldc) {
        float[] dense = new float[m * n];
        for (int i = 0; i < m; i++) {
            System.arraycopy(c, i * ldc, dense, i * n, n);
        }
        return dense;
    }

    @Test
    void launchesOnAStream() {
        int n = 300;
        float[] a = Inputs.uniform(Inputs.seed("stream a"), n, -1, 1);
        float[] c = results("vector_add on a stream", () -> {
            try (CudaStream stream = CudaStream.create();
                    DeviceBuffer da = upload(a);
                    DeviceBuffer dc = DeviceBuffer.allocate(ElementType.FLOAT, n)) {
                module.kernel("vector_add").launch(Dim3.of(3), Dim3.of(128), 0, stream, da, da, dc, n);
                float[] out = new float[n];
                dc.copyToAsync(0, out, 0, n, stream);
                stream.synchronize();
                return out;
            }
        });
        for (int i = 0; i < n; i++) {
            assertEquals(2 * a[i], c[i], "c[" + i + "]");
        }
    }

    /**
     * The warp operations of src/test/cuda/warps.cu against CUDA's documented semantics, for widths 32, 8 and 1: a
     * lane reads within its width-lane segment (an up or down shift that leaves it, or a butterfly partner in a later
     * segment, reads its own value), votes cover the warp, and two half-warps with disjoint masks shuffle at once.
     */
    @Test
    void warpOperationsFollowCudasSemantics() {
        int threads = 64;
        float[] in = new float[threads];
        for (int t = 0; t < threads; t++) {
            in[t] = (t * 7) % 64 - 20;
        }
        try (CudaModule warps = CudaModule.load("dev/panamax/cuda/ptx/warps.ptx")) {
            for (int width : new int[] {32, 8, 1}) {
                float[] out = results("warp_operations, width " + width, () -> {
                    try (DeviceBuffer din = upload(in);
                            DeviceBuffer dout = DeviceBuffer.allocate(ElementType.FLOAT, 9 * threads)) {
                        warps.kernel("warp_operations").launch(Dim3.of(1), Dim3.of(threads), 0, null, din, dout, width);
                        return download(dout);
                    }
                });
                for (int t = 0; t < threads; t++) {
                    float[] expected = expectedWarpOperations(in, t, width);
                    for (int op = 0; op < expected.length; op++) {
                        assertEquals(
                                expected[op],
                                out[op * threads + t],
                                "operation " + op + ", thread " + t + ", width " + width);
                    }
                }
            }
        }
    }

    private static float[] expectedWarpOperations(float[] in, int t, int width) {
        int lane = t % 32;
        int warp = t - lane;
        int segment = lane / width * width;
        int ballot = 0;
        boolean any = false;
        boolean all = true;
        for (int l = 0; l < 32; l++) {
            float v = in[warp + l];
            ballot |= v > 0 ? 1 << l : 0;
            any |= v > 40;
            all &= v > -40;
        }
        int butterfly = lane ^ 6;
        return new float[] {
            in[warp + segment + ((lane * 3 + 1) & (width - 1))],
            lane - segment >= 3 ? in[t - 3] : in[t],
            lane - segment + 5 < width ? in[t + 5] : in[t],
            butterfly < segment + width ? in[warp + butterfly] : in[t],
            ballot & 0xffff,
            ballot >>> 16,
            any ? 1 : 0,
            all ? 1 : 0,
            in[warp + (lane & ~15) + (lane + 1) % 16]
        };
    }

    /**
     * src/test/cuda/intrinsics.cu: integer atomics and a float atomicAdd of small integers (exact in any order), one
     * winner of an atomicCAS race, and the math intrinsics within the GPU's documented error (2 ulp for rsqrtf and
     * __fdividef, 2 + ⌊1.16·|x|⌋ ulp for __expf: at most 4 ulp here; relative 1e-6 covers both), and __dmul_rn and
     * __dadd_rn each rounding once, never fused: a product that rounds to 1 before -1 is added gives exactly 0.
     */
    @Test
    void atomicsAndMathIntrinsics() {
        int threads = 96;
        float[] x = new float[threads];
        for (int t = 0; t < threads; t++) {
            x[t] = t % 17 - 8;
        }
        try (CudaModule intrinsics = CudaModule.load("dev/panamax/cuda/ptx/intrinsics.ptx")) {
            float[] out = results("atomics_and_math", () -> {
                try (DeviceBuffer dx = upload(x);
                        DeviceBuffer dout = DeviceBuffer.allocate(ElementType.FLOAT, 8 + 5 * threads)) {
                    intrinsics.kernel("atomics_and_math").launch(Dim3.of(1), Dim3.of(threads), 0, null, dx, dout);
                    return download(dout);
                }
            });
            double sum = 0;
            for (float v : x) {
                sum += v;
            }
            assertArrayEquals(new float[] {800, -800, threads, 1, (float) sum}, Arrays.copyOf(out, 5));
            double[] expected = new double[5 * threads];
            float[] actual = Arrays.copyOfRange(out, 8, out.length);
            for (int t = 0; t < threads; t++) {
                expected[5 * t] = Math.exp(x[t] / 4.0);
                expected[5 * t + 1] = 1 / Math.sqrt(Math.abs(x[t]) + 1.0);
                expected[5 * t + 2] = x[t] / 3.0;
                expected[5 * t + 3] = Math.min(1, Math.max(0, x[t] / 8.0));
                double a = 1 + x[t] * 0x1p-30;
                // Java rounds the product before the sum, as the intrinsics must: 0 here, not -x²·2⁻⁶⁰.
                expected[5 * t + 4] = a * (2 - a) - 1;
                assertEquals(0.0, expected[5 * t + 4]);
            }
            Tolerance.assertClose("math intrinsics", expected, actual, 0, 1e-6);
        }
    }

    @Test
    void emptyKernelLaunchOverhead() {
        CudaKernel empty = module.kernel("empty_kernel");
        int launches = 2000;
        for (int i = 0; i < launches; i++) {
            empty.launch(Dim3.of(1), Dim3.of(32), 0, null);
        }
        Cuda.synchronize();
        long start = System.nanoTime();
        for (int i = 0; i < launches; i++) {
            empty.launch(Dim3.of(1), Dim3.of(32), 0, null);
        }
        Cuda.synchronize();
        double micros = (System.nanoTime() - start) / 1e3 / launches;
        System.out.printf(
                "%s: an empty kernel (1 block of 32 threads) takes %.2f µs per launch through CudaKernel%n",
                module.isEmulated() ? "emulated device" : "GPU", micros);
    }

    @Test
    void rejectsAWrongArgumentCountBeforeLaunching() {
        try (DeviceBuffer x = DeviceBuffer.allocate(ElementType.FLOAT, 4)) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> module.kernel("vector_add")
                    .launch(Dim3.of(1), Dim3.of(4), 0, null, x, x, x));
            assertTrue(e.getMessage().startsWith("vector_add takes 4 arguments"), e.getMessage());
            assertTrue(e.getMessage().endsWith("got 3"), e.getMessage());
        }
    }

    @Test
    void rejectsAWrongArgumentTypeBeforeLaunching() {
        try (DeviceBuffer x = DeviceBuffer.allocate(ElementType.FLOAT, 4)) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> module.kernel("vector_add")
                    .launch(Dim3.of(1), Dim3.of(4), 0, null, x, x, x, 4L));
            assertTrue(e.getMessage().startsWith("argument 3 of vector_add ("), e.getMessage());
            assertTrue(e.getMessage().endsWith("must be Integer, not Long"), e.getMessage());
            IllegalArgumentException notABuffer =
                    assertThrows(IllegalArgumentException.class, () -> module.kernel("vector_add")
                            .launch(Dim3.of(1), Dim3.of(4), 0, null, x, 1.5f, x, 4));
            assertTrue(notABuffer.getMessage().startsWith("argument 1 of vector_add ("), notABuffer.getMessage());
        }
    }

    @Test
    void rejectsBlocksAndGridsOverTheDeviceLimits() {
        CudaKernel add = module.kernel("vector_add");
        DeviceLimits limits = module.limits();
        try (DeviceBuffer x = DeviceBuffer.allocate(ElementType.FLOAT, 4)) {
            int most = add.maxThreadsPerBlock();
            assertTrue(most >= 32 && most <= limits.maxThreadsPerBlock(), () -> add + " runs " + most + " threads");
            IllegalArgumentException threads = assertThrows(
                    IllegalArgumentException.class,
                    () -> add.launch(Dim3.of(1), Dim3.of(most, 2), 0, null, x, x, x, 4));
            assertEquals(
                    "block (" + most + ",2,1) has " + 2 * most + " threads, more than the " + most
                            + " per block vector_add can run on this device",
                    threads.getMessage());
            IllegalArgumentException z = assertThrows(
                    IllegalArgumentException.class,
                    () -> add.launch(
                            Dim3.of(1), new Dim3(1, 1, limits.maxBlock().z() + 1), 0, null, x, x, x, 4));
            assertTrue(
                    z.getMessage().startsWith("block.z (" + (limits.maxBlock().z() + 1) + ") must be from 1 to"),
                    z.getMessage());
            IllegalArgumentException grid = assertThrows(
                    IllegalArgumentException.class,
                    () -> add.launch(Dim3.of(1, limits.maxGrid().y() + 1), Dim3.of(4), 0, null, x, x, x, 4));
            assertTrue(
                    grid.getMessage().startsWith("grid.y (" + (limits.maxGrid().y() + 1) + ")"), grid.getMessage());
            assertThrows(IllegalArgumentException.class, () -> add.launch(Dim3.of(0), Dim3.of(4), 0, null, x, x, x, 4));
        }
    }

    @Test
    void rejectsSharedMemoryOverTheDeviceLimit() {
        CudaKernel sgemm = module.kernel("sgemm_tiled");
        assertEquals(2112, sgemm.staticSharedMemoryBytes(), "two 16×16 tiles, one padded to 17 columns");
        int over = module.limits().maxSharedMemoryPerBlockOptin() - 2112 + 1;
        try (DeviceBuffer x = DeviceBuffer.allocate(ElementType.FLOAT, 4)) {
            IllegalArgumentException e = assertThrows(
                    IllegalArgumentException.class,
                    () -> sgemm.launch(Dim3.of(1), Dim3.of(16, 16), over, null, 1, 1, 1, 1f, x, 1, x, 1, 0f, x, 1));
            assertEquals(
                    "sharedMemoryBytes (" + over + ") plus sgemm_tiled's 2112 bytes of static shared memory exceed "
                            + "the device's " + module.limits().maxSharedMemoryPerBlockOptin()
                            + " bytes of shared memory per block",
                    e.getMessage());
            assertThrows(
                    IllegalArgumentException.class,
                    () -> sgemm.launch(Dim3.of(1), Dim3.of(16, 16), -1, null, 1, 1, 1, 1f, x, 1, x, 1, 0f, x, 1));
        }
    }

    @Test
    void rejectsAnUnknownKernelName() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> module.kernel("vector_sub"));
        assertEquals(
                "no kernel vector_sub in " + SAMPLES + "; its kernels are [block_sum, count_above, empty_kernel, "
                        + "sgemm_tiled, vector_add, warp_sum]",
                e.getMessage());
    }

    @Test
    void useAfterCloseIsCaughtInJava() {
        CudaKernel add = module.kernel("vector_add");
        DeviceBuffer x = DeviceBuffer.allocate(ElementType.FLOAT, 4);
        x.close();
        IllegalStateException closedBuffer = assertThrows(
                IllegalStateException.class, () -> add.launch(Dim3.of(1), Dim3.of(4), 0, null, x, x, x, 4));
        assertTrue(closedBuffer.getMessage().endsWith("is closed"), closedBuffer.getMessage());
        module.close();
        module.close();
        try (DeviceBuffer y = DeviceBuffer.allocate(ElementType.FLOAT, 4)) {
            assertThrows(IllegalStateException.class, () -> add.launch(Dim3.of(1), Dim3.of(4), 0, null, y, y, y, 4));
        }
        assertThrows(IllegalStateException.class, () -> module.kernel("vector_add"));
    }
}
