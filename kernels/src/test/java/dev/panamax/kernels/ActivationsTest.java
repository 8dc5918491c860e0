package dev.panamax.kernels;

import static dev.panamax.kernels.testing.Agreement.assertAllRejected;
import static dev.panamax.kernels.testing.Rejection.illegalArgument;
import static dev.panamax.kernels.testing.Rejection.nullArgument;
import static dev.panamax.kernels.testing.Rejection.outOfBounds;
import static dev.panamax.kernels.testing.Tolerance.FLOAT_EPSILON;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.panamax.kernels.testing.Agreement;
import dev.panamax.kernels.testing.FiniteDifferences;
import dev.panamax.kernels.testing.Inputs;
import dev.panamax.kernels.testing.ReferenceOps;
import dev.panamax.kernels.testing.Rejection;
import dev.panamax.kernels.testing.Tolerance;
import java.lang.foreign.MemorySegment;
import java.util.List;
import java.util.function.DoubleUnaryOperator;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The activations against {@link ReferenceOps}, per element, with ε = 2⁻²⁴ and the exponential's 4ε (2 ulp):
 *
 * <ul>
 *   <li>GELU (tanh) and SiLU are {@code x / (1 + e)}: the exponent {@code a} carries {@code 5ε|a|} (x², two products,
 *       two rounded constants), e carries {@code δ = 5ε|a| + 4ε}, the result {@code (1 - s)·δ + 2ε} relative, where
 *       {@code 1 - s = e/(1 + e)} says how much e matters. Derivatives {@code s + x·e·s²·slope}: {@code s·δs + |T|·(δ +
 *       2δs + 6ε) + 2ε|f'|} with {@code δs = (1 - s)δ + 2ε}. Beyond a = 64 the kernels use {@code e⁻ᵃ = h·h}, {@code
 *       h = e^(-a/2)}: two of the exponential's errors and two more roundings, well within δ there.
 *   <li>GELU (erf): Φ's small side {@code q = min(Φ, 1 - Φ)} is a fit of relative error 1.2·10⁻⁷ evaluated in float:
 *       ten rounded steps on a polynomial of magnitude up to 3 and the exponent's {@code ε·t²}; bound {@code
 *       |x|·q·(2·10⁻⁶ + 2ε·x²) + 2ε|y|}, about 1 part in 10⁶ of the small side (the measured worst is printed).
 *       The derivative adds {@code |x·φ(x)|·(ε·x² + 6ε)}.
 * </ul>
 *
 * <p>Bounds also allow 2⁻¹²⁶ absolute: results below float's normal range may be flushed to zero. Reference
 * derivatives are checked against central finite differences of the reference forward.
 */
@Tag("species")
class ActivationsTest {
    private static final double EPS = FLOAT_EPSILON;
    private static final double C1 = -2 * Math.sqrt(2 / Math.PI);

    /** An activation, its float64 reference and its error model. */
    enum Kind {
        GELU_TANH(ReferenceOps::geluTanh, ReferenceOps::geluTanhDerivative),
        GELU(ReferenceOps::gelu, ReferenceOps::geluDerivative),
        SILU(ReferenceOps::silu, ReferenceOps::siluDerivative);

        final DoubleUnaryOperator function;
        final DoubleUnaryOperator derivative;

        Kind(DoubleUnaryOperator function, DoubleUnaryOperator derivative) {
            this.function = function;
            this.derivative = derivative;
        }

        /** The kernels' activation of the same name. */
        Activation activation() {
            return Activation.valueOf(name());
        }

        /** The exponent of {@code x / (1 + e^a)}. */
        double exponent(double x) {
            return this == SILU ? -x : x * (C1 + C1 * 0.044715 * x * x);
        }

        double forwardBound(double x, double y) {
            if (this == GELU) {
                double phi = 0.5 * ReferenceOps.erfc(-x / Math.sqrt(2));
                return Math.abs(x) * Math.min(phi, 1 - phi) * (2e-6 + 2 * EPS * x * x)
                        + 2 * EPS * Math.abs(y)
                        + 0x1p-126;
            }
            double a = exponent(x);
            double delta = 5 * EPS * Math.abs(a) + 4 * EPS;
            return Math.abs(y) * (oneMinusS(a) * delta + 2 * EPS) + 0x1p-126;
        }

