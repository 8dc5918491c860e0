package dev.panamax.cuda.spi;

import dev.panamax.cuda.Transpose;
import java.lang.foreign.MemorySegment;
import java.util.Objects;

/**
 * FP32 matrix products on the host, through which {@link dev.panamax.cuda.Cublas} serves cuBLAS's products on the
 * emulated device. cuda-bindings depends on nothing but the JDK, so it finds an implementation with {@link
 * java.util.ServiceLoader}: {@code dev.panamax.model} provides one over the kernels module's {@code Gemm}. A provider
 * is a subclass with a public no-argument constructor that hands this class its {@link Product}, such as {@code
 * Gemm::sgemmStridedBatched}, and the values that product takes for the two transposes.
 *
 * <p>The contract is the kernels module's {@code Gemm.sgemmStridedBatched}, row-major: {@code C_i = alpha·op(A_i)·op(B_i)
 * + beta·C_i} for {@code i < batchCount}, {@code op(A)} {@code m × k}, {@code op(B)} {@code k × n}, C {@code m × n};
 * element {@code (r, c)} of a matrix with leading dimension {@code ld} at {@code offset + i·stride + r·ld + c}; offsets,
 * strides and leading dimensions count floats; {@code beta == 0} means C is not read; accumulation in FP32. Arguments
 * arrive checked; a product must be safe to call from many threads at once.
 *
 * @param <T> the type in which the product takes its transposes
 */
public abstract class HostGemm<T> {
    private final Product<T> product;
    private final T noTranspose;
    private final T transpose;

    /**
     * A host GEMM served by {@code product}.
     *
     * @param product the batched product, with this class's contract
     * @param noTranspose the product's value for {@link Transpose#NO_TRANSPOSE}
     * @param transpose the product's value for {@link Transpose#TRANSPOSE}
     */
    protected HostGemm(Product<T> product, T noTranspose, T transpose) {
        this.product = Objects.requireNonNull(product, "product");
        this.noTranspose = Objects.requireNonNull(noTranspose, "noTranspose");
        this.transpose = Objects.requireNonNull(transpose, "transpose");
    }

    /**
     * The product that serves cuBLAS's products.
     *
     * @return the product
     */
    public final Product<T> product() {
        return product;
    }

    /**
     * The product's value for a transpose.
     *
     * @param op whether a matrix is used transposed
     * @return {@code transpose} for {@link Transpose#TRANSPOSE}, else {@code noTranspose}
     */
    public final T transpose(Transpose op) {
        return op == Transpose.TRANSPOSE ? transpose : noTranspose;
    }

    /**
     * A batched FP32 product with {@link HostGemm}'s contract whose transposes are of type {@code T}: the shape of the
     * kernels module's {@code Gemm.sgemmStridedBatched}.
     *
     * @param <T> the type of the transposes
     */
    @FunctionalInterface
    public interface Product<T> {
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
                T transA,
                T transB,
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
}
