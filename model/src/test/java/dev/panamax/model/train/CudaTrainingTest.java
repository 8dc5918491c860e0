package dev.panamax.model.train;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.panamax.model.backend.Backend;
import dev.panamax.model.backend.CpuBackend;
import dev.panamax.model.backend.EmulatedBackends;
import dev.panamax.model.nn.ModelConfig;
import dev.panamax.model.nn.ModelConfig.Architecture;
import dev.panamax.model.tokenizer.CharVocabulary;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * Training on the CUDA backend (emulated device) against the CPU backend: a tiny GPT-2 and a tiny Llama trained 30
 * steps from the same seed on the same batches, and resuming on the CUDA backend.
 *
 * <p>Tolerance: each step's training loss within 1e-5 of the CPU's. The two backends sum in different orders, so
 * their weights differ by float roundoff after the first step (about 1e-7 relative), which 30 steps at a learning
 * rate of 3e-3 amplify only slightly: the losses (2.9 falling to 2.2) differed by at most one ulp (2.4e-7) here, and
 * 1e-5 leaves room for other vector widths. A wrong gradient anywhere moves the loss curve by far more within a few
 * steps.
 */
class CudaTrainingTest {
    private static final String TEXT = "panamax trains transformers on the jvm, one step at a time. ".repeat(12);
    private static final CharVocabulary VOCABULARY = CharVocabulary.of(TEXT);
    private static final int STEPS = 30;

    @TempDir
    Path dir;

    private static ModelConfig config(Architecture architecture) {
        return architecture == Architecture.GPT2
                ? new ModelConfig(Architecture.GPT2, 32, 64, 2, 2, 2, VOCABULARY.size(), 32, 1e-5f, 0, true)
                : new ModelConfig(Architecture.LLAMA, 32, 64, 2, 4, 2, VOCABULARY.size(), 32, 1e-5f, 10000, true);
    }

    private static TokenDataset data() {
        return new TokenDataset(VOCABULARY.encode(TEXT), VOCABULARY.size(), 16, 0);
    }

    private static final TrainingOptions OPTIONS =
            new TrainingOptions(2, 16, 2, 3e-3f, 3e-4f, 3, 0.1f, 0.9f, 0.95f, 1e-8f, 1f, 42);

    /** Each step's training loss. */
    private static float[] losses(Backend backend, Architecture architecture, int steps, int stopAt, Path saveTo) {
        Trainer trainer = Trainer.create(backend, config(architecture), OPTIONS, 5);
        return fit(trainer, steps, stopAt, saveTo);
    }

    private static float[] fit(Trainer trainer, int steps, int stopAt, Path saveTo) {
        List<Float> losses = new ArrayList<>();
        Callback recorder = new Callback() {
            @Override
            public boolean afterStep(Trainer t, Metrics metrics) {
                losses.add(metrics.trainLoss());
                return stopAt == 0 || metrics.step() < stopAt;
            }
        };
        try {
            trainer.fit(data(), 0, steps, 0, 0, List.of(recorder));
            if (saveTo != null) {
                trainer.save(saveTo);
            }
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        float[] values = new float[losses.size()];
        for (int i = 0; i < values.length; i++) {
            values[i] = losses.get(i);
        }
        return values;
    }

    @ParameterizedTest
    @EnumSource(Architecture.class)
    void thirtyStepsFollowTheCpusLossesAndRepeatBitForBit(Architecture architecture) {
        float[] cpu;
        try (CpuBackend backend = new CpuBackend()) {
            cpu = losses(backend, architecture, STEPS, 0, null);
        }
        float[] cuda = EmulatedBackends.run(0, backend -> losses(backend, architecture, STEPS, 0, null));
        assertEquals(STEPS, cuda.length);
        for (int i = 0; i < STEPS; i++) {
            assertEquals(cpu[i], cuda[i], 1e-5, "loss of step " + (i + 1));
        }
        float[] again = EmulatedBackends.run(7, backend -> losses(backend, architecture, STEPS, 0, null));
        assertArrayEquals(cuda, again, "the same run in another schedule of the emulator");
    }

    @ParameterizedTest
    @EnumSource(Architecture.class)
    void resumingOnTheCudaBackendContinuesBitForBit(Architecture architecture) {
        int total = 8;
        float[] straight = EmulatedBackends.run(0, backend -> losses(backend, architecture, total, 0, null));
        float[] firstHalf = EmulatedBackends.run(0, backend -> losses(backend, architecture, total, 4, dir));
        float[] secondHalf = EmulatedBackends.run(0, backend -> {
            try {
                return fit(Trainer.resume(backend, dir), total, 0, null);
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        });
        float[] joined = new float[firstHalf.length + secondHalf.length];
        System.arraycopy(firstHalf, 0, joined, 0, firstHalf.length);
        System.arraycopy(secondHalf, 0, joined, firstHalf.length, secondHalf.length);
        assertArrayEquals(straight, joined);
    }
}
