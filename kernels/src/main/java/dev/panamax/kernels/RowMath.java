package dev.panamax.kernels;

import static dev.panamax.kernels.Simd.FLOATS;
import static dev.panamax.kernels.Simd.LANES;
import static dev.panamax.kernels.Simd.ORDER;
import static dev.panamax.kernels.Simd.tail;
import static dev.panamax.kernels.Simd.vectorEnd;

import java.lang.foreign.MemorySegment;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;

/**
 * The vector loops over one row, a run of floats in an array, that several kernels share: the maximum, the
 * exponentials and their sum (softmax, cross-entropy, attention), {@code y += alpha·x} and {@code x *= alpha}, and
 * attention's dot products. Each reduces in one fixed order (lanes added by {@link Simd#sum}, then the tail), so a row
 * gives the same bits wherever it is computed. They sit below every public kernel and use only {@link Simd} and
 * {@link VectorMath}.
 */
final class RowMath {
    private RowMath() {}

    /**
     * The largest of {@code scale·x} over {@code n} floats; NaN if any is NaN, -∞ if n is 0. NaN is tracked in a mask
     * beside the running maximum, which {@link Simd#maxSkippingNaN} keeps short.
     */
    static float max(int n, float scale, float[] x, int xi) {
        FloatVector max = FloatVector.broadcast(FLOATS, Float.NEGATIVE_INFINITY);
        VectorMask<Float> nan = FLOATS.maskAll(false);
        int end = vectorEnd(n);
        for (int j = 0; j < end; j += LANES) {
            FloatVector v = FloatVector.fromArray(FLOATS, x, xi + j).mul(scale);
            max = Simd.maxSkippingNaN(max, v);
            nan = nan.or(v.test(VectorOperators.IS_NAN));
        }
        if (nan.anyTrue()) {
            return Float.NaN;
        }
        if (end < n) {
            VectorMask<Float> m = tail(end, n);
            max = max.lanewise(
                    VectorOperators.MAX,
                    FloatVector.fromArray(FLOATS, x, xi + end, m).mul(scale),
                    m);
        }
        return Simd.max(max);
    }

    /** The largest magnitude among the finite floats of {@code x[xi, xi + n)}; NaN and ±∞ count as 0. */
    static float largestFiniteMagnitude(int n, float[] x, int xi) {
        FloatVector largest = FloatVector.zero(FLOATS);
        int end = vectorEnd(n);
        for (int j = 0; j < end; j += LANES) {
            largest = largest.max(finiteMagnitudes(x, xi + j, FLOATS.maskAll(true)));
        }
        if (end < n) {
            largest = largest.max(finiteMagnitudes(x, xi + end, tail(end, n)));
        }
        return Simd.max(largest);
    }

    /**
     * The sum of the magnitudes of the finite floats of {@code x[xi, xi + n)}, in float (+∞ if it overflows); NaN and
     * ±∞ count as 0.
     */
    static float finiteMagnitudeSum(int n, float[] x, int xi) {
        FloatVector sum = FloatVector.zero(FLOATS);
        int end = vectorEnd(n);
        for (int j = 0; j < end; j += LANES) {
            sum = sum.add(finiteMagnitudes(x, xi + j, FLOATS.maskAll(true)));
        }
        if (end < n) {
            sum = sum.add(finiteMagnitudes(x, xi + end, tail(end, n)));
        }
        return Simd.sum(sum);
    }

    /** |x| of the lanes of {@code m} from {@code x[at]}, 0 where x is NaN or ±∞ and in the lanes outside m. */
    private static FloatVector finiteMagnitudes(float[] x, int at, VectorMask<Float> m) {
        FloatVector v = FloatVector.fromArray(FLOATS, x, at, m).abs();
        return v.blend(0f, v.test(VectorOperators.IS_FINITE).not());
    }