        double derivativeBound(double x, double derivative) {
            if (this == GELU) {
                double phi = 0.5 * ReferenceOps.erfc(-x / Math.sqrt(2));
                double density = Math.abs(x) * Math.exp(-0.5 * x * x) / Math.sqrt(2 * Math.PI);
                return Math.min(phi, 1 - phi) * (2e-6 + 2 * EPS * x * x)
                        + density * (EPS * x * x + 6 * EPS)
                        + 2 * EPS * Math.abs(derivative)
                        + 0x1p-126;
            }
            double a = exponent(x);
            double delta = 5 * EPS * Math.abs(a) + 4 * EPS;
            double oneMinusS = oneMinusS(a);
            double s = 1 - oneMinusS;
            double deltaS = oneMinusS * delta + 2 * EPS;
            double slope = this == SILU ? 1 : -(C1 + 3 * C1 * 0.044715 * x * x);
            double term = Math.abs(derivative - s);
            return s * deltaS + term * (delta + 2 * deltaS + 6 * EPS) + 2 * EPS * Math.abs(derivative) + 0x1p-126;
        }

        private static double oneMinusS(double a) {
            return 1 / (1 + Math.exp(-a));
        }
    }

    @ParameterizedTest
    @ValueSource(ints = {1, 2, 7, 8, 9, 31, 33, 1000, 4096, 100_000})
    void forwardAndBackwardMatchTheReference(int n) {
        for (Kind kind : Kind.values()) {
            float[] x = Inputs.uniform(Inputs.seed(kind + " " + n), n + 3, -10, 10);
            check(kind, n, x, kind + " " + n);
        }
    }

    @Test
    void extremeInputs() {
        float[] x = Inputs.uniform(Inputs.seed("extreme"), 64, -1e4f, 1e4f);
        float[] special = {
            Float.NaN,
            Float.POSITIVE_INFINITY,
            Float.NEGATIVE_INFINITY,
            0f,
            -0f,
            88f,
            -88f,
            87.5f,
            -87.5f,
            1e-30f,
            -1e-30f,
            3e38f,
            -3e38f,
            15f,
            -15f,
            40f,
            -40f,
            5f,
            -5f,
            1e-8f,
            // Where the exponent a nears 88, eᵃ overflows while x·e⁻ᵃ is still a normal float: SiLU to -91.9, GELU
            // (tanh) to -10.15; and the kernels' switch to the tail form at a = 64.
            -88.4f,
            -89f,
            -90f,
            -91f,
            -91.5f,
            -91.8f,
            -10.05f,
            -10.07f,
            -10.1f,
            -10.14f,
            -64f,
            -64.01f,
            -9.1f,
            -9.11f
        };
        System.arraycopy(special, 0, x, 3, special.length);
        for (Kind kind : Kind.values()) {
            check(kind, 61, x, kind + " extreme");
        }
        float[] dense = Inputs.uniform(Inputs.seed("dense"), 20_003, -3, 3);
        for (Kind kind : Kind.values()) {
            check(kind, 20_000, dense, kind + " [-3, 3]");
        }
    }

    @Test
    void referenceErfcHitsKnownValues() {
        assertEquals(0.4795001221869535, ReferenceOps.erfc(0.5), 1e-15);
        assertEquals(0.15729920705028513, ReferenceOps.erfc(1), 1e-15);
        assertEquals(2.209049699858544e-05, ReferenceOps.erfc(3), 1e-18);
        assertEquals(1.5374597944280349e-12, ReferenceOps.erfc(5), 1e-24);
        assertEquals(1.8427007929497148, ReferenceOps.erfc(-1), 1e-15);
    }

    @ParameterizedTest
    @ValueSource(ints = {1, 9, 33})
    void referenceDerivativesMatchFiniteDifferences(int n) {
        double[] x = ReferenceOps.toDouble(Inputs.uniform(Inputs.seed("fd " + n), n, -6, 6), 0, n);
        double[] dy = ReferenceOps.toDouble(Inputs.uniform(Inputs.seed("fd dy " + n), n, -1, 1), 0, n);
        for (Kind kind : Kind.values()) {
            double[] analytical = new double[n];
            for (int i = 0; i < n; i++) {
                analytical[i] = dy[i] * kind.derivative.applyAsDouble(x[i]);
            }
            FiniteDifferences.assertMatches(
                    kind + " " + n,
                    analytical,
                    FiniteDifferences.gradient(v -> map(kind.function, v), x, dy, 1e-6),
                    1e-6);
        }
        double[] up = ReferenceOps.toDouble(Inputs.uniform(Inputs.seed("fd up " + n), n, -2, 2), 0, n);
        double[] dgate = new double[n];
        double[] dup = new double[n];
        for (int i = 0; i < n; i++) {
            dgate[i] = dy[i] * up[i] * ReferenceOps.siluDerivative(x[i]);
            dup[i] = dy[i] * ReferenceOps.silu(x[i]);
        }
        FiniteDifferences.assertMatches(
                "swiglu dgate", dgate, FiniteDifferences.gradient(g -> swiglu(g, up), x, dy, 1e-6), 1e-6);
        FiniteDifferences.assertMatches(
                "swiglu dup", dup, FiniteDifferences.gradient(u -> swiglu(x, u), up, dy, 1e-6), 1e-6);
    }

