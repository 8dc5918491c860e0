package dev.panamax.cuda;

import dev.panamax.cuda.spi.HostGemm;
import dev.panamax.kernels.Gemm;
import java.lang.foreign.MemorySegment;

/**
 * The test-scope {@link HostGemm}: the kernels module's {@link Gemm}, as {@code dev.panamax.model}'s provider serves it
 * outside tests (this module's main code never depends on kernels).
 */
public final class KernelsHostGemm implements HostGemm {
    /** The provider, created by {@link java.util.ServiceLoader}. */
    public KernelsHostGemm() {}

    @Override
    public void sgemmStridedBatched(
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
            int batchCount) {
        Gemm.sgemmStridedBatched(
                kernels(transA),
                kernels(transB),
                m,
                n,
                k,
                alpha,
                a,
                aOffset,
                lda,
                strideA,
                b,
                bOffset,
                ldb,
                strideB,
                beta,
                c,
                cOffset,
                ldc,
                strideC,
                batchCount);
    }

    private static dev.panamax.kernels.Transpose kernels(Transpose transpose) {
        return transpose == Transpose.TRANSPOSE
                ? dev.panamax.kernels.Transpose.TRANSPOSE
                : dev.panamax.kernels.Transpose.NO_TRANSPOSE;
    }
}
