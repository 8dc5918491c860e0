package dev.panamax.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * The multiprocessors the emulated device reports: an H100's 132 by default, {@link
 * Cuda#EMULATED_MULTIPROCESSORS_PROPERTY} when set (in {@link DeviceLimits#current()} and in the limits of a module
 * loaded then), every other limit unchanged.
 */
class EmulatedMultiprocessorsTest {
    @AfterEach
    void restore() {
        System.clearProperty(Cuda.EMULATED_MULTIPROCESSORS_PROPERTY);
        EmulatedDevice.deselect();
    }

    @Test
    void thePropertySetsTheMultiprocessorsOfTheLimitsAndOfModulesLoadedThen() {
        Emulator.require();
        Cuda.useEmulatedDevice();
        assertSame(DeviceLimits.EMULATED, DeviceLimits.current());
        assertEquals(132, DeviceLimits.current().multiprocessors());
        System.setProperty(Cuda.EMULATED_MULTIPROCESSORS_PROPERTY, " 7 ");
        DeviceLimits seven = DeviceLimits.current();
        assertEquals(7, seven.multiprocessors());
        assertEquals(
                DeviceLimits.EMULATED,
                new DeviceLimits(
                        seven.maxThreadsPerBlock(),
                        seven.maxBlock(),
                        seven.maxGrid(),
                        seven.maxSharedMemoryPerBlock(),
                        seven.maxSharedMemoryPerBlockOptin(),
                        seven.warpSize(),
                        132),
                "only the multiprocessors change");
        try (CudaModule module = CudaModule.load("dev/panamax/cuda/ptx/samples.ptx")) {
            assertEquals(seven, module.limits());
        }
    }

    @Test
    void aCountBelowOneOrNotANumberIsRefusedWithThePropertyName() {
        Emulator.require();
        Cuda.useEmulatedDevice();
        for (String value : new String[] {"0", "-3", "many", "4294967296"}) {
            System.setProperty(Cuda.EMULATED_MULTIPROCESSORS_PROPERTY, value);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, DeviceLimits::current);
            assertEquals(
                    "system property panamax.cuda.emulator.multiprocessors (" + value
                            + ") must be a number in [1, 2147483647]",
                    e.getMessage());
        }
    }
}
