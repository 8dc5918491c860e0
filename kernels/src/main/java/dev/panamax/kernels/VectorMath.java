package dev.panamax.kernels;

import static dev.panamax.kernels.Simd.FLOATS;
import static dev.panamax.kernels.Simd.LANES;

import java.lang.foreign.MemorySegment;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
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
        FloatVector c = x.max(EXP_LOW).min(EXP_HIGH);
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
        // 2ⁿ from its exponent bits. Converting n (exact in float) rather than reinterpreting t keeps every step a
        // plain lane-wise operation: with the reinterpretation, C2 fell back to boxed vectors in some loops.
        FloatVector scale = ((IntVector) n.convert(VectorOperators.F2I, 0))
                .add(127)
                .lanewise(VectorOperators.LSHL, 23)
                .reinterpretAsFloats();
        return p.mul(scale);
    }

    /**
     * {@code y = exp(scale·x - shift)} over {@code n} floats of two segments (y may be x itself, or null to only sum)
     * and the sum of the terms, lanes added in {@link Simd#sum}'s fixed order: the loop every softmax-shaped kernel
     * runs. Whole vectors and the masked tail are separate loops, so that no mask object reaches the main loop.
     */
    static float expSum(int n, float scale, float shift, MemorySegment x, long xi, MemorySegment y, long yi) {
        FloatVector sum = FloatVector.zero(FLOATS);
        int end = Simd.vectorEnd(n);
        for (int j = 0; j < end; j += LANES) {
            FloatVector e = exp(Simd.load(x, xi + j).mul(scale).sub(shift));
            if (y != null) {
                Simd.store(e, y, yi + j);
            }
            sum = sum.add(e);
        }
        if (end < n) {
            VectorMask<Float> valid = Simd.tail(end, n);
            FloatVector e = exp(Simd.load(x, xi + end, valid).mul(scale).sub(shift));
            if (y != null) {
                Simd.store(e, y, yi + end, valid);
            }
            sum = sum.add(e, valid);
        }
        return Simd.sum(sum);
    }

    /**
     * {@link #expSum} on an array, in place: {@code values = exp(values - shift)}, returning their sum. Kernels that
     * keep tiles in arrays use it because C2 compiles vector stores into heap segments in this loop far slower than
     * into arrays or native memory (measured about 7 ns against 1 ns per element).
     */
    static float expSum(float[] values, int from, int count, float shift) {
        FloatVector sum = FloatVector.zero(FLOATS);
        int end = Simd.vectorEnd(count);
        for (int j = 0; j < end; j += LANES) {
            FloatVector e = exp(FloatVector.fromArray(FLOATS, values, from + j).sub(shift));
            e.intoArray(values, from + j);
            sum = sum.add(e);
        }
        if (end < count) {
            VectorMask<Float> valid = Simd.tail(end, count);
            FloatVector e =
                    exp(FloatVector.fromArray(FLOATS, values, from + end, valid).sub(shift));
            e.intoArray(values, from + end, valid);
            sum = sum.add(e, valid);
        }
        return Simd.sum(sum);
    }
}
