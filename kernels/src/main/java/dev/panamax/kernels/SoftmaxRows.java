package dev.panamax.kernels;

import static dev.panamax.kernels.Simd.FLOATS;
import static dev.panamax.kernels.Simd.LANES;
import static dev.panamax.kernels.Simd.tail;
import static dev.panamax.kernels.Simd.vectorEnd;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorMask;

/**
 * {@link Softmax}'s work on one row, on arrays, beyond the loops it shares with other kernels ({@link RowMath}): the
 * exponents of a row whose maximum is too large for the fused form, log-softmax's row, and the backward rows.
 */
final class SoftmaxRows {
    /**
     * From this {@code |max z|} on, a row's exponents are formed from {@code x - x*} instead of as {@code fma(x, scale,
     * -max z)}: that fused form is off by the rounding of {@code max z}, up to half its ulp (from 2³¹ above 88, so
     * that exp overflows, and at {@code scale·x} beyond float's range -∞ or NaN), while here it is under 2⁻⁴.
     */
    static final float WIDE_ROW = 0x1p20f;

    private SoftmaxRows() {}

    /**
     * For a row whose {@code |max z|} is at least {@link #WIDE_ROW} (NaN excluded): writes {@code t = scale·(x -
     * x*)/2} into y and returns true, so that the row's exponents {@code z - max z} are {@code 2t}; or, when every
     * {@code z} is -∞ (also when {@code n} is 0), writes nothing and returns false. Halving keeps {@code x - x*} and
     * its product finite wherever {@code 2t} is; for the entries that can weigh at all, within a factor 2 of x*,
     * {@code x - x*} is exact (Sterbenz), so {@code 2t} is the exact exponent rounded once. A NaN in the row gives
     * NaN exponents. y may be x itself.
     */
    static boolean wideExponents(int n, float scale, float[] x, int xi, float[] y, int yi) {
        if (n == 0) {
            return false;
        }
        // |max z| ≥ WIDE_ROW with n > 0 and no NaN needs scale ≠ 0.
        float direction = scale > 0 ? 1f : -1f;
        float extreme = direction * RowMath.max(n, direction, x, xi);
        if (Float.isInfinite(extreme) && scale * extreme == Float.NEGATIVE_INFINITY) {
            return false;
        }
        float half = 0.5f * extreme;
        int end = vectorEnd(n);
        for (int j = 0; j < end; j += LANES) {
            FloatVector.fromArray(FLOATS, x, xi + j).fma(0.5f, -half).mul(scale).intoArray(y, yi + j);
        }
        if (end < n) {
            VectorMask<Float> m = tail(end, n);
            FloatVector.fromArray(FLOATS, x, xi + end, m)
                    .fma(0.5f, -half)
                    .mul(scale)
                    .intoArray(y, yi + end, m);
        }
        return true;
    }

    /** Log-softmax of one row's {@code n} visible columns; returns how many columns it wrote (n, or 0 for -∞). */
    static int logRow(int n, float scale, float[] x, int xi, float[] y, int yi) {
        float max = RowMath.max(n, scale, x, xi);
        // The exponents are fma(from, factor, -shift): of x itself, or of the halved differences of a wide row.
        float[] from = x;
        int fi = xi;
        float factor = scale;
        float shift = max;
        if (Math.abs(max) >= WIDE_ROW) {
            if (!wideExponents(n, scale, x, xi, y, yi)) {
                return 0;
            }
            from = y;
            fi = yi;
            factor = 2f;
            shift = 0f;
        }
        float logSum = (float) Math.log(RowMath.expSum(n, factor, shift, from, fi, null, 0));
        int end = vectorEnd(n);
        for (int j = 0; j < end; j += LANES) {
            FloatVector.fromArray(FLOATS, from, fi + j)
                    .fma(factor, -shift)
                    .sub(logSum)
                    .intoArray(y, yi + j);
        }
        if (end < n) {
            VectorMask<Float> m = tail(end, n);
            FloatVector.fromArray(FLOATS, from, fi + end, m)
                    .fma(factor, -shift)
                    .sub(logSum)
                    .intoArray(y, yi + end, m);
        }
        return n;
    }

    static void backwardRow(int n, float scale, float[] y, int yi, float[] dy, int dyi, float[] dx, int dxi) {
        FloatVector dot = FloatVector.zero(FLOATS);
        int end = vectorEnd(n);
        for (int j = 0; j < end; j += LANES) {
            dot = FloatVector.fromArray(FLOATS, y, yi + j).fma(FloatVector.fromArray(FLOATS, dy, dyi + j), dot);
        }
        VectorMask<Float> m = tail(end, n);
        if (end < n) {
            dot = FloatVector.fromArray(FLOATS, y, yi + end, m)
                    .fma(FloatVector.fromArray(FLOATS, dy, dyi + end, m), dot);
        }
        float d = Simd.sum(dot);
        for (int j = 0; j < end; j += LANES) {
            FloatVector.fromArray(FLOATS, dy, dyi + j)
                    .sub(d)
                    .mul(FloatVector.fromArray(FLOATS, y, yi + j))
                    .mul(scale)
                    .intoArray(dx, dxi + j);
        }
        if (end < n) {
            FloatVector.fromArray(FLOATS, dy, dyi + end, m)
                    .sub(d)
                    .mul(FloatVector.fromArray(FLOATS, y, yi + end, m))
                    .mul(scale)
                    .intoArray(dx, dxi + end, m);
        }
    }

    static void logBackwardRow(int n, float scale, float[] y, int yi, float[] dy, int dyi, float[] dx, int dxi) {
        FloatVector sum = FloatVector.zero(FLOATS);
        int end = vectorEnd(n);
        for (int j = 0; j < end; j += LANES) {
            sum = sum.add(FloatVector.fromArray(FLOATS, dy, dyi + j));
        }
        VectorMask<Float> m = tail(end, n);
        if (end < n) {
            sum = sum.add(FloatVector.fromArray(FLOATS, dy, dyi + end, m));
        }
        FloatVector s = FloatVector.broadcast(FLOATS, Simd.sum(sum));
        for (int j = 0; j < end; j += LANES) {
            FloatVector p = VectorMath.exp(FloatVector.fromArray(FLOATS, y, yi + j));
            p.neg()
                    .fma(s, FloatVector.fromArray(FLOATS, dy, dyi + j))
                    .mul(scale)
                    .intoArray(dx, dxi + j);
        }
        if (end < n) {
            FloatVector p = VectorMath.exp(FloatVector.fromArray(FLOATS, y, yi + end, m));
            p.neg()
                    .fma(s, FloatVector.fromArray(FLOATS, dy, dyi + end, m))
                    .mul(scale)
                    .intoArray(dx, dxi + end, m);
        }
    }
}
