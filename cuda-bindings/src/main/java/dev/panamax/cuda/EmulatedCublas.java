package dev.panamax.cuda;

import dev.panamax.cuda.spi.HostGemm;
import java.lang.foreign.MemorySegment;
import java.util.Optional;
import java.util.ServiceConfigurationError;
import java.util.ServiceLoader;

/**
 * cuBLAS's GEMM contract on the emulated device, column-major as cuBLAS documents it, served by a {@link HostGemm}:
 * {@code C_i = alpha·op(A_i)·op(B_i) + beta·C_i} with element {@code (r, c)} of a matrix with leading dimension {@code
 * ld} at {@code r + c·ld}. A column-major matrix is the transpose of the row-major matrix with the same memory, so
 * {@code C = alpha·op(A)·op(B) + beta·C} here is {@code Cᵀ = alpha·op(B)ᵀ·op(A)ᵀ + beta·Cᵀ} in row-major: the row-major
 * product of B and A with the same transposes, {@code n × m}. FP16 and BF16 operands are widened to FP32 (exactly),
 * products accumulate in FP32 ({@code CUBLAS_COMPUTE_32F}), and a C of FP16 or BF16 is rounded to nearest even, only
 * its {@code m × n} elements written.
 */
final class EmulatedCublas {
    private EmulatedCublas() {}

    /** The provider, looked for once; a broken provider configuration is a reason, never a class-init failure. */
    private static final class Provider {
        static final HostGemm<?> GEMM;
        static final String REASON;

        static {
            HostGemm<?> found = null;
            String reason;
            try {
                found = ServiceLoader.load(HostGemm.class).findFirst().orElse(null);
                reason = found == null
                        ? "cuBLAS on the emulated device needs an implementation of " + HostGemm.class.getName()
                                + " (dev.panamax.model provides one over the kernels module's Gemm); none is on the"
                                + " module or class path"
                        : "";
            } catch (ServiceConfigurationError e) {
                reason = "cuBLAS on the emulated device could not load its " + HostGemm.class.getName() + ": "
                        + e.getMessage();
            }
            GEMM = found;
            REASON = reason;
        }

        private Provider() {}
    }

    /**
     * The host GEMM that serves cuBLAS on the emulated device.
     *
     * @return the provider
     * @throws CudaUnavailableException when there is none
     */
    static HostGemm<?> gemm() {
        if (Provider.GEMM == null) {
            throw new CudaUnavailableException(Provider.REASON);
        }
        return Provider.GEMM;
    }

    /**
     * Why cuBLAS cannot run on the emulated device.
     *
     * @return the reason, or empty when a provider was found
     */
    static Optional<String> unavailableReason() {
        return Provider.REASON.isEmpty() ? Optional.empty() : Optional.of(Provider.REASON);
    }

