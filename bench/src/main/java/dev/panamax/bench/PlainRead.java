package dev.panamax.bench;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import jdk.incubator.vector.LongVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * A plain read of a range of bytes by a fixed number of threads (the caller and {@code threads − 1} readers of its
 * own), each summing an equal part with vector loads: the bandwidth a memory-bound kernel reading the same bytes on
 * as many threads can at best reach. The sum keeps the loads from being optimised away.
 */
final class PlainRead implements AutoCloseable {
    private static final VectorSpecies<Long> LONGS = LongVector.SPECIES_PREFERRED;

    private final int threads;
    private final ExecutorService readers;

    /**
     * Starts the readers.
     *
     * @param threads how many threads read, at least 1
     */
    PlainRead(int threads) {
        if (threads < 1) {
            throw new IllegalArgumentException("threads (" + threads + ") must be >= 1");
        }
        this.threads = threads;
        this.readers = Executors.newFixedThreadPool(Math.max(1, threads - 1));
    }

    /**
     * Reads bytes {@code [from, to)} of {@code data}, split into equal parts of whole cache lines.
     *
     * @param data the bytes
     * @param from the first byte
     * @param to one past the last byte
     * @return the sum of the bytes read as longs
     * @throws ExecutionException if a reader fails
     * @throws InterruptedException if the caller is interrupted while it waits for a reader
     */
    long read(MemorySegment data, long from, long to) throws ExecutionException, InterruptedException {
        long part = (to - from) / threads / 64 * 64;
        List<Future<Long>> others = new ArrayList<>(threads - 1);
        for (int i = 1; i < threads; i++) {
            long start = from + i * part;
            long end = i == threads - 1 ? to : start + part;
            others.add(readers.submit(() -> sum(data, start, end)));
        }
        long sum = sum(data, from, threads == 1 ? to : from + part);
        for (Future<Long> other : others) {
            sum += other.get();
        }
        return sum;
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

    @Override
    public void close() {
        readers.shutdown();
    }
}
