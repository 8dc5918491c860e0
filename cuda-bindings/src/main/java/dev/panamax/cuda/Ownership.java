package dev.panamax.cuda;

import java.util.concurrent.atomic.AtomicBoolean;

/**
 * The open/closed state of one native resource: use after close is an {@link IllegalStateException} thrown in Java,
 * and only the first close releases the resource, so neither reaches the driver.
 */
final class Ownership {
    private final String what;
    private final AtomicBoolean closed = new AtomicBoolean();

    /** @param what names the resource in messages, e.g. {@code DeviceBuffer(FLOAT × 1024)} */
    Ownership(String what) {
        this.what = what;
    }

    /** Throws {@link IllegalStateException} when the resource is closed. */
    void ensureOpen() {
        if (closed.get()) {
            throw new IllegalStateException(what + " is closed");
        }
    }

    /**
     * Marks the resource closed.
     *
     * @return true on the first call only: the caller then releases the resource
     */
    boolean close() {
        return closed.compareAndSet(false, true);
    }

    boolean isClosed() {
        return closed.get();
    }

    @Override
    public String toString() {
        return what + (closed.get() ? " (closed)" : "");
    }
}
