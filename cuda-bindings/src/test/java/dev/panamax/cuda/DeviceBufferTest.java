package dev.panamax.cuda;

import static dev.panamax.cuda.CublasTest.assertMessage;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import org.junit.jupiter.api.Test;

/**
 * Argument and state checks of {@link DeviceBuffer}, on zero-length buffers, which hold no device memory: every
 * failure here is caught in Java before the runtime is called.
 */
class DeviceBufferTest {
    @Test
    void copiesAreBoundsChecked() {
        try (DeviceBuffer buffer = DeviceBuffer.allocate(ElementType.HALF, 0)) {
            assertEquals(0, buffer.byteSize());
            assertMessage(
                    IndexOutOfBoundsException.class,
                    "DeviceBuffer(HALF × 0) holds 0 elements, but 1 elements from index (0) reach index 0",
                    () -> buffer.copyFrom(new float[1]));
            assertMessage(
                    IndexOutOfBoundsException.class,
                    "src holds 2 elements, but 2 elements from srcOffset (1) reach index 2",
                    () -> buffer.copyFrom(0, new float[2], 1, 2));
            assertMessage(
                    IndexOutOfBoundsException.class,
                    "dstOffset (-1) must be >= 0",
                    () -> buffer.copyTo(0, new float[2], -1, 1));
            assertMessage(
                    IllegalArgumentException.class,
                    "count (-1) must be >= 0",
                    () -> buffer.copyTo(0, new float[2], 0, -1));
            assertMessage(
                    IndexOutOfBoundsException.class,
                    "index (-1) must be >= 0",
                    () -> buffer.copyFrom(-1, new float[0], 0, 0));
            assertThrows(NullPointerException.class, () -> buffer.copyFrom(null));
            buffer.copyFrom(new float[0]);
            buffer.copyTo(new float[0]);
        }
    }

    @Test
    void segmentCopiesNeedNativeMemoryOfTheRightSize() {
        try (DeviceBuffer buffer = DeviceBuffer.allocate(ElementType.FLOAT, 0);
                Arena arena = Arena.ofConfined()) {
            assertMessage(
                    IllegalArgumentException.class,
                    "src must be a native segment (e.g. from an Arena or a PinnedBuffer); "
                            + "CUDA cannot copy from or to heap memory",
                    () -> buffer.copyFrom(0, MemorySegment.ofArray(new float[4]), 0));
            assertMessage(
                    IllegalArgumentException.class,
                    "dst is read-only",
                    () -> buffer.copyTo(0, arena.allocate(4).asReadOnly(), 0));
            assertThrows(IndexOutOfBoundsException.class, () -> buffer.copyFrom(0, arena.allocate(4), 1));
            buffer.copyFrom(0, arena.allocate(0), 0);
        }
    }

    @Test
    void useAfterCloseIsCaughtAndSecondCloseIsANoOp() {
        DeviceBuffer buffer = DeviceBuffer.allocate(ElementType.BFLOAT16, 0);
        assertFalse(buffer.isClosed());
        buffer.close();
        assertTrue(buffer.isClosed());
        buffer.close();
        assertEquals("DeviceBuffer(BFLOAT16 × 0) (closed)", buffer.toString());
        assertMessage(
                IllegalStateException.class,
                "DeviceBuffer(BFLOAT16 × 0) is closed",
                () -> buffer.copyFrom(new float[0]));
    }

    @Test
    void deviceToDeviceCopiesNeedOneType() {
        try (DeviceBuffer floats = DeviceBuffer.allocate(ElementType.FLOAT, 0);
                DeviceBuffer halves = DeviceBuffer.allocate(ElementType.HALF, 0)) {
            assertMessage(
                    IllegalArgumentException.class,
                    "src holds HALF, this buffer FLOAT",
                    () -> floats.copyFrom(0, halves, 0, 0));
        }
    }

    @Test
    void allocationChecksItsArguments() {
        assertMessage(
                IllegalArgumentException.class,
                "length (-1) must be >= 0",
                () -> DeviceBuffer.allocate(ElementType.FLOAT, -1));
        assertMessage(
                IllegalArgumentException.class,
                "length (" + Long.MAX_VALUE + ") × 4 bytes per FLOAT element exceeds the largest byte count, "
                        + Long.MAX_VALUE + ": length must be <= " + Long.MAX_VALUE / 4,
                () -> DeviceBuffer.allocate(ElementType.FLOAT, Long.MAX_VALUE));
        assertMessage(
                IllegalArgumentException.class,
                "length (" + (Long.MAX_VALUE / 2 + 1) + ") × 2 bytes per HALF element exceeds the largest byte count, "
                        + Long.MAX_VALUE + ": length must be <= " + Long.MAX_VALUE / 2,
                () -> DeviceBuffer.allocate(ElementType.HALF, Long.MAX_VALUE / 2 + 1));
        assertThrows(NullPointerException.class, () -> DeviceBuffer.allocate(null, 1));
    }
}
