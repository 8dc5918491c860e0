package dev.panamax.model.backend;

import dev.panamax.cuda.CudaEvent;
import dev.panamax.cuda.CudaStream;
import dev.panamax.cuda.DeviceBuffer;
import dev.panamax.cuda.ElementType;
import dev.panamax.cuda.PinnedBuffer;
import java.lang.foreign.MemorySegment;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;

/**
 * Uploads from Java arrays that do not wait for the device: the values are written into a ring of pinned host memory
 * and copied from there asynchronously, with a fence recorded after each copy. The host waits only where it would
 * overwrite staging memory that a queued copy has yet to read: it then waits for the newest such copy's fence (which,
 * on one stream, also covers every copy before it). Uploads larger than half the ring go through it in pieces of half
 * its size, so that one piece is written while the one before it is copied.
 *
 * <p>The protocol: memory is handed out in order from {@code head}, wrapping to the start when a piece does not fit
 * before the end; every piece handed out is pending, with its range and fence, until its fence is found done, a later
 * piece's range overlaps it or one after it, more than {@value #MAX_PENDING} pieces would be pending, or the ring
 * closes. Ranges of pending pieces never overlap each other, so no staging memory is written while a copy may still
 * read it. For one thread at a time.
 */
final class UploadRing implements AutoCloseable {
    /** A point in the queue of work after a copy: waiting for it means the copy has read its staging memory. */
    interface Fence {
        /**
         * Whether the work queued before the fence has run, without waiting.
         *
         * @return true once it has
         */
        boolean isDone();

        /** Waits until the work queued before the fence has run; called once, after which the fence may be reused. */
        void await();
    }

    /** Where the copies run: a CUDA stream, or in tests a queue that copies late. */
    interface Queue extends AutoCloseable {
        /**
         * Queues a copy of {@code count} floats from {@code source} into {@code target} at element {@code index}.
         *
         * @param source staging memory, unchanged until a fence recorded after the copy has been waited for
         * @param target the device buffer
         * @param index the first element written
         * @param count the floats
         */
        void copy(MemorySegment source, DeviceBuffer target, long index, long count);

        /**
         * Records a fence after the work queued so far.
         *
         * @return the fence
         */
        Fence fence();

        /** Waits for every copy queued so far without a fence: the way out when recording or awaiting one failed. */
        void drain();

        /** Frees the queue's fences, once every fence it recorded has been waited for. */
        @Override
        void close();
    }

    private record Pending(long start, long end, Fence fence) {}

    /** The most pieces pending at once, which bounds the fences (CUDA events) in use. */
    static final int MAX_PENDING = 64;

    private final PinnedBuffer staging;
    private final Queue queue;
    private final long piece;
    private final ArrayDeque<Pending> pending = new ArrayDeque<>();
    private long head;
    private long waits;

    /**
     * A ring of {@code floats} floats of pinned memory, copying through {@code queue}.
     *
     * @param floats the ring's size, at least 2
     * @param queue where the copies run, closed with the ring
     */
    UploadRing(long floats, Queue queue) {
        if (floats < 2) {
            throw new IllegalArgumentException("floats (" + floats + ") must be >= 2");
        }
        this.queue = Objects.requireNonNull(queue, "queue");
        this.staging = PinnedBuffer.allocate(ElementType.FLOAT, floats);
        this.piece = floats / 2;
    }

    /**
     * A ring of {@code floats} floats whose copies run on {@code stream}, with CUDA events as fences (reused once waited
     * for).
     *
     * @param floats the ring's size, at least 2
     * @param stream the stream the uploads are ordered with
     * @return the ring
     */
    static UploadRing onStream(long floats, CudaStream stream) {
        return new UploadRing(floats, new StreamQueue(stream));
    }

    /** Copies on a stream, with fences that are CUDA events, each back among the idle ones once waited for. */
    private static final class StreamQueue implements Queue {
        private final CudaStream stream;
        private final List<CudaEvent> events = new ArrayList<>();
        private final ArrayDeque<CudaEvent> idle = new ArrayDeque<>();

        StreamQueue(CudaStream stream) {
            this.stream = Objects.requireNonNull(stream, "stream");
        }

