package dev.panamax.kernels;

import static dev.panamax.kernels.Simd.FLOATS;
import static dev.panamax.kernels.Simd.LANES;
import static dev.panamax.kernels.Simd.tail;
import static dev.panamax.kernels.Simd.vectorEnd;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorMask;

/**
 * The norms' work on one row, on arrays. For {@link LayerNorm}: the mean and reciprocal standard deviation, the
 * normalisation (with the next row's mean in the same pass), the recomputation in double where float overflows, and
 * the backward's row with its contribution to the parameter gradients. For {@link RmsNorm}: the same with the sum of
 * squares in place of mean and variance.
 */
final class NormRows {
    private NormRows() {}

    /** The mean of {@code n > 0} floats in double, where their sum cannot overflow. */
    static double exactMean(int n, float[] x, int xi) {
        double sum = 0;
        for (int j = 0; j < n; j++) {
            sum += x[xi + j];
        }
        return sum / n;
    }

    /**
     * One row normalised in double, for the rows whose squares overflow float: {@code (x - mean)·rstd⊙w + b}.
     * Returns the row's rstd, {@code 1/√(var + epsilon)}.
     */
    static float layerNormaliseExactly(
            int n,
            float epsilon,
            double mean,
            float[] x,
            int xi,
            float[] w,
            int wi,
            float[] b,
            int bi,
            float[] y,
            int yi) {
        double squares = 0;
        for (int j = 0; j < n; j++) {
            double d = x[xi + j] - mean;
            squares += d * d;
        }
        double rstd = 1 / Math.sqrt(squares / n + epsilon);
        for (int j = 0; j < n; j++) {
            y[yi + j] = (float) ((x[xi + j] - mean) * rstd * w[wi + j] + b[bi + j]);
        }
        return (float) rstd;
    }

    /** The mean of {@code n > 0} floats, summed in a fixed order. */
    static float mean(int n, float[] x, int xi) {
        FloatVector sum = FloatVector.zero(FLOATS);
        int end = vectorEnd(n);
        for (int j = 0; j < end; j += LANES) {
            sum = sum.add(FloatVector.fromArray(FLOATS, x, xi + j));
        }
        if (end < n) {
            sum = sum.add(FloatVector.fromArray(FLOATS, x, xi + end, tail(end, n)));
        }
        return Simd.sum(sum) / n;
    }

    /**
     * The correction to a row's first mean and its rstd, in one {@link Simd#pair}: with the deviations {@code d = x -
     * mean} from that first mean, the correction {@code c = Σd/n} and {@code rstd = 1/√(Σd²/n - c² + epsilon)}. This is
     * the corrected two-pass algorithm: the first mean, a float sum, is off by up to about {@code n·ε} times the mean
     * of {@code |x|}, which on a row far from 0 with a small spread (1e6 ± 1) is as large as the spread itself, while
     * the deviations are exact there (x within a factor 2 of the mean) and their sum is small, so {@code mean + c} is
     * the mean to the last bit that the deviations carry, and the variance is taken around it. The squares and the
     * deviations go to four accumulators each in turn (then a fixed order), so that each addition waits for the one
     * four vectors back rather than for the previous one, whose latency would bound the loop.
     */
    static long correctionAndRstd(int n, float epsilon, float mean, float[] x, int xi) {
        FloatVector s0 = FloatVector.zero(FLOATS);
        FloatVector s1 = s0;
        FloatVector s2 = s0;
        FloatVector s3 = s0;
        FloatVector t0 = s0;
        FloatVector t1 = s0;
        FloatVector t2 = s0;
        FloatVector t3 = s0;
        int end = vectorEnd(n);
        int quads = end - end % (4 * LANES);
        for (int j = 0; j < quads; j += 4 * LANES) {
            FloatVector d0 = FloatVector.fromArray(FLOATS, x, xi + j).sub(mean);
            FloatVector d1 = FloatVector.fromArray(FLOATS, x, xi + j + LANES).sub(mean);
            FloatVector d2 =
                    FloatVector.fromArray(FLOATS, x, xi + j + 2 * LANES).sub(mean);
            FloatVector d3 =
                    FloatVector.fromArray(FLOATS, x, xi + j + 3 * LANES).sub(mean);
            s0 = d0.fma(d0, s0);
            s1 = d1.fma(d1, s1);
            s2 = d2.fma(d2, s2);
            s3 = d3.fma(d3, s3);
            t0 = t0.add(d0);
            t1 = t1.add(d1);
            t2 = t2.add(d2);
            t3 = t3.add(d3);
        }
        for (int j = quads; j < end; j += LANES) {
            FloatVector d = FloatVector.fromArray(FLOATS, x, xi + j).sub(mean);
            s0 = d.fma(d, s0);
            t0 = t0.add(d);
        }
        if (end < n) {
            VectorMask<Float> m = tail(end, n);
            FloatVector d = FloatVector.fromArray(FLOATS, x, xi + end, m).sub(mean, m);
            s1 = d.fma(d, s1);
            t1 = t1.add(d);
        }
        double correction = (double) Simd.sum(t0.add(t1).add(t2.add(t3))) / n;
        double variance = (double) Simd.sum(s0.add(s1).add(s2.add(s3))) / n - correction * correction;
        // Σd²/n ≥ c² in exact arithmetic; the roundings may cross below it only on an (all but) constant row.
        float rstd = (float) (1 / Math.sqrt(Math.max(variance, 0) + epsilon));
        return Simd.pair((float) correction, rstd);
    }

