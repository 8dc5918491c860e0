package dev.panamax.model.train;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.panamax.model.backend.CpuBackend;
import dev.panamax.model.io.Gpt2Checkpoint;
import dev.panamax.model.io.Llama2cCheckpoint;
import dev.panamax.model.nn.ModelConfig;
import dev.panamax.model.nn.ModelConfig.Architecture;
import dev.panamax.model.nn.Parameters;
import dev.panamax.model.tokenizer.CharVocabulary;
import dev.panamax.model.train.TrainingOptions.DataOrder;
import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.SplittableRandom;
import java.util.TreeMap;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/** Checkpoints as a whole: a crash at any point of a save leaves a checkpoint that resumes bit for bit. */
class CheckpointTest {
    private static final String TEXT = "a checkpoint is atomic as a whole, or a crash can tear it apart. ".repeat(10);
    private static final CharVocabulary VOCABULARY = CharVocabulary.of(TEXT);
    private static final TrainingOptions OPTIONS =
            new TrainingOptions(2, 16, 1, 3e-3f, 3e-4f, 2, 0.1f, 0.9f, 0.95f, 1e-8f, 0.5f, 7, DataOrder.SHUFFLED);
    private static final int TOTAL_STEPS = 8;

    @TempDir
    Path dir;

    private static ModelConfig config(Architecture architecture) {
        return architecture == Architecture.GPT2
                ? new ModelConfig(Architecture.GPT2, 16, 32, 2, 2, 2, VOCABULARY.size(), 16, 1e-5f, 0, true)
                : new ModelConfig(Architecture.LLAMA, 16, 32, 2, 2, 1, VOCABULARY.size(), 16, 1e-5f, 10000, false);
    }

    private static TokenDataset data() {
        return new TokenDataset(VOCABULARY.encode(TEXT), VOCABULARY.size(), 16, 0.2);
    }

    /** What a crash stops: thrown by the save hook. */
    private static final class Crash extends RuntimeException {
        private static final long serialVersionUID = 1L;
    }

    /** Keeps each step's metrics, by step; a step run again after a crash must give the same. */
    private static final class Recorder implements Callback {
        final TreeMap<Integer, Metrics> steps = new TreeMap<>();

        @Override
        public boolean afterStep(Trainer trainer, Metrics metrics) {
            Metrics earlier = steps.put(metrics.step(), metrics);
            if (earlier != null) {
                assertSameLoss(earlier, metrics);
            }
            return true;
        }
    }

    private static void assertSameLoss(Metrics expected, Metrics actual) {
        assertEquals(expected.step(), actual.step());
        assertEquals(
                Float.floatToIntBits(expected.trainLoss()),
                Float.floatToIntBits(actual.trainLoss()),
                "loss at step " + actual.step());
        assertEquals(
                Float.floatToIntBits(expected.gradientNorm()),
                Float.floatToIntBits(actual.gradientNorm()),
                "gradient norm at step " + actual.step());
    }

