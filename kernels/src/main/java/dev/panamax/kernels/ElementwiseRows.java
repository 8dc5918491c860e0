package dev.panamax.kernels;

import static dev.panamax.kernels.Simd.FLOATS;
import static dev.panamax.kernels.Simd.LANES;
import static dev.panamax.kernels.Simd.tail;
import static dev.panamax.kernels.Simd.vectorEnd;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorMask;

/**
 * {@link Elementwise}'s loops over a run of floats on arrays, kept apart from that public class so that it loads
 * without the Vector API and can name the missing flag ({@link VectorApi}).
 */
final class ElementwiseRows {
    /** Independent vector accumulators per span, so that the adds need not wait for one another. */
    private static final int ACCUMULATORS = 4;

    private ElementwiseRows() {}

    /** {@code Σ x²} over {@code n} floats from {@code xi}, in float, in an order fixed by {@code n} alone. */
    static float sumOfSquaresRun(int n, float[] x, int xi) {
        FloatVector s0 = FloatVector.zero(FLOATS);
        FloatVector s1 = s0;
        FloatVector s2 = s0;
        FloatVector s3 = s0;
        int blockEnd = n - n % (ACCUMULATORS * LANES);
        int j = 0;
        for (; j < blockEnd; j += ACCUMULATORS * LANES) {
            FloatVector x0 = FloatVector.fromArray(FLOATS, x, xi + j);
            FloatVector x1 = FloatVector.fromArray(FLOATS, x, xi + j + LANES);
            FloatVector x2 = FloatVector.fromArray(FLOATS, x, xi + j + 2 * LANES);
            FloatVector x3 = FloatVector.fromArray(FLOATS, x, xi + j + 3 * LANES);
            s0 = x0.fma(x0, s0);
            s1 = x1.fma(x1, s1);
            s2 = x2.fma(x2, s2);
            s3 = x3.fma(x3, s3);
        }
        int end = vectorEnd(n);
        for (; j < end; j += LANES) {
            FloatVector x0 = FloatVector.fromArray(FLOATS, x, xi + j);
            s0 = x0.fma(x0, s0);
        }
        if (end < n) {
            FloatVector x0 = FloatVector.fromArray(FLOATS, x, xi + end, tail(end, n));
            s1 = x0.fma(x0, s1);
        }
        return Simd.sum(s0.add(s1).add(s2.add(s3)));
    }

    /** {@code y = a + b} over {@code n} floats. */
    static void addRun(int n, float[] a, int ai, float[] b, int bi, float[] y, int yi) {
        int end = vectorEnd(n);
        for (int j = 0; j < end; j += LANES) {
            FloatVector.fromArray(FLOATS, a, ai + j)
                    .add(FloatVector.fromArray(FLOATS, b, bi + j))
                    .intoArray(y, yi + j);
        }
        if (end < n) {
            VectorMask<Float> m = tail(end, n);
            FloatVector.fromArray(FLOATS, a, ai + end, m)
                    .add(FloatVector.fromArray(FLOATS, b, bi + end, m))
                    .intoArray(y, yi + end, m);
        }
    }
}
