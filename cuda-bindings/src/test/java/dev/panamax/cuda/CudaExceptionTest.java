package dev.panamax.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Optional;
import org.junit.jupiter.api.Test;

/** What the exceptions say. */
class CudaExceptionTest {
    @Test
    void aFailedCallNamesTheCallTheKernelAndTheStatus() {
        CudaException launch = new CudaException(
                "cuLaunchKernel",
                "vector_add",
                701,
                "CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES",
                "too many resources requested for launch");
        assertEquals(
                "cuLaunchKernel failed for kernel vector_add: CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES (701): too many "
                        + "resources requested for launch",
                launch.getMessage());
        assertEquals("cuLaunchKernel", launch.call());
        assertEquals(Optional.of("vector_add"), launch.kernel());
        assertEquals(701, launch.code());
        assertEquals("CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES", launch.statusName());

        CudaException malloc = new CudaException("cudaMalloc", 2, "cudaErrorMemoryAllocation", "out of memory");
        assertEquals("cudaMalloc failed: cudaErrorMemoryAllocation (2): out of memory", malloc.getMessage());
        assertEquals(Optional.empty(), malloc.kernel());
        assertFalse(malloc.sticky());
    }

    @Test
    void aStickyErrorSaysTheCallMayNotBeItsCauseAndThatCudaIsGoneForTheProcess() {
        CudaException copy = CudaException.fromDevice(
                "cudaMemcpyAsync", null, 700, "cudaErrorIllegalAddress", "an illegal memory access was encountered");
        assertTrue(copy.sticky());
        assertTrue(
                copy.getMessage()
                        .startsWith(
                                "cudaMemcpyAsync failed: cudaErrorIllegalAddress (700): an illegal memory access was"
                                        + " encountered (a sticky error: the device failed, a kernel's fault or an"
                                        + " uncorrectable memory error, maybe in an earlier launch than this call;"),
                copy.getMessage());
        assertTrue(copy.getMessage().endsWith("the process must be restarted to use CUDA again)"), copy.getMessage());
        assertTrue(CudaException.fromDevice(
                        "cuCtxSynchronize", null, 719, "CUDA_ERROR_LAUNCH_FAILED", "unspecified launch failure")
                .sticky());
        // The emulated device reports the same statuses for a kernel's fault, and goes on working after one.
        assertFalse(new CudaException("emulated launch", "k", 700, "CUDA_ERROR_ILLEGAL_ADDRESS", "bad index").sticky());
    }

    @Test
    void unavailableIsACudaExceptionWithTheReasonAndNoStatus() {
        CudaException e = new CudaUnavailableException("no CUDA device");
        assertEquals("CUDA cannot run here: no CUDA device", e.getMessage());
        assertEquals("no CUDA device", ((CudaUnavailableException) e).reason());
        assertEquals("", e.call());
        assertEquals("", e.statusName());
        assertEquals(0, e.code());
        assertEquals(Optional.empty(), e.kernel());
    }
}