    @ParameterizedTest
    @EnumSource(Architecture.class)
    void aSaveInterruptedAnywhereResumesBitForBit(Architecture architecture) throws IOException {
        Path straight = dir.resolve("straight");
        Recorder reference = new Recorder();
        float[] referenceWeights;
        try (CpuBackend backend = new CpuBackend()) {
            Trainer trainer = Trainer.create(backend, config(architecture), OPTIONS, 3);
            LossCurve curve = new LossCurve(straight, 0);
            trainer.fit(data(), 0, TOTAL_STEPS, 0, 0, List.of(curve, Callback.checkpointEvery(straight, 1), reference));
            curve.write();
            referenceWeights = weights(trainer);
        }

        Path run = dir.resolve("crashing");
        Files.createDirectories(run);
        VOCABULARY.write(run.resolve(CharVocabulary.FILE));
        SplittableRandom random = new SplittableRandom(architecture.ordinal());
        Recorder recorder = new Recorder();
        Set<String> crashedAfter = new HashSet<>();
        float[] finalWeights = null;
        for (int attempt = 0; finalWeights == null; attempt++) {
            assertTrue(attempt < 500, "no progress after " + attempt + " crashes");
            try (CpuBackend backend = new CpuBackend()) {
                Trainer trainer;
                try {
                    trainer = Trainer.resume(backend, run);
                } catch (CheckpointNotFoundException beforeTheFirstCheckpoint) {
                    trainer = Trainer.create(backend, config(architecture), OPTIONS, 3);
                }
                int crashAt = 1 + attempt % 12; // every point of a save in turn, and some of the save after
                int[] reached = {0};
                trainer.onSavePoint(touched -> {
                    if (++reached[0] == crashAt) {
                        crashedAfter.add(touched.getFileName().toString().replaceAll("[0-9.]+$", ""));
                        tear(run, touched, random);
                        throw new Crash();
                    }
                });
                LossCurve curve = new LossCurve(run, trainer.step());
                trainer.fit(data(), 0, TOTAL_STEPS, 0, 0, List.of(curve, recorder, Callback.checkpointEvery(run, 1)));
                trainer.onSavePoint(touched -> {});
                trainer.save(run); // as panamax train does at the end, which deletes what crashed saves left
                curve.write();
                finalWeights = weights(trainer);
            } catch (Crash crash) {
                if (random.nextBoolean()) { // a crash while appending a row leaves a part of it
                    Files.writeString(run.resolve(LossCurve.CSV), "9,1,2.5", StandardOpenOption.APPEND);
                }
            }
        }
        // Every stage of a save was interrupted at least once: each file, the flush, the switch, the links, the
        // clean-up.
        for (String stage : List.of(
                Trainer.WEIGHTS_FILE,
                Trainer.OPTIMIZER_FILE,
                Trainer.STATE_FILE,
                CharVocabulary.FILE,
                "step-",
                CheckpointDirectory.CURRENT)) {
            assertTrue(crashedAfter.contains(stage), "never crashed after " + stage + ": " + crashedAfter);
        }
        assertArrayEquals(referenceWeights, finalWeights);
        assertEquals(reference.steps.keySet(), recorder.steps.keySet());
        for (Metrics m : recorder.steps.values()) {
            assertSameLoss(reference.steps.get(m.step()), m);
        }
        List<String> expectedRows = trainingColumns(straight);
        List<String> rows = trainingColumns(run);
        assertEquals(expectedRows, rows, "every step once, with the uninterrupted run's numbers");
        assertEquals(TOTAL_STEPS, rows.size());
        assertOneCompleteCheckpoint(run, architecture);
    }

    /** Simulates a crash in the middle of writing a file of the new checkpoint: it keeps some of its bytes. */
    private static void tear(Path run, Path touched, SplittableRandom random) throws IOException {
        if (Files.isRegularFile(touched, LinkOption.NOFOLLOW_LINKS)
                && !touched.getParent().equals(run)) {
            try (FileChannel channel = FileChannel.open(touched, StandardOpenOption.WRITE)) {
                channel.truncate(random.nextLong(channel.size()));
            }
        }
    }

    /** The loss curve's rows without the throughput, which depends on timing. */
    private static List<String> trainingColumns(Path run) throws IOException {
        List<String> rows = new ArrayList<>();
        for (String line : Files.readAllLines(run.resolve(LossCurve.CSV), StandardCharsets.UTF_8)) {
            if (!line.startsWith("step")) {
                rows.add(line.substring(0, line.lastIndexOf(',')));
            }
        }
        return rows;
    }

    private static void assertOneCompleteCheckpoint(Path run, Architecture architecture) throws IOException {
        try (Stream<Path> entries = Files.list(run)) {
            List<String> steps = entries.map(p -> p.getFileName().toString())
                    .filter(name -> name.startsWith("step-"))
                    .toList();
            assertEquals(1, steps.size(), "older checkpoints are deleted: " + steps);
            assertEquals(
                    steps.getFirst(),
                    Files.readSymbolicLink(run.resolve(CheckpointDirectory.CURRENT))
                            .toString());
            assertTrue(Files.isRegularFile(run.resolve(steps.getFirst()).resolve(CharVocabulary.FILE)));
        }
        // The run directory is a model directory for panamax generate, through its links.
        if (architecture == Architecture.GPT2) {
            try (Gpt2Checkpoint model = Gpt2Checkpoint.open(run)) {
                assertEquals(config(architecture), model.config());
            }
        } else {
            try (Llama2cCheckpoint model = Llama2cCheckpoint.open(run.resolve(Trainer.LLAMA2C_FILE))) {
                assertEquals(config(architecture).layers(), model.config().layers());
            }
        }
    }

    private static float[] weights(Trainer trainer) {
        List<Float> all = new ArrayList<>();
        for (Parameters.Spec spec : Parameters.of(trainer.config())) {
            for (float w : trainer.weight(spec.name())) {
                all.add(w);
            }
        }
        float[] values = new float[all.size()];
        for (int i = 0; i < values.length; i++) {
            values[i] = all.get(i);
        }
        return values;
    }