    /**
     * {@code y = exp(scale·x - shift)} over {@code n} floats (y may be x itself, or null to only sum) and the sum of the
     * terms, lanes added in {@link Simd#sum}'s fixed order: the loop every softmax-shaped kernel runs. {@code shift}
     * is at least every {@code scale·x} (the row's maximum or its log-sum-exp), so no term is above 1: see
     * {@link VectorMath#expNonPositive}.
     */
    static float expSum(int n, float scale, float shift, float[] x, int xi, float[] y, int yi) {
        FloatVector sum = FloatVector.zero(FLOATS);
        int end = Simd.vectorEnd(n);
        // Summing alone and storing too are separate loops: a test inside the loop costs a branch per vector.
        if (y == null) {
            for (int j = 0; j < end; j += LANES) {
                sum = sum.add(VectorMath.expNonPositive(
                        FloatVector.fromArray(FLOATS, x, xi + j).fma(scale, -shift)));
            }
        } else {
            for (int j = 0; j < end; j += LANES) {
                FloatVector e = VectorMath.expNonPositive(
                        FloatVector.fromArray(FLOATS, x, xi + j).fma(scale, -shift));
                e.intoArray(y, yi + j);
                sum = sum.add(e);
            }
        }
        return Simd.sum(addTail(sum, end, n, scale, shift, x, xi, y, yi));
    }

    /**
     * {@link #expSum} over one row ({@code y} not null), and in the same pass the largest {@code scale·next} over the
     * following row's {@code nextN ≥ n} floats: that row's reads stream from memory while this row's exponentials are
     * computed, instead of after them. A NaN in the next row is skipped by this maximum unless nothing else there is
     * above -∞; either way the next row's own pass turns out NaN, as with {@link #max}. The sum is {@code
     * expSum}'s, bit for bit. Both results come back in one long, to be read with {@link #sumOf} and {@link
     * #nextMaxOf}: returning them costs no allocation.
     */
    static long expSumAndNextMax(
            int n, float scale, float shift, float[] x, int xi, float[] y, int yi, int nextN, float[] next, int ni) {
        FloatVector sum = FloatVector.zero(FLOATS);
        FloatVector max = FloatVector.broadcast(FLOATS, Float.NEGATIVE_INFINITY);
        int end = Simd.vectorEnd(n);
        for (int j = 0; j < end; j += LANES) {
            max = Simd.maxSkippingNaN(
                    max, FloatVector.fromArray(FLOATS, next, ni + j).mul(scale));
            FloatVector e = VectorMath.expNonPositive(
                    FloatVector.fromArray(FLOATS, x, xi + j).fma(scale, -shift));
            e.intoArray(y, yi + j);
            sum = sum.add(e);
        }
        float total = Simd.sum(addTail(sum, end, n, scale, shift, x, xi, y, yi));
        float nextMax = Math.max(Simd.max(max), max(nextN - end, scale, next, ni + end));
        if (nextMax == Float.NEGATIVE_INFINITY) {
            // The loop skips NaN. Above -∞ that changes nothing: a NaN entry makes its row's sum NaN in the row's own
            // pass, whatever the max. At -∞ the row would be taken for empty, so it is scanned again, NaN counted.
            nextMax = max(nextN, scale, next, ni);
        }
        return Simd.pair(total, nextMax);
    }

    /** The sum in a result of {@link #expSumAndNextMax}. */
    static float sumOf(long sumAndNextMax) {
        return Simd.first(sumAndNextMax);
    }

    /** The next row's max in a result of {@link #expSumAndNextMax}. */
    static float nextMaxOf(long sumAndNextMax) {
        return Simd.second(sumAndNextMax);
    }

    /** {@code sum} plus the terms of the masked tail {@code [end, n)}, which are stored too unless y is null. */
    private static FloatVector addTail(
            FloatVector sum, int end, int n, float scale, float shift, float[] x, int xi, float[] y, int yi) {
        if (end == n) {
            return sum;
        }
        VectorMask<Float> valid = Simd.tail(end, n);
        FloatVector e = VectorMath.expNonPositive(
                FloatVector.fromArray(FLOATS, x, xi + end, valid).fma(scale, -shift));
        if (y != null) {
            e.intoArray(y, yi + end, valid);
        }
        return sum.add(e, valid);
    }

