package dev.panamax.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * The asynchronous copies of {@link DeviceBuffer} on a stream: those from and to arrays go through pageable staging
 * memory, so each waits for its stream before that memory is read or freed; those of a caller's segment do not wait.
 */
class EmulatedStreamCopyTest {
    @AfterEach
    void restore() {
        EmulatedDevice.deselect();
    }

    @Test
    void arrayCopiesWaitForTheStreamBeforeTheStagingMemoryIsUsed() {
        Emulator.require();
        Cuda.useEmulatedDevice();
        try (CudaStream stream = CudaStream.create();
                DeviceBuffer buffer = DeviceBuffer.allocate(ElementType.BFLOAT16, 4)) {
            buffer.copyFromAsync(0, new float[] {1, 2, 3, 4}, 0, 4, stream);
            assertEquals(1, stream.stagingWaits(), "an upload from an array");
            float[] back = new float[4];
            buffer.copyToAsync(0, back, 0, 4, stream);
            assertEquals(2, stream.stagingWaits(), "a download into an array");
            assertArrayEquals(new float[] {1, 2, 3, 4}, back);
            buffer.copyFromAsync(0, new float[0], 0, 0, stream);
            assertEquals(2, stream.stagingWaits(), "nothing to copy, nothing to wait for");
            assertEquals(0, stream.synchronizations(), "the waits are not the caller's synchronizations");
        }
    }

    @Test
    void segmentCopiesDoNotWait() {
        Emulator.require();
        Cuda.useEmulatedDevice();
        try (CudaStream stream = CudaStream.create();
                DeviceBuffer buffer = DeviceBuffer.allocate(ElementType.FLOAT, 2);
                Arena arena = Arena.ofConfined()) {
            MemorySegment host = arena.allocateFrom(ValueLayout.JAVA_FLOAT, 5, 6);
            buffer.copyFromAsync(0, host, 2, stream);
            buffer.copyToAsync(0, host, 2, stream);
            assertEquals(0, stream.stagingWaits());
        }
    }
}