    /**
     * Normalises one row, {@code ((x - mean) - correction)·rstd⊙w + b} (see {@link #correctionAndRstd}), while summing
     * the next ({@code next}), and returns the next row's first mean: its first pass rides along with this row's last,
     * so that its reads stream from memory while this row's results are written. The sum is taken in {@link #mean}'s
     * order, so a row's result does not depend on whether it came first in its task.
     */
    static float normaliseAndMean(
            int n,
            float mean,
            float correction,
            float rstd,
            float[] x,
            int xi,
            float[] w,
            int wi,
            float[] b,
            int bi,
            float[] y,
            int yi,
            float[] next,
            int ni) {
        // (d - c)·r as d·r - c·r in one fused multiply-add, rather than x minus a float mean + c: far from 0 a float
        // mean holds fewer bits than the deviations do.
        float shift = -correction * rstd;
        FloatVector sum = FloatVector.zero(FLOATS);
        int end = vectorEnd(n);
        for (int j = 0; j < end; j += LANES) {
            sum = sum.add(FloatVector.fromArray(FLOATS, next, ni + j));
            FloatVector xhat =
                    FloatVector.fromArray(FLOATS, x, xi + j).sub(mean).fma(rstd, shift);
            xhat.fma(FloatVector.fromArray(FLOATS, w, wi + j), FloatVector.fromArray(FLOATS, b, bi + j))
                    .intoArray(y, yi + j);
        }
        if (end < n) {
            VectorMask<Float> m = tail(end, n);
            sum = sum.add(FloatVector.fromArray(FLOATS, next, ni + end, m));
            FloatVector xhat =
                    FloatVector.fromArray(FLOATS, x, xi + end, m).sub(mean).fma(rstd, shift);
            xhat.fma(FloatVector.fromArray(FLOATS, w, wi + end, m), FloatVector.fromArray(FLOATS, b, bi + end, m))
                    .intoArray(y, yi + end, m);
        }
        return Simd.sum(sum) / n;
    }

