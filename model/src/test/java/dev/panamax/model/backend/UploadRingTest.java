package dev.panamax.model.backend;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.panamax.cuda.DeviceBuffer;
import dev.panamax.cuda.ElementType;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/**
 * The staging ring of the CUDA backend's uploads ({@link UploadRing}) against a queue that runs each copy as late as a
 * GPU may: only when a fence recorded after it is waited for, or when the ring closes. A copy then reads its staging
 * memory long after the upload returned, so any staging memory the ring overwrote (or freed) while a copy still
 * needed it shows as wrong values in the device buffer (or an exception), which the emulated device's own copies,
 * done when queued, would never show.
 */
class UploadRingTest {
    /** Copies queued in order and run late; a fence runs the copies queued before it. */
    private static final class LateQueue implements UploadRing.Queue {
        private record Copy(MemorySegment source, DeviceBuffer target, long index, long count) {}

        private final List<Copy> queued = new ArrayList<>();
        private int ran;
        private int fencesAwaited;
        private boolean closed;
        /** Fences recorded before the next one fails, as a failed cudaEventRecord would; negative: none fails. */
        private int fencesBeforeFailure = -1;

        private void runTo(int end) {
            while (ran < end) {
                Copy c = queued.get(ran++);
                c.target.copyFrom(c.index, c.source, c.count);
            }
        }

        @Override
        public void copy(MemorySegment source, DeviceBuffer target, long index, long count) {
            queued.add(new Copy(source, target, index, count));
        }

        @Override
        public UploadRing.Fence fence() {
            if (fencesBeforeFailure-- == 0) {
                throw new IllegalStateException("no fence");
            }
            int before = queued.size();
            return new UploadRing.Fence() {
                @Override
                public boolean isDone() {
                    return ran >= before;
                }

                @Override
                public void await() {
                    fencesAwaited++;
                    runTo(before);
                }
            };
        }

        @Override
        public void drain() {
            runTo(queued.size());
        }

        @Override
        public void close() {
            assertEquals(queued.size(), ran, "every copy ran before the ring closed its queue");
            closed = true;
        }
    }

    /**
     * 300 uploads of 1 to 23 floats (a ring of 10 floats: pieces of 5, wrapping all the time) into distinct ranges of a
     * device buffer, each array overwritten as soon as the upload returns: after the ring closes, every range holds
     * its values.
     */
    @Test
    void noCopyReadsStagingMemoryThatWasOverwritten() {
        EmulatedBackends.run(0, b -> {
            SplittableRandom random = new SplittableRandom(5);
            int uploads = 300;
            int[] sizes = random.ints(uploads, 1, 24).toArray();
            int total = Arrays.stream(sizes).sum();
            float[] expected = new float[total];
            LateQueue queue = new LateQueue();
            try (DeviceBuffer target = DeviceBuffer.allocate(ElementType.FLOAT, total)) {
                UploadRing ring = new UploadRing(10, queue);
                int at = 0;
                for (int size : sizes) {
                    float[] values = new float[size + 2];
                    for (int i = 0; i < values.length; i++) {
                        values[i] = (float) random.nextGaussian();
                    }
                    System.arraycopy(values, 1, expected, at, size);
                    ring.upload(values, 1, size, target, at);
                    Arrays.fill(values, Float.NaN);
                    at += size;
                }
                long waits = ring.waits();
                ring.close();
                assertTrue(queue.closed);
                float[] actual = new float[total];
                target.copyTo(actual);
                assertArrayEquals(expected, actual);
                assertTrue(waits > 0, "a ring smaller than the uploads waits");
            }
            return null;
        });
    }

