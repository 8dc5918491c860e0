package dev.panamax.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.HashSet;
import java.util.List;
import java.util.Optional;
import java.util.Set;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * The emulated device exposes GPU bugs (src/test/cuda/faults.cu): each launch ends in a {@link KernelFaultException}
 * naming the kernel, the block, the thread and what happened, never a hang or a crash, and the device works after.
 */
class EmulatedFaultTest {
    private CudaModule module;

    @BeforeEach
    void load() {
        Emulator.require();
        EmulatedDevice.addLibrary(Emulator.TEST_LIBRARY);
        Cuda.useEmulatedDevice();
        module = CudaModule.load("dev/panamax/cuda/ptx/faults.ptx");
    }

    @AfterEach
    void unload() {
        if (module != null) {
            module.close();
        }
        EmulatedDevice.deselect();
    }

    private KernelFaultException fault(String kernel, Dim3 grid, Dim3 block, Object... arguments) {
        return assertThrows(
                KernelFaultException.class, () -> module.kernel(kernel).launch(grid, block, 0, null, arguments));
    }

    @Test
    void aBarrierAfterSomeThreadsExitedIsADivergentBarrier() {
        try (DeviceBuffer out = DeviceBuffer.allocate(ElementType.FLOAT, 64)) {
            KernelFaultException e = fault("barrier_after_exit", Dim3.of(2), Dim3.of(64), out);
            assertEquals(KernelFaultException.Kind.DIVERGENT_BARRIER, e.kind());
            assertEquals(Optional.of("barrier_after_exit"), e.kernel());
            assertEquals(new Dim3(0, 0, 0), e.block());
            assertEquals(new Dim3(16, 0, 0), e.thread());
            assertEquals(
                    "emulated launch failed for kernel barrier_after_exit: CUDA_ERROR_LAUNCH_FAILED (719): "
                            + "block (0,0,0), thread (16,0,0): divergent barrier: 16 of 64 threads wait at __syncthreads "
                            + "(src/test/cuda/faults.cu:11), e.g. thread (0,0,0), but thread (16,0,0) exited",
                    e.getMessage());
        }
    }

    @Test
    void threadsAtDifferentBarriersAreADivergentBarrier() {
        try (DeviceBuffer out = DeviceBuffer.allocate(ElementType.FLOAT, 64)) {
            KernelFaultException e = fault("barriers_apart", Dim3.of(1), Dim3.of(64), out);
            assertEquals(KernelFaultException.Kind.DIVERGENT_BARRIER, e.kind());
            assertEquals(new Dim3(1, 0, 0), e.thread());
            assertEquals(
                    "emulated launch failed for kernel barriers_apart: CUDA_ERROR_LAUNCH_FAILED (719): "
                            + "block (0,0,0), thread (1,0,0): divergent barrier: 32 of 64 threads wait at __syncthreads "
                            + "(src/test/cuda/faults.cu:19), e.g. thread (0,0,0), but thread (1,0,0) waits at __syncthreads "
                            + "(src/test/cuda/faults.cu:22)",
                    e.getMessage());
        }
    }

    @Test
    void aShuffleSomeLanesSkipIsADivergentWarpOperation() {
        try (DeviceBuffer out = DeviceBuffer.allocate(ElementType.FLOAT, 64)) {
            KernelFaultException e = fault("half_warp_shuffle", Dim3.of(1), Dim3.of(64), out);
            assertEquals(KernelFaultException.Kind.DIVERGENT_WARP_OPERATION, e.kind());
            assertEquals(new Dim3(16, 0, 0), e.thread());
            assertEquals(
                    "emulated launch failed for kernel half_warp_shuffle: CUDA_ERROR_LAUNCH_FAILED (719): "
                            + "block (0,0,0), thread (16,0,0): divergent warp operation: thread (0,0,0) waits at "
                            + "__shfl_down_sync (src/test/cuda/faults.cu:55) with mask 0xffffffff, but thread (16,0,0) "
                            + "(lane 16 of warp 0) exited",
                    e.getMessage());
        }
    }

