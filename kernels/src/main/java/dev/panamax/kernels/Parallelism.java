package dev.panamax.kernels;

import java.lang.foreign.MemorySegment;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.ThreadFactory;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicIntegerArray;
import java.util.function.IntConsumer;

/**
 * The library-wide threading policy: one pool of worker threads shared by every kernel.
 *
 * <p>The default parallelism is the number of available processors, or the system property {@code
 * panamax.threads} when set. Kernels split work so that each output element is always reduced in the same order:
 * results are bit-identical for every thread count. Kernels keep small problems on the calling thread, since a hand-off
 * to a worker can cost a whole scheduler slice when the cores are busy.
 *
 * <p>Kernels may be called from any number of threads at once, also while {@link #setThreads(int)} changes the count:
 * all calls share one pool that is never shut down, only resized, so a call never finds its executor gone.
 */
public final class Parallelism {
    private static final Object LOCK = new Object();
    /** States of a helper's slot in a parallel region. */
    private static final int UNCLAIMED = 0, BY_HELPER = 1, BY_CALLER = 2;
    /** A thread that never runs: segments accessible by it are accessible by any worker (shared, global, auto). */
    private static final Thread OTHER_THREAD = new Thread(() -> {});
    /** Set on the threads that are running a parallel region, so that nested regions run inline. */
    private static final ThreadLocal<Boolean> IN_REGION = ThreadLocal.withInitial(() -> Boolean.FALSE);

    private static volatile int threads = initialThreads();
    /**
     * The helpers of every parallel region. Its queue is unbounded, so it never rejects a task, and it is resized
     * (under LOCK) rather than replaced, so a caller that read the thread count before a change still submits
     * to a live pool; helpers queued beyond its size are claimed by their caller, which never waits for them.
     */
    private static final ThreadPoolExecutor POOL = new ThreadPoolExecutor(
            0, Integer.MAX_VALUE, 0, TimeUnit.SECONDS, new LinkedBlockingQueue<>(), new WorkerFactory());

    private Parallelism() {}

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
        synchronized (LOCK) {
            threads = count;
            // Workers past the new count finish what they run and leave when idle; a call still using the old count
            // grows the pool again in pool(), so nothing it submits is refused.
            if (POOL.getCorePoolSize() > count - 1) {
                POOL.setCorePoolSize(count - 1);
            }
        }
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
     * caller, and returns when all have finished. Tasks must be independent; which thread runs which is not fixed.
     */
    static void forEach(int tasks, IntConsumer body) {
        int workers = Math.min(tasks, threads);
        if (workers <= 1 || IN_REGION.get()) {
            for (int task = 0; task < tasks; task++) {
                body.accept(task);
            }
            return;
        }
        AtomicInteger next = new AtomicInteger();
        Runnable drain = () -> {
            for (int task; (task = next.getAndIncrement()) < tasks; ) {
                body.accept(task);
            }
        };
        ThreadPoolExecutor executor = pool(workers - 1);
        Future<?>[] helpers = new Future<?>[workers - 1];
        // Each helper claims its slot before draining; the caller, done with the tasks, claims the slots of helpers
        // that have not started and does not wait for them. A worker that the OS has not scheduled yet (the other core
        // busy) then costs nothing, instead of the caller waiting up to a scheduler slice for a helper with no work.
        AtomicIntegerArray claims = new AtomicIntegerArray(helpers.length);
        for (int i = 0; i < helpers.length; i++) {
            int slot = i;
            helpers[i] = executor.submit(() -> {
                if (claims.compareAndSet(slot, UNCLAIMED, BY_HELPER)) {
                    drain.run();
                }
            });
        }
        Throwable failure = null;
        IN_REGION.set(Boolean.TRUE);
        try {
            drain.run();
        } catch (RuntimeException | Error e) {
            failure = e;
        } finally {
            IN_REGION.set(Boolean.FALSE);
        }
        for (int i = 0; i < helpers.length; i++) {
            if (claims.compareAndSet(i, UNCLAIMED, BY_CALLER)) {
                continue;
            }
            Future<?> helper = helpers[i];
            try {
                helper.get();
            } catch (ExecutionException e) {
                failure = failure == null ? e.getCause() : failure;
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                failure = failure == null ? e : failure;
            }
        }
        if (failure instanceof RuntimeException runtime) {
            throw runtime;
        } else if (failure instanceof Error error) {
            throw error;
        } else if (failure != null) {
            throw new IllegalStateException("a kernel worker failed", failure);
        }
    }

    /** The shared pool, grown to at least {@code size} workers. */
    private static ThreadPoolExecutor pool(int size) {
        if (POOL.getCorePoolSize() >= size) {
            return POOL;
        }
        synchronized (LOCK) {
            if (POOL.getCorePoolSize() < size) {
                POOL.setCorePoolSize(size);
            }
        }
        return POOL;
    }

    /** Daemon workers, marked as inside a region so that kernels they run do not fan out again. */
    private static final class WorkerFactory implements ThreadFactory {
        private final AtomicInteger counter = new AtomicInteger();

        @Override
        public Thread newThread(Runnable runnable) {
            Thread thread = new Thread(
                    () -> {
                        IN_REGION.set(Boolean.TRUE);
                        runnable.run();
                    },
                    "panamax-worker-" + counter.incrementAndGet());
            thread.setDaemon(true);
            return thread;
        }
    }
}
