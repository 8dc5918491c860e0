package dev.panamax.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import dev.panamax.cuda.spi.HostGemm;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * A close on one thread while another thread uses the resource: the close waits for the call in progress, which
 * completes, and later uses throw {@link IllegalStateException}; nothing is freed under a call.
 */
class EmulatedConcurrentCloseTest {
    private final ExecutorService threads = Executors.newFixedThreadPool(2);

    @BeforeEach
    void useTheEmulatedDevice() {
        Emulator.require();
        Cuda.useEmulatedDevice();
    }

    @AfterEach
    void stop() {
        threads.shutdownNow();
        EmulatedDevice.deselect();
    }

    @Test
    void ownershipCountsUsesAndRefusesThemAfterClose() {
        Ownership ownership = new Ownership("thing");
        ownership.acquire();
        ownership.acquire();
        assertEquals(2, ownership.uses());
        ownership.release();
        ownership.release();
        assertTrue(ownership.close());
        assertFalse(ownership.close());
        IllegalStateException e = assertThrows(IllegalStateException.class, ownership::acquire);
        assertEquals("thing is closed", e.getMessage());
        assertEquals(0, ownership.uses(), "a refused acquire holds nothing");
        assertEquals("thing (closed)", ownership.toString());
    }

    @Test
    void closeWaitsForAUseInProgressAndKeepsAnInterrupt() throws Exception {
        Ownership ownership = new Ownership("thing");
        ownership.acquire();
        Future<Boolean> closing = threads.submit(() -> {
            Thread.currentThread().interrupt();
            boolean first = ownership.close();
            return first && Thread.interrupted();
        });
        assertThrows(TimeoutException.class, () -> closing.get(200, TimeUnit.MILLISECONDS));
        assertTrue(ownership.isClosed(), "closed at once: no new use may start");
        assertThrows(IllegalStateException.class, ownership::acquire);
        ownership.release();
        assertTrue(closing.get(10, TimeUnit.SECONDS), "the close returned true, with the interrupt kept");
    }

    @Test
    void bufferIsFreedOnlyAfterTheUseInProgress() throws Exception {
        DeviceBuffer buffer = DeviceBuffer.allocate(ElementType.FLOAT, 1024);
        long free = Cuda.memory().freeBytes();
        buffer.ownership().acquire();
        Future<?> closing = threads.submit(buffer::close);
        assertThrows(TimeoutException.class, () -> closing.get(200, TimeUnit.MILLISECONDS));
        assertTrue(buffer.isClosed());
        assertThrows(IllegalStateException.class, () -> buffer.copyFrom(new float[1024]));
        assertEquals(free, Cuda.memory().freeBytes(), "the memory is still held by the use in progress");
        // The use in progress can still read the memory.
        assertEquals(4096, buffer.emulatedMemory().byteSize());
        buffer.ownership().release();
        closing.get(10, TimeUnit.SECONDS);
        assertEquals(free + 4096, Cuda.memory().freeBytes());
        assertEquals(0, buffer.uses());
    }

    @Test
    void closingOperandsAndHandleDuringACublasProductWaitsForIt() throws Exception {
        CountDownLatch entered = new CountDownLatch(1);
        CountDownLatch proceed = new CountDownLatch(1);
        HostGemm<?> gemm = gated(new KernelsHostGemm(), entered, proceed);
        Cublas cublas = Cublas.emulated(gemm);
        DeviceBuffer a = DeviceBuffer.allocate(ElementType.FLOAT, 4);
        DeviceBuffer b = DeviceBuffer.allocate(ElementType.FLOAT, 4);
        DeviceBuffer c = DeviceBuffer.allocate(ElementType.FLOAT, 4);
        a.copyFrom(new float[] {1, 2, 3, 4});
        b.copyFrom(new float[] {1, 0, 0, 1});
        Future<?> product = threads.submit(() -> {
            Cuda.useEmulatedDevice();
            square(cublas, a, b, c);
        });
        assertTrue(entered.await(10, TimeUnit.SECONDS));
        Future<?> closing = threads.submit(() -> {
            c.close();
            a.close();
            cublas.close();
        });
        assertThrows(TimeoutException.class, () -> closing.get(200, TimeUnit.MILLISECONDS));
        assertTrue(c.isClosed());
        proceed.countDown();
        product.get(10, TimeUnit.SECONDS);
        closing.get(10, TimeUnit.SECONDS);
        assertThrows(IllegalStateException.class, () -> square(cublas, b, b, b));
        b.close();
    }

