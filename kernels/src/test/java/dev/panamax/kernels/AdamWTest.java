package dev.panamax.kernels;

import static dev.panamax.kernels.testing.Agreement.assertAllRejected;
import static dev.panamax.kernels.testing.Rejection.illegalArgument;
import static dev.panamax.kernels.testing.Rejection.outOfBounds;
import static dev.panamax.kernels.testing.Tolerance.FLOAT_EPSILON;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.panamax.kernels.testing.Agreement;
import dev.panamax.kernels.testing.Inputs;
import dev.panamax.kernels.testing.Rejection;
import dev.panamax.kernels.testing.Tolerance;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The AdamW step against a float64 step written here, applied to the same float state the kernel starts each step
 * from (so that errors are those of one step, not compounded over many).
 *
 * <p>Tolerance, per element, for a step from float {@code p, m, v} with gradient {@code g = grad·gradScale}:
 *
 * <ul>
 *   <li>m: {@code 4ε·(beta1·|m| + (1 - beta1)·|g|)}. The kernel rounds g, {@code 1 - beta1} (inexact for beta1 &lt;
 *       ½), {@code beta1·m} and the fused multiply-add: four roundings, each at most ε of one of those terms or of the
 *       result, and the terms' magnitudes bound everything, cancellation included.
 *   <li>v: {@code 6ε·v}. All terms are non-negative, so relative error adds up: g twice in g², the square, {@code 1 -
 *       beta2}, {@code beta2·v} and the fused multiply-add.
 *   <li>param: {@code 16ε·(|p'| + learningRate·(U + weightDecay·|p|))} with {@code U = mHat_mag / (√vHat + epsilon)},
 *       {@code mHat_mag} the bias-corrected magnitude bound of m above. The Adam term {@code mHat/(√vHat + epsilon)}
 *       carries m's error (4ε of U) plus the rounding of the bias correction and its product (2ε), vHat's error (8ε)
 *       halved by the square root plus the root and the epsilon add (6ε), and the division (ε): 13ε of U. Adding the
 *       decay term and the final fused multiply-subtract add one rounding each: a few float ulps of |param| plus of
 *       the learning rate times the update's size; 16 leaves a little room and still catches any wrong factor (a
 *       bias correction off by one step changes the update by far more).
 * </ul>
 */
@Tag("species")
class AdamWTest {
    private static final float LR = 1e-3f;
    private static final float BETA1 = 0.9f;
    private static final float BETA2 = 0.999f;
    private static final float EPS = 1e-8f;

    /** Offsets of param, grad, m and v: all non-zero and different. */
    private static final int P0 = 1;

    private static final int G0 = 2;
    private static final int M0 = 3;
    private static final int V0 = 5;

    @ParameterizedTest
    @ValueSource(ints = {0, 1, 7, 8, 9, 33, 1000, 5000})
    void stepsMatchTheFloat64Reference(int n) {
        for (float wd : new float[] {0f, 0.1f}) {
            for (float gs : new float[] {1f, 0.25f}) {
                for (float[] betas : new float[][] {{BETA1, BETA2}, {0.3f, 0.95f}}) {
                    stepCase(n, LR, betas[0], betas[1], wd, gs);
                }
            }
        }
        stepCase(n, 0.1f, BETA1, BETA2, 0.1f, 1f);
    }

    private static void stepCase(int n, float lr, float beta1, float beta2, float wd, float gs) {
        String name = "n=" + n + " lr=" + lr + " betas=" + beta1 + "/" + beta2 + " wd=" + wd + " gs=" + gs;
        float[] param = Inputs.uniform(Inputs.seed("param " + name), P0 + n + 2, -2, 2);
        float[] m = new float[M0 + n + 2];
        float[] v = new float[V0 + n + 2];
        Arrays.fill(m, 7f);
        Arrays.fill(v, 7f);
        Arrays.fill(m, M0, M0 + n, 0f);
        Arrays.fill(v, V0, V0 + n, 0f);
        float[] paramGuard = param.clone();
        for (int step = 1; step <= 10; step++) {
            float[] grad = Inputs.gaussian(Inputs.seed("grad " + step + " " + name), G0 + n + 1, 0.5);
            if (n > 3) {
                grad[G0 + 3] = 0; // a zero gradient: at step 1 both moments stay 0 and the update is the decay alone
            }
            Call call = new Call(n, lr, beta1, beta2, EPS, wd, step, gs, param, grad, m, v);
            double[][] expected = new double[n][];
            for (int i = 0; i < n; i++) {
                expected[i] = call.reference(param[P0 + i], grad[G0 + i], m[M0 + i], v[V0 + i]);
            }
            AdamW.update(n, lr, beta1, beta2, EPS, wd, step, gs, param, P0, grad, G0, m, M0, v, V0);
            String what = name + " step " + step;
            Tolerance.assertClose(what + " param", n, i -> expected[i][0], i -> param[P0 + i], i -> expected[i][3]);
            Tolerance.assertClose(what + " m", n, i -> expected[i][1], i -> m[M0 + i], i -> expected[i][4]);
            Tolerance.assertClose(what + " v", n, i -> expected[i][2], i -> v[V0 + i], i -> expected[i][5]);
        }
        assertGuards(name + " param", paramGuard, param, P0, n);
        assertGuards(name + " m", filled(m.length, 7f), m, M0, n);
        assertGuards(name + " v", filled(v.length, 7f), v, V0, n);
    }

    private static float[] filled(int length, float value) {
        float[] array = new float[length];
        Arrays.fill(array, value);
        return array;
    }

    /** Elements outside {@code [offset, offset + n)} are as they were. */
    private static void assertGuards(String what, float[] before, float[] after, int offset, int n) {
        assertArrayEquals(Arrays.copyOf(before, offset), Arrays.copyOf(after, offset), what + " before the offset");
        assertArrayEquals(
                Arrays.copyOfRange(before, offset + n, before.length),
                Arrays.copyOfRange(after, offset + n, after.length),
                what + " after the end");
    }

    @Test
    void firstStepMovesEachParameterByTheLearningRate() {
        // At step 1 the bias corrections make mHat = g and vHat = g², so the step is lr·g/(|g| + eps) ≈ ±lr.
        float[] param = {1, -1, 0.5f, 2};
        float[] grad = {3, -0.01f, 1e-3f, -100};
        float[] m = new float[4];
        float[] v = new float[4];
        AdamW.update(4, 0.01f, BETA1, BETA2, EPS, 0, 1, 1, param, 0, grad, 0, m, 0, v, 0);
        float[] expected = {0.99f, -0.99f, 0.49f, 2.01f};
        for (int i = 0; i < 4; i++) {
            assertEquals(expected[i], param[i], 1e-6, "index " + i);
        }
    }

    @Test
    void formsAndThreadCountsAgreeBitForBit() {
        int n = 300_001;
        float[] param = Inputs.uniform(Inputs.seed("forms param"), n + 1, -1, 1);
        float[] grad = Inputs.gaussian(Inputs.seed("forms grad"), n + 2, 1);
        float[] m = Inputs.gaussian(Inputs.seed("forms m"), n + 3, 0.1);
        float[] v = Inputs.uniform(Inputs.seed("forms v"), n + 4, 0, 0.1f);
        Agreement.assertFormsAgree(
                "AdamW",
                new float[][] {param, grad, m, v},
                a -> {
                    AdamW.update(n, LR, BETA1, BETA2, EPS, 0.1f, 2, 0.25f, a[0], 1, a[1], 2, a[2], 3, a[3], 4);
                    AdamW.update(n - 5, LR, BETA1, BETA2, EPS, 0.1f, 3, 1f, a[0], 1, a[1], 0, a[2], 3, a[3], 4);
                },
                (s, arena) -> {
                    AdamW.update(n, LR, BETA1, BETA2, EPS, 0.1f, 2, 0.25f, s[0], 1, s[1], 2, s[2], 3, s[3], 4);
                    AdamW.update(n - 5, LR, BETA1, BETA2, EPS, 0.1f, 3, 1f, s[0], 1, s[1], 0, s[2], 3, s[3], 4);
                });
        Agreement.assertThreadIndependent("AdamW", () -> {
            float[] p = param.clone();
            float[] mm = m.clone();
            float[] vv = v.clone();
            for (int step = 1; step <= 3; step++) {
                AdamW.update(n, LR, BETA1, BETA2, EPS, 0.1f, step, 0.5f, p, 1, grad, 2, mm, 3, vv, 4);
            }
            return new float[][] {p, mm, vv};
        });
    }

    @Test
    void nanAndInfiniteGradientsPropagateToTheirElementOnly() {
        int n = 20;
        float[] param = Inputs.uniform(Inputs.seed("nan param"), n, -1, 1);
        float[] grad = Inputs.uniform(Inputs.seed("nan grad"), n, -1, 1);
        grad[3] = Float.NaN;
        grad[17] = Float.POSITIVE_INFINITY;
        float[] m = new float[n];
        float[] v = new float[n];
        AdamW.update(n, LR, BETA1, BETA2, EPS, 0.1f, 1, 1, param, 0, grad, 0, m, 0, v, 0);
        assertTrue(Float.isNaN(param[3]) && Float.isNaN(m[3]) && Float.isNaN(v[3]), "NaN gradient");
        assertEquals(Float.POSITIVE_INFINITY, m[17], "m of an infinite gradient");
        assertEquals(Float.POSITIVE_INFINITY, v[17], "v of an infinite gradient");
        assertTrue(Float.isNaN(param[17]), "param of an infinite gradient: ∞/∞");
        for (int i = 0; i < n; i++) {
            if (i != 3 && i != 17) {
                assertTrue(Float.isFinite(param[i]) && Float.isFinite(m[i]) && Float.isFinite(v[i]), "index " + i);
            }
        }
    }

    /** One AdamW call with every argument valid except those a case changes. */
    private record Call(
            int n,
            float lr,
            float beta1,
            float beta2,
            float eps,
            float wd,
            int step,
            float gs,
            float[] param,
            float[] grad,
            float[] m,
            float[] v) {
        void run() {
            AdamW.update(n, lr, beta1, beta2, eps, wd, step, gs, param, 0, grad, 0, m, 0, v, 0);
        }

        /** The float64 step of one element: {p', m', v', bound p', bound m', bound v'}. */
        double[] reference(float p, float g0, float mOld, float vOld) {
            double g = (double) g0 * gs;
            double b1 = beta1;
            double b2 = beta2;
            double mNew = b1 * mOld + (1 - b1) * g;
            double vNew = b2 * vOld + (1 - b2) * g * g;
            double c1 = 1 / (1 - Math.pow(b1, step));
            double c2 = 1 / (1 - Math.pow(b2, step));
            double denominator = Math.sqrt(vNew * c2) + eps;
            double pNew = p - lr * (mNew * c1 / denominator + wd * (double) p);
            double mMagnitude = b1 * Math.abs(mOld) + (1 - b1) * Math.abs(g);
            double u = mMagnitude * c1 / denominator;
            return new double[] {
                pNew,
                mNew,
                vNew,
                16 * FLOAT_EPSILON * (Math.abs(pNew) + lr * (u + wd * Math.abs(p))),
                4 * FLOAT_EPSILON * mMagnitude,
                6 * FLOAT_EPSILON * vNew
            };
        }

        Call withN(int value) {
            return new Call(value, lr, beta1, beta2, eps, wd, step, gs, param, grad, m, v);
        }

        Call withLr(float value) {
            return new Call(n, value, beta1, beta2, eps, wd, step, gs, param, grad, m, v);
        }

        Call withBetas(float b1, float b2) {
            return new Call(n, lr, b1, b2, eps, wd, step, gs, param, grad, m, v);
        }

        Call withEps(float value) {
            return new Call(n, lr, beta1, beta2, value, wd, step, gs, param, grad, m, v);
        }

        Call withWd(float value) {
            return new Call(n, lr, beta1, beta2, eps, value, step, gs, param, grad, m, v);
        }

        Call withStep(int value) {
            return new Call(n, lr, beta1, beta2, eps, wd, value, gs, param, grad, m, v);
        }

        Call withGs(float value) {
            return new Call(n, lr, beta1, beta2, eps, wd, step, value, param, grad, m, v);
        }
    }

    @Test
    void badArgumentsAreRejectedBeforeAnythingIsWritten() {
        float[] param = Inputs.uniform(1, 8, -1, 1);
        float[] grad = Inputs.uniform(2, 8, -1, 1);
        float[] m = Inputs.uniform(3, 8, -1, 1);
        float[] v = Inputs.uniform(4, 8, 0, 1);
        Call ok = new Call(8, LR, BETA1, BETA2, EPS, 0.1f, 1, 1, param, grad, m, v);
        MemorySegment p = MemorySegment.ofArray(param);
        MemorySegment g = MemorySegment.ofArray(grad);
        MemorySegment ms = MemorySegment.ofArray(m);
        MemorySegment vs = MemorySegment.ofArray(v);
        float[] shared = new float[16];
        List<Rejection> rows = List.of(
                illegalArgument("n (-1) must be >= 0", ok.withN(-1)::run),
                illegalArgument("learningRate (-0.001) must be finite and >= 0", ok.withLr(-1e-3f)::run),
                illegalArgument("learningRate (NaN) must be finite and >= 0", ok.withLr(Float.NaN)::run),
                illegalArgument(
                        "learningRate (Infinity) must be finite and >= 0", ok.withLr(Float.POSITIVE_INFINITY)::run),
                illegalArgument("beta1 (1.0) must be in [0, 1)", ok.withBetas(1, BETA2)::run),
                illegalArgument("beta1 (-0.1) must be in [0, 1)", ok.withBetas(-0.1f, BETA2)::run),
                illegalArgument("beta1 (NaN) must be in [0, 1)", ok.withBetas(Float.NaN, BETA2)::run),
                illegalArgument("beta2 (1.0) must be in [0, 1)", ok.withBetas(BETA1, 1)::run),
                illegalArgument("beta2 (-1.0E-4) must be in [0, 1)", ok.withBetas(BETA1, -1e-4f)::run),
                illegalArgument("beta2 (NaN) must be in [0, 1)", ok.withBetas(BETA1, Float.NaN)::run),
                illegalArgument("epsilon (0.0) must be finite and > 0", ok.withEps(0)::run),
                illegalArgument("epsilon (-1.0E-8) must be finite and > 0", ok.withEps(-1e-8f)::run),
                illegalArgument("epsilon (NaN) must be finite and > 0", ok.withEps(Float.NaN)::run),
                illegalArgument("epsilon (Infinity) must be finite and > 0", ok.withEps(Float.POSITIVE_INFINITY)::run),
                illegalArgument("weightDecay (-0.1) must be finite and >= 0", ok.withWd(-0.1f)::run),
                illegalArgument("weightDecay (NaN) must be finite and >= 0", ok.withWd(Float.NaN)::run),
                illegalArgument(
                        "weightDecay (Infinity) must be finite and >= 0", ok.withWd(Float.POSITIVE_INFINITY)::run),
                illegalArgument("step (0) must be >= 1", ok.withStep(0)::run),
                illegalArgument("step (-3) must be >= 1", ok.withStep(-3)::run),
                illegalArgument("gradScale (NaN) must be finite", ok.withGs(Float.NaN)::run),
                illegalArgument("gradScale (-Infinity) must be finite", ok.withGs(Float.NEGATIVE_INFINITY)::run),
                outOfBounds(
                        "grad holds 8 floats, but grad needs 8 from gradOffset (1), up to index 8",
                        () -> AdamW.update(8, LR, BETA1, BETA2, EPS, 0, 1, 1, param, 0, grad, 1, m, 0, v, 0)),
                outOfBounds(
                        "v holds 8 floats, but v needs 8 from vOffset (1), up to index 8",
                        () -> AdamW.update(8, LR, BETA1, BETA2, EPS, 0, 1, 1, param, 0, grad, 0, m, 0, v, 1)),
                outOfBounds(
                        "mOffset (-1) must be >= 0",
                        () -> AdamW.update(8, LR, BETA1, BETA2, EPS, 0, 1, 1, param, 0, grad, 0, m, -1, v, 0)),
                illegalArgument(
                        "param is read-only",
                        () -> AdamW.update(8, LR, BETA1, BETA2, EPS, 0, 1, 1, p.asReadOnly(), 0, g, 0, ms, 0, vs, 0)),
                illegalArgument(
                        "m is read-only",
                        () -> AdamW.update(8, LR, BETA1, BETA2, EPS, 0, 1, 1, p, 0, g, 0, ms.asReadOnly(), 0, vs, 0)),
                illegalArgument(
                        "v is read-only",
                        () -> AdamW.update(8, LR, BETA1, BETA2, EPS, 0, 1, 1, p, 0, g, 0, ms, 0, vs.asReadOnly(), 0)),
                illegalArgument(
                        "m (from mOffset 0) and v (from vOffset 4) share 4 of their 8 floats; they must not overlap",
                        () -> AdamW.update(8, LR, BETA1, BETA2, EPS, 0, 1, 1, param, 0, grad, 0, shared, 0, shared, 4)),
                illegalArgument(
                        "param (from paramOffset 0) and grad (from gradOffset 0) share 8 of their 8 floats",
                        () -> AdamW.update(8, LR, BETA1, BETA2, EPS, 0, 1, 1, param, 0, param, 0, m, 0, v, 0)));
        assertAllRejected(rows, param, grad, m, v);
        // The two halves of one array do not overlap.
        AdamW.update(8, LR, BETA1, BETA2, EPS, 0, 1, 1, param, 0, grad, 0, shared, 0, shared, 8);
        // A read-only gradient is fine: it is only read.
        AdamW.update(8, LR, BETA1, BETA2, EPS, 0, 1, 1, p, 0, g.asReadOnly(), 0, ms, 0, vs, 0);
    }
}
