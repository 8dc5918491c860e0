package dev.panamax.cuda;

/**
 * A kernel did what a GPU cannot run correctly, caught by the emulated device: an out-of-bounds access, a barrier or warp operation that not every thread reaches, or a trap. The message names the kernel, the block and
 * the thread, and what happened, e.g. {@code emulated launch failed for kernel block_sum: CUDA_ERROR_ILLEGAL_ADDRESS
 * (700): block (3,0,0), thread (232,0,0): out-of-bounds access: 4 bytes at byte offset 4000 of argument 0, which holds
 * 4000 bytes (element 1000)}. The status is the one a GPU would most likely report, if
 * any; {@link #kind()} says exactly what the emulator saw.
 */
public final class KernelFaultException extends CudaException {
    private static final long serialVersionUID = 1L;

    /** What went wrong. */
    public enum Kind {
        /** An access outside the allocation a pointer points into, or outside a shared array. */
        OUT_OF_BOUNDS(700, "CUDA_ERROR_ILLEGAL_ADDRESS"),
        /** A {@code __syncthreads} that some thread of the block never reaches (it exited or waits elsewhere). */
        DIVERGENT_BARRIER(719, "CUDA_ERROR_LAUNCH_FAILED"),
        /** A warp shuffle or vote that a lane named in its mask never reaches, or that reads a lane outside it. */
        DIVERGENT_WARP_OPERATION(719, "CUDA_ERROR_LAUNCH_FAILED"),
        /**
         * {@code __trap()}, an integer division by zero, a thread's stack overflow (on the emulated device), or a
         * launch the emulator could not set up.
         */
        TRAP(719, "CUDA_ERROR_LAUNCH_FAILED");

        private final int code;
        private final String statusName;

        Kind(int code, String statusName) {
            this.code = code;
            this.statusName = statusName;
        }
    }

    private final Kind kind;
    private final Dim3 block;
    private final Dim3 thread;

    KernelFaultException(String kernel, Kind kind, Dim3 block, Dim3 thread, String what) {
        super(
                "emulated launch",
                kernel,
                kind.code,
                kind.statusName,
                "block " + block + ", thread " + thread + ": " + what);
        this.kind = kind;
        this.block = block;
        this.thread = thread;
    }

    /**
     * What went wrong.
     *
     * @return the fault's kind
     */
    public Kind kind() {
        return kind;
    }

    /**
     * The block of the thread blamed.
     *
     * @return its {@code blockIdx}
     */
    public Dim3 block() {
        return block;
    }

    /**
     * The thread blamed: the one that made the access, or one that did not reach the barrier or warp operation.
     *
     * @return its {@code threadIdx}
     */
    public Dim3 thread() {
        return thread;
    }
}
