package dev.panamax.kernels;

/** Whether a matrix operand is used as stored ({@code op(X) = X}) or transposed ({@code op(X) = Xᵀ}), as in BLAS. */
public enum Transpose {
    /** Use the matrix as stored. */
    NO_TRANSPOSE,
    /** Use the transpose of the stored matrix. */
    TRANSPOSE;

    boolean transposed() {
        return this == TRANSPOSE;
    }
}
