package dev.panamax.kernels;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.panamax.kernels.testing.Inputs;
import dev.panamax.kernels.testing.ReferenceAttention;
import dev.panamax.kernels.testing.Tolerance;
import java.util.SplittableRandom;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The attention backward: the float64 reference gradients are checked by central finite differences of the float64
 * forward, and the fast kernel is compared with them (bounds stated in {@link ReferenceAttention.Gradients}).
 */
@Tag("species")
class AttentionBackwardTest {
    private static final int DEFAULT_THREADS = Parallelism.threads();

    record Case(int batch, int qHeads, int kvHeads, int tq, int tk, int d, boolean causal, boolean masked) {
        /** The float64 reference's forward for this case's shape. */
        ReferenceAttention.Result referenceForward(double scale, float[] q, float[] k, float[] v, float[] mask) {
            return ReferenceAttention.forward(batch, qHeads, kvHeads, tq, tk, d, scale, causal, q, k, v, mask);
        }

        /** The float64 reference's gradients for this case's shape. */
        ReferenceAttention.Gradients referenceBackward(
                double scale, float[] q, float[] k, float[] v, float[] mask, float[] dO) {
            return ReferenceAttention.backward(batch, qHeads, kvHeads, tq, tk, d, scale, causal, q, k, v, mask, dO);
        }
    }

    @AfterEach
    void restoreThreads() {
        Parallelism.setThreads(DEFAULT_THREADS);
    }

    static Stream<Case> cases() {
        return Stream.of(
                new Case(1, 1, 1, 1, 1, 16, false, false),
                new Case(1, 1, 1, 7, 7, 16, true, false),
                new Case(2, 2, 1, 7, 9, 32, false, true),
                new Case(1, 4, 2, 64, 64, 64, true, false),
                new Case(1, 2, 2, 100, 100, 80, true, true),
                new Case(1, 2, 1, 1, 100, 64, true, false),
                new Case(1, 1, 1, 70, 130, 128, false, false),
                new Case(1, 8, 4, 33, 200, 32, true, false));
    }

    @ParameterizedTest
    @MethodSource("cases")
    void matchesTheReferenceGradients(Case c) {
        float[][] t = tensors(c);
        float[] q = t[0];
        float[] k = t[1];
        float[] v = t[2];
        float[] dO = t[3];
        float[] mask = c.masked() ? mask(c.tq(), c.tk()) : null;
        double scale = 1 / Math.sqrt(c.d());
        assertMatchesReference(c.toString(), c, (float) scale, q, k, v, mask, dO);
    }

    /** The fast backward's gradients against the float64 reference's, within its bounds. */
    private static void assertMatchesReference(
            String name, Case c, float scale, float[] q, float[] k, float[] v, float[] mask, float[] dO) {
        float[][] grads = fast(c, scale, q, k, v, mask, dO);
        ReferenceAttention.Gradients expected = c.referenceBackward(scale, q, k, v, mask, dO);
        Tolerance.assertClose(name + " dQ", expected.dq(), grads[0], expected.dqBound());
        Tolerance.assertClose(name + " dK", expected.dk(), grads[1], expected.dkBound());
        Tolerance.assertClose(name + " dV", expected.dv(), grads[2], expected.dvBound());
    }

    /**
     * Scores beyond float's range, or so large that the float log-sum-exp loses the weights of tied keys: whole-number
     * Q and K at power-of-two scales (see {@code AttentionTest.hugeScoresGiveTheExactDistribution}), against the
     * reference gradients.
     */
    @Test
    void hugeScoresGiveTheExactGradients() {
        Case[] cases = {
            new Case(1, 2, 1, 70, 150, 64, true, true),
            new Case(1, 2, 2, 1, 300, 64, false, false),
            new Case(2, 2, 1, 5, 9, 16, false, true)
        };
        for (Case c : cases) {
            AttentionTest.Case shape = new AttentionTest.Case(
                    c.batch(), c.qHeads(), c.kvHeads(), c.tq(), c.tk(), c.d(), c.causal(), c.masked());
            float[] mask = c.masked() ? AttentionTest.hidingMask(c.tq(), c.tk()) : null;
            // dO small enough that the gradients, about scale·dO, stay within float's range.
            float[] dO = Inputs.uniform(
                    Inputs.seed(c + " huge dO"), c.batch() * c.qHeads() * c.tq() * c.d(), -0x1p-20f, 0x1p-20f);
            float[][] t = AttentionTest.integerInputs(shape, false);
            for (float scale : new float[] {0x1p70f, 0x1p120f, -0x1p120f}) {
                assertMatchesReference(c + " scale " + scale, c, scale, t[0], t[1], t[2], mask, dO);
            }
            float[][] negative = AttentionTest.integerInputs(shape, true);
            assertMatchesReference(
                    c + " all scores below -Float.MAX_VALUE",
                    c,
                    0x1p125f,
                    negative[0],
                    negative[1],
                    negative[2],
                    mask,
                    dO);
        }
    }

    @Test
    void inputsChangedBetweenCallsAreSeen() {
        // As in AttentionTest: packed tiles are kept within a call, never into the next. One head and one query tile.
        Case c = new Case(1, 1, 1, 50, 300, 32, true, false);
        float[][] t = tensors(c);
        double scale = 1 / Math.sqrt(c.d());
        for (int call = 0; call < 2; call++) {
            if (call == 1) {
                for (int i = 0; i < t.length; i++) {
                    System.arraycopy(Inputs.uniform(21 + i, t[i].length, -1, 1), 0, t[i], 0, t[i].length);
                }
            }
            assertMatchesReference("call " + call, c, (float) scale, t[0], t[1], t[2], null, t[3]);
        }
    }

