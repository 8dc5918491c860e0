package dev.panamax.bench;

import java.util.SplittableRandom;

/**
 * What one operation of a benchmark does, so that a time per operation becomes a rate a person can judge: GFLOP/s for
 * compute-bound kernels, GB/s for memory-bound ones, and the fraction of this machine's ceiling.
 *
 * @param amount work per operation, in {@code unit}s (e.g. 2·m·n·k / 1e9 GFLOP)
 * @param unit the unit of work, e.g. {@code "GFLOP"} or {@code "GB"}
 * @param ceiling the machine's best rate for that work, in {@code unit}s per second (for the benchmark's threads)
 */
public record Workload(double amount, String unit, double ceiling) {
    /** Single-core FP32 FMA peak of the 2-core development machine (AVX2, Zen 3), from shared/limits.md. */
    public static final double GFLOPS_PER_CORE = 95;
    /** Single-thread memory bandwidth (triad) of the development machine, from shared/limits.md. */
    public static final double GBS_ONE_THREAD = 15;
    /** Two-thread memory bandwidth of the development machine. */
    public static final double GBS_TWO_THREADS = 21;

    /**
     * A compute-bound workload of {@code flop} floating-point operations on {@code threads} cores.
     *
     * @param flop operations per benchmark operation
     * @param threads cores used
     * @return the workload
     */
    public static Workload flops(double flop, int threads) {
        return new Workload(flop / 1e9, "GFLOP", GFLOPS_PER_CORE * threads);
    }

    /**
     * A memory-bound workload streaming {@code bytes} bytes on {@code threads} threads.
     *
     * @param bytes bytes moved per benchmark operation
     * @param threads threads used
     * @return the workload
     */
    public static Workload bytes(double bytes, int threads) {
        return new Workload(bytes / 1e9, "GB", threads == 1 ? GBS_ONE_THREAD : GBS_TWO_THREADS);
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
