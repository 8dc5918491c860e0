package dev.panamax.model.backend;

import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.panamax.cuda.Cuda;
import java.util.function.Function;
import org.junit.jupiter.api.Tag;

/**
 * {@link CudaPrecisionTest} on a real GPU (tagged {@code gpu}: {@code ./mvnw -pl model -am test -Pgpu}, or {@code
 * bench/gpu/check.sh}). TF32 is checked only against the unrounded inputs within the rounding bound: cuBLAS converts
 * to TF32 inside its kernels, may break ties otherwise than to even, and may compute a small product in full FP32.
 * Skipped with the reason where CUDA cannot run.
 */
@Tag("gpu")
class GpuPrecisionTest extends CudaPrecisionTest {
    @Override
    <T> T on(MatmulPrecision precision, Function<CudaBackend, T> body) {
        assumeTrue(
                Cuda.isAvailable(), () -> "no GPU: " + Cuda.unavailableReason().orElseThrow());
        try (CudaBackend backend = CudaBackend.onGpu(precision)) {
            return body.apply(backend);
        }
    }

    @Override
    boolean roundsAsTheReference(MatmulPrecision precision) {
        return precision != MatmulPrecision.TF32;
    }

    /**
     * TF32: 2⁻¹⁰, the error of dropping the 13 low mantissa bits, twice the unit roundoff: whether the tensor cores
     * round or truncate an FP32 input that cuBLAS did not convert first is not documented.
     */
    @Override
    double inputError(MatmulPrecision precision) {
        return precision == MatmulPrecision.TF32 ? 0x1p-10 : super.inputError(precision);
    }
}
