package dev.panamax.kernels;

import static dev.panamax.kernels.Simd.FLOATS;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
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
    // (eʳ - 1 - r)/r² ≈ Q0 + Q1·r + Q2·r² + Q3·r³ + Q4·r⁴ on |r| <= ln2/2: a minimax fit of relative error 3.1e-9
    // (0.05 ulp) in eʳ, so rounding dominates the error. A degree lower would be 1.1e-7, nearly an ulp by itself.
    private static final float Q0 = 4.9999994040e-01f;
    private static final float Q1 = 1.6666519642e-01f;
    private static final float Q2 = 4.1668407619e-02f;
    private static final float Q3 = 8.3689140156e-03f;
    private static final float Q4 = 1.3814190170e-03f;

    private VectorMath() {}

    /**
     * {@code eˣ} per lane: within 2 ulp of the exact value wherever it is a normal float, x in [-87.33, 88.37] (the
     * tests measure it over that whole range). Below, results are subnormal and from x < -87.68 (e⁻⁸⁷·⁶⁸ ≈ 2⁻¹²⁶·⁵)
     * flushed to 0; from x ≥ 88.38 (2¹²⁷·⁵) the result is +∞, a little before float's own overflow at 88.72. -∞
     * gives 0, +∞ gives +∞, NaN gives NaN.
     */
    static FloatVector exp(FloatVector x) {
        // Clamping keeps n within [-127, 128]: 2⁻¹²⁷'s bit pattern is +0 and 2¹²⁸'s is +∞, the saturated results. A
        // NaN fails both compares and stays NaN.
        return expOfClamped(Simd.atLeast(Simd.atMost(x, EXP_HIGH), EXP_LOW));
    }

    /**
     * {@link #exp}, except that a NaN lane gives some number instead of NaN: for a caller whose result is NaN anyway
     * when x is, such as {@code v/(1 + eˣ)} with x computed from v. Its clamp is two integer minima on the bits (a
     * signed one for the upper bound; an unsigned one, under which every negative float is above every positive one,
     * for the lower), where {@code exp}'s is two compares and two blends: half the instructions and a shorter chain.
     */
    static FloatVector expIgnoringNaN(FloatVector x) {
        IntVector bits = x.reinterpretAsInts()
                .lanewise(VectorOperators.MIN, Float.floatToRawIntBits(EXP_HIGH))
                .lanewise(VectorOperators.UMIN, Float.floatToRawIntBits(EXP_LOW));
        return expOfClamped(bits.reinterpretAsFloats());
    }

    /** {@code eᶜ} for c already in {@code [EXP_LOW, EXP_HIGH]}. */
    private static FloatVector expOfClamped(FloatVector c) {
        FloatVector t = roundedLog2(c);
        // (1 + p)·2ⁿ rather than p·2ⁿ + 2ⁿ: at 2ⁿ = +∞ and p < 0 the latter is NaN.
        return expm1Reduced(c, t).add(1f).mul(pow2(t));
    }

    /**
     * {@link #exp} for arguments at most 0 (or above it by rounding), as every softmax-shaped loop has after
     * subtracting its row's maximum. It skips the clamp at overflow and folds the final add into a fused
     * multiply-add: each a step off a long dependency chain, which is what bounds these loops. On Zen 3 the
     * out-of-order window holds about two iterations, so the time per vector tracks chain length × instructions, which
     * is why the polynomial below uses Estrin's scheme. The fused final step rounds once where exp rounds twice, so
     * results may differ from exp's in the last bit; the error bound is the same. Arguments must stay below 88.38,
     * where 2ⁿ overflows: above, the result is +∞, NaN or, once n passes 128 and wraps into the sign bit, a tiny
     * negative number.
     */
    static FloatVector expNonPositive(FloatVector x) {
        FloatVector c = Simd.atLeast(x, EXP_LOW);
        FloatVector t = roundedLog2(c);
        FloatVector scale = pow2(t);
        return expm1Reduced(c, t).fma(scale, scale);
    }

    /** {@code 1.5·2²³ + 127 + n}, n = x·log₂e rounded to the nearest integer (|n| ≤ 128 for x within the clamps). */
    private static FloatVector roundedLog2(FloatVector x) {
        return x.fma(LOG2E, ROUND_AND_BIAS);
    }

    /**
     * {@code e^r - 1} for the reduced argument {@code r = x - n·ln2}, |r| ≤ ln2/2, with {@code t} from
     * {@link #roundedLog2}. The polynomial is evaluated in Estrin's scheme: pairs of terms in parallel, not one long
     * Horner chain, for the same reason as {@link #expNonPositive}.
     */
    private static FloatVector expm1Reduced(FloatVector x, FloatVector t) {
        FloatVector n = t.sub(ROUND_AND_BIAS);
        FloatVector r = n.fma(FloatVector.broadcast(FLOATS, -LN2_HI), x);
        r = n.fma(FloatVector.broadcast(FLOATS, -LN2_LO), r);
        FloatVector r2 = r.mul(r);
        FloatVector low = r.fma(FloatVector.broadcast(FLOATS, Q1), FloatVector.broadcast(FLOATS, Q0));
        FloatVector high = r.fma(FloatVector.broadcast(FLOATS, Q3), FloatVector.broadcast(FLOATS, Q2));
        high = r2.fma(FloatVector.broadcast(FLOATS, Q4), high);
        FloatVector q = high.fma(r2, low);
        return q.fma(r2, r);
    }

    /**
     * {@code 2ⁿ} from {@link #roundedLog2}'s bits: t = 1.5·2²³ + 127 + n keeps n + 127 in its low mantissa bits, and
     * shifting those into the exponent field drops the rest. Cheaper than converting n, whose Java semantics (NaN,
     * saturation) make C2 emit a compare, a branch and fix-ups around the conversion.
     */
    private static FloatVector pow2(FloatVector t) {
        return t.reinterpretAsInts().lanewise(VectorOperators.LSHL, 23).reinterpretAsFloats();
    }
}
