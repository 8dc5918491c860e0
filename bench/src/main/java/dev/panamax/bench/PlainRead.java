package dev.panamax.bench;

import dev.panamax.kernels.Parallelism;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.concurrent.atomic.AtomicLong;
import jdk.incubator.vector.LongVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * A plain read of a range of bytes on {@link Parallelism#threads()} threads, each task summing a part with vector
 * loads: the bandwidth a memory-bound kernel reading the same bytes on as many threads can at best reach. It runs as
 * a parallel region of Panamax's own team ({@link Parallelism#forEach}), so it pays the hand-off a kernel pays: the
 * same spinning workers, and parts taken from a shared counter. The sum keeps the loads from being optimised away.
 */
final class PlainRead {
    private static final VectorSpecies<Long> LONGS = LongVector.SPECIES_PREFERRED;
    /** Parts per thread, as the quantized decode product splits its rows, so that a slow thread takes fewer. */
    private static final int PARTS_PER_THREAD = 4;

    private PlainRead() {}

    /**
     * Reads bytes {@code [from, to)} of {@code data}, a segment other threads may access, in parts of whole cache
     * lines.
     *
     * @param data the bytes
     * @param from the first byte
     * @param to one past the last byte
     * @return the sum of the bytes read as longs
     */
    static long read(MemorySegment data, long from, long to) {
        int threads = Parallelism.threads();
        int parts = threads == 1 ? 1 : PARTS_PER_THREAD * threads;
        long part = (to - from) / parts / 64 * 64;
        AtomicLong total = new AtomicLong();
        Parallelism.forEach(parts, i -> {
            long start = from + i * part;
            total.addAndGet(sum(data, start, i == parts - 1 ? to : start + part));
        });
        return total.get();
    }

    /** The sum of the longs in bytes {@code [from, to)}, four vectors at a time; the bytes past whole vectors one by one. */
    private static long sum(MemorySegment data, long from, long to) {
        int step = LONGS.vectorByteSize();
        long end = from + (to - from) / (4L * step) * 4 * step;
        LongVector s0 = LongVector.zero(LONGS), s1 = s0, s2 = s0, s3 = s0;
        for (long at = from; at < end; at += 4L * step) {
            s0 = s0.add(LongVector.fromMemorySegment(LONGS, data, at, ByteOrder.LITTLE_ENDIAN));
            s1 = s1.add(LongVector.fromMemorySegment(LONGS, data, at + step, ByteOrder.LITTLE_ENDIAN));
            s2 = s2.add(LongVector.fromMemorySegment(LONGS, data, at + 2L * step, ByteOrder.LITTLE_ENDIAN));
            s3 = s3.add(LongVector.fromMemorySegment(LONGS, data, at + 3L * step, ByteOrder.LITTLE_ENDIAN));
        }
        long sum = s0.add(s1).add(s2.add(s3)).reduceLanes(VectorOperators.ADD);
        for (long at = end; at < to; at++) {
            sum += data.get(ValueLayout.JAVA_BYTE, at);
        }
        return sum;
    }
}
