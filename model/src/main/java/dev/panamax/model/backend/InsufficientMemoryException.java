package dev.panamax.model.backend;

import java.util.Locale;

/**
 * Refuses an allocation that cannot fit, before anything is allocated: a model, cache or training run that needs more
 * memory than the backend has. An {@link IllegalStateException}: the request is valid, the machine too small for it.
 */
public final class InsufficientMemoryException extends IllegalStateException {
    private static final long serialVersionUID = 1L;

    /** The bytes asked for. */
    private final long needed;

    /** The bytes the backend could give. */
    private final long available;

    /**
     * Creates the exception.
     *
     * @param purpose what the memory is for, e.g. "the key/value cache for 1048576 positions"
     * @param needed the bytes it needs ({@link Long#MAX_VALUE} for more than a long counts)
     * @param available the bytes available
     * @param where which memory, e.g. "native memory (physical memory less what this backend holds)"
     */
    public InsufficientMemoryException(String purpose, long needed, long available, String where) {
        super(purpose + " needs " + bytes(needed) + " but " + bytes(available) + " of " + where + " is available");
        this.needed = needed;
        this.available = available;
    }

    /**
     * Returns the bytes asked for.
     *
     * @return the bytes, {@link Long#MAX_VALUE} when they overflow a long
     */
    public long needed() {
        return needed;
    }

    /**
     * Returns the bytes that were available.
     *
     * @return the bytes
     */
    public long available() {
        return available;
    }

    /** A byte count for people: binary units with one decimal, or "more than 8 EiB" for a saturated count. */
    static String bytes(long count) {
        if (count == Long.MAX_VALUE) {
            return "more than 8 EiB";
        }
        String[] units = {"bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
        int unit = 0;
        double value = count;
        while (value >= 1024 && unit < units.length - 1) {
            value /= 1024;
            unit++;
        }
        return unit == 0 ? count + " bytes" : String.format(Locale.ROOT, "%.1f %s", value, units[unit]);
    }
}
