package dev.panamax.model.train;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.panamax.model.backend.CpuBackend;
import dev.panamax.model.nn.ModelConfig;
import dev.panamax.model.nn.ModelConfig.Architecture;
import dev.panamax.model.nn.Parameters;
import dev.panamax.model.tokenizer.CharVocabulary;
import dev.panamax.model.train.TrainingOptions.DataOrder;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A trainer in another JVM, killed with SIGKILL at random moments while it checkpoints every step, and started again
 * on its directory each time, ends with the weights and loss curve of a run that was never interrupted.
 */
class KillTest {
    private static final String TEXT = "kill -9 gives no warning: the files on disk are all there is. ".repeat(10);
    private static final CharVocabulary VOCABULARY = CharVocabulary.of(TEXT);
    private static final ModelConfig CONFIG =
            new ModelConfig(Architecture.LLAMA, 64, 128, 2, 4, 2, VOCABULARY.size(), 16, 1e-5f, 10000, false);
    private static final TrainingOptions OPTIONS =
            new TrainingOptions(2, 16, 1, 3e-3f, 3e-4f, 2, 0.1f, 0.9f, 0.95f, 1e-8f, 0.5f, 11, DataOrder.SHUFFLED);
    private static final int TOTAL_STEPS = 20;

    @TempDir
    Path dir;

    /**
     * The trainer the test kills: resumes the run in {@code args[0]} if it has a checkpoint, else starts it, and
     * trains to the end, saving after every step.
     *
     * @param args the run directory
     * @throws IOException if a file cannot be read or written
     */
    public static void main(String[] args) throws IOException {
        train(Path.of(args[0]));
    }

    /** Trains the run to its end and returns its final weights. */
    private static List<float[]> train(Path run) throws IOException {
        try (CpuBackend backend = new CpuBackend()) {
            Trainer trainer;
            try {
                trainer = Trainer.resume(backend, run);
            } catch (CheckpointNotFoundException first) {
                trainer = Trainer.create(backend, CONFIG, OPTIONS, 5);
            }
            LossCurve curve = new LossCurve(run, trainer.step());
            TokenDataset data = new TokenDataset(VOCABULARY.encode(TEXT), VOCABULARY.size(), 16, 0.2);
            trainer.fit(data, 0, TOTAL_STEPS, 0, 0, List.of(curve, Callback.checkpointEvery(run, 1)));
            trainer.save(run);
            curve.write();
            return weights(trainer);
        }
    }

    @Test
    void aTrainerKilledWhileSavingResumesBitForBit() throws Exception {
        Path straight = dir.resolve("straight");
        List<float[]> expected = train(straight);

        Path run = dir.resolve("killed");
        Path log = dir.resolve("child.log");
        SplittableRandom random = new SplittableRandom(19);
        int kills = 0;
        for (int attempt = 0; ; attempt++) {
            assertTrue(attempt < 40, "the child never finished");
            Process child = new ProcessBuilder(
                            ProcessHandle.current().info().command().orElseThrow(),
                            "--add-modules=jdk.incubator.vector",
                            "--enable-native-access=ALL-UNNAMED",
                            "-cp",
                            System.getProperty("java.class.path"),
                            KillTest.class.getName(),
                            run.toString())
                    .redirectErrorStream(true)
                    .redirectOutput(log.toFile())
                    .start();
            // Kill once the child has trained a few steps (or let it finish after enough kills).
            boolean finished = kills >= 4 ? child.waitFor(120, TimeUnit.SECONDS) : waitForProgress(child, run, random);
            if (finished) {
                assertEquals(0, child.exitValue(), Files.readString(log));
                break;
            }
            child.destroyForcibly().waitFor(); // SIGKILL: no shutdown hooks, no finally blocks
            kills++;
        }
        assertTrue(kills >= 4, "killed " + kills + " times");

        try (CpuBackend backend = new CpuBackend()) {
            Trainer resumed = Trainer.resume(backend, run);
            assertEquals(TOTAL_STEPS, resumed.step());
            List<float[]> weights = weights(resumed);
            for (int i = 0; i < weights.size(); i++) {
                assertArrayEquals(expected.get(i), weights.get(i), "parameter " + i);
            }
        }
        assertEquals(withoutThroughput(straight), withoutThroughput(run));
    }

    /**
     * Waits until the run has advanced by a random few steps since this child started, or the child ended.
     *
     * @return whether the child ended by itself
     */
    private static boolean waitForProgress(Process child, Path run, SplittableRandom random) throws Exception {
        int start = stepsDone(run);
        int target = start + random.nextInt(1, 4);
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(120);
        while (child.isAlive() && System.nanoTime() < deadline) {
            if (stepsDone(run) >= target) {
                Thread.sleep(random.nextInt(0, 40)); // somewhere inside the next step or its save
                return !child.isAlive();
            }
            Thread.sleep(2);
        }
        return !child.isAlive();
    }

    private static int stepsDone(Path run) throws IOException {
        Path csv = run.resolve(LossCurve.CSV);
        try {
            return Files.isRegularFile(csv)
                    ? Files.readAllLines(csv, StandardCharsets.UTF_8).size() - 1
                    : 0;
        } catch (IOException | java.io.UncheckedIOException renamedMeanwhile) {
            return 0;
        }
    }

    private static List<float[]> weights(Trainer trainer) {
        List<float[]> weights = new ArrayList<>();
        for (Parameters.Spec spec : Parameters.of(CONFIG)) {
            weights.add(trainer.weight(spec.name()));
        }
        return weights;
    }

    private static List<String> withoutThroughput(Path run) throws IOException {
        List<String> rows = new ArrayList<>();
        for (String line : Files.readAllLines(run.resolve(LossCurve.CSV), StandardCharsets.UTF_8)) {
            rows.add(line.substring(0, line.lastIndexOf(',')));
        }
        return rows;
    }
}
