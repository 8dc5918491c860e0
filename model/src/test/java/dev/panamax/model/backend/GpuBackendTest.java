package dev.panamax.model.backend;

import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.panamax.cuda.Cuda;
import org.junit.jupiter.api.Tag;

/**
 * {@link CudaBackendTest} on a real GPU (tagged {@code gpu}: {@code ./mvnw -pl model -am test -Pgpu}, or {@code
 * bench/gpu/check.sh}): every operation it compares with the CPU backend (attention at any magnitude, its backward,
 * the norms, products, cross-entropy, AdamW…) runs on the GPU instead of the emulated device, within the same
 * bounds, and the exact ones must match the CPU bit for bit there too. What the base class checks on the emulated
 * device alone (its schedules, its memory limits) runs there as before. Skipped with the reason where CUDA cannot run.
 */
@Tag("gpu")
class GpuBackendTest extends CudaBackendTest {
    @Override
    float[] onDevice(String what, Operation operation) {
        assumeTrue(
                Cuda.isAvailable(), () -> "no GPU: " + Cuda.unavailableReason().orElseThrow());
        try (CudaBackend backend = CudaBackend.onGpu()) {
            return operation.apply(backend);
        }
    }
}