    @Test
    void referenceGradientsMatchFiniteDifferences() {
        Case c = new Case(1, 2, 1, 5, 6, 8, true, true);
        float[][] t = tensors(c);
        float[] mask = mask(c.tq(), c.tk());
        double scale = 0.4;
        ReferenceAttention.Gradients analytic = c.referenceBackward(scale, t[0], t[1], t[2], mask, t[3]);
        double[][] gradients = {analytic.dq(), analytic.dk(), analytic.dv()};
        SplittableRandom random = new SplittableRandom(5);
        for (int which = 0; which < 3; which++) {
            for (int trial = 0; trial < 12; trial++) {
                float[] tensor = t[which];
                int index = random.nextInt(tensor.length);
                float original = tensor[index];
                // Float inputs, float64 loss: a step of 1e-3 keeps truncation error near 1e-7 and rounding far below.
                float step = 1e-3f;
                tensor[index] = original + step;
                double plus = loss(c, scale, t, mask);
                tensor[index] = original - step;
                double minus = loss(c, scale, t, mask);
                tensor[index] = original;
                double numeric = (plus - minus) / ((double) (original + step) - (original - step));
                assertEquals(
                        numeric,
                        gradients[which][index],
                        1e-5 + 1e-4 * Math.abs(numeric),
                        "tensor " + which + " index " + index);
            }
        }
    }

    @Test
    void everyThreadCountGivesTheSameBits() {
        Case c = new Case(2, 4, 2, 90, 150, 64, true, false);
        float[][] t = tensors(c);
        float[][] first = null;
        for (int threads = 1; threads <= 3; threads++) {
            Parallelism.setThreads(threads);
            float[][] grads = fast(c, 0.125f, t[0], t[1], t[2], null, t[3]);
            if (first == null) {
                first = grads;
            } else {
                for (int g = 0; g < 3; g++) {
                    assertArrayEquals(first[g], grads[g], "gradient " + g + " with " + threads + " threads");
                }
            }
        }
    }

    private static double loss(Case c, double scale, float[][] t, float[] mask) {
        double[] out = c.referenceForward(scale, t[0], t[1], t[2], mask).output();
        double sum = 0;
        for (int i = 0; i < out.length; i++) {
            sum += out[i] * t[3][i];
        }
        return sum;
    }

    private static float[][] tensors(Case c) {
        int qLength = c.batch() * c.qHeads() * c.tq() * c.d();
        int kvLength = c.batch() * c.kvHeads() * c.tk() * c.d();
        return new float[][] {
            Inputs.uniform(Inputs.seed(c + "q"), qLength, -1, 1),
            Inputs.uniform(Inputs.seed(c + "k"), kvLength, -1, 1),
            Inputs.uniform(Inputs.seed(c + "v"), kvLength, -1, 1),
            Inputs.uniform(Inputs.seed(c + "dO"), qLength, -1, 1)
        };
    }

    private static float[] mask(int tq, int tk) {
        float[] mask = Inputs.uniform(Inputs.seed("backward mask" + tq + "x" + tk), tq * tk, -1, 1);
        for (int i = 1; i < mask.length; i += 4) {
            mask[i] = Float.NEGATIVE_INFINITY;
        }
        return mask;
    }

    /** Forward (for O and the log-sum-exp) then backward; returns dQ, dK, dV. */
    private static float[][] fast(Case c, float scale, float[] q, float[] k, float[] v, float[] mask, float[] dO) {
        int d = c.d();
        Attention.Shape shape = new Attention.Shape(c.batch(), c.qHeads(), c.kvHeads(), c.tq(), c.tk(), d);
        float[] o = new float[q.length];
        float[] lse = new float[c.batch() * c.qHeads() * c.tq()];
        TensorView maskView = mask == null ? null : TensorView.of(mask, 0, 0, 0, c.tk());
        TensorView qv = TensorView.dense(q, c.qHeads(), c.tq(), d);
        TensorView kv = TensorView.dense(k, c.kvHeads(), c.tk(), d);
        TensorView vv = TensorView.dense(v, c.kvHeads(), c.tk(), d);
        TensorView lseView = TensorView.dense(lse, c.qHeads(), c.tq(), 1);
        TensorView ov = TensorView.dense(o, c.qHeads(), c.tq(), d);
        Attention.forward(shape, scale, c.causal(), qv, kv, vv, maskView, ov, lseView);
        float[] dq = new float[q.length];
        float[] dk = new float[k.length];
        float[] dv = new float[v.length];
        java.util.Arrays.fill(dk, Float.NaN);
        // The backward reads O, the forward's output: a read-only view of it must do.
        Attention.backward(
                shape,
                scale,
                c.causal(),
                qv,
                kv,
                vv,
                maskView,
                readOnly(ov),
                lseView,
                TensorView.dense(dO, c.qHeads(), c.tq(), d),
                TensorView.dense(dq, c.qHeads(), c.tq(), d),
                TensorView.dense(dk, c.kvHeads(), c.tk(), d),
                TensorView.dense(dv, c.kvHeads(), c.tk(), d));
        return new float[][] {dq, dk, dv};
    }

    private static TensorView readOnly(TensorView view) {
        return new TensorView(
                view.data().asReadOnly(), view.offset(), view.batchStride(), view.headStride(), view.rowStride());
    }
}