    /** Whether none of {@code n} floats from {@code xi} is NaN or ±∞. */
    static boolean allFinite(int n, float[] x, int xi) {
        // 0·x is ±0 for a finite x and NaN otherwise; a sum of zeros stays 0.
        FloatVector zeros = FloatVector.zero(FLOATS);
        int end = vectorEnd(n);
        for (int j = 0; j < end; j += LANES) {
            zeros = zeros.add(FloatVector.fromArray(FLOATS, x, xi + j).mul(0f));
        }
        if (end < n) {
            zeros = zeros.add(
                    FloatVector.fromArray(FLOATS, x, xi + end, tail(end, n)).mul(0f));
        }
        return !zeros.test(VectorOperators.IS_NAN).anyTrue();
    }

    /** {@code y += alpha·x} over {@code n} floats. */
    static void axpy(int n, float alpha, float[] x, int xi, float[] y, int yi) {
        FloatVector a = FloatVector.broadcast(FLOATS, alpha);
        int end = vectorEnd(n);
        for (int j = 0; j < end; j += LANES) {
            FloatVector.fromArray(FLOATS, x, xi + j)
                    .fma(a, FloatVector.fromArray(FLOATS, y, yi + j))
                    .intoArray(y, yi + j);
        }
        if (end < n) {
            VectorMask<Float> m = tail(end, n);
            FloatVector.fromArray(FLOATS, x, xi + end, m)
                    .fma(a, FloatVector.fromArray(FLOATS, y, yi + end, m))
                    .intoArray(y, yi + end, m);
        }
    }

    /** {@code x *= alpha} over {@code n} floats from {@code xi}. */
    static void scale(int n, float alpha, float[] x, int xi) {
        int end = vectorEnd(n);
        for (int j = 0; j < end; j += LANES) {
            FloatVector.fromArray(FLOATS, x, xi + j).mul(alpha).intoArray(x, xi + j);
        }
        if (end < n) {
            VectorMask<Float> m = tail(end, n);
            FloatVector.fromArray(FLOATS, x, xi + end, m).mul(alpha).intoArray(x, xi + end, m);
        }
    }

    /** {@code Σ a[i]·b[from + i]} over {@code count} floats: lanes added in {@link Simd#sum}'s order, then the tail. */
    static float dot(float[] a, float[] b, int from, int count) {
        FloatVector sums = FloatVector.zero(FLOATS);
        int j = 0;
        for (; j <= count - LANES; j += LANES) {
            sums = FloatVector.fromArray(FLOATS, a, j).fma(FloatVector.fromArray(FLOATS, b, from + j), sums);
        }
        float sum = Simd.sum(sums);
        for (; j < count; j++) {
            sum = Math.fma(a[j], b[from + j], sum);
        }
        return sum;
    }

    /**
     * Four keys' scores at once, {@code out[at + r·outStride] = scale·(q · k_r)} for the query at {@code q[qFrom,
     * qFrom + count)} and the rows of {@code keys} from {@code from}, {@code spacing} floats apart, {@code count}
     * floats each: one pass over q for four keys keeps four
     * loads in flight. Each score sees exactly {@link #dot}'s operations, so results equal the one-key path. Requires
     * {@code count} to be a multiple of the vector length.
     */
    static void dots4(
            float[] q,
            int qFrom,
            float[] keys,
            int from,
            int spacing,
            int count,
            float scale,
            float[] out,
            int at,
            int outStride) {
        FloatVector s0 = FloatVector.zero(FLOATS), s1 = s0, s2 = s0, s3 = s0;
        for (int j = 0; j < count; j += LANES) {
            FloatVector x = FloatVector.fromArray(FLOATS, q, qFrom + j);
            s0 = FloatVector.fromArray(FLOATS, keys, from + j).fma(x, s0);
            s1 = FloatVector.fromArray(FLOATS, keys, from + spacing + j).fma(x, s1);
            s2 = FloatVector.fromArray(FLOATS, keys, from + 2 * spacing + j).fma(x, s2);
            s3 = FloatVector.fromArray(FLOATS, keys, from + 3 * spacing + j).fma(x, s3);
        }
        out[at] = scale * Simd.sum(s0);
        out[at + outStride] = scale * Simd.sum(s1);
        out[at + 2 * outStride] = scale * Simd.sum(s2);
        out[at + 3 * outStride] = scale * Simd.sum(s3);
    }

