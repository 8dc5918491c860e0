package dev.panamax.model.cli;

import java.math.BigDecimal;
import java.math.MathContext;
import java.util.Arrays;
import java.util.function.LongSupplier;

/**
 * The demo's timer: a rate measured only once the code under test has warmed up and its speed has settled. Until the
 * JIT has compiled a kernel it can run far slower, and on a busy machine that can last well past a fixed
 * warm-up, so batches of runs are timed until three in a row agree; a rate that never settles is reported as such,
 * not as a number. Each batch counts its fastest run, so that time the machine gave to other processes is not counted
 * as the kernel's.
 */
final class Timing {
    /** The least time a kernel runs before any batch counts. */
    static final long WARM_UP_NANOS = 500_000_000L;

    /** The least length of one timed batch. */
    static final long BATCH_NANOS = 100_000_000L;

    /** The fewest runs in one timed batch. */
    static final int BATCH_RUNS = 3;

    /** How many consecutive batches must agree. */
    static final int AGREEING_BATCHES = 3;

    /** The most time spent on one rate, warm-up included. */
    static final long CAP_NANOS = 5_000_000_000L;

    /** How close the agreeing batches' rates must be, relative to the fastest of them. */
    static final double AGREEMENT = 0.1;

    private Timing() {}

    /**
     * A measured rate.
     *
     * @param perSecond work per second: the fastest of the batches that agreed, or of all batches if none did
     * @param settled whether {@link #AGREEING_BATCHES} consecutive batches agreed before the time cap
     */
    record Rate(double perSecond, boolean settled) {
        /** The rate in units of 10⁹ per second, to three significant digits, or {@code unsettled}. */
        String giga() {
            return settled ? significant(perSecond / 1e9) : "unsettled";
        }
    }

    /**
     * Measures how fast {@code kernel} does {@code work} units.
     *
     * @param work the units of work one run does (bytes, floating-point operations)
     * @param kernel the code to time
     * @param clock nanoseconds, e.g. {@code System::nanoTime}
     * @return the rate
     */
    static Rate measure(double work, Runnable kernel, LongSupplier clock) {
        long start = clock.getAsLong();
        while (clock.getAsLong() - start < WARM_UP_NANOS) {
            kernel.run();
        }
        double[] recent = new double[AGREEING_BATCHES];
        int batches = 0;
        double best = 0;
        while (clock.getAsLong() - start < CAP_NANOS) {
            long batchStart = clock.getAsLong();
            long fastest = Long.MAX_VALUE;
            int runs = 0;
            long now;
            do {
                long runStart = clock.getAsLong();
                kernel.run();
                now = clock.getAsLong();
                fastest = Math.min(fastest, now - runStart);
                runs++;
            } while (now - batchStart < BATCH_NANOS || runs < BATCH_RUNS);
            double rate = work / (Math.max(1, fastest) * 1e-9);
            best = Math.max(best, rate);
            recent[batches++ % AGREEING_BATCHES] = rate;
            if (batches >= AGREEING_BATCHES && agree(recent, best)) {
                return new Rate(Arrays.stream(recent).max().orElseThrow(), true);
            }
        }
        return new Rate(best, false);
    }

    /** Whether the rates are within {@link #AGREEMENT} of the fastest, which is also the best so far. */
    private static boolean agree(double[] rates, double best) {
        double fastest = Arrays.stream(rates).max().orElseThrow();
        double slowest = Arrays.stream(rates).min().orElseThrow();
        // A pause that slows every batch alike must not settle a rate below one already seen.
        return fastest - slowest <= AGREEMENT * fastest && fastest >= (1 - AGREEMENT) * best;
    }

    /** A positive number to three significant digits, without an exponent: {@code 0.0412}, {@code 1230}. */
    static String significant(double value) {
        return new BigDecimal(value)
                .round(new MathContext(3))
                .stripTrailingZeros()
                .toPlainString();
    }
}