    /**
     * A copy whose fence could not be recorded is waited for before the upload throws, so the next upload, which reuses
     * its staging memory, cannot change what it copies; a target of another type than float is refused.
     */
    @Test
    void aCopyWithoutAFenceIsWaitedForAndOtherTypesAreRefused() {
        EmulatedBackends.run(0, b -> {
            LateQueue queue = new LateQueue();
            try (DeviceBuffer target = DeviceBuffer.allocate(ElementType.FLOAT, 8);
                    DeviceBuffer halves = DeviceBuffer.allocate(ElementType.HALF, 8)) {
                UploadRing ring = new UploadRing(4, queue);
                queue.fencesBeforeFailure = 0;
                float[] first = {1, 2, 3, 4};
                assertThrows(IllegalStateException.class, () -> ring.upload(first, 0, 2, target, 0));
                assertEquals(1, queue.ran, "the copy without a fence ran before the upload threw");
                ring.upload(new float[] {5, 6}, 0, 2, target, 2);
                IllegalArgumentException refused =
                        assertThrows(IllegalArgumentException.class, () -> ring.upload(first, 0, 2, halves, 0));
                assertTrue(refused.getMessage().contains("not FLOAT"), refused.getMessage());
                ring.close();
                float[] actual = new float[8];
                target.copyTo(actual);
                assertArrayEquals(new float[] {1, 2, 5, 6}, Arrays.copyOf(actual, 4));
            }
            return null;
        });
    }

    /** Uploads that together fit in the ring never wait: each copy's fence is waited for only when the ring closes. */
    @Test
    void uploadsThatFitInTheRingDoNotWait() {
        EmulatedBackends.run(0, b -> {
            LateQueue queue = new LateQueue();
            try (DeviceBuffer target = DeviceBuffer.allocate(ElementType.FLOAT, 64)) {
                UploadRing ring = new UploadRing(64, queue);
                float[] values = new float[8];
                for (int i = 0; i < 8; i++) {
                    Arrays.fill(values, i);
                    ring.upload(values, 0, 8, target, 8L * i);
                }
                assertEquals(0, ring.waits());
                assertEquals(0, queue.fencesAwaited);
                assertEquals(0, queue.ran, "no copy has run yet");
                ring.close();
                float[] actual = new float[64];
                target.copyTo(actual);
                for (int i = 0; i < 64; i++) {
                    assertEquals(i / 8, actual[i], "element " + i);
                }
            }
            return null;
        });
    }

    /**
     * 200 uploads of one float into a ring with room for thousands, whose copies never run by themselves: at most
     * {@link UploadRing#MAX_PENDING} are ever outstanding (each upload past that many waits for the oldest), so the
     * fences in use stay bounded; every value lands.
     */
    @Test
    void pendingPiecesAreBounded() {
        EmulatedBackends.run(0, b -> {
            LateQueue queue = new LateQueue();
            int uploads = 200;
            try (DeviceBuffer target = DeviceBuffer.allocate(ElementType.FLOAT, uploads)) {
                UploadRing ring = new UploadRing(1 << 12, queue);
                for (int i = 0; i < uploads; i++) {
                    ring.upload(new float[] {i}, 0, 1, target, i);
                    assertTrue(queue.queued.size() - queue.ran <= UploadRing.MAX_PENDING, "after upload " + i);
                }
                assertEquals(uploads - UploadRing.MAX_PENDING, ring.waits());
                ring.close();
                float[] actual = new float[uploads];
                target.copyTo(actual);
                for (int i = 0; i < uploads; i++) {
                    assertEquals(i, actual[i], "element " + i);
                }
            }
            return null;
        });
    }

    @Test
    void badArgumentsAreRefusedBeforeAnyCopy() {
        EmulatedBackends.run(0, b -> {
            LateQueue queue = new LateQueue();
            IllegalArgumentException e =
                    assertThrows(IllegalArgumentException.class, () -> new UploadRing(1, new LateQueue()));
            assertEquals("floats (1) must be >= 2", e.getMessage());
            try (DeviceBuffer target = DeviceBuffer.allocate(ElementType.FLOAT, 4);
                    UploadRing ring = new UploadRing(8, queue)) {
                assertThrows(IndexOutOfBoundsException.class, () -> ring.upload(new float[3], 1, 3, target, 0));
                assertThrows(IndexOutOfBoundsException.class, () -> ring.upload(new float[3], 0, 3, target, 2));
                assertEquals(0, queue.queued.size());
            }
            return null;
        });
    }
}
