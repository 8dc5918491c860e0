package dev.panamax.bench;

/**
 * A float64 reference result and each element's tolerance, for {@link BenchCorrectnessTest}.
 *
 * @param values the exact result, to float64's precision
 * @param tolerances how far a correct float32 result may be from each value
 */
record Expected(double[] values, double[] tolerances) {
    /** Float's unit roundoff. */
    static final double U = 0x1p-24;

    Expected(int length) {
        this(new double[length], new double[length]);
    }

    /**
     * Higham's {@code γ(n) = n·u/(1 − n·u)}: a float sum of n terms, in any order and with or without fused
     * multiply-adds, is within {@code γ(n)·Σ|term|} of the exact sum.
     */
    static double gamma(int n) {
        return n * U / (1 - n * U);
    }

    void set(int i, double value, double tolerance) {
        values[i] = value;
        tolerances[i] = tolerance;
    }

    int length() {
        return values.length;
    }

    /**
     * Null if every element of {@code actual} is within its tolerance of the reference, else what is wrong.
     *
     * @param actual a benchmark's result
     * @return null, or the number of elements outside their tolerance and the worst of them
     */
    String mismatch(float[] actual) {
        if (actual.length != length()) {
            return actual.length + " results, " + length() + " expected";
        }
        int outside = 0;
        int worst = -1;
        double worstRatio = 0;
        for (int i = 0; i < actual.length; i++) {
            double error = Math.abs(actual[i] - values[i]);
            if (!(error <= tolerances[i])) {
                outside++;
                double ratio = error / tolerances[i];
                if (worst < 0 || !(ratio <= worstRatio)) {
                    worst = i;
                    worstRatio = ratio;
                }
            }
        }
        if (outside == 0) {
            return null;
        }
        return String.format(
                "%d of %d elements outside the tolerance; the worst, element %d, is %s, the reference %s ± %.3g",
                outside, actual.length, worst, actual[worst], values[worst], tolerances[worst]);
    }

    /** The largest ratio of an element's error to its tolerance: below 1 when the result is within tolerance. */
    double worstRatio(float[] actual) {
        double worst = 0;
        for (int i = 0; i < actual.length; i++) {
            worst = Math.max(worst, Math.abs(actual[i] - values[i]) / tolerances[i]);
        }
        return worst;
    }
}
