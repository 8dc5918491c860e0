package dev.panamax.model.testing;

import dev.panamax.kernels.testing.Inputs;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

/** Little-endian float32 segments, the form in which the model's loaders hand out weights. */
public final class Segments {
    /** A little-endian float, readable at any offset. */
    public static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    private Segments() {}

    /**
     * Returns seeded random floats, uniform in [-1, 1), as a little-endian segment on the heap.
     *
     * @param seed the seed
     * @param count how many
     * @return the segment
     */
    public static MemorySegment uniform(long seed, int count) {
        return of(Inputs.uniform(seed, count, -1, 1));
    }

    /**
     * Returns floats as a little-endian segment on the heap.
     *
     * @param values the values
     * @return the segment
     */
    public static MemorySegment of(float... values) {
        MemorySegment segment = MemorySegment.ofArray(new byte[values.length * Float.BYTES]);
        for (int i = 0; i < values.length; i++) {
            segment.setAtIndex(FLOAT, i, values[i]);
        }
        return segment;
    }

    /**
     * Reads a little-endian float segment into an array.
     *
     * @param segment the segment
     * @return its values
     */
    public static float[] toFloats(MemorySegment segment) {
        float[] values = new float[(int) (segment.byteSize() / Float.BYTES)];
        for (int i = 0; i < values.length; i++) {
            values[i] = segment.getAtIndex(FLOAT, i);
        }
        return values;
    }
}
