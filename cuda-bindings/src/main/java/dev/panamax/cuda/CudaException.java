package dev.panamax.cuda;

import java.util.Optional;
import java.util.Set;

/**
 * A CUDA call that returned an error status. The message names the call, the kernel where there is one, the status's
 * name and code, and the library's description of it, e.g. {@code cudaMalloc failed: cudaErrorMemoryAllocation (2):
 * out of memory} or {@code cuLaunchKernel failed for kernel vector_add: CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES (701): too
 * many resources requested for launch}.
 *
 * <p>A sticky error ({@link #sticky()}, e.g. {@code cudaErrorIllegalAddress} from a GPU) is a kernel's fault on the
 * device, or an uncorrectable memory error: CUDA
 * reports it at whatever call comes next, which need not be the one that caused it, and every later call in the process
 * fails the same way. Its message says so.
 *
 * <p>{@link CudaUnavailableException}, the subclass for a machine that cannot run CUDA at all, has no call or status:
 * its {@link #call()} and {@link #statusName()} are empty and its {@link #code()} is 0.
 */
public class CudaException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    /**
     * The statuses that leave the process's CUDA context unusable, runtime and driver spellings: CUDA's documentation
     * says the process must be restarted to use CUDA again after any of them.
     */
    private static final Set<String> STICKY = Set.of(
            "cudaErrorIllegalAddress",
            "cudaErrorLaunchFailure",
            "cudaErrorLaunchTimeout",
            "cudaErrorMisalignedAddress",
            "cudaErrorInvalidAddressSpace",
            "cudaErrorInvalidPc",
            "cudaErrorIllegalInstruction",
            "cudaErrorHardwareStackError",
            "cudaErrorAssert",
            "cudaErrorECCUncorrectable",
            "CUDA_ERROR_ILLEGAL_ADDRESS",
            "CUDA_ERROR_LAUNCH_FAILED",
            "CUDA_ERROR_LAUNCH_TIMEOUT",
            "CUDA_ERROR_MISALIGNED_ADDRESS",
            "CUDA_ERROR_INVALID_ADDRESS_SPACE",
            "CUDA_ERROR_INVALID_PC",
            "CUDA_ERROR_ILLEGAL_INSTRUCTION",
            "CUDA_ERROR_HARDWARE_STACK_ERROR",
            "CUDA_ERROR_ASSERT",
            "CUDA_ERROR_ECC_UNCORRECTABLE");

    /** The failed call, e.g. {@code cudaMalloc}. */
    private final String call;

    /** The status code the call returned. */
    private final int code;

    /** The status's name, e.g. {@code cudaErrorMemoryAllocation}. */
    private final String statusName;

    /** The kernel the call was about, or null. */
    private final String kernel;

    /** Whether a real device's CUDA context is unusable after this status: see {@link #sticky()}. */
    private final boolean sticky;

    /**
     * An exception for a failed call.
     *
     * @param call the failed call
     * @param code the status code it returned
     * @param statusName the status's name
     * @param description the library's description of the status
     */
    public CudaException(String call, int code, String statusName, String description) {
        this(call, null, code, statusName, description);
    }

    /**
     * An exception for a failed call about one kernel, e.g. {@code cuModuleGetFunction} or {@code cuLaunchKernel}.
     *
     * @param call the failed call
     * @param kernel the kernel's name, or null when the call was about none
     * @param code the status code it returned
     * @param statusName the status's name
     * @param description the library's description of the status
     */
    public CudaException(String call, String kernel, int code, String statusName, String description) {
        this(call, kernel, code, statusName, description, false);
    }

    /**
     * The exception for a status a real device's runtime or driver returned: a sticky one says so in its message.
     *
     * @param call the failed call
     * @param kernel the kernel's name, or null when the call was about none
     * @param code the status code it returned
     * @param statusName the status's name
     * @param description the library's description of the status
     * @return the exception
     */
    static CudaException fromDevice(String call, String kernel, int code, String statusName, String description) {
        return new CudaException(call, kernel, code, statusName, description, STICKY.contains(statusName));
    }

    private CudaException(String call, String kernel, int code, String statusName, String description, boolean sticky) {
        super(call
                + " failed"
                + (kernel == null ? "" : " for kernel " + kernel)
                + ": "
                + statusName
                + " ("
                + code
                + ")"
                + (description.isEmpty() ? "" : ": " + description)
                + (sticky
                        ? " (a sticky error: the device failed, a kernel's fault or an uncorrectable memory error, maybe"
                                + " in an earlier launch than this call;"
                                + " every later CUDA call in this process fails too, so the process must be restarted to"
                                + " use CUDA again)"
                        : ""));
        this.call = call;
        this.kernel = kernel;
        this.code = code;
        this.statusName = statusName;
        this.sticky = sticky;
    }

    /**
     * An exception with a message of its own and no failed call, for subclasses such as {@link
     * CudaUnavailableException}.
     *
     * @param message the message
     */
    protected CudaException(String message) {
        super(message);
        this.call = "";
        this.kernel = null;
        this.code = 0;
        this.statusName = "";
        this.sticky = false;
    }

    /**
     * The failed call.
     *
     * @return the function's name, e.g. {@code cudaMalloc}; empty for a {@link CudaUnavailableException}
     */
    public String call() {
        return call;
    }

    /**
     * The kernel the failed call was about.
     *
     * @return the kernel's name, or empty when the call was about no kernel
     */
    public Optional<String> kernel() {
        return Optional.ofNullable(kernel);
    }

    /**
     * The status code the call returned.
     *
     * @return the numeric status; 0 for a {@link CudaUnavailableException}
     */
    public int code() {
        return code;
    }

    /**
     * The status's name.
     *
     * @return e.g. {@code cudaErrorMemoryAllocation} or {@code CUBLAS_STATUS_NOT_INITIALIZED}; empty for a {@link
     *     CudaUnavailableException}
     */
    public String statusName() {
        return statusName;
    }

    /**
     * Whether a real device returned a status after which the process's CUDA context is unusable: a kernel's fault on
     * the device, reported at this call or a later one. The emulated device's faults ({@link KernelFaultException})
     * are not sticky: it goes on working after one.
     *
     * @return true for a sticky error such as {@code cudaErrorIllegalAddress} from a GPU
     */
    public boolean sticky() {
        return sticky;
    }
}