    @Test
    void aProductOnAClosedStreamNamesTheStream() {
        try (Cublas cublas = Cublas.emulated(new KernelsHostGemm());
                DeviceBuffer x = DeviceBuffer.allocate(ElementType.FLOAT, 4)) {
            x.copyFrom(new float[] {1, 2, 3, 4});
            CudaStream stream = CudaStream.create();
            cublas.setStream(stream);
            stream.close();
            IllegalStateException onDevice = assertThrows(IllegalStateException.class, () -> square(cublas, x, x, x));
            assertEquals(
                    "the stream of emulated Cublas (emulated CudaStream (closed), given to setStream) is closed: give "
                            + "setStream an open stream or null before the next product",
                    onDevice.getMessage());
            float[] host = {1, 2, 3, 4};
            IllegalStateException onHost = assertThrows(
                    IllegalStateException.class,
                    () -> cublas.sgemm(
                            Transpose.NO_TRANSPOSE,
                            Transpose.NO_TRANSPOSE,
                            2,
                            2,
                            2,
                            1,
                            host,
                            0,
                            2,
                            host,
                            0,
                            2,
                            0,
                            new float[4],
                            0,
                            2));
            assertEquals(onDevice.getMessage(), onHost.getMessage());
            cublas.setStream(null);
            float[] c = new float[4];
            cublas.sgemm(
                    Transpose.NO_TRANSPOSE, Transpose.NO_TRANSPOSE, 2, 2, 2, 1, host, 0, 2, host, 0, 2, 0, c, 0, 2);
            assertArrayEquals(new float[] {7, 10, 15, 22}, c);
        }
    }

    @Test
    void closingTheHandlesStreamDuringAProductWaitsForIt() throws Exception {
        CountDownLatch entered = new CountDownLatch(1);
        CountDownLatch proceed = new CountDownLatch(1);
        try (Cublas cublas = Cublas.emulated(gated(new KernelsHostGemm(), entered, proceed));
                DeviceBuffer x = DeviceBuffer.allocate(ElementType.FLOAT, 4);
                DeviceBuffer y = DeviceBuffer.allocate(ElementType.FLOAT, 4)) {
            x.copyFrom(new float[] {1, 2, 3, 4});
            CudaStream stream = CudaStream.create();
            cublas.setStream(stream);
            Future<?> product = threads.submit(() -> square(cublas, x, x, y));
            assertTrue(entered.await(10, TimeUnit.SECONDS));
            Future<?> closing = threads.submit(stream::close);
            assertThrows(TimeoutException.class, () -> closing.get(200, TimeUnit.MILLISECONDS));
            proceed.countDown();
            product.get(10, TimeUnit.SECONDS);
            closing.get(10, TimeUnit.SECONDS);
            assertTrue(stream.isClosed());
        }
    }

    @Test
    void launchesRacingACloseEndCleanly() throws Exception {
        int n = 1 << 14;
        try (CudaModule module = CudaModule.load(SampleKernelsContract.SAMPLES)) {
            CudaKernel add = module.kernel("vector_add");
            for (int round = 0; round < 40; round++) {
                DeviceBuffer x = DeviceBuffer.allocate(ElementType.FLOAT, n);
                DeviceBuffer y = DeviceBuffer.allocate(ElementType.FLOAT, n);
                x.copyFrom(new float[n]);
                CountDownLatch started = new CountDownLatch(1);
                Future<Integer> launches = threads.submit(() -> {
                    int completed = 0;
                    started.countDown();
                    try {
                        while (true) {
                            add.launch(Dim3.of(n / 256), Dim3.of(256), 0, null, x, x, y, n);
                            completed++;
                        }
                    } catch (IllegalStateException e) {
                        assertTrue(e.getMessage().endsWith("is closed"), e.getMessage());
                    }
                    return completed;
                });
                assertTrue(started.await(10, TimeUnit.SECONDS));
                Thread.sleep(round % 3);
                (round % 2 == 0 ? x : y).close();
                launches.get(30, TimeUnit.SECONDS);
                x.close();
                y.close();
                assertEquals(0, x.uses() + y.uses());
            }
        }
    }