    /**
     * One row: {@code dx = rstd·(dnorm - mean(dnorm) - xhat·mean(dnorm⊙xhat))} with {@code dnorm = dy⊙weight}; adds
     * {@code dy⊙xhat} and {@code dy} into the partial sums at {@code at} and {@code at + n}.
     */
    static void layerBackwardRow(
            int n,
            float[] x,
            int xi,
            float[] w,
            int wi,
            float mean,
            float rstd,
            float[] dy,
            int dyi,
            float[] dx,
            int dxi,
            float[] partial,
            int at) {
        FloatVector sumDnorm = FloatVector.zero(FLOATS);
        FloatVector sumDnormXhat = sumDnorm;
        int end = vectorEnd(n);
        for (int j = 0; j < end; j += LANES) {
            FloatVector dnorm =
                    FloatVector.fromArray(FLOATS, dy, dyi + j).mul(FloatVector.fromArray(FLOATS, w, wi + j));
            sumDnorm = sumDnorm.add(dnorm);
            sumDnormXhat =
                    FloatVector.fromArray(FLOATS, x, xi + j).sub(mean).mul(rstd).fma(dnorm, sumDnormXhat);
        }
        VectorMask<Float> m = tail(end, n);
        if (end < n) {
            FloatVector dnorm =
                    FloatVector.fromArray(FLOATS, dy, dyi + end, m).mul(FloatVector.fromArray(FLOATS, w, wi + end, m));
            sumDnorm = sumDnorm.add(dnorm);
            // Masked, as in correctionAndRstd: an inactive lane's (0 - mean)·rstd can overflow, and ∞·0 would make the
            // sums NaN.
            sumDnormXhat = FloatVector.fromArray(FLOATS, x, xi + end, m)
                    .sub(mean, m)
                    .mul(rstd)
                    .fma(dnorm, sumDnormXhat);
        }
        float meanDnorm = Simd.sum(sumDnorm) / n;
        float meanDnormXhat = Simd.sum(sumDnormXhat) / n;
        for (int j = 0; j < end; j += LANES) {
            FloatVector g = FloatVector.fromArray(FLOATS, dy, dyi + j);
            FloatVector xhat =
                    FloatVector.fromArray(FLOATS, x, xi + j).sub(mean).mul(rstd);
            FloatVector dnorm = g.mul(FloatVector.fromArray(FLOATS, w, wi + j));
            xhat.mul(-meanDnormXhat).add(dnorm.sub(meanDnorm)).mul(rstd).intoArray(dx, dxi + j);
            accumulate(partial, at + j, g.mul(xhat), at + n + j, g);
        }
        if (end < n) {
            FloatVector g = FloatVector.fromArray(FLOATS, dy, dyi + end, m);
            FloatVector xhat =
                    FloatVector.fromArray(FLOATS, x, xi + end, m).sub(mean, m).mul(rstd);
            FloatVector dnorm = g.mul(FloatVector.fromArray(FLOATS, w, wi + end, m));
            xhat.mul(-meanDnormXhat).add(dnorm.sub(meanDnorm)).mul(rstd).intoArray(dx, dxi + end, m);
            accumulate(partial, at + end, g.mul(xhat), at + n + end, g, m);
        }
    }

    private static void accumulate(float[] partial, int i0, FloatVector v0, int i1, FloatVector v1) {
        FloatVector.fromArray(Simd.FLOATS, partial, i0).add(v0).intoArray(partial, i0);
        FloatVector.fromArray(Simd.FLOATS, partial, i1).add(v1).intoArray(partial, i1);
    }

    private static void accumulate(
            float[] partial, int i0, FloatVector v0, int i1, FloatVector v1, VectorMask<Float> m) {
        FloatVector.fromArray(Simd.FLOATS, partial, i0, m).add(v0).intoArray(partial, i0, m);
        FloatVector.fromArray(Simd.FLOATS, partial, i1, m).add(v1).intoArray(partial, i1, m);
    }

    /**
     * One row normalised in double, for the rows whose squares overflow float: {@code x·rstd⊙w}. Returns the row's
     * rstd, {@code 1/√(mean(x²) + epsilon)}.
     */
    static float rmsNormaliseExactly(int n, float epsilon, float[] x, int xi, float[] w, int wi, float[] y, int yi) {
        double squares = 0;
        for (int j = 0; j < n; j++) {
            double v = x[xi + j];
            squares += v * v;
        }
        double rstd = 1 / Math.sqrt(squares / n + epsilon);
        for (int j = 0; j < n; j++) {
            y[yi + j] = (float) (x[xi + j] * rstd * w[wi + j]);
        }
        return (float) rstd;
    }

    static float sumOfSquares(int n, float[] x, int xi) {
        FloatVector sum = FloatVector.zero(FLOATS);
        int end = vectorEnd(n);
        for (int j = 0; j < end; j += LANES) {
            FloatVector v = FloatVector.fromArray(FLOATS, x, xi + j);
            sum = v.fma(v, sum);
        }
        if (end < n) {
            FloatVector v = FloatVector.fromArray(FLOATS, x, xi + end, tail(end, n));
            sum = v.fma(v, sum);
        }
        return Simd.sum(sum);
    }

