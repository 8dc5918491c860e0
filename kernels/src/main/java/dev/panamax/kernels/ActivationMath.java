package dev.panamax.kernels;

import static dev.panamax.kernels.Simd.FLOATS;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;

/**
 * The activations and their derivatives on one vector, for {@link ActivationRows}: GELU (exact and tanh form),
 * SiLU, and the clamp that gives huge inputs the derivatives' limits. The exponentials are {@link VectorMath}'s.
 */
final class ActivationMath {
    /** -2√(2/π): {@code x·(C1 + C2·x²)} is the exponent {@code -2u} of GELU's tanh form. */
    private static final float C1 = -1.5957691216057308f;

    private static final float C2 = C1 * 0.044715f;
    /**
     * Above this exponent a, {@code e⁻ᵃ} is computed as {@code h·h} with {@code h = e^(-a/2)}: {@code eᵃ} overflows
     * from 88.4 and {@code e⁻ᵃ} is flushed from 87.7, while {@code x·e⁻ᵃ} stays a normal float to a ≈ 92. Below it the
     * direct form is kept, as it rounds less.
     */
    private static final float TAIL = 64f;
    /**
     * Derivatives are evaluated at x clamped to ±100, where they have reached their limits (1 and 0) in float; this
     * keeps {@code x²} and {@code x·e} finite, so that huge and infinite inputs get those limits rather than NaN.
     */
    private static final float DERIVATIVE_RANGE = 100f;

    private static final float INV_SQRT_2 = 0.70710678118654752f;
    private static final float INV_SQRT_2PI = 0.39894228040143268f;

    private ActivationMath() {}

    static FloatVector geluTanh(FloatVector x) {
        return overOnePlusExp(x, x.mul(x).fma(C2, C1).mul(x));
    }

    /**
     * {@code x/(1 + eᵃ)} for an exponent a computed from x (NaN only where x is); in the tail, where 1 + eᵃ is eᵃ in
     * float, {@code x·e⁻ᵃ} from the halved exponent (see {@link #TAIL}).
     */
    private static FloatVector overOnePlusExp(FloatVector x, FloatVector a) {
        VectorMask<Float> tail = a.compare(VectorOperators.GT, TAIL);
        FloatVector e = VectorMath.expIgnoringNaN(a.blend(a.mul(-0.5f), tail));
        return x.div(e.add(1f)).blend(x.mul(e).mul(e), tail);
    }

    /** {@code eᵃ}, and {@code h = e^(-a/2)} in the tail's lanes, for the derivatives. */
    private static FloatVector tailExp(FloatVector a, VectorMask<Float> tail) {
        return VectorMath.exp(a.blend(a.mul(-0.5f), tail));
    }

    static FloatVector gelu(FloatVector x) {
        return x.mul(normalCdf(x));
    }

    static FloatVector geluTanhDerivative(FloatVector x) {
        // s = sigmoid(2u), 1 - s = e·s: gelu' = s + x·e·s²·(2u)'.
        FloatVector x2 = x.mul(x);
        FloatVector a = x2.fma(C2, C1).mul(x);
        VectorMask<Float> tail = a.compare(VectorOperators.GT, TAIL);
        FloatVector e = tailExp(a, tail);
        FloatVector s = FloatVector.broadcast(FLOATS, 1f).div(e.add(1f));
        FloatVector slope = x2.fma(-3 * C2, -C1);
        // In the tail s and e·s² are e⁻ᵃ = h·h to within float's rounding: gelu' = (1 + x·slope)·h·h.
        return x.mul(e)
                .mul(s)
                .mul(s)
                .fma(slope, s)
                .blend(x.fma(slope, FloatVector.broadcast(FLOATS, 1f)).mul(e).mul(e), tail);
    }

    static FloatVector geluDerivative(FloatVector x) {
        return VectorMath.exp(x.mul(x).mul(-0.5f)).mul(INV_SQRT_2PI).mul(x).add(normalCdf(x));
    }

    static FloatVector clamp(FloatVector x) {
        return Simd.atMost(Simd.atLeast(x, -DERIVATIVE_RANGE), DERIVATIVE_RANGE);
    }

    static FloatVector silu(FloatVector x) {
        return overOnePlusExp(x, x.neg());
    }

    /** {@code s·(1 + x·(1 - s))}, with {@code 1 - s = e·s} computed without cancellation. */
    static FloatVector siluDerivative(FloatVector x) {
        FloatVector a = x.neg();
        VectorMask<Float> tail = a.compare(VectorOperators.GT, TAIL);
        FloatVector e = tailExp(a, tail);
        FloatVector s = FloatVector.broadcast(FLOATS, 1f).div(e.add(1f));
        // In the tail, as for GELU: silu' = (1 + x)·h·h.
        return x.mul(e).mul(s).fma(s, s).blend(x.add(1f).mul(e).mul(e), tail);
    }

    /**
     * {@code Φ(x) = 0.5·erfc(-x/√2)}: for {@code t = |x|/√2}, {@code q = 0.5·erfc(t)} is accurate in relative terms
     * (Numerical Recipes' {@code erfcc}: {@code τ·exp(-t² + P(τ))}, {@code τ = 1/(1 + t/2)}), and {@code Φ} is q
     * for negative x and {@code 1 - q} otherwise.
     */
    private static FloatVector normalCdf(FloatVector x) {
        FloatVector t = x.abs().mul(INV_SQRT_2);
        FloatVector tau = FloatVector.broadcast(FLOATS, 1f).div(t.fma(0.5f, 1f));
        FloatVector p = tau.fma(0.17087277f, -0.82215223f);
        p = p.fma(tau, FloatVector.broadcast(FLOATS, 1.48851587f));
        p = p.fma(tau, FloatVector.broadcast(FLOATS, -1.13520398f));
        p = p.fma(tau, FloatVector.broadcast(FLOATS, 0.27886807f));
        p = p.fma(tau, FloatVector.broadcast(FLOATS, -0.18628806f));
        p = p.fma(tau, FloatVector.broadcast(FLOATS, 0.09678418f));
        p = p.fma(tau, FloatVector.broadcast(FLOATS, 0.37409196f));
        p = p.fma(tau, FloatVector.broadcast(FLOATS, 1.00002368f));
        p = p.fma(tau, FloatVector.broadcast(FLOATS, -1.26551223f));
        FloatVector q = VectorMath.exp(t.mul(t).neg().add(p)).mul(tau).mul(0.5f);
        return FloatVector.broadcast(FLOATS, 1f).sub(q).blend(q, x.lt(0f));
    }
}