    @Test
    void copiesRacingACloseEndCleanly() throws Exception {
        int n = 1 << 16;
        float[] values = new float[n];
        for (int round = 0; round < 40; round++) {
            DeviceBuffer buffer = DeviceBuffer.allocate(ElementType.FLOAT, n);
            buffer.copyFrom(values);
            Future<?> copies = threads.submit(() -> {
                float[] back = new float[n];
                try {
                    while (true) {
                        buffer.copyFrom(values);
                        buffer.copyTo(back);
                        assertArrayEquals(values, back);
                    }
                } catch (IllegalStateException e) {
                    assertTrue(e.getMessage().endsWith("is closed"), e.getMessage());
                }
                return null;
            });
            Thread.sleep(round % 3);
            buffer.close();
            copies.get(30, TimeUnit.SECONDS);
        }
    }

    @Test
    void memoryOfAnotherDeviceIsRefusedByLaunchesAndProducts() {
        try (CudaModule module = CudaModule.load(SampleKernelsContract.SAMPLES);
                Cublas cublas = Cublas.emulated(new KernelsHostGemm());
                DeviceBuffer here = DeviceBuffer.allocate(ElementType.FLOAT, 4);
                DeviceBuffer elsewhere = DeviceBuffer.allocateEmulated(ElementType.FLOAT, 4, 1)) {
            assertEquals(new Device(true, 0), here.device());
            assertEquals(new Device(true, 1), elsewhere.device());
            IllegalArgumentException launch =
                    assertThrows(IllegalArgumentException.class, () -> module.kernel("vector_add")
                            .launch(Dim3.of(1), Dim3.of(4), 0, null, here, elsewhere, here, 4));
            assertEquals(
                    "argument 1 of vector_add (const float*) (emulated DeviceBuffer(FLOAT × 4)) is on emulated device 1,"
                            + " but vector_add (module CudaModule(" + SampleKernelsContract.SAMPLES + ")) is on the"
                            + " emulated device",
                    launch.getMessage());
            IllegalArgumentException product =
                    assertThrows(IllegalArgumentException.class, () -> square(cublas, here, here, elsewhere));
            assertEquals(
                    "c (emulated DeviceBuffer(FLOAT × 4)) is on emulated device 1, but emulated Cublas is on the emulated"
                            + " device",
                    product.getMessage());
            assertEquals(0, elsewhere.uses(), "nothing was held by the refused calls");
        }
    }

    /** {@code C = A·B} on 2 × 2 matrices at the start of each buffer. */
    private static void square(Cublas cublas, DeviceBuffer a, DeviceBuffer b, DeviceBuffer c) {
        cublas.sgemm(2, 2, 2, 1, Cublas.Matrix.of(a, 0, 2), Cublas.Matrix.of(b, 0, 2), 0, Cublas.Matrix.of(c, 0, 2));
    }

    /** {@code gemm}'s products, each announcing itself and then waiting for {@code proceed}. */
    private static <T> HostGemm<T> gated(HostGemm<T> gemm, CountDownLatch entered, CountDownLatch proceed) {
        HostGemm.Product<T> inner = gemm.product();
        HostGemm.Product<T> product =
                (ta, tb, m, n, k, alpha, a, ao, lda, sa, b, bo, ldb, sb, beta, c, co, ldc, sc, batch) -> {
                    entered.countDown();
                    try {
                        if (!proceed.await(10, TimeUnit.SECONDS)) {
                            fail("never told to proceed");
                        }
                    } catch (InterruptedException e) {
                        throw new IllegalStateException(e);
                    }
                    inner.sgemmStridedBatched(
                            ta, tb, m, n, k, alpha, a, ao, lda, sa, b, bo, ldb, sb, beta, c, co, ldc, sc, batch);
                };
        return new HostGemm<>(product, gemm.transpose(Transpose.NO_TRANSPOSE), gemm.transpose(Transpose.TRANSPOSE)) {};
    }
}
