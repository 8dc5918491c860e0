package dev.panamax.cuda;

import static dev.panamax.cuda.ffi.CudaDriverFfi.C_FLOAT;
import static dev.panamax.cuda.ffi.CudaDriverFfi.C_INT;
import static dev.panamax.cuda.ffi.CudaDriverFfi.C_POINTER;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.panamax.cuda.ffi.CudaDriverFfi;
import java.io.IOException;
import java.io.InputStream;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.charset.StandardCharsets;
import java.util.Optional;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * The driver API on a real device: attributes, the primary context shared with the runtime, a PTX module launched on
 * runtime-allocated buffers, and the driver's statuses as exceptions naming the kernel. Tagged {@code gpu}; skipped
 * with the reason where the driver API or the runtime cannot run.
 */
@Tag("gpu")
class CudaDriverGpuTest {
    private static final String KERNEL = "scale_add";

    @BeforeEach
    void needsDevice() {
        assumeTrue(
                CudaDriver.unavailableReason().isEmpty(),
                () -> "no GPU: " + CudaDriver.unavailableReason().orElseThrow());
        assumeTrue(
                Cuda.isAvailable(), () -> "no GPU: " + Cuda.unavailableReason().orElseThrow());
        Cuda.setDevice(0);
        CudaDriver.makePrimaryContextCurrent(0);
    }

    @Test
    void deviceAttributesAreThoseOfACudaGpu() {
        assertEquals(32, CudaDriver.deviceAttribute(0, CudaDriver.ATTR_WARP_SIZE));
        assertTrue(CudaDriver.deviceAttribute(0, CudaDriver.ATTR_MAX_THREADS_PER_BLOCK) >= 1024);
        assertTrue(CudaDriver.deviceAttribute(0, CudaDriver.ATTR_MAX_GRID_DIM_X) >= 65535);
        assertTrue(CudaDriver.deviceAttribute(0, CudaDriver.ATTR_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN)
                >= CudaDriver.deviceAttribute(0, CudaDriver.ATTR_MAX_SHARED_MEMORY_PER_BLOCK));
        assertEquals(
                Cuda.device(0).multiprocessors(), CudaDriver.deviceAttribute(0, CudaDriver.ATTR_MULTIPROCESSOR_COUNT));
        CudaException e = assertThrows(
                CudaException.class, () -> CudaDriver.deviceAttribute(Cuda.deviceCount(), CudaDriver.ATTR_WARP_SIZE));
        assertEquals("cuDeviceGet", e.call());
        assertEquals("CUDA_ERROR_INVALID_DEVICE", e.statusName());
    }

    @Test
    void theLaunchersContextIsTheOneTheRuntimeUses() throws InterruptedException {
        long[] contexts = new long[2];
        // A new thread has no current context until the runtime's first allocation makes the primary one current.
        Thread thread = new Thread(() -> {
            Cuda.setDevice(0);
            try (DeviceBuffer buffer = DeviceBuffer.allocate(ElementType.FLOAT, 1);
                    Ownership.Held _ = Ownership.hold(buffer.ownership())) {
                assertNotEquals(0, buffer.heldPointer(0).address());
                contexts[0] = currentContext();
                CudaDriver.makePrimaryContextCurrent(0);
                contexts[1] = currentContext();
            }
        });
        thread.start();
        thread.join();
        assertNotEquals(0, contexts[0]);
        assertEquals(contexts[0], contexts[1]);
    }

