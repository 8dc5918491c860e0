package dev.panamax.kernels.testing;

import java.util.function.UnaryOperator;

/**
 * Central finite differences, the independent check of every backward kernel's formula: for an op {@code y = f(x)}
 * and an upstream gradient {@code dy}, the gradient of {@code L(x) = Σ dy·f(x)} is estimated one input at a time as
 * {@code (L(x + h·eᵢ) - L(x - h·eᵢ)) / 2h}, with error O(h²·f''') plus the float64 rounding O(ε₆₄·|L|/h).
 */
public final class FiniteDifferences {
    private FiniteDifferences() {}

    /**
     * Estimates {@code dL/dx} for {@code L(x) = Σ dy·f(x)}.
     *
     * @param f the float64 forward op; must not modify its argument
     * @param x the point
     * @param dy the upstream gradient, as long as f's output
     * @param h the step, relative to {@code max(1, |xᵢ|)}
     * @return the estimated gradient, as long as x
     */
    public static double[] gradient(UnaryOperator<double[]> f, double[] x, double[] dy, double h) {
        double[] gradient = new double[x.length];
        double[] probe = x.clone();
        for (int i = 0; i < x.length; i++) {
            double step = h * Math.max(1, Math.abs(x[i]));
            probe[i] = x[i] + step;
            double up = dot(dy, f.apply(probe));
            probe[i] = x[i] - step;
            double down = dot(dy, f.apply(probe));
            probe[i] = x[i];
            gradient[i] = (up - down) / (2 * step);
        }
        return gradient;
    }

    private static double dot(double[] a, double[] b) {
        double sum = 0;
        for (int i = 0; i < a.length; i++) {
            sum += a[i] * b[i];
        }
        return sum;
    }

    /**
     * Asserts that an analytical gradient matches the finite-difference estimate within {@code tolerance·(1 + |g|)}
     * per element (masked entries, where both are 0, pass).
     *
     * @param what what is compared, named in the failure
     * @param analytical the backward's gradient
     * @param numerical the finite-difference estimate
     * @param tolerance the allowed error relative to {@code 1 + |g|}
     */
    public static void assertMatches(String what, double[] analytical, double[] numerical, double tolerance) {
        float[] actual = new float[numerical.length];
        double[] bound = new double[numerical.length];
        double scale = 0;
        for (double g : analytical) {
            scale = Math.max(scale, Math.abs(g));
        }
        for (int i = 0; i < actual.length; i++) {
            actual[i] = (float) numerical[i];
            bound[i] = tolerance * (Math.max(1, scale) + Math.abs(analytical[i]));
        }
        // The float view of the estimate costs 2⁻²⁴ relative, far below the finite-difference error itself.
        Tolerance.assertClose(what + " (finite differences)", analytical, actual, bound);
    }
}