        @Override
        public void copy(MemorySegment source, DeviceBuffer target, long index, long count) {
            target.copyFromAsync(index, source, count, stream);
        }

        @Override
        public Fence fence() {
            CudaEvent event = idle.poll();
            if (event == null) {
                event = CudaEvent.create(false);
                events.add(event);
            }
            event.record(stream);
            CudaEvent recorded = event;
            return new Fence() {
                @Override
                public boolean isDone() {
                    return recorded.isDone();
                }

                @Override
                public void await() {
                    recorded.synchronize();
                    idle.add(recorded);
                }
            };
        }

        @Override
        public void drain() {
            stream.synchronize();
        }

        @Override
        public void close() {
            for (CudaEvent event : events) {
                event.close();
            }
        }
    }

    /**
     * Queues a copy of {@code values[offset .. offset + count)} into {@code target} from element {@code index}; the
     * array may be reused as soon as this returns.
     *
     * @param values the floats
     * @param offset the first one copied
     * @param count how many
     * @param target the device buffer of floats, with room for them from {@code index}
     * @param index the first element written
     * @throws IllegalArgumentException if the target does not hold floats (the staging bytes are copied as they are)
     */
    void upload(float[] values, int offset, int count, DeviceBuffer target, long index) {
        Objects.checkFromIndexSize(offset, count, values.length);
        Objects.checkFromIndexSize(index, count, target.length());
        if (target.type() != ElementType.FLOAT) {
            throw new IllegalArgumentException(
                    "target holds " + target.type() + ", not FLOAT: the ring copies float bytes as they are");
        }
        for (int done = 0; done < count; ) {
            int n = (int) Math.min(piece, count - done);
            long start = claim(n);
            staging.copyFrom(start, values, offset + done, n);
            queue.copy(staging.segment().asSlice(start * Float.BYTES, (long) n * Float.BYTES), target, index + done, n);
            Fence fence;
            try {
                fence = queue.fence();
            } catch (RuntimeException e) {
                // The copy is queued but untracked: wait for it, so that the next upload may reuse its staging memory.
                throw drained(e);
            }
            pending.add(new Pending(start, start + n, fence));
            head = start + n;
            done += n;
        }
    }

    /**
     * The start of {@code n} floats of staging memory that no queued copy still reads: from {@code head}, or from the
     * ring's start where they would pass its end, after waiting for the copies of the pieces that overlap them.
     */
    private long claim(long n) {
        // Pieces whose copies have run are no longer pending: their fences are free without a wait.
        while (!pending.isEmpty() && pending.peekFirst().fence.isDone()) {
            pending.removeFirst().fence.await();
        }
        long start = head + n > staging.length() ? 0 : head;
        int retire = Math.max(0, pending.size() + 1 - MAX_PENDING);
        int i = 0;
        for (Pending p : pending) {
            i++;
            if (p.start < start + n && start < p.end) {
                retire = Math.max(retire, i);
            }
        }
        if (retire > 0) {
            // Fences complete in queue order: waiting for the oldest first costs no more than for the newest alone.
            waits++;
            for (int r = 0; r < retire; r++) {
                pending.removeFirst().fence.await();
            }
        }
        return start;
    }

    /**
     * The times an upload waited for copies not yet found done: to reuse their staging memory, or to keep at most
     * {@value #MAX_PENDING} pieces pending.
     *
     * @return the count since the ring was created
     */
    long waits() {
        return waits;
    }

    /** {@code failure}, after waiting for every queued copy without fences; a failure of that wait is suppressed in it. */
    private RuntimeException drained(RuntimeException failure) {
        try {
            queue.drain();
        } catch (RuntimeException e) {
            failure.addSuppressed(e);
        }
        return failure;
    }

    /**
     * Waits for every pending copy (for all queued work, if a fence's wait fails), then frees the fences and the
     * staging memory.
     */
    @Override
    public void close() {
        try {
            while (!pending.isEmpty()) {
                pending.removeFirst().fence.await();
            }
        } catch (RuntimeException e) {
            pending.clear();
            throw drained(e);
        } finally {
            try {
                queue.close();
            } finally {
                staging.close();
            }
        }
    }
}
