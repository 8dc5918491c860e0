package dev.panamax.cuda;

import java.util.concurrent.atomic.AtomicLong;

/**
 * The open/closed state of one native resource and the uses of it in progress: use after close is an {@link
 * IllegalStateException} thrown in Java, and only the first close releases the resource, so neither reaches the
 * driver.
 *
 * <p>Every native call that reads the resource runs between {@link #acquire()} and {@link #release()}. {@link
 * #close()} marks the resource closed at once (later acquires throw) and then <b>waits</b> until the uses in progress
 * on other threads have released it, so that the caller frees it only when no call can still be reading it. Waiting
 * rather than refusing (as a shared {@code Arena} does) means a close never fails, and never leaks the resource, just
 * because another thread happened to be inside a short call; the cost is that close can wait as long as the longest
 * call in progress (e.g. a stream synchronization). A thread cannot deadlock itself: this package holds a use only
 * while inside its own methods (the one outside code run then, an emulated product's {@code HostGemm}, is given the
 * operands' memory, not the buffers) and never closes a resource it holds, and acquiring never blocks, so a closing
 * thread waits only for calls that finish without it.
 *
 * <p>Uncontended, an acquire and a release are one atomic add each.
 */
final class Ownership {
    /** The state's sign bit: set once closed. The other bits count the uses in progress. */
    private static final long CLOSED = Long.MIN_VALUE;

    private final String what;
    private final AtomicLong state = new AtomicLong();

    /** @param what names the resource in messages, e.g. {@code DeviceBuffer(FLOAT × 1024)} */
    Ownership(String what) {
        this.what = what;
    }

    /** Throws {@link IllegalStateException} when the resource is closed. */
    void ensureOpen() {
        if (state.get() < 0) {
            throw closedException();
        }
    }

    /**
     * Starts a use: the resource stays open until the matching {@link #release()}.
     *
     * @throws IllegalStateException when the resource is closed (then there is nothing to release)
     */
    void acquire() {
        if (state.getAndIncrement() < 0) {
            release();
            throw closedException();
        }
    }

    /** Ends a use started by {@link #acquire()}; the last one to end after a close wakes the closing thread. */
    void release() {
        if (state.decrementAndGet() == CLOSED) {
            synchronized (this) {
                notifyAll();
            }
        }
    }

    /**
     * Marks the resource closed and waits until no use is in progress; an interrupt does not end the wait (the
     * resource must be released), it is kept for the caller.
     *
     * @return true on the first call only: the caller then releases the resource
     */
    boolean close() {
        long observed;
        do {
            observed = state.get();
            if (observed < 0) {
                return false;
            }
        } while (!state.compareAndSet(observed, observed | CLOSED));
        if (observed != 0) {
            awaitUses();
        }
        return true;
    }

    private void awaitUses() {
        boolean interrupted = false;
        synchronized (this) {
            while (state.get() != CLOSED) {
                try {
                    wait();
                } catch (InterruptedException e) {
                    interrupted = true;
                }
            }
        }
        if (interrupted) {
            Thread.currentThread().interrupt();
        }
    }

    boolean isClosed() {
        return state.get() < 0;
    }

    /**
     * Starts a use of each resource in order, null ones skipped, for a try-with-resources block whose close ends them
     * all; when one is closed, the uses already started are ended before its {@link IllegalStateException} is thrown.
     */
    static Held hold(Ownership... owners) {
        Held held = new Held(owners);
        try {
            for (Ownership owner : owners) {
                if (owner != null) {
                    owner.acquire();
                }
                held.started++;
            }
        } catch (IllegalStateException e) {
            held.close();
            throw e;
        }
        return held;
    }

    /** The uses {@link #hold} started, ended by {@link #close()} in the reverse order. */
    static final class Held implements AutoCloseable {
        private final Ownership[] owners;
        private int started;

        private Held(Ownership[] owners) {
            this.owners = owners;
        }

        @Override
        public void close() {
            while (started > 0) {
                Ownership owner = owners[--started];
                if (owner != null) {
                    owner.release();
                }
            }
        }
    }

    /** The uses in progress, for tests. */
    long uses() {
        return state.get() & ~CLOSED;
    }

    private IllegalStateException closedException() {
        return new IllegalStateException(what + " is closed");
    }

    @Override
    public String toString() {
        return what + (state.get() < 0 ? " (closed)" : "");
    }
}
