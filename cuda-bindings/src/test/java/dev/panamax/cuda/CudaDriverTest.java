package dev.panamax.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.lang.foreign.MemorySegment;
import java.util.List;
import java.util.Optional;
import org.junit.jupiter.api.Test;

/** The driver API layer where it cannot run (CI has no driver): a reason, the same exception every time, no crash. */
class CudaDriverTest {
    @Test
    void constantsAreTheValuesOfCudaH() {
        // CU_DEVICE_ATTRIBUTE_* and CU_FUNC_ATTRIBUTE_* as cuda.h numbers them (stable since CUDA 9).
        assertEquals(1, CudaDriver.ATTR_MAX_THREADS_PER_BLOCK);
        assertEquals(
                List.of(2, 3, 4),
                List.of(
                        CudaDriver.ATTR_MAX_BLOCK_DIM_X,
                        CudaDriver.ATTR_MAX_BLOCK_DIM_Y,
                        CudaDriver.ATTR_MAX_BLOCK_DIM_Z));
        assertEquals(
                List.of(5, 6, 7),
                List.of(
                        CudaDriver.ATTR_MAX_GRID_DIM_X,
                        CudaDriver.ATTR_MAX_GRID_DIM_Y,
                        CudaDriver.ATTR_MAX_GRID_DIM_Z));
        assertEquals(8, CudaDriver.ATTR_MAX_SHARED_MEMORY_PER_BLOCK);
        assertEquals(97, CudaDriver.ATTR_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN);
        assertEquals(10, CudaDriver.ATTR_WARP_SIZE);
        assertEquals(16, CudaDriver.ATTR_MULTIPROCESSOR_COUNT);
        assertEquals(0, CudaDriver.FUNC_ATTR_MAX_THREADS_PER_BLOCK);
        assertEquals(4, CudaDriver.FUNC_ATTR_NUM_REGS);
        assertEquals(8, CudaDriver.FUNC_ATTR_MAX_DYNAMIC_SHARED_SIZE_BYTES);
    }

    @Test
    void withoutADriverEveryCallThrowsTheSameUnavailableReason() {
        Optional<String> unavailable = CudaDriver.unavailableReason();
        assumeTrue(unavailable.isPresent(), "the CUDA driver API works here");
        String reason = unavailable.orElseThrow();
        if (Libraries.Driver.FOUND.path().isEmpty()) {
            assertTrue(
                    reason.startsWith("no CUDA driver: libcuda not found, looked for libcuda.so.1 libcuda.so in: "),
                    reason);
        } else {
            assertTrue(reason.startsWith("cuInit failed: CUDA_ERROR_"), reason);
        }
        MemorySegment handle = MemorySegment.ofAddress(64);
        List<Runnable> calls = List.of(
                () -> CudaDriver.deviceAttribute(0, CudaDriver.ATTR_WARP_SIZE),
                () -> CudaDriver.makePrimaryContextCurrent(0),
                () -> CudaDriver.loadModule(".version 8.0\n.target sm_80\n.address_size 64\n"),
                () -> CudaDriver.unloadModule(handle),
                () -> CudaDriver.function(handle, "vector_add"),
                () -> CudaDriver.functionAttribute(handle, CudaDriver.FUNC_ATTR_NUM_REGS),
                () -> CudaDriver.setFunctionAttribute(handle, CudaDriver.FUNC_ATTR_MAX_DYNAMIC_SHARED_SIZE_BYTES, 0),
                () -> CudaDriver.launch(
                        handle, "vector_add", 1, 1, 1, 32, 1, 1, 0, MemorySegment.NULL, MemorySegment.NULL));
        for (int round = 0; round < 2; round++) {
            for (Runnable call : calls) {
                CudaUnavailableException e = assertThrows(CudaUnavailableException.class, call::run);
                assertEquals(reason, e.reason());
                assertEquals("CUDA cannot run here: " + reason, e.getMessage());
                assertEquals("", e.call());
                assertEquals(Optional.empty(), e.kernel());
            }
        }
    }

    @Test
    void ptxWithANulCharacterIsRejectedBeforeTheDriverSeesIt() {
        IllegalArgumentException e =
                assertThrows(IllegalArgumentException.class, () -> CudaDriver.loadModule(".version\0 8.0"));
        assertEquals("ptx contains a NUL character at index 8", e.getMessage());
        assertThrows(NullPointerException.class, () -> CudaDriver.function(null, "k"));
        assertThrows(NullPointerException.class, () -> CudaDriver.function(MemorySegment.NULL, null));
    }
}
