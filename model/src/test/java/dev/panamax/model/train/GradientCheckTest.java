package dev.panamax.model.train;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.panamax.kernels.testing.Inputs;
import dev.panamax.model.backend.CpuBackend;
import dev.panamax.model.nn.ModelConfig;
import dev.panamax.model.nn.ModelConfig.Architecture;
import dev.panamax.model.nn.Parameters;
import dev.panamax.model.testing.ReferenceTransformer;
import java.util.HashMap;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * The whole model's analytic gradients, every element of every parameter tensor, against central finite differences
 * of the float64 {@link ReferenceTransformer}'s loss.
 *
 * <p>Bound: the analytic gradient is computed in float32 through two blocks, about a hundred roundings deep, each
 * relative 2⁻²⁴ ≈ 6e-8 of terms no larger than the tensor's largest gradient; the finite difference in float64 with h =
 * 1e-5 is exact to about h²·|f'''| + 1e-16/h ≈ 1e-10. So per tensor, |analytic − numeric| ≤ 1e-3 · max|numeric| +
 * 1e-7 leaves a wide margin for rounding while a wrong term (a missing factor, a transposed weight, a lost residual)
 * gives errors of the gradient's own size.
 */
class GradientCheckTest {
    private static final int BATCH = 2;
    private static final int SEQ = 5;
    private static final double H = 1e-5;

    enum Family {
        GPT2(new ModelConfig(Architecture.GPT2, 8, 16, 2, 2, 2, 11, 8, 1e-5f, 0, true)),
        LLAMA(new ModelConfig(Architecture.LLAMA, 8, 12, 2, 2, 1, 11, 8, 1e-5f, 10000, false)),
        LLAMA_SHARED(new ModelConfig(Architecture.LLAMA, 8, 12, 2, 4, 2, 11, 8, 1e-5f, 10000, true));

        final ModelConfig config;

        Family(ModelConfig config) {
            this.config = config;
        }
    }

    @ParameterizedTest
    @EnumSource(Family.class)
    void everyParameterGradientMatchesFiniteDifferences(Family family) {
        ModelConfig c = family.config;
        TrainingOptions options = TrainingOptions.defaults(BATCH, SEQ);
        try (CpuBackend backend = new CpuBackend()) {
            Trainer trainer = Trainer.create(backend, c, options, 7);
            // Weights well away from 0 and 1, so that every nonlinearity and every norm is exercised.
            Map<String, double[]> p = new HashMap<>();
            long seed = 100;
            for (Parameters.Spec spec : Parameters.of(c)) {
                float[] values = Inputs.uniform(seed++, (int) spec.size(), -0.6f, 0.6f);
                if (spec.kind() == Parameters.Kind.NORM) {
                    for (int i = 0; i < values.length; i++) {
                        values[i] += 1;
                    }
                }
                trainer.setWeight(spec.name(), values);
                p.put(spec.name(), toDoubles(values));
            }
            SplittableRandom random = new SplittableRandom(3);
            int[] inputs = random.ints(BATCH * SEQ, 0, c.vocabSize()).toArray();
            int[] targets = random.ints(BATCH * SEQ, 0, c.vocabSize()).toArray();

            float loss = trainer.computeGradients(inputs, targets);
            double expectedLoss = ReferenceTransformer.loss(c, p, inputs, targets, SEQ);
            assertEquals(expectedLoss, loss, 1e-5 * expectedLoss, "mean loss");

            for (Parameters.Spec spec : Parameters.of(c)) {
                float[] analytic = trainer.gradient(spec.name());
                double[] values = p.get(spec.name());
                double[] numeric = new double[values.length];
                double largest = 0;
                for (int i = 0; i < values.length; i++) {
                    double v = values[i];
                    values[i] = v + H;
                    double plus = ReferenceTransformer.loss(c, p, inputs, targets, SEQ);
                    values[i] = v - H;
                    double minus = ReferenceTransformer.loss(c, p, inputs, targets, SEQ);
                    values[i] = v;
                    numeric[i] = (plus - minus) / (2 * H);
                    largest = Math.max(largest, Math.abs(numeric[i]));
                }
                assertTrue(largest > 1e-4, spec.name() + ": gradient too small to check (" + largest + ")");
                double bound = 1e-3 * largest + 1e-7;
                for (int i = 0; i < values.length; i++) {
                    double error = Math.abs(analytic[i] - numeric[i]);
                    if (!(error <= bound)) { // a NaN gradient fails too
                        throw new AssertionError(spec.name() + "[" + i + "]: analytic " + analytic[i] + ", numeric "
                                + numeric[i] + ", error " + error + " > bound " + bound);
                    }
                }
            }
        }
    }

    private static double[] toDoubles(float[] values) {
        double[] result = new double[values.length];
        for (int i = 0; i < values.length; i++) {
            result[i] = values[i];
        }
        return result;
    }
}