    @ParameterizedTest
    @ValueSource(ints = {1, 2, 7, 8, 9, 31, 33, 1000, 4096})
    void swigluMatchesTheReference(int n) {
        float[] gate = Inputs.uniform(Inputs.seed("gate " + n), n + 1, -10, 10);
        float[] up = Inputs.uniform(Inputs.seed("up " + n), n + 2, -3, 3);
        float[] dy = Inputs.uniform(Inputs.seed("dy " + n), n + 3, -1, 1);
        float[] y = new float[n + 4];
        float[] dgate = new float[n + 1];
        float[] dup = new float[n + 2];
        Activations.swigluForward(n, gate, 1, up, 2, y, 4);
        Activations.swigluBackward(n, gate, 1, up, 2, dy, 3, dgate, 1, dup, 2);
        Tolerance.assertClose(
                "swiglu " + n,
                n,
                i -> ReferenceOps.silu(gate[1 + i]) * up[2 + i],
                i -> y[4 + i],
                i -> Math.abs(y[4 + i]) * (Kind.SILU.forwardBound(gate[1 + i], 1) + EPS) + 1e-37);
        Tolerance.assertClose(
                "swiglu dgate " + n,
                n,
                i -> dy[3 + i] * up[2 + i] * ReferenceOps.siluDerivative(gate[1 + i]),
                i -> dgate[1 + i],
                i -> Math.abs(dy[3 + i] * up[2 + i])
                        * (Kind.SILU.derivativeBound(gate[1 + i], ReferenceOps.siluDerivative(gate[1 + i]))
                                + 2 * EPS * Math.abs(ReferenceOps.siluDerivative(gate[1 + i]))));
        Tolerance.assertClose(
                "swiglu dup " + n,
                n,
                i -> dy[3 + i] * ReferenceOps.silu(gate[1 + i]),
                i -> dup[2 + i],
                i -> Math.abs(dy[3 + i]) * (Kind.SILU.forwardBound(gate[1 + i], ReferenceOps.silu(gate[1 + i])) + 1e-37)
                        + EPS * Math.abs(dup[2 + i]));
        float[] inPlace = gate.clone();
        Activations.swigluForward(n, inPlace, 1, up, 2, inPlace, 1);
        assertArrayEquals(java.util.Arrays.copyOfRange(y, 4, 4 + n), java.util.Arrays.copyOfRange(inPlace, 1, 1 + n));
    }

    @Test
    void formsAndThreadCountsAgreeBitForBit() {
        int n = 600_000;
        float[] x = Inputs.uniform(Inputs.seed("forms"), n, -8, 8);
        float[] up = Inputs.uniform(Inputs.seed("forms up"), n, -1, 1);
        Agreement.assertFormsAgree(
                "activations",
                new float[][] {x, up, new float[n], new float[n], new float[n]},
                a -> {
                    Activations.forward(Activation.GELU_TANH, n, a[0], 0, a[2], 0);
                    Activations.backward(Activation.GELU, n, a[0], 0, a[1], 0, a[3], 0);
                    Activations.backward(Activation.SILU, n - 5, a[2], 3, a[3], 1, a[4], 2);
                    Activations.swigluBackward(n, a[0], 0, a[1], 0, a[2], 0, a[3], 0, a[4], 0);
                },
                (s, arena) -> {
                    Activations.forward(Activation.GELU_TANH, n, s[0], 0, s[2], 0);
                    Activations.backward(Activation.GELU, n, s[0], 0, s[1], 0, s[3], 0);
                    Activations.backward(Activation.SILU, n - 5, s[2], 3, s[3], 1, s[4], 2);
                    Activations.swigluBackward(n, s[0], 0, s[1], 0, s[2], 0, s[3], 0, s[4], 0);
                });
        Agreement.assertThreadIndependent("activations", () -> {
            float[] y = new float[n];
            float[] dx = new float[n];
            Activations.forward(Activation.GELU, n, x, 0, y, 0);
            Activations.backward(Activation.GELU_TANH, n, x, 0, up, 0, dx, 0);
            return new float[][] {y, dx};
        });
    }

