package dev.panamax.cuda;

import static dev.panamax.cuda.CublasTest.assertMessage;

import org.junit.jupiter.api.Test;

/**
 * Which devices go together, with GPU ordinals that this machine need not have: the rule and the messages behind the
 * checks of streams, events and buffers against the module, handle, buffer or event they meet.
 */
class DeviceTest {
    private static final Device GPU0 = new Device(false, 0);
    private static final Device GPU1 = new Device(false, 1);

    @Test
    void aGpusResourcesGoOnlyWithThatGpu() {
        Device.requireSame("stream", "CudaStream", GPU0, "Cublas", GPU0);
        assertMessage(
                IllegalArgumentException.class,
                "stream (CudaStream) is on GPU 1, but vector_add (module CudaModule(samples.ptx)) is on GPU 0",
                () -> Device.requireSame(
                        "stream", "CudaStream", GPU1, "vector_add (module CudaModule(samples.ptx))", GPU0));
        assertMessage(
                IllegalArgumentException.class,
                "start (CudaEvent) is on GPU 0, but CudaEvent is on GPU 1",
                () -> Device.requireSame("start", "CudaEvent", GPU0, "CudaEvent", GPU1));
    }

    @Test
    void aZeroLengthBufferGoesWithEveryGpuButNotTheEmulatedDevice() {
        Device noMemory = new Device(false, -1);
        Device.requireSame("stream", "CudaStream", GPU1, "DeviceBuffer(FLOAT × 0)", noMemory);
        assertMessage(
                IllegalArgumentException.class,
                "stream (emulated CudaStream) is on the emulated device, but DeviceBuffer(FLOAT × 0) is on a GPU",
                () -> Device.requireSame(
                        "stream", "emulated CudaStream", new Device(true, 0), "DeviceBuffer(FLOAT × 0)", noMemory));
    }

    @Test
    void theEmulatedDeviceAndAGpuNeverMix() {
        assertMessage(
                IllegalArgumentException.class,
                "stream (emulated CudaStream) is on the emulated device, but Cublas is on GPU 0",
                () -> Device.requireSame("stream", "emulated CudaStream", new Device(true, 0), "Cublas", GPU0));
        assertMessage(
                IllegalArgumentException.class,
                "stream (CudaStream) is on GPU 0, but emulated CudaEvent is on the emulated device",
                () -> Device.requireSame("stream", "CudaStream", GPU0, "emulated CudaEvent", new Device(true, 0)));
    }
}
