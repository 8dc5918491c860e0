package dev.panamax.cuda;

/**
 * Whether a matrix operand is used as stored ({@code op(X) = X}) or transposed ({@code op(X) = Xᵀ}), as in BLAS and
 * in the kernels module's {@code Transpose}.
 */
public enum Transpose {
    /** Use the matrix as stored. */
    NO_TRANSPOSE,
    /** Use the transpose of the stored matrix. */
    TRANSPOSE
}
