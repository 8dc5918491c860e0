package dev.panamax.bench;

import java.math.BigDecimal;
import java.util.SplittableRandom;

/**
 * What one operation of a benchmark does, so that a time per operation becomes a rate a person can judge: GFLOP/s for
 * compute-bound kernels, GB/s for memory-bound ones, tokens/s for a model's prompt, and, where a ceiling is known, the
 * fraction of it.
 *
 * <p>The ceilings are constants measured on the 2-core development machine (shared/limits.md), not on the machine that
 * runs the benchmark, and the report says so beside them. Bandwidth was measured at 1 and 2 threads only: other thread
 * counts have no ceiling. A kernel that only reads memory is held to a plain read, one that also writes to a triad.
 * Where a suite measures a plain read of the same bytes in the same run ({@code plainRead}), its ratio is the one to
 * trust.
 *
 * @param amount work per operation, in {@code unit}s (e.g. 2·m·n·k / 1e9 GFLOP)
 * @param unit the unit of work, e.g. {@code "GFLOP"} or {@code "GB"}
 * @param ceiling the best rate for that work, in {@code unit}s per second on the benchmark's threads, or NaN where none
 *     is known
 * @param ceilingSource what the ceiling is and where it was measured, or empty where there is none
 */
public record Workload(double amount, String unit, double ceiling, String ceilingSource) {
    /** Single-core FP32 FMA peak of the 2-core development machine (AVX2, Zen 3), from shared/limits.md. */
    public static final double GFLOPS_PER_CORE = 95;
    /** Plain AVX2 read (a sum) of 512 MiB on one thread, the development machine's best, from shared/limits.md. */
    public static final double READ_GBS_ONE_THREAD = 19.6;
    /** The same read on two threads. */
    public static final double READ_GBS_TWO_THREADS = 30.5;
    /** Single-thread STREAM-style triad (two arrays read, one written) of the development machine. */
    public static final double TRIAD_GBS_ONE_THREAD = 15;
    /** The same triad on two threads. */
    public static final double TRIAD_GBS_TWO_THREADS = 21;

    private static final String MACHINE =
            "best seen on the 2-core development machine (AMD EPYC Zen 3, AVX2 + FMA, no AVX-512; shared/limits.md),"
                    + " not measured in this run";

    /**
     * A compute-bound workload of {@code flop} floating-point operations on {@code threads} cores, held to the FMA peak
     * of a core times the threads.
     *
     * @param flop operations per benchmark operation
     * @param threads cores used
     * @return the workload
     */
    public static Workload flops(double flop, int threads) {
        return new Workload(
                flop / 1e9,
                "GFLOP",
                GFLOPS_PER_CORE * threads,
                "FP32 FMA peak of " + number(GFLOPS_PER_CORE) + " GFLOP/s a core × " + threads + ", " + MACHINE);
    }

    /**
     * A memory-bound workload that reads {@code bytes} bytes and writes next to nothing (a GEMV's weights, a KV
     * cache), held to a plain read on as many threads where that was measured (1 and 2 threads).
     *
     * @param bytes bytes read per benchmark operation
     * @param threads threads used
     * @return the workload
     */
    public static Workload read(double bytes, int threads) {
        return bandwidth(
                bytes,
                threads,
                READ_GBS_ONE_THREAD,
                READ_GBS_TWO_THREADS,
                "plain AVX2 read (a sum) of 512 MiB in C, best of 5");
    }

    /**
     * A memory-bound workload that reads and writes {@code bytes} bytes in all (an op's input and output), held to a
     * triad on as many threads where that was measured (1 and 2 threads).
     *
     * @param bytes bytes read and written per benchmark operation
     * @param threads threads used
     * @return the workload
     */
    public static Workload readAndWritten(double bytes, int threads) {
        return bandwidth(
                bytes,
                threads,
                TRIAD_GBS_ONE_THREAD,
                TRIAD_GBS_TWO_THREADS,
                "STREAM-style triad over 64 M floats (two arrays read, one written)");
    }

    /**
     * Work counted in {@code unit}s with no ceiling to hold it to, such as the tokens of a prompt.
     *
     * @param amount work per benchmark operation
     * @param unit its unit
     * @return the workload
     */
    public static Workload counted(double amount, String unit) {
        return new Workload(amount, unit, Double.NaN, "");
    }

    private static Workload bandwidth(double bytes, int threads, double one, double two, String what) {
        if (threads != 1 && threads != 2) {
            return counted(bytes / 1e9, "GB");
        }
        double ceiling = threads == 1 ? one : two;
        return new Workload(
                bytes / 1e9,
                "GB",
                ceiling,
                what + ", " + threads + (threads == 1 ? " thread, " : " threads, ") + MACHINE);
    }

    /** {@code value} without trailing zeros: 30.5, 95. */
    static String number(double value) {
        return BigDecimal.valueOf(value).stripTrailingZeros().toPlainString();
    }

    /**
     * Whether a ceiling is known for this work.
     *
     * @return whether {@link #ceiling()} is a number
     */
    public boolean hasCeiling() {
        return !Double.isNaN(ceiling);
    }

    /**
     * Seeded inputs uniform in [-1, 1), the same for every implementation measured side by side.
     *
     * @param seed the seed
     * @param length how many
     * @return a new array
     */
    public static float[] random(long seed, int length) {
        SplittableRandom random = new SplittableRandom(seed);
        float[] values = new float[length];
        for (int i = 0; i < length; i++) {
            values[i] = (float) (random.nextDouble() * 2 - 1);
        }
        return values;
    }
}
