package dev.panamax.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assumptions.assumeFalse;

import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * Where CUDA cannot run (as on CI), loading a module or asking for the device's limits on a GPU throws the one
 * exception a caller falls back to the CPU on, with the reason, and the emulated device stays usable.
 */
class KernelsWithoutGpuTest {
    @BeforeEach
    void onAMachineWithoutCuda() {
        assumeFalse(Cuda.isAvailable(), "this machine has a GPU: GpuKernelTest covers it");
        EmulatedDevice.deselect();
    }

    @Test
    void modulesAndLimitsNeedCuda() {
        CudaUnavailableException load =
                assertThrows(CudaUnavailableException.class, () -> CudaModule.load(SampleKernelsContract.SAMPLES));
        assertEquals(Cuda.unavailableReason().orElseThrow(), load.reason());
        CudaUnavailableException limits = assertThrows(CudaUnavailableException.class, DeviceLimits::current);
        assertEquals(Cuda.unavailableReason().orElseThrow(), limits.reason());
    }

    @Test
    void aMissingResourceOrKernellessPtxIsNamed() {
        IllegalArgumentException missing =
                assertThrows(IllegalArgumentException.class, () -> CudaModule.load("dev/panamax/cuda/ptx/none.ptx"));
        assertEquals("no class-path resource dev/panamax/cuda/ptx/none.ptx", missing.getMessage());
        IllegalArgumentException empty =
                assertThrows(IllegalArgumentException.class, () -> CudaModule.fromPtx("empty", ".version 9.0\n"));
        assertEquals("empty declares no kernel (.entry)", empty.getMessage());
    }
}
