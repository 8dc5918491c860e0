package dev.panamax.kernels;

/**
 * A per-thread float array for what a call holds whole, such as activations copied out of native memory for a
 * parallel region's tasks to read. It grows to what a call needs and is reused by the thread's next call, but one above
 * {@link #RETAINED_FLOATS} is let go when the call ends: between calls a thread keeps no more than that, however large
 * one call was.
 */
final class Scratch {
    /** 16 MiB of floats: an array up to this is kept for the next call, a larger one allocated again for each. */
    static final int RETAINED_FLOATS = 1 << 22;

    private static final float[] NONE = new float[0];

    private final ThreadLocal<float[]> arrays = ThreadLocal.withInitial(() -> NONE);

    /** This thread's array, grown to at least {@code length} floats. */
    float[] take(int length) {
        float[] array = arrays.get();
        if (array.length < length) {
            array = new float[length];
            arrays.set(array);
        }
        return array;
    }

    /** Ends the call that took the array: one above {@link #RETAINED_FLOATS} is dropped. */
    void release() {
        if (arrays.get().length > RETAINED_FLOATS) {
            arrays.set(NONE);
        }
    }

    /** The floats this thread keeps for its next call. */
    int retained() {
        return arrays.get().length;
    }
}
