package dev.panamax.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

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

    /**
     * Launches a broken kernel on one {@code elements}-float buffer (plus {@code more} arguments) and checks the fault:
     * its kind, kernel, block and thread, and the message with the status a GPU would report and the detail.
     */
    private void assertFault(
            String kernel,
            Dim3 grid,
            Dim3 block,
            int elements,
            KernelFaultException.Kind kind,
            Dim3 faultBlock,
            Dim3 faultThread,
            String detail,
            Object... more) {
        try (DeviceBuffer out = DeviceBuffer.allocate(ElementType.FLOAT, elements)) {
            Object[] arguments = new Object[1 + more.length];
            arguments[0] = out;
            System.arraycopy(more, 0, arguments, 1, more.length);
            KernelFaultException e = assertThrows(
                    KernelFaultException.class, () -> module.kernel(kernel).launch(grid, block, 0, null, arguments));
            assertEquals(kind, e.kind());
            assertEquals(Optional.of(kernel), e.kernel());
            assertEquals(faultBlock, e.block());
            assertEquals(faultThread, e.thread());
            String status = kind == KernelFaultException.Kind.OUT_OF_BOUNDS
                    ? "CUDA_ERROR_ILLEGAL_ADDRESS (700)"
                    : "CUDA_ERROR_LAUNCH_FAILED (719)";
            assertEquals(
                    "emulated launch failed for kernel " + kernel + ": " + status + ": block " + faultBlock
                            + ", thread " + faultThread + ": " + detail,
                    e.getMessage());
        }
    }

    @Test
    void aBarrierAfterSomeThreadsExitedIsADivergentBarrier() {
        assertFault(
                "barrier_after_exit",
                Dim3.of(2),
                Dim3.of(64),
                64,
                KernelFaultException.Kind.DIVERGENT_BARRIER,
                new Dim3(0, 0, 0),
                new Dim3(16, 0, 0),
                "divergent barrier: 16 of 64 threads wait at __syncthreads (src/test/cuda/faults.cu:11), e.g. thread "
                        + "(0,0,0), but thread (16,0,0) exited");
    }

    @Test
    void threadsAtDifferentBarriersAreADivergentBarrier() {
        assertFault(
                "barriers_apart",
                Dim3.of(1),
                Dim3.of(64),
                64,
                KernelFaultException.Kind.DIVERGENT_BARRIER,
                new Dim3(0, 0, 0),
                new Dim3(1, 0, 0),
                "divergent barrier: 32 of 64 threads wait at __syncthreads (src/test/cuda/faults.cu:19), e.g. thread "
                        + "(0,0,0), but thread (1,0,0) waits at __syncthreads (src/test/cuda/faults.cu:22)");
    }

    @Test
    void aShuffleSomeLanesSkipIsADivergentWarpOperation() {
        assertFault(
                "half_warp_shuffle",
                Dim3.of(1),
                Dim3.of(64),
                64,
                KernelFaultException.Kind.DIVERGENT_WARP_OPERATION,
                new Dim3(0, 0, 0),
                new Dim3(16, 0, 0),
                "divergent warp operation: thread (0,0,0) waits at __shfl_down_sync (src/test/cuda/faults.cu:55) "
                        + "with mask 0xffffffff, but thread (16,0,0) (lane 16 of warp 0) exited");
    }

    @Test
    void aWriteBeyondTheBufferIsCaughtInTheRaggedLastBlock() {
        assertFault(
                "unchecked_write",
                Dim3.of(2),
                Dim3.of(64),
                100,
                KernelFaultException.Kind.OUT_OF_BOUNDS,
                new Dim3(1, 0, 0),
                new Dim3(36, 0, 0),
                "out-of-bounds access: 4 bytes at byte offset 400 of argument 0, which holds 400 bytes (element 100)",
                100);
    }

    @Test
    void aWriteBeforeTheBufferIsCaught() {
        assertFault(
                "write_before_start",
                Dim3.of(1),
                Dim3.of(1),
                8,
                KernelFaultException.Kind.OUT_OF_BOUNDS,
                new Dim3(0, 0, 0),
                new Dim3(0, 0, 0),
                "out-of-bounds access: 4 bytes at byte offset -4 of argument 0, which holds 32 bytes (element -1)");
    }

    @Test
    void anIndexBeyondAStaticSharedArrayIsCaught() {
        assertFault(
                "shared_overrun",
                Dim3.of(1),
                Dim3.of(64),
                64,
                KernelFaultException.Kind.OUT_OF_BOUNDS,
                new Dim3(0, 0, 0),
                new Dim3(32, 0, 0),
                "out-of-bounds index 32 into an array at src/test/cuda/faults.cu:45");
    }

    @Test
    void aShuffleReadingALaneOutsideItsMaskIsCaught() {
        assertFault(
                "shuffle_outside_mask",
                Dim3.of(1),
                Dim3.of(32),
                32,
                KernelFaultException.Kind.DIVERGENT_WARP_OPERATION,
                new Dim3(0, 0, 0),
                new Dim3(0, 0, 0),
                "__shfl_sync (src/test/cuda/faults.cu:75): lane 0 reads lane 20, which is not in the mask 0x0000ffff");
    }

    @Test
    void aMaskThatLeavesTheCallerOutIsCaught() {
        assertFault(
                "mask_without_caller",
                Dim3.of(1),
                Dim3.of(32),
                32,
                KernelFaultException.Kind.DIVERGENT_WARP_OPERATION,
                new Dim3(0, 0, 0),
                new Dim3(0, 0, 0),
                "__shfl_sync (src/test/cuda/faults.cu:84) with mask 0x00000002 called by lane 0, which the mask "
                        + "leaves out");
    }

    @Test
    void anIntegerDivisionByZeroIsATrap() {
        assertFault(
                "divide",
                Dim3.of(1),
                Dim3.of(4),
                4,
                KernelFaultException.Kind.TRAP,
                new Dim3(0, 0, 0),
                new Dim3(0, 0, 0),
                "integer division by zero or overflow at src/test/cuda/faults.cu:90",
                0);
    }

    @Test
    void aTrapNamesItsThread() {
        assertFault(
                "trap_in_one_thread",
                Dim3.of(2),
                Dim3.of(8),
                16,
                KernelFaultException.Kind.TRAP,
                new Dim3(1, 0, 0),
                new Dim3(3, 0, 0),
                "__trap() at src/test/cuda/faults.cu:97");
    }

    /**
     * A recursion deeper than a fiber's stack faults at its next checked access, before it reaches the guard page below
     * the stack (which would end the process) or another thread's stack; a shallow one runs.
     */
    @Test
    void aStackOverflowIsAFaultAndTheDeviceWorksAfter() {
        try (DeviceBuffer out = DeviceBuffer.allocate(ElementType.FLOAT, 64)) {
            KernelFaultException e = assertThrows(KernelFaultException.class, () -> module.kernel("deep_recursion")
                    .launch(Dim3.of(2), Dim3.of(64), 0, null, out, 4096));
            assertEquals(KernelFaultException.Kind.TRAP, e.kind());
            assertEquals(new Dim3(0, 0, 0), e.block());
            assertTrue(
                    e.getMessage().contains("stack overflow: the thread has used ")
                            && e.getMessage().contains(" of its 262144-byte stack"),
                    e.getMessage());
            module.kernel("deep_recursion").launch(Dim3.of(2), Dim3.of(64), 0, null, out, 16);
            float[] values = new float[64];
            out.copyTo(values);
            assertEquals(136f, values[5], "the levels' depths, 16 + 15 + ... + 1");
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
        aWriteBeyondTheBufferIsCaughtInTheRaggedLastBlock();
        try (DeviceBuffer out = DeviceBuffer.allocate(ElementType.FLOAT, 100)) {
            module.kernel("unchecked_write").launch(Dim3.of(2), Dim3.of(50), 0, null, out, 7);
            float[] values = new float[100];
            out.copyTo(values);
            for (float value : values) {
                assertEquals(7f, value);
            }
        }
    }
}
