package dev.panamax.model.backend;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.panamax.cuda.CudaUnavailableException;
import java.util.Optional;
import org.junit.jupiter.api.Test;

/** The {@code auto} backend's choice, with the GPU's availability and opening given, so no GPU is needed. */
class BackendsTest {
    private static final String OLD_DRIVER = "transformer.ptx is PTX ISA 9.0, which needs a driver for CUDA 13.0 or"
            + " newer, but the NVIDIA driver here supports CUDA 12.8 (cuDriverGetVersion 12080): update the NVIDIA"
            + " driver";

    @Test
    void autoFallsBackToTheCpuWhenTheGpuBackendCannotOpen() {
        Backends.Selection selection = Backends.auto(MatmulPrecision.FP32, Optional.empty(), () -> {
            throw new CudaUnavailableException(OLD_DRIVER);
        });
        try (Backend backend = selection.backend()) {
            assertInstanceOf(CpuBackend.class, backend);
            assertEquals(
                    "backend: cpu (auto: the CUDA backend cannot run here: " + OLD_DRIVER + ")",
                    selection.description());
        }
    }

    @Test
    void autoWithoutCudaDoesNotTryTheGpu() {
        Backends.Selection selection = Backends.auto(MatmulPrecision.FP32, Optional.of("no CUDA driver"), () -> {
            throw new AssertionError("the GPU backend must not be opened");
        });
        try (Backend backend = selection.backend()) {
            assertInstanceOf(CpuBackend.class, backend);
            assertEquals("backend: cpu (auto: CUDA is not available: no CUDA driver)", selection.description());
        }
    }

    @Test
    void autoFallingBackRefusesAPrecisionTheCpuLacksAndSaysWhy() {
        IllegalArgumentException e = assertThrows(
                IllegalArgumentException.class,
                () -> Backends.auto(MatmulPrecision.BF16, Optional.empty(), () -> {
                    throw new CudaUnavailableException(OLD_DRIVER);
                }));
        assertTrue(e.getMessage().contains(OLD_DRIVER), e.getMessage());
    }
}
