package dev.panamax.cuda;

/**
 * CUDA cannot run on this machine: a library is missing or does not load, there is no driver or no device. Thrown by
 * everything that creates a CUDA object (a cuBLAS handle, device or pinned memory, a stream, an event, a module) where
 * it cannot; catching it is how a caller falls back to the CPU. The message is {@code "CUDA cannot run here: "}
 * followed by the {@linkplain #reason() reason}, e.g. {@code libcublas not found, looked for … in: …} or {@code no
 * CUDA driver: cudaGetDeviceCount failed: …}. The same reason comes every time: nothing is retried, and no class
 * fails to initialize.
 */
public class CudaUnavailableException extends CudaException {
    private static final long serialVersionUID = 1L;

    /** Why CUDA cannot run here. */
    private final String reason;

    /**
     * An exception for a machine that cannot run CUDA.
     *
     * @param reason why, e.g. the libraries looked for and where
     */
    public CudaUnavailableException(String reason) {
        super("CUDA cannot run here: " + reason);
        this.reason = reason;
    }

    /**
     * Why CUDA cannot run here.
     *
     * @return the reason, without the message's prefix
     */
    public String reason() {
        return reason;
    }
}
