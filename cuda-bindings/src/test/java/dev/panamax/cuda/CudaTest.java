package dev.panamax.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import org.junit.jupiter.api.Test;

/** The runtime on a machine without a CUDA driver, as CI is: a reported state, never a crash. */
class CudaTest {
    @Test
    void runtimeVersionMatchesTheLoadedSoname() {
        NativeLibraries.requireCudart();
        Version version = Cuda.runtimeVersion().orElseThrow();
        assertEquals(NativeLibraries.sonameMajor(Libraries.Cudart.FOUND), version.major(), version::toString);
    }

    @Test
    void withoutDriverCudaIsUnavailableWithTheDriversReason() {
        NativeLibraries.requireCudart();
        assumeTrue(Cuda.driverVersion().isEmpty(), "a CUDA driver is installed here");
        assertFalse(Cuda.isAvailable());
        String reason = Cuda.unavailableReason().orElseThrow();
        assertTrue(reason.startsWith("no CUDA driver: cudaGetDeviceCount failed: "), reason);
        assertEquals(0, Cuda.deviceCount());
    }

    @Test
    void everythingThatNeedsADeviceSaysWhyItCannotRun() {
        NativeLibraries.requireCudart();
        assumeTrue(!Cuda.isAvailable(), "CUDA is available here");
        String reason = Cuda.unavailableReason().orElseThrow();
        for (var call : java.util.List.<Runnable>of(
                () -> Cuda.device(0),
                () -> Cuda.setDevice(0),
                Cuda::currentDevice,
                Cuda::synchronize,
                CudaStream::create,
                () -> CudaEvent.create(true),
                () -> DeviceBuffer.allocate(ElementType.FLOAT, 1),
                () -> PinnedBuffer.allocate(ElementType.HALF, 1))) {
            CudaUnavailableException e = assertThrows(CudaUnavailableException.class, call::run);
            assertEquals(reason, e.reason());
            assertEquals("CUDA cannot run here: " + reason, e.getMessage());
        }
    }

    @Test
    void versionsDecodeCudasNumbering() {
        assertEquals(new Version(12, 4, 0), Version.ofCuda(12040));
        assertEquals("13.0.0", Version.ofCuda(13000).toString());
    }
}