    @Test
    void badArgumentsAreRejectedBeforeAnythingIsWritten() {
        float[] x = new float[10];
        float[] y = Inputs.uniform(1, 10, -1, 1);
        MemorySegment xs = MemorySegment.ofArray(x);
        List<Rejection> rows = List.of(
                illegalArgument("n (-1) must be >= 0", () -> Activations.forward(Activation.SILU, -1, x, 0, y, 0)),
                outOfBounds(
                        "y holds 10 floats, but y needs 8 from yOffset (3), up to index 10",
                        () -> Activations.forward(Activation.GELU, 8, x, 0, y, 3)),
                outOfBounds(
                        "dyOffset (-2) must be >= 0",
                        () -> Activations.backward(Activation.GELU_TANH, 8, x, 0, x, -2, y, 0)),
                nullArgument("function must not be null", () -> Activations.forward(null, 8, x, 0, y, 0)),
                nullArgument("up must not be null", () -> Activations.swigluForward(8, x, 0, null, 0, y, 0)),
                illegalArgument(
                        "dup is read-only",
                        () -> Activations.swigluBackward(
                                8, xs, 0, xs, 0, xs, 0, MemorySegment.ofArray(y), 0, xs.asReadOnly(), 0)));
        assertAllRejected(rows, y);
    }

    private static double[] map(DoubleUnaryOperator f, double[] x) {
        double[] y = new double[x.length];
        for (int i = 0; i < x.length; i++) {
            y[i] = f.applyAsDouble(x[i]);
        }
        return y;
    }

    private static double[] swiglu(double[] gate, double[] up) {
        double[] y = new double[gate.length];
        for (int i = 0; i < y.length; i++) {
            y[i] = ReferenceOps.silu(gate[i]) * up[i];
        }
        return y;
    }

    private static double derivative(Kind kind, float x) {
        return Float.isInfinite(x) ? (x > 0 ? 1 : 0) : kind.derivative.applyAsDouble(x);
    }

    /** Forward and backward of {@code n} elements at offset 3 (in place and out of place) against the reference. */
    private static void check(Kind kind, int n, float[] x, String name) {
        float[] y = new float[n + 1];
        Activations.forward(kind.activation(), n, x, 3, y, 1);
        float[] dy = Inputs.uniform(Inputs.seed(name + " dy"), n + 2, -1, 1);
        float[] dx = new float[n];
        Activations.backward(kind.activation(), n, x, 3, dy, 2, dx, 0);
        double worst = 0;
        for (int i = 0; i < n; i++) {
            double v = x[3 + i];
            double error = Math.abs(y[1 + i] - kind.function.applyAsDouble(v));
            worst = Math.max(worst, error / Math.max(Math.abs(v) * 1e-30, Math.abs(kind.function.applyAsDouble(v))));
        }
        if (kind == Kind.GELU && n > 1000) {
            System.out.printf("%s: worst relative error %.3g%n", name, worst);
        }
        Tolerance.assertClose(
                name,
                n,
                i -> kind.function.applyAsDouble(x[3 + i]),
                i -> y[1 + i],
                i -> kind.forwardBound(x[3 + i], kind.function.applyAsDouble(x[3 + i])),
                i -> "x = " + x[3 + i]);
        // At ±∞ the kernels give the derivative's limit, 1 or 0, up to what x = -100 leaves: below 2⁻¹²⁶.
        Tolerance.assertClose(
                name + " backward",
                n,
                i -> dy[2 + i] * derivative(kind, x[3 + i]),
                i -> dx[i],
                i -> Float.isInfinite(x[3 + i])
                        ? 0x1p-126
                        : Math.abs(dy[2 + i]) * kind.derivativeBound(x[3 + i], derivative(kind, x[3 + i]))
                                + EPS * Math.abs(dx[i]),
                i -> "x = " + x[3 + i]);
        float[] inPlace = x.clone();
        Activations.forward(kind.activation(), n, inPlace, 3, inPlace, 3);
        assertArrayEquals(
                java.util.Arrays.copyOfRange(y, 1, 1 + n), java.util.Arrays.copyOfRange(inPlace, 3, 3 + n), name);
    }
}
