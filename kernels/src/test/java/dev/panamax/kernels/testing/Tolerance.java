package dev.panamax.kernels.testing;

import java.util.Locale;
import java.util.function.IntFunction;
import java.util.function.IntToDoubleFunction;

/**
 * Assertions that compare a kernel's float results with a float64 reference, element by element, within a bound
 * per element. A failure reports how many elements broke their bound and the worst one (by error over bound): its
 * index, the expected and actual values, the error and the bound.
 *
 * <p>Non-finite values must match exactly: an expected NaN needs a NaN, an expected infinity the same infinity, and a
 * non-finite actual value where a finite one was expected always fails.
 */
public final class Tolerance {
    /** Unit roundoff of float: the largest relative error of one correctly rounded operation. */
    public static final double FLOAT_EPSILON = 0x1p-24;

    private Tolerance() {}

    /**
     * Asserts that every {@code actual[i]} is within {@code bound[i]} of {@code expected[i]}.
     *
     * @param what what is compared, named in the failure
     * @param expected the reference values
     * @param actual the kernel's values, same length
     * @param bound the allowed absolute error per element
     */
    public static void assertClose(String what, double[] expected, float[] actual, double[] bound) {
        if (expected.length != actual.length || expected.length != bound.length) {
            throw new AssertionError(what + ": lengths differ: expected " + expected.length + ", actual "
                    + actual.length + ", bounds " + bound.length);
        }
        assertClose(what, expected.length, i -> expected[i], i -> actual[i], i -> bound[i]);
    }

    /**
     * Asserts that every {@code actual[i]} is within {@code absolute + relative·|expected[i]|} of {@code expected[i]}.
     *
     * @param what what is compared, named in the failure
     * @param expected the reference values
     * @param actual the kernel's values, same length
     * @param absolute the allowed error near zero
     * @param relative the allowed error relative to the expected magnitude
     */
    public static void assertClose(String what, double[] expected, float[] actual, double absolute, double relative) {
        double[] bound = new double[expected.length];
        for (int i = 0; i < bound.length; i++) {
            bound[i] = absolute + relative * Math.abs(expected[i]);
        }
        assertClose(what, expected, actual, bound);
    }

    /**
     * The general form with each element named by its index in a failure.
     *
     * @param what what is compared, named in the failure
     * @param count how many elements
     * @param expected the reference value of element i
     * @param actual the kernel's value of element i
     * @param bound the allowed absolute error of element i
     */
    public static void assertClose(
            String what,
            int count,
            IntToDoubleFunction expected,
            IntToDoubleFunction actual,
            IntToDoubleFunction bound) {
        assertClose(what, count, expected, actual, bound, i -> "index " + i);
    }

    /**
     * Asserts that one row of a matrix, {@code cols} elements of {@code actual} from index {@code at}, is within {@code
     * bound[j]} of {@code expected[j]} in every column j.
     *
     * @param what what is compared, named in the failure
     * @param cols how many columns
     * @param expected the reference values of the row
     * @param actual the kernel's output, holding the row from {@code at}
     * @param at index of the row's first element in {@code actual}
     * @param bound the allowed absolute error per column
     */
    public static void assertRowClose(
            String what, int cols, double[] expected, float[] actual, int at, double[] bound) {
        assertClose(what, cols, j -> expected[j], j -> actual[at + j], j -> bound[j], j -> "column " + j);
    }

    /**
     * The general form: {@code count} elements given as functions of their index.
     *
     * @param what what is compared, named in the failure
     * @param count how many elements
     * @param expected the reference value of element i
     * @param actual the kernel's value of element i
     * @param bound the allowed absolute error of element i
     * @param where describes element i in a failure message (e.g. its row and column)
     */
    public static void assertClose(
            String what,
            int count,
            IntToDoubleFunction expected,
            IntToDoubleFunction actual,
            IntToDoubleFunction bound,
            IntFunction<String> where) {
        int failures = 0;
        int worst = -1;
        double worstRatio = 0;
        for (int i = 0; i < count; i++) {
            double e = expected.applyAsDouble(i);
            double a = actual.applyAsDouble(i);
            double ratio = ratio(e, a, bound.applyAsDouble(i));
            if (ratio > 1) {
                failures++;
                if (ratio > worstRatio) {
                    worstRatio = ratio;
                    worst = i;
                }
            }
        }
        if (failures > 0) {
            double e = expected.applyAsDouble(worst);
            double a = actual.applyAsDouble(worst);
            throw new AssertionError(String.format(
                    Locale.ROOT,
                    "%s: %d of %d elements out of tolerance; worst at %s: expected %s, actual %s, error %.3g > bound"
                            + " %.3g",
                    what,
                    failures,
                    count,
                    where.apply(worst),
                    e,
                    a,
                    Math.abs(e - a),
                    bound.applyAsDouble(worst)));
        }
    }

    /** Error over bound; infinite when non-finite values do not match, 0 when they do. */
    private static double ratio(double expected, double actual, double bound) {
        if (Double.isNaN(expected) || Double.isInfinite(expected)) {
            return Double.compare(expected, actual) == 0 || (Double.isNaN(expected) && Double.isNaN(actual))
                    ? 0
                    : Double.POSITIVE_INFINITY;
        }
        if (!Double.isFinite(actual)) {
            return Double.POSITIVE_INFINITY;
        }
        double error = Math.abs(expected - actual);
        if (error == 0) {
            return 0;
        }
        return bound > 0 ? error / bound : Double.POSITIVE_INFINITY;
    }
}
