package dev.panamax.model.cli;

import java.math.BigDecimal;
import java.math.MathContext;
import java.util.function.LongSupplier;

/**
 * The demo's timer: a rate measured only once the code under test has warmed up and its speed has settled. Until the
 * JIT has compiled a kernel it can run a hundred times slower, and on a busy machine that can last well past a fixed
 * warm-up, so batches are timed until two in a row agree; a rate that never settles is reported as such, not as a
 * number.
 */
final class Timing {
    /** The least time a kernel runs before any batch counts. */
    static final long WARM_UP_NANOS = 500_000_000L;

    /** The least length of one timed batch. */
    static final long BATCH_NANOS = 100_000_000L;

    /** The most time spent on one rate, warm-up included. */
    static final long CAP_NANOS = 3_000_000_000L;

    /** How close two consecutive batches' rates must be, relative to the faster one. */
    static final double AGREEMENT = 0.1;

    private Timing() {}

    /**
     * A measured rate.
     *
     * @param perSecond work per second: the mean of the two batches that agreed, or the best batch if none did
     * @param settled whether two consecutive batches agreed before the time cap
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
        double previous = Double.NaN;
        double best = 0;
        while (clock.getAsLong() - start < CAP_NANOS) {
            long batchStart = clock.getAsLong();
            long runs = 0;
            long elapsed;
            do {
                kernel.run();
                runs++;
                elapsed = clock.getAsLong() - batchStart;
            } while (elapsed < BATCH_NANOS);
            double rate = work * runs / (elapsed * 1e-9);
            best = Math.max(best, rate);
            // The faster batch must also be the best so far: a pause that slows two batches alike does not settle it.
            double faster = Math.max(rate, previous);
            if (Math.abs(rate - previous) <= AGREEMENT * faster && faster >= (1 - AGREEMENT) * best) {
                return new Rate((rate + previous) / 2, true);
            }
            previous = rate;
        }
        return new Rate(best, false);
    }

    /** A positive number to three significant digits, without an exponent: {@code 0.0412}, {@code 1230}. */
    static String significant(double value) {
        return new BigDecimal(value)
                .round(new MathContext(3))
                .stripTrailingZeros()
                .toPlainString();
    }
}
