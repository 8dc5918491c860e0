package dev.panamax.model.backend;

/**
 * Counts the floats a model, cache or training run will allocate, in arithmetic that saturates at {@link
 * Long#MAX_VALUE} instead of overflowing, so that a hostile shape gives a huge count to refuse rather than a wrong one.
 */
public final class MemorySize {
    private long floats;

    /** An empty count. */
    public MemorySize() {}

    /**
     * Adds {@code a · b} floats (rows times columns).
     *
     * @param a a non-negative factor
     * @param b a non-negative factor
     * @return this count
     */
    public MemorySize add(long a, long b) {
        long product;
        try {
            product = Math.multiplyExact(a, b);
        } catch (ArithmeticException overflow) {
            product = Long.MAX_VALUE;
        }
        floats = floats > Long.MAX_VALUE - product ? Long.MAX_VALUE : floats + product;
        return this;
    }

    /**
     * Adds {@code count · a · b} floats: {@code count} matrices of {@code a × b}.
     *
     * @param count a non-negative number of matrices
     * @param a a non-negative factor
     * @param b a non-negative factor
     * @return this count
     */
    public MemorySize add(long count, long a, long b) {
        return add(count, new MemorySize().add(a, b).floats);
    }

    /**
     * Returns the bytes of the floats counted.
     *
     * @return {@code 4 ·} the count, {@link Long#MAX_VALUE} if that overflows
     */
    public long bytes() {
        return floats > Long.MAX_VALUE / Float.BYTES ? Long.MAX_VALUE : floats * Float.BYTES;
    }

    /**
     * Checks that the Java heap has room for {@code bytes} more beside what it holds now; when garbage may be in the
     * way, after a collection.
     *
     * @param purpose what the memory is for, for the message
     * @param bytes the bytes about to be allocated on the heap
     * @throws InsufficientMemoryException if they exceed the heap's room
     */
    public static void requireHeap(String purpose, long bytes) {
        long available = heapAvailable();
        if (bytes > available) {
            System.gc(); // rare: only a request that would otherwise be refused pays for it
            available = heapAvailable();
        }
        if (bytes > available) {
            throw new InsufficientMemoryException(purpose, bytes, available, "Java heap (-Xmx) not in use");
        }
    }

    private static long heapAvailable() {
        Runtime runtime = Runtime.getRuntime();
        return runtime.maxMemory() - (runtime.totalMemory() - runtime.freeMemory());
    }
}