    @Test
    void aSaveThatAnotherSwitchedPastKeepsTheCheckpointItPointsTo() throws IOException {
        Path run = Files.createDirectories(dir.resolve("run"));
        VOCABULARY.write(run.resolve(CharVocabulary.FILE));
        try (CpuBackend backend = new CpuBackend()) {
            Trainer first = Trainer.create(backend, config(Architecture.GPT2), OPTIONS, 3);
            first.fit(data(), 0, 3, 0, 0, List.of());
            Trainer second = Trainer.create(backend, config(Architecture.GPT2), OPTIONS, 3);
            second.fit(data(), 0, 3, 0, 0, List.of(new Callback() {
                @Override
                public boolean afterStep(Trainer trainer, Metrics metrics) {
                    return trainer.step() < 1;
                }
            }));
            boolean[] interleaved = {false};
            // The second writer switches the link between the first one's switch and its clean-up.
            first.onSavePoint(touched -> {
                if (touched.getFileName().toString().equals(CheckpointDirectory.CURRENT) && !interleaved[0]) {
                    interleaved[0] = true;
                    second.save(run);
                }
            });
            first.save(run);
            assertTrue(interleaved[0]);
            assertEquals(1, Trainer.resume(backend, run).step());
            assertTrue(Files.isDirectory(run.resolve("step-00000003")), "newer than the current one: kept");
            first.onSavePoint(touched -> {});
            first.save(run);
            assertOneCompleteCheckpoint(run, Architecture.GPT2);
            assertEquals(3, Trainer.resume(backend, run).step());
        }
    }

    @Test
    void resumingWhereThereIsNoCheckpointSaysSo() throws IOException {
        try (CpuBackend backend = new CpuBackend()) {
            CheckpointNotFoundException missing =
                    assertThrows(CheckpointNotFoundException.class, () -> Trainer.resume(backend, dir.resolve("nope")));
            assertTrue(missing.getMessage().contains("nope: does not exist to resume from"), missing.getMessage());
            Files.writeString(dir.resolve(LossCurve.CSV), "step\n");
            CheckpointNotFoundException empty =
                    assertThrows(CheckpointNotFoundException.class, () -> Trainer.resume(backend, dir));
            assertTrue(
                    empty.getMessage()
                            .startsWith(dir + ": holds no checkpoint to resume from: expected a link current"),
                    empty.getMessage());
        }
    }

    @Test
    void theFlatLayoutOfEarlierVersionsStillResumes() throws IOException {
        Path run = dir.resolve("run");
        Path flat = dir.resolve("flat");
        Files.createDirectories(flat);
        try (CpuBackend backend = new CpuBackend()) {
            Trainer trainer = Trainer.create(backend, config(Architecture.GPT2), OPTIONS.withWarmupSteps(1), 3);
            trainer.fit(data(), 0, 2, 0, 0, List.of());
            trainer.save(run);
            for (String name : List.of(Trainer.WEIGHTS_FILE, Trainer.OPTIMIZER_FILE, Trainer.STATE_FILE)) {
                Files.copy(run.resolve(name), flat.resolve(name)); // through the link: a regular file
            }
            assertEquals(run.resolve("current").toRealPath(), Trainer.checkpointDirectory(run));
            Trainer resumed = Trainer.resume(backend, flat);
            assertEquals(2, resumed.step());
            assertArrayEquals(trainer.weight("wte.weight"), resumed.weight("wte.weight"));
            // Saving into it switches it to the new layout: the flat files become links to the current step.
            resumed.save(flat);
            assertTrue(Files.isSymbolicLink(flat.resolve(Trainer.STATE_FILE)));
            assertEquals(2, Trainer.resume(backend, flat).step());
        }
    }

    @Test
    void aLossCurveResumedFromAnEarlierStepDropsTheLaterRowsAtOnce() throws IOException {
        Files.writeString(
                dir.resolve(LossCurve.CSV),
                "step,epoch,train_loss,train_accuracy,val_loss,val_accuracy,learning_rate,grad_norm,tokens_per_s\n"
                        + "1,1,3.0,0.1,,,0.001,1.0,10.0\n2,1,2.9,0.1,,,0.001,1.0,10.0\n"
                        + "3,1,2.8,0.1,,,0.001,1.0,10.0\n4,1,2.7");
        new LossCurve(dir, 2);
        List<String> lines = Files.readAllLines(dir.resolve(LossCurve.CSV));
        assertEquals(3, lines.size(), lines.toString());
        assertTrue(lines.get(2).startsWith("2,"));
        assertFalse(Files.exists(dir.resolve(LossCurve.CSV + ".partial")));
    }
}
