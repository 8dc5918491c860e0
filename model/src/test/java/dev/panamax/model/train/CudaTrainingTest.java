package dev.panamax.model.train;

import static dev.panamax.model.train.TrainingFixtures.config;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.panamax.model.backend.Backend;
import dev.panamax.model.backend.CpuBackend;
import dev.panamax.model.backend.EmulatedBackends;
import dev.panamax.model.backend.MatmulPrecision;
import dev.panamax.model.nn.ModelConfig.Architecture;
import dev.panamax.model.tokenizer.CharVocabulary;
import dev.panamax.model.train.TrainingOptions.DataOrder;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;
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
    private static final String TEXT = TrainingFixtures.TEXT;
    private static final CharVocabulary VOCABULARY = TrainingFixtures.VOCABULARY;
    private static final int STEPS = 30;

    @TempDir
    Path dir;

    private static TokenDataset data() {
        return new TokenDataset(VOCABULARY.encode(TEXT), VOCABULARY.size(), 16, 0);
    }

    private static final TrainingOptions OPTIONS =
            new TrainingOptions(2, 16, 2, 3e-3f, 3e-4f, 3, 0.1f, 0.9f, 0.95f, 1e-8f, 1f, 42, DataOrder.SHUFFLED);

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

    /**
     * Ten steps with TF32 and BF16 products stay close to FP32's losses, and are not FP32's: the precision is applied.
     *
     * <p>Tolerance: u times the FP32 loss at each step, u the precision's unit roundoff (2⁻¹¹, 2⁻⁸). Every logit is a
     * product whose inputs are rounded with relative error at most u, so it moves by at most about 2u of its terms'
     * size, and the errors of independent sign mostly cancel; the cross-entropy is at most 2-Lipschitz in the logits,
     * and at this initialisation the logits are small beside the loss (about ln of the vocabulary), so the loss moves by
     * far less than u of itself; ten steps at a learning rate of 3e-3 carry the difference into the weights only
     * slowly. A wrong product (a missed transpose, an unrounded or wrongly rounded operand) changes the loss curve by
     * tenths within a few steps.
     */
    @ParameterizedTest
    @EnumSource(
            value = MatmulPrecision.class,
            names = {"TF32", "BF16"})
    void lowerPrecisionTrainingStaysCloseToFp32(MatmulPrecision precision) {
        int steps = 10;
        for (Architecture architecture : Architecture.values()) {
            float[] fp32 = EmulatedBackends.run(0, backend -> losses(backend, architecture, steps, 0, null));
            float[] lower = EmulatedBackends.run(
                    0, Long.MAX_VALUE, precision, backend -> losses(backend, architecture, steps, 0, null));
            double u = precision == MatmulPrecision.TF32 ? 0x1p-11 : 0x1p-8;
            for (int i = 0; i < steps; i++) {
                assertEquals(
                        fp32[i], lower[i], u * fp32[i], architecture + " " + precision + " loss of step " + (i + 1));
            }
            assertFalse(Arrays.equals(fp32, lower), architecture + " " + precision + " gave FP32's losses");
        }
    }

    /**
     * The checkpoint records the precision (trainer.json), a resume on a backend of another precision is refused, and
     * one at the recorded precision continues bit for bit.
     */
    @Test
    void theCheckpointRecordsThePrecisionAndResumeKeepsIt() throws IOException {
        MatmulPrecision bf16 = MatmulPrecision.BF16;
        int total = 6;
        float[] straight = EmulatedBackends.run(
                0, Long.MAX_VALUE, bf16, backend -> losses(backend, Architecture.LLAMA, total, 0, null));
        float[] firstHalf = EmulatedBackends.run(
                0, Long.MAX_VALUE, bf16, backend -> losses(backend, Architecture.LLAMA, total, 3, dir));
        assertTrue(
                Files.readString(CheckpointDirectory.resolve(dir).resolve(Trainer.STATE_FILE))
                        .contains("\"precision\":\"bf16\""),
                "trainer.json names the precision");
        assertEquals(bf16, Trainer.savedPrecision(dir));
        IllegalArgumentException refused =
                assertThrows(IllegalArgumentException.class, () -> EmulatedBackends.run(0, backend -> resume(backend)));
        assertTrue(
                refused.getMessage()
                        .contains("trains with bf16 products, CUDA backend on the emulated device computes"
                                + " fp32: resume it at the precision it was started with"),
                refused.getMessage());
        float[] secondHalf =
                EmulatedBackends.run(0, Long.MAX_VALUE, bf16, backend -> fit(resume(backend), total, 0, null));
        float[] joined = new float[firstHalf.length + secondHalf.length];
        System.arraycopy(firstHalf, 0, joined, 0, firstHalf.length);
        System.arraycopy(secondHalf, 0, joined, firstHalf.length, secondHalf.length);
        assertArrayEquals(straight, joined);
    }

    private Trainer resume(Backend backend) {
        try {
            return Trainer.resume(backend, dir);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
