package dev.panamax.cuda;

/**
 * A cuBLAS call that returned a status other than {@code CUBLAS_STATUS_SUCCESS}, e.g. {@code cublasCreate_v2 failed:
 * CUBLAS_STATUS_NOT_INITIALIZED (1): the library was not initialized}.
 */
public class CublasException extends CudaException {
    private static final long serialVersionUID = 1L;

    /**
     * An exception for a failed call.
     *
     * @param call the failed call
     * @param code the {@code cublasStatus_t} it returned
     * @param statusName the status's name
     * @param description cuBLAS's description of the status
     */
    public CublasException(String call, int code, String statusName, String description) {
        super(call, code, statusName, description);
    }
}
