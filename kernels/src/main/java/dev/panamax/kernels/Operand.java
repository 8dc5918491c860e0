package dev.panamax.kernels;

import java.lang.foreign.MemorySegment;

/**
 * A kernel's float operand, resolved once per call: the {@code float[]} a heap segment views, or else the segment.
 * Kernels compute on arrays (see {@link Line}); an array operand is used in place and only segments are copied.
 */
final class Operand {
    /** The array, or null when the operand is {@link #segment}. */
    final float[] array;
    /** The array index of the operand's float 0 (a heap segment may start inside its array). */
    final int arrayBase;
    /** The segment, when {@link #array} is null: native or mapped memory, or a heap segment that hides its array. */
    final MemorySegment segment;

    private Operand(float[] array, int arrayBase, MemorySegment segment) {
        this.array = array;
        this.arrayBase = arrayBase;
        this.segment = segment;
    }

    /**
     * The operand over a segment: its {@code float[]} when it is a writable heap segment over one starting at a float
     * boundary (a read-only segment does not expose its array), the segment itself otherwise; null stays null.
     */
    static Operand of(MemorySegment segment) {
        if (segment == null) {
            return null;
        }
        if (!segment.isNative()
                && segment.address() % Float.BYTES == 0
                && segment.heapBase().orElse(null) instanceof float[] array) {
            return new Operand(array, Math.toIntExact(segment.address() / Float.BYTES), null);
        }
        return new Operand(null, 0, segment);
    }
}