    @Test
    void aWriteBeyondTheBufferIsCaughtInTheRaggedLastBlock() {
        try (DeviceBuffer out = DeviceBuffer.allocate(ElementType.FLOAT, 100)) {
            KernelFaultException e = fault("unchecked_write", Dim3.of(2), Dim3.of(64), out, 100);
            assertEquals(KernelFaultException.Kind.OUT_OF_BOUNDS, e.kind());
            assertEquals(new Dim3(1, 0, 0), e.block());
            assertEquals(new Dim3(36, 0, 0), e.thread());
            assertEquals(
                    "emulated launch failed for kernel unchecked_write: CUDA_ERROR_ILLEGAL_ADDRESS (700): "
                            + "block (1,0,0), thread (36,0,0): out-of-bounds access: 4 bytes at byte offset 400 of argument "
                            + "0, which holds 400 bytes (element 100)",
                    e.getMessage());
        }
    }

    @Test
    void aWriteBeforeTheBufferIsCaught() {
        try (DeviceBuffer out = DeviceBuffer.allocate(ElementType.FLOAT, 8)) {
            KernelFaultException e = fault("write_before_start", Dim3.of(1), Dim3.of(1), out);
            assertEquals(KernelFaultException.Kind.OUT_OF_BOUNDS, e.kind());
            assertEquals(
                    "emulated launch failed for kernel write_before_start: CUDA_ERROR_ILLEGAL_ADDRESS (700): "
                            + "block (0,0,0), thread (0,0,0): out-of-bounds access: 4 bytes at byte offset -4 of argument 0, "
                            + "which holds 32 bytes (element -1)",
                    e.getMessage());
        }
    }

    @Test
    void anIndexBeyondAStaticSharedArrayIsCaught() {
        try (DeviceBuffer out = DeviceBuffer.allocate(ElementType.FLOAT, 64)) {
            KernelFaultException e = fault("shared_overrun", Dim3.of(1), Dim3.of(64), out);
            assertEquals(KernelFaultException.Kind.OUT_OF_BOUNDS, e.kind());
            assertEquals(new Dim3(32, 0, 0), e.thread());
            assertEquals(
                    "emulated launch failed for kernel shared_overrun: CUDA_ERROR_ILLEGAL_ADDRESS (700): "
                            + "block (0,0,0), thread (32,0,0): out-of-bounds index 32 into an array at "
                            + "src/test/cuda/faults.cu:45",
                    e.getMessage());
        }
    }

    @Test
    void aMissingBarrierShowsAsResultsThatDependOnTheSchedule() {
        Set<List<Float>> outcomes = new HashSet<>();
        for (long seed = 0; seed < 4; seed++) {
            Cuda.useEmulatedDevice(seed);
            try (DeviceBuffer out = DeviceBuffer.allocate(ElementType.FLOAT, 64)) {
                module.kernel("missing_barrier").launch(Dim3.of(1), Dim3.of(64), 0, null, out);
                float[] values = new float[64];
                out.copyTo(values);
                List<Float> boxed = new java.util.ArrayList<>();
                for (float value : values) {
                    boxed.add(value);
                }
                outcomes.add(boxed);
            }
        }
        assertFalse(outcomes.size() == 1, "four schedules gave the same result for a kernel that races");
    }

    @Test
    void theDeviceWorksAfterAFault() {
        try (DeviceBuffer out = DeviceBuffer.allocate(ElementType.FLOAT, 100)) {
            fault("unchecked_write", Dim3.of(2), Dim3.of(64), out, 100);
            module.kernel("unchecked_write").launch(Dim3.of(2), Dim3.of(50), 0, null, out, 7);
            float[] values = new float[100];
            out.copyTo(values);
            for (float value : values) {
                assertEquals(7f, value);
            }
        }
    }
}
