package dev.panamax.kernels;

import static dev.panamax.kernels.Simd.FLOATS;
import static dev.panamax.kernels.Simd.LANES;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;

/**
 * Elementary functions on vectors built only from IEEE operations (add, multiply, fused multiply-add, conversions),
 * so that a result has the same bits in interpreted and compiled code, on every platform. The Vector API's own {@code
 * EXP} is faster to write but is SVML in compiled x86 code and {@code Math.exp} elsewhere, which would make results
 * depend on when the JIT got to a kernel.
 */
final class VectorMath {
    /**
     * Below this, the result is flushed to 0: e^x is then under 2^-125 (about 2.2e-38), and the scaling by 2^n below
     * would need a subnormal factor.
     */
    static final float EXP_LOW = -86.98f;
    /** Above this, e^x overflows float; the result is +Inf. */
    static final float EXP_HIGH = 88.72283f;

    private static final float LOG2E = 1.44269504088896341f;
    // ln 2 split so that n·LN2_HIGH is exact for |n| <= 128 (Cody and Waite's range reduction).
    private static final float LN2_HIGH = 0.693359375f;
    private static final float LN2_LOW = -2.12194440e-4f;
    // Minimax polynomial for (e^r - 1 - r) / r² on |r| <= ln2/2 (Cephes expf coefficients).
    private static final float P0 = 1.9875691500e-4f;
    private static final float P1 = 1.3981999507e-3f;
    private static final float P2 = 8.3334519073e-3f;
    private static final float P3 = 4.1665795894e-2f;
    private static final float P4 = 1.6666665459e-1f;
    private static final float P5 = 5.0000001201e-1f;

    /** {@link #exp} clamps its argument to at least this: n = -127, whose 2ⁿ bit pattern is +0. */
    private static final float CLAMP_LOW = -88f;
    /** {@link #exp} clamps its argument to at most this: n = 128, whose 2ⁿ bit pattern is +∞. */
    private static final float CLAMP_HIGH = 88.5f;
    /** 1.5·2²³ + 127: adding it rounds to an integer n and leaves n + 127, the exponent of 2ⁿ, in the low bits. */
    private static final float ROUND_AND_BIAS = 12582912f + 127f;

    private VectorMath() {}

    /**
     * Replaces {@code values[from, from + count)} by {@code e^(value - shift)} and returns their sum, added lane by
     * lane in index order. e^x is within 2 ulp of the exact value for {@code EXP_LOW <= x <= EXP_HIGH} (checked in
     * tests against float64 over that range); 0 below it (including −Inf), +Inf above it, NaN for NaN.
     *
     * <p>The loop and the polynomial are one method on purpose: a vector returned from a call the JIT did not inline
     * is boxed on the heap.
     */
    static float expShifted(float[] values, int from, int count, float shift) {
        FloatVector sums = FloatVector.zero(FLOATS);
        for (int j = 0; j < count; j += LANES) {
            VectorMask<Float> valid = FLOATS.indexInRange(j, count);
            boolean whole = j + LANES <= count;
            FloatVector x = (whole
                            ? FloatVector.fromArray(FLOATS, values, from + j)
                            : FloatVector.fromArray(FLOATS, values, from + j, valid))
                    .sub(shift);
            FloatVector clamped = x.max(EXP_LOW).min(EXP_HIGH);
            // n = round(x / ln 2), computed as a truncation of a positive number; biased = n + 126.
            IntVector biased = (IntVector) clamped.fma(LOG2E, 126.5f).convert(VectorOperators.F2I, 0);
            FloatVector n = ((FloatVector) biased.convert(VectorOperators.I2F, 0)).sub(126f);
            FloatVector r = n.fma(FloatVector.broadcast(FLOATS, -LN2_HIGH), clamped);
            r = n.fma(FloatVector.broadcast(FLOATS, -LN2_LOW), r);
            FloatVector p = r.fma(P0, P1).fma(r, FloatVector.broadcast(FLOATS, P2));
            p = p.fma(r, FloatVector.broadcast(FLOATS, P3))
                    .fma(r, FloatVector.broadcast(FLOATS, P4))
                    .fma(r, FloatVector.broadcast(FLOATS, P5));
            FloatVector y = p.mul(r.mul(r)).add(r).add(1f);
            // 2^(n-1) from its exponent bits (n - 1 + 127 = biased), then one exact doubling: this reaches 2^128·y.
            FloatVector scale = biased.lanewise(VectorOperators.LSHL, 23).reinterpretAsFloats();
            FloatVector e = y.mul(scale).mul(2f);
            e = e.blend(0f, x.compare(VectorOperators.LT, EXP_LOW));
            e = e.blend(Float.POSITIVE_INFINITY, x.compare(VectorOperators.GT, EXP_HIGH));
            if (whole) {
                e.intoArray(values, from + j);
            } else {
                e = e.blend(0f, valid.not());
                e.intoArray(values, from + j, valid);
            }
            sums = sums.add(e);
        }
        float sum = 0;
        for (int lane = 0; lane < LANES; lane++) {
            sum += sums.lane(lane);
        }
        return sum;
    }

    /**
     * {@code eˣ} per lane: within 2 ulp of the exact value wherever it is a normal float, x in [-87.33, 88.37] (the
     * tests measure it over that whole range). Below, results are subnormal and from x < -87.68 (e⁻⁸⁷·⁶⁸ ≈ 2⁻¹²⁶·⁵)
     * flushed to 0; from x ≥ 88.38 (2¹²⁷·⁵) the result is +∞, a little before float's own overflow at 88.72. -∞
     * gives 0, +∞ gives +∞, NaN gives NaN.
     */
    static FloatVector exp(FloatVector x) {
        // Clamping first keeps n within [-127, 128]: 2⁻¹²⁷'s bit pattern is +0 and 2¹²⁸'s is +∞, the saturated results.
        FloatVector c = x.max(CLAMP_LOW).min(CLAMP_HIGH);
        FloatVector t = c.fma(LOG2E, ROUND_AND_BIAS);
        FloatVector n = t.sub(ROUND_AND_BIAS);
        FloatVector r = n.fma(FloatVector.broadcast(FLOATS, -LN2_HIGH), c);
        r = n.fma(FloatVector.broadcast(FLOATS, -LN2_LOW), r);
        FloatVector p = r.fma(P0, P1);
        p = p.fma(r, FloatVector.broadcast(FLOATS, P2));
        p = p.fma(r, FloatVector.broadcast(FLOATS, P3));
        p = p.fma(r, FloatVector.broadcast(FLOATS, P4));
        p = p.fma(r, FloatVector.broadcast(FLOATS, P5));
        p = p.fma(r.mul(r), r).add(1f);
        FloatVector scale =
                t.reinterpretAsInts().lanewise(VectorOperators.LSHL, 23).reinterpretAsFloats();
        return p.mul(scale);
    }
}