    /**
     * {@link #dots4(float[], int, float[], int, int, int, float, float[], int, int)} for keys in a segment that is not a
     * float array (offsets in floats): the decode path reads the cache in place, and a segment vector load that also
     * saw arrays would compile slowly for both.
     */
    static void dots4(
            float[] q,
            int qFrom,
            MemorySegment keys,
            long from,
            long spacing,
            int count,
            float scale,
            float[] out,
            int at,
            int outStride) {
        FloatVector s0 = FloatVector.zero(FLOATS), s1 = s0, s2 = s0, s3 = s0;
        long r0 = from * Float.BYTES, step = spacing * Float.BYTES;
        for (int j = 0; j < count; j += LANES) {
            FloatVector x = FloatVector.fromArray(FLOATS, q, qFrom + j);
            long r = r0 + (long) j * Float.BYTES;
            s0 = FloatVector.fromMemorySegment(FLOATS, keys, r, ORDER).fma(x, s0);
            s1 = FloatVector.fromMemorySegment(FLOATS, keys, r + step, ORDER).fma(x, s1);
            s2 = FloatVector.fromMemorySegment(FLOATS, keys, r + 2 * step, ORDER)
                    .fma(x, s2);
            s3 = FloatVector.fromMemorySegment(FLOATS, keys, r + 3 * step, ORDER)
                    .fma(x, s3);
        }
        out[at] = scale * Simd.sum(s0);
        out[at + outStride] = scale * Simd.sum(s1);
        out[at + 2 * outStride] = scale * Simd.sum(s2);
        out[at + 3 * outStride] = scale * Simd.sum(s3);
    }

    /**
     * {@code acc_r += weights[at + r·weightStride]·v_r} for four value rows from {@code from}, {@code spacing} floats
     * apart, into four accumulator rows {@code count} floats apart: element by element the same fused multiply-add as
     * {@link #axpy}. Requires {@code count} to be a multiple of the vector length.
     */
    static void add4(
            float[] weights, int at, int weightStride, float[] values, int from, int spacing, int count, float[] acc) {
        FloatVector w0 = FloatVector.broadcast(FLOATS, weights[at]);
        FloatVector w1 = FloatVector.broadcast(FLOATS, weights[at + weightStride]);
        FloatVector w2 = FloatVector.broadcast(FLOATS, weights[at + 2 * weightStride]);
        FloatVector w3 = FloatVector.broadcast(FLOATS, weights[at + 3 * weightStride]);
        for (int j = 0; j < count; j += LANES) {
            FloatVector.fromArray(FLOATS, values, from + j)
                    .fma(w0, FloatVector.fromArray(FLOATS, acc, j))
                    .intoArray(acc, j);
            FloatVector.fromArray(FLOATS, values, from + spacing + j)
                    .fma(w1, FloatVector.fromArray(FLOATS, acc, count + j))
                    .intoArray(acc, count + j);
            FloatVector.fromArray(FLOATS, values, from + 2 * spacing + j)
                    .fma(w2, FloatVector.fromArray(FLOATS, acc, 2 * count + j))
                    .intoArray(acc, 2 * count + j);
            FloatVector.fromArray(FLOATS, values, from + 3 * spacing + j)
                    .fma(w3, FloatVector.fromArray(FLOATS, acc, 3 * count + j))
                    .intoArray(acc, 3 * count + j);
        }
    }

