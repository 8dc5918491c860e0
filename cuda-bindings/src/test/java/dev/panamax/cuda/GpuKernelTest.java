package dev.panamax.cuda;

import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.util.function.Supplier;
import org.junit.jupiter.api.Tag;

/**
 * The sample kernels on a real GPU, from the committed PTX, with the same references and checks as on the emulated
 * device. Tagged {@code gpu}: run with {@code ./mvnw -pl cuda-bindings -am test -Pgpu} or {@code bench/gpu/check.sh};
 * skipped with the reason where CUDA is not available.
 */
@Tag("gpu")
class GpuKernelTest extends SampleKernelsContract {
    @Override
    void useDevice() {
        assumeTrue(
                Cuda.isAvailable(), () -> "no GPU: " + Cuda.unavailableReason().orElseThrow());
        EmulatedDevice.deselect();
    }

    @Override
    float[] results(String what, Supplier<float[]> launch) {
        float[] results = launch.get();
        Cuda.synchronize();
        return results;
    }
}
