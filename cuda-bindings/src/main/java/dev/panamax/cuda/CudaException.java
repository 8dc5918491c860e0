package dev.panamax.cuda;

/**
 * A CUDA runtime call that returned an error status. The message names the call, the status's name and code, and the
 * runtime's description of it, e.g. {@code cudaMalloc failed: cudaErrorMemoryAllocation (2): out of memory}.
 */
public class CudaException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    /** The failed call, e.g. {@code cudaMalloc}. */
    private final String call;

    /** The status code the call returned. */
    private final int code;

    /** The status's name, e.g. {@code cudaErrorMemoryAllocation}. */
    private final String statusName;

    /**
     * An exception for a failed call.
     *
     * @param call the failed call
     * @param code the status code it returned
     * @param statusName the status's name
     * @param description the library's description of the status
     */
    public CudaException(String call, int code, String statusName, String description) {
        super(call + " failed: " + statusName + " (" + code + ")" + (description.isEmpty() ? "" : ": " + description));
        this.call = call;
        this.code = code;
        this.statusName = statusName;
    }

    /**
     * The failed call.
     *
     * @return the function's name, e.g. {@code cudaMalloc}
     */
    public String call() {
        return call;
    }

    /**
     * The status code the call returned.
     *
     * @return the numeric status
     */
    public int code() {
        return code;
    }

    /**
     * The status's name.
     *
     * @return e.g. {@code cudaErrorMemoryAllocation} or {@code CUBLAS_STATUS_NOT_INITIALIZED}
     */
    public String statusName() {
        return statusName;
    }
}