    private static long currentContext() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment current = arena.allocate(C_POINTER);
            assertEquals(CudaDriverFfi.CUDA_SUCCESS(), CudaDriverFfi.cuCtxGetCurrent(current));
            return current.get(C_POINTER, 0).address();
        }
    }

    @Test
    void launchesAPtxKernelOnRuntimeBuffers() throws IOException {
        int n = 1000;
        float[] x = new float[n];
        float[] y = new float[n];
        float[] expected = new float[n];
        for (int i = 0; i < n; i++) {
            x[i] = i * 0.5f;
            y[i] = 1000 - i;
            expected[i] = Math.fma(x[i], 3f, y[i]);
        }
        MemorySegment module = CudaDriver.loadModule(ptx());
        try (DeviceBuffer deviceX = DeviceBuffer.allocate(ElementType.FLOAT, n);
                DeviceBuffer deviceY = DeviceBuffer.allocate(ElementType.FLOAT, n);
                Ownership.Held _ = Ownership.hold(deviceX.ownership(), deviceY.ownership());
                Arena arena = Arena.ofConfined()) {
            MemorySegment function = CudaDriver.function(module, KERNEL);
            assertTrue(CudaDriver.functionAttribute(function, CudaDriver.FUNC_ATTR_NUM_REGS) > 0);
            assertTrue(CudaDriver.functionAttribute(function, CudaDriver.FUNC_ATTR_MAX_THREADS_PER_BLOCK) >= 256);
            CudaDriver.setFunctionAttribute(function, CudaDriver.FUNC_ATTR_MAX_DYNAMIC_SHARED_SIZE_BYTES, 1024);
            assertEquals(
                    1024, CudaDriver.functionAttribute(function, CudaDriver.FUNC_ATTR_MAX_DYNAMIC_SHARED_SIZE_BYTES));
            deviceX.copyFrom(0, x, 0, n);
            deviceY.copyFrom(0, y, 0, n);
            MemorySegment params = arena.allocate(C_POINTER, 4);
            params.setAtIndex(C_POINTER, 0, arena.allocateFrom(C_POINTER, deviceX.heldPointer(0)));
            params.setAtIndex(C_POINTER, 1, arena.allocateFrom(C_POINTER, deviceY.heldPointer(0)));
            params.setAtIndex(C_POINTER, 2, arena.allocateFrom(C_FLOAT, 3f));
            params.setAtIndex(C_POINTER, 3, arena.allocateFrom(C_INT, n));
            CudaDriver.launch(function, KERNEL, (n + 255) / 256, 1, 1, 256, 1, 1, 0, MemorySegment.NULL, params);
            Cuda.synchronize();
            float[] result = new float[n];
            deviceY.copyTo(0, result, 0, n);
            assertArrayEquals(expected, result);

            CudaException tooBig = assertThrows(
                    CudaException.class,
                    () -> CudaDriver.launch(function, KERNEL, 1, 1, 1, 4096, 1, 1, 0, MemorySegment.NULL, params));
            assertEquals("cuLaunchKernel", tooBig.call());
            assertEquals(Optional.of(KERNEL), tooBig.kernel());
            assertTrue(
                    tooBig.getMessage().startsWith("cuLaunchKernel failed for kernel scale_add: CUDA_ERROR_"),
                    tooBig.getMessage());
        } finally {
            CudaDriver.unloadModule(module);
        }
    }

    @Test
    void unknownKernelsAndBrokenPtxAreNamedExceptions() throws IOException {
        MemorySegment module = CudaDriver.loadModule(ptx());
        try {
            CudaException unknown =
                    assertThrows(CudaException.class, () -> CudaDriver.function(module, "no_such_kernel"));
            assertEquals(
                    "cuModuleGetFunction failed for kernel no_such_kernel: CUDA_ERROR_NOT_FOUND (500): named symbol not"
                            + " found",
                    unknown.getMessage());
        } finally {
            CudaDriver.unloadModule(module);
        }
        CudaException broken = assertThrows(
                CudaException.class, () -> CudaDriver.loadModule(ptx().replace("fma.rn.f32", "fma.rn.f33")));
        assertEquals("cuModuleLoadDataEx", broken.call());
        assertEquals("CUDA_ERROR_INVALID_PTX", broken.statusName());
        assertTrue(broken.getMessage().contains("; JIT log: "), broken.getMessage());
    }

    private static String ptx() throws IOException {
        try (InputStream in = CudaDriverGpuTest.class.getResourceAsStream("driver_test.ptx")) {
            return new String(in.readAllBytes(), StandardCharsets.UTF_8);
        }
    }
}
