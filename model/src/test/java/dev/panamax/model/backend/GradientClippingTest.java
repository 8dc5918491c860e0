package dev.panamax.model.backend;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** Global-norm clipping and the AdamW step that takes its factor, on the CPU backend. */
class GradientClippingTest {
    private static final float[] WEIGHTS = {0.5f, -0.25f, 1f};
    private static final float[] FIRST_MOMENT = {0.1f, -0.2f, 0.3f};
    private static final float[] SECOND_MOMENT = {0.01f, 0.04f, 0.09f};

    /** Two gradient tensors whose global norm is 5: √(3² + 0² + 4²). */
    private static final float[][] GRADIENTS = {{3f, 0f}, {4f}};

    /** The weights and both moments after one AdamW step on {@link #GRADIENTS}, clipped at {@code maxNorm}. */
    private static float[][] clippedStep(CpuBackend backend, float[][] gradients, float maxNorm, float[] norm) {
        List<Tensor> tensors = List.of(tensor(backend, gradients[0]), tensor(backend, gradients[1]));
        Backend.StepTotals totals = backend.stepTotals(1);
        backend.clipGradients(tensors, maxNorm, totals);
        float[] flat = new float[3];
        System.arraycopy(gradients[0], 0, flat, 0, 2);
        flat[2] = gradients[1][0];
        float[][] state =
                update(backend, flat, (param, grad, m, v, hyper) -> backend.adamw(param, grad, m, v, hyper, totals));
        norm[0] = totals.read().norm();
        return state;
    }

    /** The weights and both moments after one AdamW step on the flat gradient with an explicit factor. */
    private static float[][] scaledStep(CpuBackend backend, float[][] gradients, float scale) {
        float[] flat = {gradients[0][0], gradients[0][1], gradients[1][0]};
        return update(backend, flat, (param, grad, m, v, hyper) -> backend.adamw(param, grad, m, v, step(scale)));
    }

    /** The hyperparameters of the step, with a factor on the gradient. */
    private static Backend.AdamWStep step(float gradScale) {
        return new Backend.AdamWStep(1e-2f, 0.9f, 0.95f, 1e-8f, 0.1f, 3, gradScale);
    }

    /** One AdamW update of the three tensors. */
    @FunctionalInterface
    private interface Update {
        void apply(Tensor param, Tensor grad, Tensor m, Tensor v, Backend.AdamWStep hyper);
    }

    private static float[][] update(CpuBackend backend, float[] gradient, Update update) {
        Tensor param = tensor(backend, WEIGHTS);
        Tensor m = tensor(backend, FIRST_MOMENT);
        Tensor v = tensor(backend, SECOND_MOMENT);
        update.apply(param, tensor(backend, gradient), m, v, step(1f));
        return new float[][] {read(backend, param), read(backend, m), read(backend, v)};
    }

    private static Tensor tensor(CpuBackend backend, float[] values) {
        Tensor t = backend.allocateTrainingState(1, values.length);
        backend.write(values, t);
        return t;
    }

    private static float[] read(CpuBackend backend, Tensor t) {
        float[] values = new float[t.rows() * t.cols()];
        backend.read(t, values);
        return values;
    }

    @Test
    void aNormAboveTheThresholdScalesTheGradientsDownToIt() {
        try (CpuBackend backend = new CpuBackend()) {
            float[] norm = new float[1];
            float[][] clipped = clippedStep(backend, GRADIENTS, 2.5f, norm);
            assertEquals(5f, norm[0]);
            assertArrayEquals(scaledStep(backend, GRADIENTS, 0.5f), clipped);
            assertFalse(Arrays.equals(scaledStep(backend, GRADIENTS, 1f)[1], clipped[1]));
        }
    }

    @ParameterizedTest
    @ValueSource(floats = {0f, 5f, 100f})
    void noThresholdOrOneNotExceededLeavesTheGradientsAsTheyAre(float maxNorm) {
        try (CpuBackend backend = new CpuBackend()) {
            float[] norm = new float[1];
            float[][] step = clippedStep(backend, GRADIENTS, maxNorm, norm);
            assertEquals(5f, norm[0]);
            assertArrayEquals(scaledStep(backend, GRADIENTS, 1f), step);
        }
    }

    @ParameterizedTest
    @ValueSource(floats = {Float.NaN, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY})
    void aNonFiniteGradientSkipsTheUpdate(float bad) {
        try (CpuBackend backend = new CpuBackend()) {
            for (float maxNorm : new float[] {0f, 1f}) {
                float[] norm = new float[1];
                float[][] step = clippedStep(backend, new float[][] {{3f, bad}, {4f}}, maxNorm, norm);
                assertFalse(Float.isFinite(norm[0]), "norm " + norm[0]);
                assertTrue(Float.isNaN(bad) ? Float.isNaN(norm[0]) : norm[0] == Float.POSITIVE_INFINITY);
                assertArrayEquals(WEIGHTS, step[0], "weights");
                assertArrayEquals(FIRST_MOMENT, step[1], "first moment");
                assertArrayEquals(SECOND_MOMENT, step[2], "second moment");
            }
        }
    }
}