    /**
     * A batch of column-major products with cuBLAS's arguments ({@code cublasGemmStridedBatchedEx} with {@code
     * CUBLAS_COMPUTE_32F}; the other three products are special cases). Arguments must be valid for cuBLAS: leading
     * dimensions at least the stored column length, every matrix inside its segment.
     *
     * @param gemm the host GEMM
     * @param tf32 whether FP32 operands are first rounded to TF32 ({@code CUBLAS_COMPUTE_32F_FAST_TF32})
     * @param opA whether each A is used transposed
     * @param opB whether each B is used transposed
     * @param m rows of op(A) and C
     * @param n columns of op(B) and C
     * @param k columns of op(A), rows of op(B)
     * @param alpha scale of the products
     * @param a memory holding the A matrices
     * @param typeA the element type of A and B
     * @param aOffset index of the first A's first element
     * @param lda leading dimension of each A
     * @param strideA distance between consecutive A matrices
     * @param b memory holding the B matrices
     * @param bOffset index of the first B's first element
     * @param ldb leading dimension of each B
     * @param strideB distance between consecutive B matrices
     * @param beta scale of the C matrices' old values; 0 means they are not read
     * @param c memory holding the C matrices
     * @param typeC the element type of C: FLOAT or that of A and B
     * @param cOffset index of the first C's first element
     * @param ldc leading dimension of each C
     * @param strideC distance between consecutive C matrices
     * @param batchCount number of products
     * @param <T> the host GEMM's type for transposes
     */
    static <T> void gemm(
            HostGemm<T> gemm,
            boolean tf32,
            Transpose opA,
            Transpose opB,
            int m,
            int n,
            int k,
            float alpha,
            MemorySegment a,
            ElementType typeA,
            long aOffset,
            int lda,
            long strideA,
            MemorySegment b,
            long bOffset,
            int ldb,
            long strideB,
            float beta,
            MemorySegment c,
            ElementType typeC,
            long cOffset,
            int ldc,
            long strideC,
            int batchCount) {
        if (m == 0 || n == 0 || batchCount == 0) {
            return;
        }
        boolean ta = opA == Transpose.TRANSPOSE;
        boolean tb = opB == Transpose.TRANSPOSE;
        // Stored column-major: A is (ta ? k : m) rows by (ta ? m : k) columns, B (tb ? n : k) by (tb ? k : n).
        Floats fa = Floats.of(a, typeA, tf32, aOffset, extent(ta ? k : m, ta ? m : k, lda, strideA, batchCount));
        Floats fb = Floats.of(b, typeA, tf32, bOffset, extent(tb ? n : k, tb ? k : n, ldb, strideB, batchCount));
        Floats fc = Floats.of(c, typeC, false, cOffset, extent(m, n, ldc, strideC, batchCount));
        HostGemm.Product<T> product = gemm.product();
        product.sgemmStridedBatched(
                gemm.transpose(opB),
                gemm.transpose(opA),
                n,
                m,
                k,
                alpha,
                fb.memory,
                fb.offset,
                ldb,
                strideB,
                fa.memory,
                fa.offset,
                lda,
                strideA,
                beta,
                fc.memory,
                fc.offset,
                ldc,
                strideC,
                batchCount);
        if (typeC != ElementType.FLOAT) {
            float[] result = fc.widened;
            for (int i = 0; i < batchCount; i++) {
                for (int column = 0; column < n; column++) {
                    int start = Math.toIntExact(i * strideC + (long) column * ldc);
                    typeC.store(result, start, c, cOffset + start, m);
                }
            }
        }
    }

    /**
     * Rounds a float to TF32, the 10 explicit mantissa bits a tensor core reads, to nearest even; NaN and infinities
     * stay as they are, and a value past TF32's largest finite one (which FP32's exponent range shares) becomes
     * infinite.
     *
     * @param value the FP32 value
     * @return the nearest TF32 value, as a float whose 13 low mantissa bits are 0
     */
    static float toTf32(float value) {
        if (!Float.isFinite(value)) {
            return value;
        }
        int bits = Float.floatToRawIntBits(value);
        int rounded = (bits + 0xFFF + ((bits >>> 13) & 1)) & ~0x1FFF;
        return Float.intBitsToFloat(rounded);
    }

    /** Elements from the first to one past the last of a batch of column-major {@code rows × cols} matrices. */
    private static long extent(int rows, int cols, int ld, long stride, int batchCount) {
        if (rows == 0 || cols == 0) {
            return 0;
        }
        return Math.addExact(Math.multiplyExact(batchCount - 1L, stride), (cols - 1L) * ld + rows);
    }

    /**
     * An operand as floats: FLOAT memory as it is, FP16 or BF16 widened into a heap array.
     *
     * @param memory the floats
     * @param offset index of the operand's first element in {@code memory}
     * @param widened the heap array when the operand was widened, else null
     */
    private record Floats(MemorySegment memory, long offset, float[] widened) {
        static Floats of(MemorySegment memory, ElementType type, boolean tf32, long offset, long extent) {
            if (type == ElementType.FLOAT && !tf32) {
                return new Floats(memory, offset, null);
            }
            if (extent > Integer.MAX_VALUE - 8) {
                throw new IllegalArgumentException("a " + (tf32 ? "TF32" : type) + " operand of " + extent
                        + " elements is more than the emulated device converts to FP32 at once ("
                        + (Integer.MAX_VALUE - 8) + ")");
            }
            float[] widened = new float[(int) extent];
            type.load(memory, offset, widened, 0, (int) extent);
            if (tf32) {
                for (int i = 0; i < widened.length; i++) {
                    widened[i] = toTf32(widened[i]);
                }
            }
            return new Floats(MemorySegment.ofArray(widened), 0, widened);
        }
    }
}
