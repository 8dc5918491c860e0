package dev.panamax.kernels;

import static dev.panamax.kernels.Simd.FLOATS;
import static dev.panamax.kernels.Simd.LANES;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;

/**
 * Elementary functions on vectors, built from exact IEEE operations only (add, multiply, fused multiply-add, shifts):
 * the same bits interpreted, compiled and on every CPU, unlike {@code lanewise(EXP)}, which is SVML on x86, and a
 * per-lane {@code Math.exp} loop where no vector library is intrinsified.
 */
final class VectorMath {
    /** {@link #exp} clamps its argument to at least this: n = -127, whose 2ⁿ bit pattern is +0. */
    private static final float EXP_LOW = -88f;
    /** {@link #exp} clamps its argument to at most this: n = 128, whose 2ⁿ bit pattern is +∞. */
    private static final float EXP_HIGH = 88.5f;

    private static final float LOG2E = 1.44269504088896341f;
    /** 1.5·2²³ + 127: adding it rounds to an integer n and leaves n + 127, the exponent of 2ⁿ, in the low bits. */
    private static final float ROUND_AND_BIAS = 12582912f + 127f;
    /** ln 2 in two parts (Cody-Waite): {@code n·LN2_HI} is exact for |n| < 2⁹. */
    private static final float LN2_HI = 0.693359375f;

    private static final float LN2_LO = -2.12194440e-4f;
    // Minimax polynomial for (eʳ - 1 - r)/r² on |r| <= ln2/2 (Cephes expf).
    private static final float P0 = 1.9875691500e-4f;
    private static final float P1 = 1.3981999507e-3f;
    private static final float P2 = 8.3334519073e-3f;
    private static final float P3 = 4.1665795894e-2f;
    private static final float P4 = 1.6666665459e-1f;
    private static final float P5 = 5.0000001201e-1f;

    private VectorMath() {}

    /**
     * {@code eˣ} per lane: within 2 ulp of the exact value wherever it is a normal float, x in [-87.33, 88.37] (the
     * tests measure it over that whole range). Below, results are subnormal and from x < -87.68 (e⁻⁸⁷·⁶⁸ ≈ 2⁻¹²⁶·⁵)
     * flushed to 0; from x ≥ 88.38 (2¹²⁷·⁵) the result is +∞, a little before float's own overflow at 88.72. -∞
     * gives 0, +∞ gives +∞, NaN gives NaN.
     */
    static FloatVector exp(FloatVector x) {
        // Clamping first keeps n within [-127, 128]: 2⁻¹²⁷'s bit pattern is +0 and 2¹²⁸'s is +∞, the saturated results.
        // A compare and a blend per bound, not max/min: those also order NaN and -0, which costs C2 five instructions
        // each. A NaN fails both compares and stays NaN.
        FloatVector c = x.blend(EXP_LOW, x.lt(EXP_LOW));
        c = c.blend(EXP_HIGH, c.compare(VectorOperators.GT, EXP_HIGH));
        FloatVector t = c.fma(LOG2E, ROUND_AND_BIAS);
        FloatVector n = t.sub(ROUND_AND_BIAS);
        FloatVector r = n.fma(FloatVector.broadcast(FLOATS, -LN2_HI), c);
        r = n.fma(FloatVector.broadcast(FLOATS, -LN2_LO), r);
        FloatVector p = r.fma(P0, P1);
        p = p.fma(r, FloatVector.broadcast(FLOATS, P2));
        p = p.fma(r, FloatVector.broadcast(FLOATS, P3));
        p = p.fma(r, FloatVector.broadcast(FLOATS, P4));
        p = p.fma(r, FloatVector.broadcast(FLOATS, P5));
        p = p.fma(r.mul(r), r).add(1f);
        // 2ⁿ from t's own bits: t = 1.5·2²³ + 127 + n keeps n + 127 in its low mantissa bits, and shifting those into
        // the exponent field drops the rest. Cheaper than converting n, whose Java semantics (NaN, saturation) make
        // C2 emit a compare, a branch and fix-ups around the conversion.
        FloatVector scale =
                t.reinterpretAsInts().lanewise(VectorOperators.LSHL, 23).reinterpretAsFloats();
        return p.mul(scale);
    }

    /**
     * {@code y = exp(scale·x - shift)} over {@code n} floats (y may be x itself, or null to only sum) and the sum of the
     * terms, lanes added in {@link Simd#sum}'s fixed order: the loop every softmax-shaped kernel runs.
     */
    static float expSum(int n, float scale, float shift, float[] x, int xi, float[] y, int yi) {
        FloatVector sum = FloatVector.zero(FLOATS);
        int end = Simd.vectorEnd(n);
        // Summing alone and storing too are separate loops: a test inside the loop costs a branch per vector.
        if (y == null) {
            for (int j = 0; j < end; j += LANES) {
                sum = sum.add(
                        exp(FloatVector.fromArray(FLOATS, x, xi + j).mul(scale).sub(shift)));
            }
        } else {
            for (int j = 0; j < end; j += LANES) {
                FloatVector e =
                        exp(FloatVector.fromArray(FLOATS, x, xi + j).mul(scale).sub(shift));
                e.intoArray(y, yi + j);
                sum = sum.add(e);
            }
        }
        if (end < n) {
            VectorMask<Float> valid = Simd.tail(end, n);
            FloatVector e = exp(
                    FloatVector.fromArray(FLOATS, x, xi + end, valid).mul(scale).sub(shift));
            if (y != null) {
                e.intoArray(y, yi + end, valid);
            }
            sum = sum.add(e, valid);
        }
        return Simd.sum(sum);
    }
}
