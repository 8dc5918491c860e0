package dev.panamax.model.generate;

import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.panamax.cuda.Cuda;
import dev.panamax.model.backend.Backend;
import dev.panamax.model.backend.CudaBackend;
import java.util.function.Function;
import org.junit.jupiter.api.Tag;

/**
 * {@link CudaTransformerTest} on a real GPU (tagged {@code gpu}: {@code ./mvnw -pl model -am test -Pgpu}): the tiny
 * models' logits against the CPU backend and {@code stories260K.bin}'s 512 greedy ids. Skipped with the reason where
 * CUDA cannot run.
 */
@Tag("gpu")
class GpuTransformerTest extends CudaTransformerTest {
    @Override
    <T> T onDevice(Function<Backend, T> body) {
        assumeTrue(
                Cuda.isAvailable(), () -> "no GPU: " + Cuda.unavailableReason().orElseThrow());
        try (CudaBackend backend = CudaBackend.onGpu()) {
            return body.apply(backend);
        }
    }
}
