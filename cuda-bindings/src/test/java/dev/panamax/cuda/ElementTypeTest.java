package dev.panamax.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import org.junit.jupiter.api.Test;

class ElementTypeTest {
    @Test
    void bfloat16RoundsToNearestEven() {
        assertEquals((short) 0x3F80, ElementType.toBfloat16(1f));
        // 1 + 2^-8 lies halfway between 1 and 1 + 2^-7: ties go to the even 1.
        assertEquals((short) 0x3F80, ElementType.toBfloat16(1f + 0x1p-8f));
        // 1 + 3·2^-8 lies halfway between 1 + 2^-7 and 1 + 2^-6: ties go to the even 1 + 2^-6.
        assertEquals((short) 0x3F82, ElementType.toBfloat16(1f + 3 * 0x1p-8f));
        assertEquals((short) 0x3F81, ElementType.toBfloat16(1f + 0x1p-8f + 0x1p-20f));
        assertEquals((short) 0x7F80, ElementType.toBfloat16(Float.MAX_VALUE));
        assertEquals((short) 0xFF80, ElementType.toBfloat16(Float.NEGATIVE_INFINITY));
        assertTrue(Float.isNaN(ElementType.fromBfloat16(ElementType.toBfloat16(Float.NaN))));
        assertEquals(-2.5f, ElementType.fromBfloat16(ElementType.toBfloat16(-2.5f)));
    }

    @Test
    void storeAndLoadConvertThroughEachType() {
        float[] values = {0f, -1.5f, 3.14159265f, 65504f, 1e-3f, 70000f};
        try (Arena arena = Arena.ofConfined()) {
            for (ElementType type : ElementType.values()) {
                MemorySegment segment = arena.allocate((values.length + 1) * (long) type.byteSize());
                type.store(values, 0, segment, 1, values.length);
                float[] back = new float[values.length + 2];
                type.load(segment, 1, back, 2, values.length);
                float[] expected = new float[values.length + 2];
                for (int i = 0; i < values.length; i++) {
                    expected[i + 2] = type.round(values[i]);
                }
                assertArrayEquals(expected, back, type.toString());
            }
        }
        assertEquals(Float.POSITIVE_INFINITY, ElementType.HALF.round(70000f));
        assertEquals(3.140625f, ElementType.BFLOAT16.round(3.14159265f));
        assertEquals(3.140625f, ElementType.HALF.round(3.14159265f));
    }
}