    /** {@link #add4(float[], int, int, float[], int, int, int, float[])} for values in a segment (offsets in floats). */
    static void add4(
            float[] weights,
            int at,
            int weightStride,
            MemorySegment values,
            long from,
            long spacing,
            int count,
            float[] acc) {
        FloatVector w0 = FloatVector.broadcast(FLOATS, weights[at]);
        FloatVector w1 = FloatVector.broadcast(FLOATS, weights[at + weightStride]);
        FloatVector w2 = FloatVector.broadcast(FLOATS, weights[at + 2 * weightStride]);
        FloatVector w3 = FloatVector.broadcast(FLOATS, weights[at + 3 * weightStride]);
        long r0 = from * Float.BYTES, step = spacing * Float.BYTES;
        for (int j = 0; j < count; j += LANES) {
            long r = r0 + (long) j * Float.BYTES;
            FloatVector.fromMemorySegment(FLOATS, values, r, ORDER)
                    .fma(w0, FloatVector.fromArray(FLOATS, acc, j))
                    .intoArray(acc, j);
            FloatVector.fromMemorySegment(FLOATS, values, r + step, ORDER)
                    .fma(w1, FloatVector.fromArray(FLOATS, acc, count + j))
                    .intoArray(acc, count + j);
            FloatVector.fromMemorySegment(FLOATS, values, r + 2 * step, ORDER)
                    .fma(w2, FloatVector.fromArray(FLOATS, acc, 2 * count + j))
                    .intoArray(acc, 2 * count + j);
            FloatVector.fromMemorySegment(FLOATS, values, r + 3 * step, ORDER)
                    .fma(w3, FloatVector.fromArray(FLOATS, acc, 3 * count + j))
                    .intoArray(acc, 3 * count + j);
        }
    }
    /**
     * {@code acc[accFrom + i] += Σ_r weights[at + r]·v_r[i]} for four value rows from {@code from}, {@code spacing}
     * floats apart, {@code count} floats each, into one accumulator: per element the four fused multiply-adds in row
     * order, as four {@link #axpy} calls would make them. Requires {@code count} to be a multiple of the vector length.
     */
    static void weightedSum4(
            float[] weights, int at, float[] values, int from, int spacing, int count, float[] acc, int accFrom) {
        FloatVector w0 = FloatVector.broadcast(FLOATS, weights[at]);
        FloatVector w1 = FloatVector.broadcast(FLOATS, weights[at + 1]);
        FloatVector w2 = FloatVector.broadcast(FLOATS, weights[at + 2]);
        FloatVector w3 = FloatVector.broadcast(FLOATS, weights[at + 3]);
        for (int j = 0; j < count; j += LANES) {
            FloatVector a = FloatVector.fromArray(FLOATS, acc, accFrom + j);
            a = FloatVector.fromArray(FLOATS, values, from + j).fma(w0, a);
            a = FloatVector.fromArray(FLOATS, values, from + spacing + j).fma(w1, a);
            a = FloatVector.fromArray(FLOATS, values, from + 2 * spacing + j).fma(w2, a);
            a = FloatVector.fromArray(FLOATS, values, from + 3 * spacing + j).fma(w3, a);
            a.intoArray(acc, accFrom + j);
        }
    }

    /**
     * {@link #weightedSum4(float[], int, float[], int, int, int, float[], int)} for values in a segment (offsets in
     * floats).
     */
    static void weightedSum4(
            float[] weights,
            int at,
            MemorySegment values,
            long from,
            long spacing,
            int count,
            float[] acc,
            int accFrom) {
        FloatVector w0 = FloatVector.broadcast(FLOATS, weights[at]);
        FloatVector w1 = FloatVector.broadcast(FLOATS, weights[at + 1]);
        FloatVector w2 = FloatVector.broadcast(FLOATS, weights[at + 2]);
        FloatVector w3 = FloatVector.broadcast(FLOATS, weights[at + 3]);
        long r0 = from * Float.BYTES, step = spacing * Float.BYTES;
        for (int j = 0; j < count; j += LANES) {
            long r = r0 + (long) j * Float.BYTES;
            FloatVector a = FloatVector.fromArray(FLOATS, acc, accFrom + j);
            a = FloatVector.fromMemorySegment(FLOATS, values, r, ORDER).fma(w0, a);
            a = FloatVector.fromMemorySegment(FLOATS, values, r + step, ORDER).fma(w1, a);
            a = FloatVector.fromMemorySegment(FLOATS, values, r + 2 * step, ORDER)
                    .fma(w2, a);
            a = FloatVector.fromMemorySegment(FLOATS, values, r + 3 * step, ORDER)
                    .fma(w3, a);
            a.intoArray(acc, accFrom + j);
        }
    }
}
