package dev.panamax.cuda.spi;

import dev.panamax.cuda.Transpose;
import java.lang.foreign.MemorySegment;

/**
 * FP32 matrix products on the host, through which {@link dev.panamax.cuda.Cublas} serves cuBLAS's products on the
 * emulated device. cuda-bindings depends on nothing but the JDK, so it finds an implementation with {@link
 * java.util.ServiceLoader}: {@code dev.panamax.model} provides one over the kernels module's {@code Gemm}.
 *
 * <p>The contract is the kernels module's {@code Gemm.sgemmStridedBatched}, row-major: {@code C_i = alpha·op(A_i)·op(B_i)
 * + beta·C_i} for {@code i < batchCount}, {@code op(A)} {@code m × k}, {@code op(B)} {@code k × n}, C {@code m × n};
 * element {@code (r, c)} of a matrix with leading dimension {@code ld} at {@code offset + i·stride + r·ld + c}; offsets,
 * strides and leading dimensions count floats; {@code beta == 0} means C is not read; accumulation in FP32. Arguments
 * arrive checked; an implementation must be safe to call from many threads at once.
 */
public interface HostGemm {
    /**
     * A batch of row-major FP32 products.
     *
     * @param transA whether each A is used transposed
     * @param transB whether each B is used transposed
     * @param m rows of op(A) and C
     * @param n columns of op(B) and C
     * @param k columns of op(A), rows of op(B)
     * @param alpha scale of the products
     * @param a the A matrices (floats)
     * @param aOffset index of the first A's first element
     * @param lda leading dimension of each A
     * @param strideA distance between consecutive A matrices
     * @param b the B matrices
     * @param bOffset index of the first B's first element
     * @param ldb leading dimension of each B
     * @param strideB distance between consecutive B matrices
     * @param beta scale of the C matrices' old values
     * @param c the C matrices
     * @param cOffset index of the first C's first element
     * @param ldc leading dimension of each C
     * @param strideC distance between consecutive C matrices
     * @param batchCount number of products
     */
    void sgemmStridedBatched(
            Transpose transA,
            Transpose transB,
            int m,
            int n,
            int k,
            float alpha,
            MemorySegment a,
            long aOffset,
            int lda,
            long strideA,
            MemorySegment b,
            long bOffset,
            int ldb,
            long strideB,
            float beta,
            MemorySegment c,
            long cOffset,
            int ldc,
            long strideC,
            int batchCount);
}
