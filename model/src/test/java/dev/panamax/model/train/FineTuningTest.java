package dev.panamax.model.train;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.panamax.model.backend.CpuBackend;
import dev.panamax.model.nn.ModelConfig;
import dev.panamax.model.nn.ModelConfig.Architecture;
import dev.panamax.model.nn.Parameters;
import dev.panamax.model.testing.TokenFiles;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/** Starting from given weights, and the sequential order of training windows. */
class FineTuningTest {
    private static final int VOCAB = 40;
    private static final int SEQ = 8;
    private static final int BATCH = 2;

    private static ModelConfig config(Architecture architecture) {
        return new ModelConfig(
                architecture,
                16,
                architecture == Architecture.GPT2 ? 64 : 40,
                2,
                2,
                architecture == Architecture.GPT2 ? 2 : 1,
                VOCAB,
                SEQ,
                1e-5f,
                10000,
                true);
    }

    private static final TokenDataset DATA = new TokenDataset(TokenFiles.walk(12 * SEQ + 1, VOCAB, 2), VOCAB, SEQ, 0);

    @Test
    void theSequentialOrderIsFileOrderInEveryEpoch() {
        int[] identity = new int[DATA.trainWindows()];
        for (int i = 0; i < identity.length; i++) {
            identity[i] = i;
        }
        for (int epoch = 0; epoch < 3; epoch++) {
            assertArrayEquals(identity, DATA.order(TrainingOptions.DataOrder.SEQUENTIAL, 7, epoch));
            assertNotEquals(List.of(identity), List.of(DATA.order(TrainingOptions.DataOrder.SHUFFLED, 7, epoch)));
        }
    }

    @ParameterizedTest
    @EnumSource(Architecture.class)
    void stepSOfASequentialRunTrainsOnWindowsSBToSBPlusBMinusOne(Architecture architecture) throws IOException {
        // A constant learning rate: trainStep outside fit does not know the run's length, which the schedule needs.
        TrainingOptions options = new TrainingOptions(
                BATCH, SEQ, 1, 1e-2f, 1e-2f, 0, 0.1f, 0.9f, 0.95f, 1e-8f, 1f, 5, TrainingOptions.DataOrder.SEQUENTIAL);
        int stepsPerEpoch = DATA.trainWindows() / BATCH;
        int steps = stepsPerEpoch + 2; // into the second epoch, which starts again at window 0
        List<Float> losses = new ArrayList<>();
        try (CpuBackend backend = new CpuBackend()) {
            Trainer run = Trainer.create(backend, config(architecture), options, 3);
            run.fit(DATA, 0, steps, 0, 0, List.of(new Callback() {
                @Override
                public boolean afterStep(Trainer trainer, Metrics metrics) {
                    losses.add(metrics.trainLoss());
                    return true;
                }
            }));
            // The same run, step by step on the windows the order names; the loss of each step is measured before it.
            Trainer byHand = Trainer.create(backend, config(architecture), options, 3);
            int[] inputs = new int[BATCH * SEQ];
            int[] targets = new int[BATCH * SEQ];
            for (int s = 0; s < steps; s++) {
                int[] windows = new int[BATCH];
                for (int b = 0; b < BATCH; b++) {
                    windows[b] = s % stepsPerEpoch * BATCH + b;
                    DATA.window(false, windows[b], inputs, targets, b * SEQ);
                }
                assertEquals(losses.get(s), byHand.computeGradients(inputs, targets), "step " + (s + 1));
                byHand.trainStep(DATA, windows);
            }
        }
    }

    @ParameterizedTest
    @EnumSource(Architecture.class)
    void fromWeightsStartsFromThemWithAFreshOptimizer(Architecture architecture) throws IOException {
        ModelConfig config = config(architecture);
        TrainingOptions options = TrainingOptions.defaults(BATCH, SEQ).withWarmupSteps(0);
        try (CpuBackend backend = new CpuBackend()) {
            Trainer trained = Trainer.create(backend, config, options, 1);
            trained.fit(DATA, 0, 3, 0, 0, List.of());
            Map<String, MemorySegment> weights = new LinkedHashMap<>();
            for (Parameters.Spec spec : Parameters.of(config)) {
                weights.put(spec.name(), MemorySegment.ofArray(trained.weight(spec.name())));
            }
            Trainer tuned = Trainer.fromWeights(backend, config, options, weights);
            assertEquals(0, tuned.step());
            // A fresh trainer made with those weights (zero moments, step 0) takes the same first step.
            Trainer fresh = Trainer.create(backend, config, options, 99);
            for (Parameters.Spec spec : Parameters.of(config)) {
                assertArrayEquals(trained.weight(spec.name()), tuned.weight(spec.name()), spec.name());
                fresh.setWeight(spec.name(), trained.weight(spec.name()));
            }
            int[] windows = {0, 1};
            assertEquals(
                    fresh.trainStep(DATA, windows).trainLoss(),
                    tuned.trainStep(DATA, windows).trainLoss());
            for (Parameters.Spec spec : Parameters.of(config)) {
                assertArrayEquals(fresh.weight(spec.name()), tuned.weight(spec.name()), spec.name());
            }

            String first = Parameters.of(config).getFirst().name();
            weights.put(first, MemorySegment.ofArray(new float[3]));
            IllegalArgumentException e = assertThrows(
                    IllegalArgumentException.class, () -> Trainer.fromWeights(backend, config, options, weights));
            assertTrue(e.getMessage().startsWith("pretrained weight " + first + " must hold"), e.getMessage());
            weights.remove(first);
            e = assertThrows(
                    IllegalArgumentException.class, () -> Trainer.fromWeights(backend, config, options, weights));
            assertTrue(e.getMessage().endsWith("not be missing"), e.getMessage());
        }
    }
}
