package dev.panamax.cuda;

import dev.panamax.cuda.spi.HostGemm;
import dev.panamax.kernels.Gemm;

/**
 * The test-scope {@link HostGemm}: the kernels module's {@link Gemm}, as {@code dev.panamax.model}'s provider serves it
 * outside tests (this module's main code never depends on kernels).
 */
// The kernels module is on the test class path, not one this module requires, so its Transpose is not exported here.
@SuppressWarnings("exports")
public final class KernelsHostGemm extends HostGemm<dev.panamax.kernels.Transpose> {
    /** The provider, created by {@link java.util.ServiceLoader}. */
    public KernelsHostGemm() {
        super(
                Gemm::sgemmStridedBatched,
                dev.panamax.kernels.Transpose.NO_TRANSPOSE,
                dev.panamax.kernels.Transpose.TRANSPOSE);
    }
}
