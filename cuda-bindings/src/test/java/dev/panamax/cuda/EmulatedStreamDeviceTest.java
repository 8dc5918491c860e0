package dev.panamax.cuda;

import static dev.panamax.cuda.CublasTest.assertMessage;
import static org.junit.jupiter.api.Assertions.assertEquals;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * Streams and events belong to the device they were created on, and are refused where they meet a module, buffer,
 * cuBLAS handle, stream or event of another device. A second GPU cannot be made here, so the other device is the
 * emulated device reporting ordinal 1, which the checks treat as they treat another GPU.
 */
class EmulatedStreamDeviceTest {
    @BeforeEach
    void useTheEmulatedDevice() {
        Emulator.require();
        Cuda.useEmulatedDevice();
    }

    @AfterEach
    void leaveTheEmulatedDevice() {
        EmulatedDevice.deselect();
    }

    @Test
    void streamsAndEventsRecordTheirDevice() {
        try (CudaStream stream = CudaStream.create();
                CudaEvent event = CudaEvent.create(false)) {
            assertEquals(new Device(true, 0), stream.device());
            assertEquals(new Device(true, 0), event.device());
        }
    }

    @Test
    void aLaunchRefusesAStreamOfAnotherDevice() {
        try (CudaModule module = CudaModule.load(SampleKernelsContract.SAMPLES);
                CudaStream elsewhere = CudaStream.createEmulated(1)) {
            assertMessage(
                    IllegalArgumentException.class,
                    "stream (emulated CudaStream) is on emulated device 1, but empty_kernel (module CudaModule("
                            + SampleKernelsContract.SAMPLES + ")) is on the emulated device",
                    () -> module.kernel("empty_kernel").launch(Dim3.of(1), Dim3.of(1), 0, elsewhere));
            assertEquals(0, elsewhere.ownership().uses(), "nothing was held by the refused launch");
        }
    }

    @Test
    void anAsynchronousCopyRefusesAStreamOfAnotherDevice() {
        try (DeviceBuffer buffer = DeviceBuffer.allocate(ElementType.FLOAT, 2);
                CudaStream elsewhere = CudaStream.createEmulated(1)) {
            String expected = "stream (emulated CudaStream) is on emulated device 1, but " + buffer
                    + " is on the emulated device";
            assertMessage(
                    IllegalArgumentException.class,
                    expected,
                    () -> buffer.copyFromAsync(0, new float[] {1, 2}, 0, 2, elsewhere));
            assertMessage(
                    IllegalArgumentException.class,
                    expected,
                    () -> buffer.copyToAsync(0, new float[2], 0, 2, elsewhere));
            assertEquals(0, elsewhere.copiesToDevice() + elsewhere.copiesToHost(), "nothing was queued");
        }
    }

    @Test
    void aCublasHandleRefusesAStreamOfAnotherDevice() {
        try (Cublas cublas = Cublas.emulated(new KernelsHostGemm());
                CudaStream elsewhere = CudaStream.createEmulated(1)) {
            assertMessage(
                    IllegalArgumentException.class,
                    "stream (emulated CudaStream) is on emulated device 1, but emulated Cublas is on the emulated device",
                    () -> cublas.setStream(elsewhere));
        }
    }

    @Test
    void anEventMeetsOnlyStreamsAndEventsOfItsDevice() {
        try (CudaStream here = CudaStream.create();
                CudaStream elsewhere = CudaStream.createEmulated(1);
                CudaEvent event = CudaEvent.create(true);
                CudaEvent otherEvent = CudaEvent.createEmulated(true, 1)) {
            assertMessage(
                    IllegalArgumentException.class,
                    "stream (emulated CudaStream) is on emulated device 1, but emulated CudaEvent is on the emulated"
                            + " device",
                    () -> event.record(elsewhere));
            assertMessage(
                    IllegalArgumentException.class,
                    "stream (emulated CudaStream) is on the emulated device, but emulated CudaEvent is on emulated"
                            + " device 1",
                    () -> otherEvent.record(here));
            event.record(here);
            otherEvent.record(elsewhere);
            // cudaEventElapsedTime fails for two events of different devices.
            assertMessage(
                    IllegalArgumentException.class,
                    "start (emulated CudaEvent) is on the emulated device, but emulated CudaEvent is on emulated"
                            + " device 1",
                    () -> otherEvent.elapsedMillis(event));
        }
    }

    @Test
    void aStreamMayWaitForAnEventOfAnotherGpu() {
        // cudaStreamWaitEvent synchronizes across devices, so this is not refused.
        try (CudaStream here = CudaStream.create();
                CudaStream elsewhere = CudaStream.createEmulated(1);
                CudaEvent event = CudaEvent.createEmulated(false, 1)) {
            event.record(elsewhere);
            here.waitFor(event);
        }
    }
}