    /**
     * Normalises one row while summing the squares of the next ({@code next}), and returns that sum: the next row's
     * first pass rides along with this row's last, so that its reads stream from memory while this row's results are
     * written, rather than each row reading and then writing on its own. The squares are summed in {@link
     * #sumOfSquares}'s order, so a row's result does not depend on whether it came first in its task.
     */
    static float normaliseAndSumSquares(
            int n, float rstd, float[] x, int xi, float[] w, int wi, float[] y, int yi, float[] next, int ni) {
        FloatVector sum = FloatVector.zero(FLOATS);
        int end = vectorEnd(n);
        for (int j = 0; j < end; j += LANES) {
            FloatVector v = FloatVector.fromArray(FLOATS, next, ni + j);
            sum = v.fma(v, sum);
            FloatVector.fromArray(FLOATS, x, xi + j)
                    .mul(rstd)
                    .mul(FloatVector.fromArray(FLOATS, w, wi + j))
                    .intoArray(y, yi + j);
        }
        if (end < n) {
            VectorMask<Float> m = tail(end, n);
            FloatVector v = FloatVector.fromArray(FLOATS, next, ni + end, m);
            sum = v.fma(v, sum);
            FloatVector.fromArray(FLOATS, x, xi + end, m)
                    .mul(rstd)
                    .mul(FloatVector.fromArray(FLOATS, w, wi + end, m))
                    .intoArray(y, yi + end, m);
        }
        return Simd.sum(sum);
    }

    /**
     * One row: {@code dx = rstd·dy⊙w - x·rstd³·mean(dy⊙w⊙x)}; adds {@code dy⊙x·rstd} into the partial sums at {@code
     * at}.
     */
    static void rmsBackwardRow(
            int n,
            float[] x,
            int xi,
            float[] w,
            int wi,
            float rstd,
            float[] dy,
            int dyi,
            float[] dx,
            int dxi,
            float[] partial,
            int at) {
        FloatVector dot = FloatVector.zero(FLOATS);
        int end = vectorEnd(n);
        for (int j = 0; j < end; j += LANES) {
            dot = FloatVector.fromArray(FLOATS, dy, dyi + j)
                    .mul(FloatVector.fromArray(FLOATS, w, wi + j))
                    .fma(FloatVector.fromArray(FLOATS, x, xi + j), dot);
        }
        VectorMask<Float> m = tail(end, n);
        if (end < n) {
            dot = FloatVector.fromArray(FLOATS, dy, dyi + end, m)
                    .mul(FloatVector.fromArray(FLOATS, w, wi + end, m))
                    .fma(FloatVector.fromArray(FLOATS, x, xi + end, m), dot);
        }
        // dx = rstd·(dy⊙w - x·c), c = rstd²·Σ(dy⊙w⊙x)/n: rstd³ alone would be subnormal for rows beyond about 1e19.
        float c = (float) ((double) rstd * rstd * Simd.sum(dot) / n);
        for (int j = 0; j < end; j += LANES) {
            FloatVector g = FloatVector.fromArray(FLOATS, dy, dyi + j);
            FloatVector v = FloatVector.fromArray(FLOATS, x, xi + j);
            v.mul(-c)
                    .add(g.mul(FloatVector.fromArray(FLOATS, w, wi + j)))
                    .mul(rstd)
                    .intoArray(dx, dxi + j);
            FloatVector.fromArray(Simd.FLOATS, partial, at + j)
                    .add(g.mul(v).mul(rstd))
                    .intoArray(partial, at + j);
        }
        if (end < n) {
            FloatVector g = FloatVector.fromArray(FLOATS, dy, dyi + end, m);
            FloatVector v = FloatVector.fromArray(FLOATS, x, xi + end, m);
            v.mul(-c)
                    .add(g.mul(FloatVector.fromArray(FLOATS, w, wi + end, m)))
                    .mul(rstd)
                    .intoArray(dx, dxi + end, m);
            FloatVector.fromArray(Simd.FLOATS, partial, at + end, m)
                    .add(g.mul(v).mul(rstd))
                    .intoArray(partial, at + end, m);
        }
    }
}
