package dev.panamax.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.panamax.kernels.testing.Inputs;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.function.Supplier;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * The sample kernels on the emulated device. Every launch runs in index order and in three shuffled schedules (blocks,
 * and threads between barriers), which must give the same bits: a kernel whose result depends on the order its
 * threads happen to run in fails here.
 */
class EmulatedKernelTest extends SampleKernelsContract {
    private static final long[] SCHEDULES = {0, 1, 2, 3};

    @Override
    void useDevice() {
        Emulator.require();
        EmulatedDevice.addLibrary(Emulator.TEST_LIBRARY);
        Cuda.useEmulatedDevice();
    }

    @AfterEach
    void leaveTheEmulatedDevice() {
        EmulatedDevice.deselect();
    }

    @Override
    float[] results(String what, Supplier<float[]> launch) {
        float[] first = null;
        for (long seed : SCHEDULES) {
            Cuda.useEmulatedDevice(seed);
            float[] results = launch.get();
            if (first == null) {
                first = results;
            } else {
                assertArrayEquals(first, results, what + ": schedule " + seed + " differs from index order");
            }
        }
        return first;
    }

    @Test
    void selectionIsPerThreadAndTheMemoryIsTheEmulators() throws InterruptedException {
        assertTrue(Cuda.isEmulatedDeviceCurrent());
        assertTrue(module.isEmulated());
        assertEquals(DeviceLimits.EMULATED, DeviceLimits.current());
        try (DeviceBuffer buffer = DeviceBuffer.allocate(ElementType.FLOAT, 3)) {
            assertTrue(buffer.isEmulated());
            float[] fresh = new float[3];
            buffer.copyTo(fresh);
            assertTrue(Float.isNaN(fresh[0]), "fresh device memory reads as NaN, not as zeros");
        }
        boolean[] other = new boolean[1];
        Thread thread = new Thread(() -> other[0] = Cuda.isEmulatedDeviceCurrent());
        thread.start();
        thread.join();
        assertEquals(
                "emulated".equals(System.getProperty("panamax.cuda.device")),
                other[0],
                "another thread keeps its device");
    }

    @Test
    void launchesFromSeveralThreadsAtOnce() throws Exception {
        int n = 4096;
        float[] a = Inputs.uniform(Inputs.seed("threads"), n, -1, 1);
        ExecutorService pool = Executors.newFixedThreadPool(4);
        try {
            List<Future<float[]>> results = new ArrayList<>();
            for (long seed = 0; seed < 8; seed++) {
                long schedule = seed;
                results.add(pool.submit(() -> {
                    Cuda.useEmulatedDevice(schedule);
                    try (DeviceBuffer da = upload(a);
                            DeviceBuffer dc = DeviceBuffer.allocate(ElementType.FLOAT, n)) {
                        module.kernel("vector_add").launch(Dim3.of(n / 256), Dim3.of(256), 0, null, da, da, dc, n);
                        return download(dc);
                    } finally {
                        EmulatedDevice.deselect();
                    }
                }));
            }
            for (Future<float[]> result : results) {
                float[] c = result.get();
                for (int i = 0; i < n; i++) {
                    assertEquals(2 * a[i], c[i], "c[" + i + "]");
                }
            }
        } finally {
            pool.shutdown();
        }
    }

    @Test
    void aThreadThatNeverSelectedTheEmulatedDeviceLaunchesItsModules() throws Exception {
        int n = 512;
        float[] a = Inputs.uniform(Inputs.seed("another thread"), n, -1, 1);
        try (DeviceBuffer da = upload(a);
                DeviceBuffer dc = DeviceBuffer.allocate(ElementType.FLOAT, n)) {
            ExecutorService other = Executors.newSingleThreadExecutor();
            try {
                other.submit(() -> {
                            EmulatedDevice.deselect();
                            module.kernel("vector_add").launch(Dim3.of(n / 256), Dim3.of(256), 0, null, da, da, dc, n);
                            return null;
                        })
                        .get();
            } finally {
                other.shutdown();
            }
            float[] c = download(dc);
            for (int i = 0; i < n; i++) {
                assertEquals(2 * a[i], c[i], "c[" + i + "]");
            }
        }
    }

    @Test
    void copiesBehaveAsOnAGpu() {
        float[] values = Inputs.uniform(Inputs.seed("emulated copies"), 300, -4, 4);
        for (ElementType type : ElementType.values()) {
            try (PinnedBuffer pinned = PinnedBuffer.allocate(type, values.length);
                    DeviceBuffer first = DeviceBuffer.allocate(type, values.length + 5);
                    DeviceBuffer second = DeviceBuffer.allocate(type, values.length);
                    CudaStream stream = CudaStream.create()) {
                pinned.copyFrom(0, values, 0, values.length);
                first.copyFromAsync(5, pinned.segment(), values.length, stream);
                second.copyFrom(0, first, 5, values.length);
                float[] back = new float[values.length];
                second.copyToAsync(0, back, 0, values.length, stream);
                stream.synchronize();
                for (int i = 0; i < values.length; i++) {
                    assertEquals(type.round(values[i]), back[i], type + " element " + i);
                }
                assertThrows(IndexOutOfBoundsException.class, () -> second.copyFrom(1, first, 0, values.length));
            }
        }
    }

