package dev.panamax.kernels;

import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicIntegerArray;
import java.util.concurrent.atomic.AtomicReference;
import java.util.concurrent.locks.LockSupport;
import java.util.function.IntConsumer;

/**
 * The library-wide threading policy: one team of worker threads shared by every kernel.
 *
 * <p>The default parallelism is the number of available processors, or the system property {@code
 * panamax.threads} when set. Kernels split work so that each output element is always reduced in the same order:
 * results are bit-identical for every thread count. Kernels keep small problems on the calling thread.
 *
 * <p>A parallel region hands its tasks to the team's workers through one mailbox each. A worker that has just finished
 * a region spins on its mailbox for a short while before it parks, so that the regions of a decode step, which follow
 * each other microseconds apart, reach a worker that is already running instead of paying a wake-up each; a parked
 * worker is woken only when a region is posted to it. Tasks are taken from a shared counter, so a thread that lost its
 * core takes fewer of them, and the caller never waits for a worker that has not started.
 *
 * <p>Kernels may be called from any number of threads at once, also while {@link #setThreads(int)} changes the count.
 * The team runs one region at a time: a call that finds it busy with another caller's region runs its tasks on its own
 * thread, with the same results.
 */
public final class Parallelism {
    private static final Object LOCK = new Object();
    /** States of a worker's slot in a region: not taken yet, taken by the worker, finished by it, taken by the caller. */
    private static final int UNCLAIMED = 0, BY_HELPER = 1, FINISHED = 2, BY_CALLER = 3;
    /**
     * How long a worker spins on its mailbox after a region before it parks: longer than the serial work between two
     * regions of a decode step, short enough that an idle library gives its cores back at once.
     */
    private static final long SPIN_NANOS = 100_000;
    /** A thread that never runs: segments accessible by it are accessible by any worker (shared, global, auto). */
    private static final Thread OTHER_THREAD = new Thread(() -> {});
    /** Set on the threads that are running a parallel region, so that nested regions run inline. */
    private static final ThreadLocal<Boolean> IN_REGION = ThreadLocal.withInitial(() -> Boolean.FALSE);
    /** Held by the caller whose region the team runs. */
    private static final AtomicBoolean TEAM_BUSY = new AtomicBoolean();

    private static volatile int threads = initialThreads();
    /** The workers, grown (under LOCK) and never shrunk: a region posts to the first {@code helpers} of them. */
    private static volatile Worker[] team = new Worker[0];

    private Parallelism() {}

    static {
        VectorApi.require(); // a missing --add-modules flag is named before the first kernel fails to link
    }

    private static int initialThreads() {
        String property = System.getProperty("panamax.threads");
        if (property == null || property.isBlank()) {
            return Runtime.getRuntime().availableProcessors();
        }
        try {
            int value = Integer.parseInt(property.trim());
            if (value >= 1) {
                return value;
            }
        } catch (NumberFormatException e) {
            // reported below with the value that was given
        }
        throw new IllegalArgumentException(
                "system property panamax.threads (" + property + ") must be a whole number >= 1");
    }

    /**
     * Returns the number of threads kernels may use, including the calling thread.
     *
     * @return the parallelism, at least 1
     */
    public static int threads() {
        return threads;
    }

    /**
     * Sets the number of threads kernels may use, including the calling thread. Takes effect for calls that start
     * afterwards; calls already running, on other threads, finish as they began. Results do not depend on it.
     *
     * @param count the parallelism, at least 1
     * @throws IllegalArgumentException if {@code count < 1}
     */
    public static void setThreads(int count) {
        if (count < 1) {
            throw new IllegalArgumentException("threads (" + count + ") must be >= 1");
        }
        // Workers past the new count stay parked until a larger count posts to them again.
        threads = count;
    }

    /** Whether worker threads may read and write this segment (false for a confined arena's segments). */
    static boolean shareable(MemorySegment segment) {
        return segment.isAccessibleBy(OTHER_THREAD);
    }

    /** As {@link #forEach(int, IntConsumer)} when {@code parallel}, else every task in order on the calling thread. */
    static void forEach(int tasks, boolean parallel, IntConsumer body) {
        if (parallel) {
            forEach(tasks, body);
        } else {
            for (int task = 0; task < tasks; task++) {
                body.accept(task);
            }
        }
    }

    /** Whether workers may access all of these segments; null ones (absent optional operands) do not count. */
    static boolean shareable(MemorySegment first, MemorySegment... more) {
        if (first != null && !shareable(first)) {
            return false;
        }
        for (MemorySegment segment : more) {
            if (segment != null && !shareable(segment)) {
                return false;
            }
        }
        return true;
    }

    /**
     * Runs {@code body} for every task index in {@code [0, tasks)}, on up to {@link #threads()} threads including the
     * caller, and returns when all have finished: the parallel region every kernel runs, on the same team, for code
     * that must pay what a kernel pays (the benchmarks' reference read does). Tasks must be independent; which thread
     * runs which is not fixed, and every thread takes the next task from a shared counter. Memory the tasks touch must
     * be accessible from other threads (not a confined arena's). A nested call, or one made while the team runs
     * another caller's region, runs its tasks on the calling thread.
     *
     * @param tasks how many tasks, at least 0
     * @param body the task, given its index
     * @throws IllegalArgumentException if {@code tasks < 0}
     * @throws RuntimeException the first exception a task threw, rethrown on the caller once every thread has stopped
     */
    public static void forEach(int tasks, IntConsumer body) {
        if (tasks < 0) {
            throw new IllegalArgumentException("tasks (" + tasks + ") must be >= 0");
        }
        int workers = Math.min(tasks, threads);
        if (workers <= 1 || IN_REGION.get() || !TEAM_BUSY.compareAndSet(false, true)) {
            for (int task = 0; task < tasks; task++) {
                body.accept(task);
            }
            return;
        }
        try {
            runOnTeam(tasks, body, workers - 1);
        } finally {
            TEAM_BUSY.set(false);
        }
    }

