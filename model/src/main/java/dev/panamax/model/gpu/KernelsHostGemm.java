package dev.panamax.model.gpu;

import dev.panamax.cuda.spi.HostGemm;
import dev.panamax.kernels.Gemm;
import dev.panamax.kernels.Transpose;

/**
 * Serves cuBLAS's products on the emulated device with the kernels module's {@link Gemm}: the {@link HostGemm} this
 * module provides to cuda-bindings, which cannot depend on the kernels module itself.
 */
public final class KernelsHostGemm extends HostGemm<Transpose> {
    /** The provider, created by {@link java.util.ServiceLoader}. */
    public KernelsHostGemm() {
        super(Gemm::sgemmStridedBatched, Transpose.NO_TRANSPOSE, Transpose.TRANSPOSE);
    }
}