    @Test
    void rejectsMemoryOfAnotherDevice() {
        EmulatedDevice.deselect();
        // A zero-length buffer needs no runtime, so a GPU's can be made on any machine.
        try (DeviceBuffer gpu = DeviceBuffer.allocate(ElementType.FLOAT, 0)) {
            Cuda.useEmulatedDevice();
            try (DeviceBuffer emulated = DeviceBuffer.allocate(ElementType.FLOAT, 4)) {
                IllegalArgumentException e =
                        assertThrows(IllegalArgumentException.class, () -> module.kernel("vector_add")
                                .launch(Dim3.of(1), Dim3.of(4), 0, null, gpu, emulated, emulated, 0));
                assertEquals(
                        "argument 0 of vector_add (const float*) (DeviceBuffer(FLOAT × 0)) is on a GPU, but vector_add"
                                + " (module CudaModule(" + SampleKernelsContract.SAMPLES
                                + ")) is on the emulated device",
                        e.getMessage());
                IllegalArgumentException copy =
                        assertThrows(IllegalArgumentException.class, () -> emulated.copyFrom(0, gpu, 0, 0));
                assertEquals(
                        "src (DeviceBuffer(FLOAT × 0)) is on a GPU, but emulated DeviceBuffer(FLOAT × 4) is on the"
                                + " emulated device",
                        copy.getMessage());
            }
        }
    }

    @Test
    void theSystemPropertyChoosesTheDeviceOfNewThreads() throws Exception {
        String before = System.getProperty("panamax.cuda.device");
        try {
            System.setProperty("panamax.cuda.device", "emulated");
            assertTrue(onANewThread(Cuda::isEmulatedDeviceCurrent));
            System.setProperty("panamax.cuda.device", "gpu");
            assertFalse(onANewThread(Cuda::isEmulatedDeviceCurrent));
            System.setProperty("panamax.cuda.device", "cpu");
            ExecutionException e =
                    assertThrows(ExecutionException.class, () -> onANewThread(Cuda::isEmulatedDeviceCurrent));
            assertEquals(
                    "system property panamax.cuda.device must be emulated or gpu, not cpu",
                    e.getCause().getMessage());
        } finally {
            if (before == null) {
                System.clearProperty("panamax.cuda.device");
            } else {
                System.setProperty("panamax.cuda.device", before);
            }
        }
    }

    private static <T> T onANewThread(Callable<T> task) throws Exception {
        ExecutorService thread = Executors.newSingleThreadExecutor();
        try {
            return thread.submit(task).get();
        } finally {
            thread.shutdown();
        }
    }

    @Test
    void streamsAndEventsCompleteAtOnce() {
        try (CudaStream stream = CudaStream.create();
                CudaEvent start = CudaEvent.create(true);
                CudaEvent end = CudaEvent.create(true);
                CudaEvent untimed = CudaEvent.create(false)) {
            start.record(stream);
            end.record(stream);
            stream.waitFor(end);
            assertTrue(stream.isDone() && end.isDone());
            assertTrue(end.elapsedMillis(start) >= 0);
            untimed.record(stream);
            assertThrows(IllegalStateException.class, () -> untimed.elapsedMillis(start));
        }
    }

    @Test
    void rejectsABufferOfAnotherElementType() {
        try (DeviceBuffer half = DeviceBuffer.allocate(ElementType.HALF, 4);
                DeviceBuffer x = DeviceBuffer.allocate(ElementType.FLOAT, 4)) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> module.kernel("vector_add")
                    .launch(Dim3.of(1), Dim3.of(4), 0, null, half, x, x, 4));
            assertEquals("argument 0 of vector_add (const float*) must hold FLOAT elements, not HALF", e.getMessage());
        }
    }

    @Test
    void rejectsPtxThatDisagreesWithTheEmulatorsKernel() {
        String ptx = ".version 9.0\n.target sm_80\n.address_size 64\n"
                + ".visible .entry vector_add(.param .u64 a, .param .u64 b, .param .u32 n)\n{\nret;\n}\n";
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> CudaModule.fromPtx("stale.ptx", ptx)
                .kernel("vector_add"));
        assertTrue(
                e.getMessage()
                        .startsWith("kernel vector_add: the PTX declares parameters [u64, u64, u32], the "
                                + "emulated device's library [const float*, const float*, float*, int]"),
                e.getMessage());
        String unknown = ".version 9.0\n.target sm_80\n.address_size 64\n.visible .entry not_compiled()\n{\nret;\n}\n";
        IllegalStateException missing =
                assertThrows(IllegalStateException.class, () -> CudaModule.fromPtx("unknown.ptx", unknown));
        assertTrue(
                missing.getMessage()
                        .startsWith("unknown.ptx declares kernel not_compiled, which the emulated "
                                + "device's kernel library does not have"),
                missing.getMessage());
    }

    @Test
    void largeSharedMemoryNeedsNoOptInHere() {
        // 64 KiB of dynamic shared memory: over the default 48 KiB, within the opt-in maximum.
        int n = 16384;
        float[] x = new float[n];
        java.util.Arrays.fill(x, 1f);
        try (DeviceBuffer dx = upload(x);
                DeviceBuffer partial = DeviceBuffer.allocate(ElementType.FLOAT, 16)) {
            module.kernel("block_sum").launch(Dim3.of(16), Dim3.of(1024), 64 * 1024, null, dx, partial, n);
            float[] sums = download(partial);
            for (float sum : sums) {
                assertEquals(1024f, sum);
            }
        }
    }
}
