package dev.panamax.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * The emulated device's memory: {@link Cuda#memory()} reports its configured size and what its buffers leave free, and
 * an allocation past it fails as {@code cudaMalloc} does on a full GPU, taking nothing.
 */
class EmulatedDeviceMemoryTest {
    @AfterEach
    void restore() {
        System.clearProperty(Cuda.EMULATED_MEMORY_PROPERTY);
        EmulatedDevice.deselect();
    }

    @Test
    void freeMemoryFollowsAllocationsAndTheConfiguredSize() {
        Emulator.require();
        Cuda.useEmulatedDevice();
        assertEquals(Cuda.EMULATED_DEFAULT_MEMORY, Cuda.memory().totalBytes());
        long before = Cuda.memory().freeBytes();
        System.setProperty(Cuda.EMULATED_MEMORY_PROPERTY, Long.toString(Cuda.EMULATED_DEFAULT_MEMORY - 4096));
        assertEquals(before - 4096, Cuda.memory().freeBytes());
        try (DeviceBuffer buffer = DeviceBuffer.allocate(ElementType.FLOAT, 1000)) {
            assertEquals(before - 4096 - 4000, Cuda.memory().freeBytes(), buffer.toString());
        }
        assertEquals(before - 4096, Cuda.memory().freeBytes(), "a closed buffer gives its bytes back");
    }

    @Test
    void anAllocationPastTheDeviceFailsAsCudaMallocDoesAndTakesNothing() {
        Emulator.require();
        Cuda.useEmulatedDevice();
        long held = Cuda.EMULATED_DEFAULT_MEMORY - Cuda.memory().freeBytes();
        System.setProperty(Cuda.EMULATED_MEMORY_PROPERTY, Long.toString(held + 1000));
        try (DeviceBuffer fits = DeviceBuffer.allocate(ElementType.FLOAT, 250)) {
            assertEquals(0, Cuda.memory().freeBytes(), fits.toString());
            CudaException e = assertThrows(CudaException.class, () -> DeviceBuffer.allocate(ElementType.FLOAT, 1));
            assertTrue(e.getMessage().contains("cudaErrorMemoryAllocation"), e.getMessage());
            assertTrue(e.getMessage().contains(Cuda.EMULATED_MEMORY_PROPERTY), e.getMessage());
            assertEquals(0, Cuda.memory().freeBytes(), "a refused allocation takes nothing");
        }
        assertEquals(1000, Cuda.memory().freeBytes());
    }

    @Test
    void aMalformedSizeIsRefusedWithThePropertyName() {
        Emulator.require();
        Cuda.useEmulatedDevice();
        System.setProperty(Cuda.EMULATED_MEMORY_PROPERTY, "-5");
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, Cuda::memory);
        assertEquals(
                "system property panamax.cuda.emulator.memory (-5) must be a number of bytes >= 0", e.getMessage());
    }
}