    /** A region on the caller and {@code helpers} workers, the caller holding the team. */
    private static void runOnTeam(int tasks, IntConsumer body, int helpers) {
        Worker[] workers = team(helpers);
        Region region = new Region(tasks, body, helpers);
        for (int i = 0; i < helpers; i++) {
            workers[i].post(region);
        }
        IN_REGION.set(Boolean.TRUE);
        try {
            region.drain();
        } finally {
            IN_REGION.set(Boolean.FALSE);
        }
        // A worker that has not claimed its slot by now has no task left to take: the caller claims the slot and does
        // not wait, so a worker the OS has not scheduled (the other core busy) costs nothing.
        for (int i = 0; i < helpers; i++) {
            if (region.slots.compareAndSet(i, UNCLAIMED, BY_CALLER)) {
                workers[i].withdraw(region);
            } else {
                region.awaitFinished(i);
            }
        }
        region.rethrow();
    }

    /** The team, grown to at least {@code size} workers. */
    private static Worker[] team(int size) {
        Worker[] current = team;
        if (current.length >= size) {
            return current;
        }
        synchronized (LOCK) {
            current = team;
            if (current.length < size) {
                Worker[] grown = Arrays.copyOf(current, size);
                for (int i = current.length; i < size; i++) {
                    grown[i] = new Worker(i);
                }
                team = grown;
                current = grown;
            }
        }
        return current;
    }

    /** One parallel region: its tasks, the counter they are taken from, and the helpers' slots. */
    private static final class Region {
        final int tasks;
        final IntConsumer body;
        final AtomicInteger next = new AtomicInteger();
        final AtomicIntegerArray slots;
        /** The first failure of any thread, rethrown by the caller. */
        final AtomicReference<Throwable> failure = new AtomicReference<>();

        Region(int tasks, IntConsumer body, int helpers) {
            this.tasks = tasks;
            this.body = body;
            this.slots = new AtomicIntegerArray(helpers);
        }

        /** Runs tasks until none is left; a failure ends this thread's share and is kept for the caller. */
        void drain() {
            try {
                for (int task; (task = next.getAndIncrement()) < tasks; ) {
                    body.accept(task);
                }
            } catch (Throwable e) { // a checked exception thrown sneakily too: a worker must live to mark its slot
                failure.compareAndSet(null, e);
            }
        }

        /** Runs the region's tasks on the worker of {@code slot}, unless the caller has claimed the slot already. */
        void help(int slot) {
            if (slots.compareAndSet(slot, UNCLAIMED, BY_HELPER)) {
                drain();
                slots.set(slot, FINISHED);
            }
        }

        /** Waits for the worker of {@code slot}, which has claimed it, to finish the tasks it took. */
        void awaitFinished(int slot) {
            for (int spins = 0; slots.get(slot) != FINISHED; spins++) {
                if (spins < 1 << 12) {
                    Thread.onSpinWait();
                } else {
                    // The worker lost its core mid-task: let it have this one.
                    Thread.yield();
                }
            }
        }

        void rethrow() {
            Throwable e = failure.get();
            if (e instanceof RuntimeException runtime) {
                throw runtime;
            } else if (e instanceof Error error) {
                throw error;
            } else if (e != null) {
                throw new IllegalStateException("a kernel task failed", e);
            }
        }
    }

    /** A daemon worker thread and its mailbox, marked as inside a region so that kernels it runs do not fan out. */
    private static final class Worker {
        private final int slot;
        private final AtomicReference<Region> mailbox = new AtomicReference<>();
        /** Whether the thread is parked or about to park, so that a poster must unpark it. */
        private volatile boolean sleeping;

        private final Thread thread;

        Worker(int slot) {
            this.slot = slot;
            this.thread = new Thread(this::loop, "panamax-worker-" + (slot + 1));
            thread.setDaemon(true);
            thread.start();
        }

        /** Hands {@code region} to this worker, waking it if it has parked. */
        void post(Region region) {
            mailbox.set(region);
            // The worker sets sleeping before it looks at the mailbox a last time: either it sees the region, or this
            // sees it sleeping and unparks it (a permit given before park makes park return at once).
            if (sleeping) {
                LockSupport.unpark(thread);
            }
        }

        /** Takes back a region whose slot the caller claimed, so that the worker does not find it later. */
        void withdraw(Region region) {
            mailbox.compareAndSet(region, null);
        }

        private void loop() {
            IN_REGION.set(Boolean.TRUE);
            while (true) {
                awaitRegion().help(slot);
            }
        }

        private Region awaitRegion() {
            long spinStart = System.nanoTime();
            while (true) {
                // Read before taking, so that spinning reads a shared cache line rather than writing to it.
                if (mailbox.get() != null) {
                    Region region = mailbox.getAndSet(null);
                    if (region != null) {
                        return region;
                    }
                }
                if (System.nanoTime() - spinStart < SPIN_NANOS) {
                    Thread.onSpinWait();
                    continue;
                }
                sleeping = true;
                if (mailbox.get() == null) {
                    LockSupport.park(this);
                }
                sleeping = false;
                spinStart = System.nanoTime();
            }
        }
    }
}
