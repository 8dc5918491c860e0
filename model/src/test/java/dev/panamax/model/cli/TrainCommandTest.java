package dev.panamax.model.cli;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.panamax.model.backend.CpuBackend;
import dev.panamax.model.io.Gpt2Checkpoint;
import dev.panamax.model.nn.ModelConfig;
import dev.panamax.model.nn.ModelConfig.Architecture;
import dev.panamax.model.testing.Gpt2Vocabulary;
import dev.panamax.model.testing.TokenFiles;
import dev.panamax.model.tokenizer.CharVocabulary;
import dev.panamax.model.train.LossCurve;
import dev.panamax.model.train.Trainer;
import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code panamax train}, then {@code generate} from what it wrote. */
class TrainCommandTest {
    private final CapturedCli cli = new CapturedCli(true);

    @TempDir
    Path dir;

    private Path text() throws IOException {
        return CliFixtures.trainingText(dir);
    }

    @Test
    void trainsResumesExportsAndGenerates() throws IOException {
        Path data = text();
        Path run = dir.resolve("run");
        Path shipped = dir.resolve("shipped");
        String[] train = CliFixtures.train(
                data, 4, 16, run, "--eval-every", "2", "--export", shipped.toString(), "--log-every", "1");
        assertEquals(0, cli.run(train), cli.err());
        String printed = cli.out();
        assertTrue(printed.contains("step 2/4  loss "), printed);
        assertTrue(printed.contains("val loss"), printed);
        assertTrue(printed.contains("epoch 1/1  step 4: train loss"), printed);
        for (String file : new String[] {
            Trainer.WEIGHTS_FILE,
            Trainer.OPTIMIZER_FILE,
            Trainer.STATE_FILE,
            "config.json",
            "chars.json",
            LossCurve.CSV,
            LossCurve.PNG
        }) {
            assertTrue(Files.isRegularFile(run.resolve(file)), file);
        }
        assertEquals(5, Files.readAllLines(run.resolve(LossCurve.CSV)).size());

        // Resuming a finished run has nothing left to do, says so and leaves the run as it was; asking for another plan
        // is refused.
        byte[] state = Files.readAllBytes(run.resolve(Trainer.STATE_FILE));
        byte[] curve = Files.readAllBytes(run.resolve(LossCurve.CSV));
        assertEquals(0, cli.run("train", "--data", data.toString(), "--resume", run.toString()));
        assertEquals(
                run + " already finished its 4 steps: nothing to train. To train its weights further, start a new run"
                        + " from them: --init " + run + "\n",
                cli.err());
        assertEquals("", cli.out());
        assertArrayEquals(state, Files.readAllBytes(run.resolve(Trainer.STATE_FILE)));
        assertArrayEquals(curve, Files.readAllBytes(run.resolve(LossCurve.CSV)));
        // The vocabulary beside the run is perplexity's default tokenizer too, as it is generate's.
        assertEquals(0, cli.run("perplexity", "-m", run.toString(), "--data", data.toString(), "--context", "16"));
        assertTrue(cli.out().contains("perplexity"), cli.out());
        assertEquals(2, cli.run("train", "--data", data.toString(), "--resume", run.toString(), "--steps", "8"));
        assertTrue(
                cli.err().startsWith("panamax: --steps 8 does not match the run being resumed, planned for 4 steps"),
                cli.err());

        for (Path model : new Path[] {run, shipped}) {
            assertEquals(
                    0,
                    cli.run(
                            "generate",
                            "--model",
                            model.toString(),
                            "--prompt",
                            "the ",
                            "--max-tokens",
                            "5",
                            "--seed",
                            "1"),
                    cli.err());
            String generated = cli.out().strip();
            assertEquals(5, generated.codePointCount(0, generated.length()), generated);
        }
    }

    @Test
    void trainsALlamaThatGenerateReadsAsALlama2cCheckpoint() throws IOException {
        Path run = dir.resolve("llama");
        assertEquals(0, cli.run(CliFixtures.train(text(), 2, 8, run, "--arch", "llama")), cli.err());
        assertTrue(Files.isRegularFile(run.resolve(Trainer.LLAMA2C_FILE)));
        assertEquals(0, cli.run("generate", "--model", run.toString(), "--prompt", "fox", "--max-tokens", "3"));
        assertEquals(0, cli.run("info", run.resolve(Trainer.LLAMA2C_FILE).toString()));
        assertTrue(cli.out().contains("architecture:   Llama"));
    }

    @Test
    void trainsOnGpt2TokensAndGeneratesWithTheSameTokenizer() throws IOException {
        Path vocabulary = Gpt2Vocabulary.require();
        Path run = dir.resolve("bpe");
        assertEquals(0, cli.run(CliFixtures.train(text(), 2, 8, run, "--tokenizer", vocabulary.toString())), cli.err());
        assertTrue(cli.err().contains("vocabulary 50257"));
        assertTrue(Files.notExists(run.resolve("chars.json")));
        assertEquals(
                0,
                cli.run(
                        "generate",
                        "--model",
                        run.toString(),
                        "--tokenizer",
                        vocabulary.toString(),
                        "--prompt",
                        "the quick",
                        "--max-tokens",
                        "3"),
                cli.err());
    }

    @Test
    void anInterruptedRunResumesWithTheTokenizerKeptBesideIt() throws IOException {
        Path data = text();
        resumeMidway(data, dir.resolve("chars"));
        resumeMidway(
                data,
                dir.resolve("bpe"),
                "--tokenizer",
                Gpt2Vocabulary.require().toString());
        assertTrue(cli.err().contains("vocabulary 50257"), cli.err());
    }

    /** Trains a run, stops it midway and resumes it with neither its tokenizer nor its plan given again. */
    private void resumeMidway(Path data, Path run, String... more) throws IOException {
        assertEquals(0, cli.run(CliFixtures.train(data, 2, 8, run, more)), cli.err());
        CliFixtures.stopMidway(run, 4);
        assertEquals(0, cli.run("train", "--data", data.toString(), "--resume", run.toString()), cli.err());
        assertTrue(cli.err().startsWith("resuming " + run + " at step 2 of 4\n"), cli.err());
        assertTrue(cli.err().contains("saved step 4 to " + run), cli.err());
    }

    @Test
    void aResumedRunKeepsItsValidationFraction() throws IOException {
        Path data = text();
        Path given = dir.resolve("given");
        Path kept = dir.resolve("kept");
        for (Path run : new Path[] {given, kept}) {
            assertEquals(0, cli.run(CliFixtures.train(data, 2, 8, run, "--val-fraction", "0.2")), cli.err());
            CliFixtures.stopMidway(run, 4);
        }
        // A checkpoint from before the fraction was recorded resumes with the one given, as it always did.
        Path state = given.resolve(Trainer.STATE_FILE);
        String json = Files.readString(state);
        String old = json.replaceFirst(",\\s*\"validation_fraction\":\\s*[-+.0-9eE]+", "");
        assertTrue(!old.equals(json), json);
        Files.writeString(state, old);
        String[] resume = {"train", "--data", data.toString(), "--resume"};
        assertEquals(0, cli.run(CliFixtures.with(resume, given.toString(), "--val-fraction", "0.2")), cli.err());
        assertEquals(0, cli.run(CliFixtures.with(resume, kept.toString())), cli.err());
        for (String file : new String[] {Trainer.WEIGHTS_FILE, Trainer.OPTIMIZER_FILE, Trainer.STATE_FILE}) {
            assertArrayEquals(Files.readAllBytes(given.resolve(file)), Files.readAllBytes(kept.resolve(file)), file);
        }
        assertEquals(2, cli.run(CliFixtures.with(resume, kept.toString(), "--val-fraction", "0.3")));
        assertTrue(
                cli.err()
                        .startsWith(
                                "panamax: --val-fraction 0.3 does not match the run being resumed (--resume " + kept
                                        + "), which holds out 0.2 of its data for validation: leave it out to keep the run's\n"),
                cli.err());
    }

    @Test
    void aRunThatDivergesKeepsItsLastStepAndSaysHowToGoOn() throws IOException {
        Path data = text();
        Path run = dir.resolve("run");
        assertEquals(1, cli.run(CliFixtures.train(data, 6, 8, run, "--lr", "1e30", "--warmup", "0")));
        String err = cli.err();
        int diverged = Integer.parseInt(err.replaceFirst("(?s).*training diverged at step (\\d+):.*", "$1"));
        assertTrue(diverged > 1 && diverged <= 6, err);
        int kept = diverged - 1;
        assertTrue(
                err.contains("The checkpoint in " + run + " is step " + kept + ", the last before it (loss curve: "
                        + run.resolve(LossCurve.PNG) + "). --resume would diverge again, as it keeps the learning rate"
                        + " (1.0E30); to go on from those weights with a lower --lr, start a new run, which starts new"
                        + " optimizer moments and a new learning-rate schedule: panamax train --data " + data
                        + " --init " + run + " --lr LR --out NEW_DIR\n"),
                err);
        try (CpuBackend backend = new CpuBackend()) {
            assertEquals(kept, Trainer.resume(backend, run).step());
        }
        assertEquals(kept + 1, Files.readAllLines(run.resolve(LossCurve.CSV)).size());
        assertTrue(Files.isRegularFile(run.resolve(LossCurve.PNG)));
    }

    @Test
    void badDataIsReportedNotThrown() throws IOException {
        Path empty = Files.createFile(dir.resolve("empty.txt"));
        assertEquals(1, cli.run("train", "--data", empty.toString()));
        assertTrue(cli.err().startsWith("panamax: --data " + empty + ": holds no text"), cli.err());
        assertEquals(1, cli.run("train", "--data", dir.resolve("missing").toString()));
        assertEquals("panamax: --data " + dir.resolve("missing") + ": no such text file or directory\n", cli.err());
        Path tiny = Files.writeString(dir.resolve("tiny.txt"), "a few words, and fewer than a window");
        String[] tinyRun = {
            "train", "--data", tiny.toString(), "--out", dir.resolve("t").toString()
        };
        assertEquals(2, cli.run(CliFixtures.with(tinyRun, "--seq", "64")));
        assertTrue(
                cli.err()
                        .startsWith("panamax: the training part of --data has 32 tokens, fewer than one window of 64"
                                + " tokens needs (65): give more data or a smaller --seq or --val-fraction\n"),
                cli.err());
        assertEquals(2, cli.run(CliFixtures.with(tinyRun, "--seq", "8", "--val-fraction", "0.1")));
        assertTrue(
                cli.err()
                        .startsWith("panamax: the 4 tokens that --val-fraction 0.1 holds out are fewer than one window"
                                + " of 8 tokens needs (9)"),
                cli.err());
        assertEquals(2, cli.run("train", "--data", text().toString(), "--seq", "10000"));
        assertTrue(cli.err().contains("--seq (10000) must be a whole number in [1, 4096]"), cli.err());
        assertEquals(1, cli.run("train", "--data", text().toString(), "--config", "huge"));
        assertEquals(
                "panamax: --config huge: no such file (--config takes tiny, small or a GPT-2 config.json)\n",
                cli.err());
        assertEquals(2, cli.run("train", "--data", text().toString(), "--arch", "bert"));
        assertTrue(cli.err().startsWith("panamax: --arch (bert) must be gpt2 or llama\n"), cli.err());
        assertEquals(
                2,
                cli.run(
                        "train",
                        "--data",
                        text().toString(),
                        "--batch",
                        "4096",
                        "--out",
                        dir.resolve("b").toString()));
        assertTrue(cli.err().startsWith("panamax: the data has "), cli.err());
        assertTrue(cli.err().contains("lower --batch or --seq"), cli.err());
        Files.write(dir.resolve("latin1.txt"), new byte[] {'a', (byte) 0xE9, 'b'});
        assertEquals(1, cli.run("train", "--data", dir.resolve("latin1.txt").toString()));
        assertEquals(1, cli.err().lines().count(), cli.err());
    }

    @Test
    void anotherRunsDirectoryIsNotOverwrittenWithoutForce() throws IOException {
        String[] twoSteps = {"train", "--data", text().toString(), "--steps", "2", "--batch", "2", "--seq", "8"};
        Path run = dir.resolve("run");
        String[] train = CliFixtures.with(twoSteps, "--out", run.toString());
        assertEquals(0, cli.run(train), cli.err());
        byte[] weights = Files.readAllBytes(run.resolve(Trainer.WEIGHTS_FILE));

        // The same command again would replace the finished run: refused before anything is read or trained.
        assertEquals(2, cli.run(train));
        assertTrue(
                cli.err()
                        .startsWith("panamax: --out " + run + " already holds files that are not the run being resumed;"
                                + " choose a new directory, continue that run with --resume " + run
                                + ", or overwrite it with --force\n"),
                cli.err());
        assertArrayEquals(weights, Files.readAllBytes(run.resolve(Trainer.WEIGHTS_FILE)));

        // A directory holding anything else is another run's too; an empty one or a new one is not.
        Path other = Files.createDirectories(dir.resolve("other"));
        Files.writeString(other.resolve("notes.txt"), "mine");
        assertEquals(2, cli.run(CliFixtures.with(twoSteps, "--out=" + other)));
        assertEquals("mine", Files.readString(other.resolve("notes.txt")));
        Path empty = Files.createDirectories(dir.resolve("empty"));
        assertEquals(0, cli.run(CliFixtures.with(twoSteps, "--out", empty.toString())), cli.err());

        // --force writes into it; an export beside the checkpoint is checked the same way, and never into it.
        assertEquals(0, cli.run(CliFixtures.with(train, "--force")), cli.err());
        assertEquals(2, cli.run(CliFixtures.with(train, "--export", run.toString(), "--force")));
        assertTrue(cli.err().contains("--export must be another directory than --out"), cli.err());
        assertEquals(
                2,
                cli.run(CliFixtures.with(
                        twoSteps, "--out", dir.resolve("new").toString(), "--export", other.toString())));
        assertTrue(cli.err().startsWith("panamax: --export " + other + " already holds files"), cli.err());

        // A file where the directory should be is a file error.
        Path file = Files.writeString(dir.resolve("file"), "x");
        assertEquals(1, cli.run(CliFixtures.with(twoSteps, "--out", file.toString())));
        assertEquals("panamax: --out " + file + ": is a file, not a directory\n", cli.err());
    }

    @Test
    void forceRemovesTheEarlierRunBeforeTheNewOneSaves() throws IOException {
        Path data = text();
        Path run = dir.resolve("run");
        assertEquals(0, cli.run(CliFixtures.train(data, 6, 8, run, "--checkpoint-every", "2")), cli.err());
        assertEquals(List.of("step-00000006"), steps(run));
        Files.writeString(run.resolve("notes.txt"), "mine");
        Path notAStep = Files.createDirectories(run.resolve("step-00000009"));
        Files.writeString(notAStep.resolve("notes.txt"), "mine too");

        assertEquals(0, cli.run(CliFixtures.train(data, 2, 8, run, "--force", "--arch", "llama")), cli.err());
        // Only the new run's step is left, beside the directory that holds a file a save does not write.
        assertEquals(List.of("step-00000002", "step-00000009"), steps(run));
        assertTrue(
                cli.err()
                        .contains("panamax: warning: --out " + run + " holds files that are not of a Panamax run, left"
                                + " as they are: notes.txt, step-00000009\n"),
                cli.err());
        assertEquals("mine", Files.readString(run.resolve("notes.txt")));
        assertEquals("mine too", Files.readString(notAStep.resolve("notes.txt")));
        assertTrue(Files.notExists(run.resolve(Gpt2Checkpoint.CONFIG_FILE), LinkOption.NOFOLLOW_LINKS));
        assertEquals(3, Files.readAllLines(run.resolve(LossCurve.CSV)).size());

        CliFixtures.stopMidway(run, 4);
        assertEquals(0, cli.run("train", "--data", data.toString(), "--resume", run.toString()), cli.err());
        assertTrue(cli.err().startsWith("resuming " + run + " at step 2 of 4\n"), cli.err());
        assertTrue(cli.err().contains("LLAMA: "), cli.err());
        assertEquals(List.of("step-00000004", "step-00000009"), steps(run));
    }

    @Test
    void forceRemovesTheEarlierRunsTokenizerThatTheNewRunDoesNotUse() throws IOException {
        Path run = dir.resolve("run");
        assertEquals(0, cli.run(CliFixtures.train(text(), 2, 8, run)), cli.err());
        assertTrue(Files.isRegularFile(run.resolve(CharVocabulary.FILE)));
        int vocabulary = 64;
        Path tokens = TokenFiles.write(dir.resolve("tokens.bin"), TokenFiles.walk(30 * 8 + 1, vocabulary, 4));
        Path model = Files.createDirectories(dir.resolve("model"));
        Gpt2Checkpoint.writeConfig(
                model, new ModelConfig(Architecture.GPT2, 32, 128, 2, 4, 4, vocabulary, 32, 1e-5f, 10000, true));
        String config = model.resolve(Gpt2Checkpoint.CONFIG_FILE).toString();

        // Token ids need no tokenizer: the characters of the earlier run would be taken for the new run's.
        assertEquals(0, cli.run(CliFixtures.train(tokens, 2, 8, run, "--config", config, "--force")), cli.err());
        CliFixtures.stopMidway(run, 4);
        assertEquals(0, cli.run("train", "--data", tokens.toString(), "--resume", run.toString()), cli.err());
        assertTrue(cli.err().startsWith("resuming " + run + " at step 2 of 4\n"), cli.err());
        assertTrue(Files.notExists(run.resolve(CharVocabulary.FILE)));
    }

    /** The step directories of a run, in order. */
    private static List<String> steps(Path run) throws IOException {
        try (Stream<Path> entries = Files.list(run)) {
            return entries.map(entry -> entry.getFileName().toString())
                    .filter(name -> name.startsWith("step-"))
                    .sorted()
                    .toList();
        }
    }

    @Test
    void aRunBeingTrainedByAnotherProcessIsRefused() throws IOException {
        Path data = text();
        Path run = dir.resolve("run");
        assertEquals(0, cli.run(CliFixtures.train(data, 2, 8, run, "--checkpoint-every", "1")), cli.err());
        // The last step's checkpoint, which --checkpoint-every saved, is not saved a second time.
        assertEquals(Path.of("step-00000002"), Files.readSymbolicLink(run.resolve("current")));
        byte[] state = Files.readAllBytes(run.resolve(Trainer.STATE_FILE));
        String[] resume = {"train", "--data", data.toString(), "--resume", run.toString()};
        try (FileChannel channel = FileChannel.open(
                        run.resolve(RunLock.FILE), StandardOpenOption.CREATE, StandardOpenOption.WRITE);
                FileLock _ = channel.lock()) {
            assertEquals(1, cli.run(resume));
            assertEquals(
                    "panamax: --resume " + run + ": the run is being trained by another process"
                            + " (it holds train.lock there); wait for it to end, or train into another directory\n",
                    cli.err());
            assertEquals(1, cli.run(CliFixtures.with(resume, "--out", run.toString())));
            assertTrue(cli.err().startsWith("panamax: --out " + run + ": the run is being trained"), cli.err());
        }
        assertArrayEquals(state, Files.readAllBytes(run.resolve(Trainer.STATE_FILE)));
        assertEquals(0, cli.run(resume), cli.err());
        assertTrue(cli.err().contains("already finished its 2 steps"), cli.err());
        // The lock file a run leaves does not make its directory another run's.
        Path failed = Files.createDirectories(dir.resolve("failed"));
        Files.createFile(failed.resolve(RunLock.FILE));
        assertEquals(0, cli.run(CliFixtures.train(data, 2, 8, failed)), cli.err());
    }

    @Test
    void aWarmUpAsLongAsTheRunIsCutToATenthWithAWarning() throws IOException {
        Path run = dir.resolve("run");
        String[] twentySteps = {"train", "--data", text().toString(), "--steps", "20", "--batch", "2", "--seq", "8"};
        assertEquals(0, cli.run(CliFixtures.with(twentySteps, "--warmup", "50", "--out", run.toString())), cli.err());
        assertTrue(
                cli.err()
                        .startsWith("panamax: warning: the warm-up (--warmup 50 steps) is not shorter than the run (20"
                                + " steps), so the learning rate would never reach its peak; using 2 warm-up steps, a tenth of"
                                + " the run\n"),
                cli.err());
        try (CpuBackend backend = new CpuBackend()) {
            assertEquals(2, Trainer.resume(backend, run).options().warmupSteps());
        }
        assertEquals(
                0,
                cli.run(CliFixtures.with(
                        twentySteps,
                        "--warmup",
                        "19",
                        "--out",
                        dir.resolve("shorter").toString())),
                cli.err());
        assertTrue(!cli.err().contains("warning"), cli.err());
    }

    @Test
    void windowsAStepCannotTakeAreReported() throws IOException {
        for (int batch = 3; ; batch++) {
            Path run = dir.resolve("run" + batch);
            String[] args = {
                "train",
                "--data",
                text().toString(),
                "--steps",
                "1",
                "--batch",
                String.valueOf(batch),
                "--seq",
                "8",
                "--data-order",
                "sequential",
                "--out",
                run.toString()
            };
            assertEquals(0, cli.run(args), cli.err());
            java.util.regex.Matcher plan = java.util.regex.Pattern.compile("\\(([0-9,]+) windows of 8\\)")
                    .matcher(cli.err());
            assertTrue(plan.find(), cli.err());
            int windows = Integer.parseInt(plan.group(1).replace(",", ""));
            int unused = windows % batch;
            boolean reported = cli.err()
                    .contains(unused + " training window" + (unused == 1 ? " is" : "s are")
                            + " per epoch left out: a step"
                            + " takes " + batch + ", which does not divide "
                            + String.format(java.util.Locale.ROOT, "%,d", windows)
                            + " (in sequential order, the last ones every epoch)");
            assertEquals(unused > 0, reported, cli.err());
            if (unused > 0) {
                return;
            }
        }
    }

    @Test
    void resumingNeedsACheckpointAndKeepsItsOptions() throws IOException {
        Path data = text();
        Path empty = Files.createDirectories(dir.resolve("empty"));
        assertEquals(1, cli.run("train", "--data", data.toString(), "--resume", empty.toString()));
        assertTrue(cli.err().startsWith("panamax: --resume " + empty + ": no checkpoint to continue there"), cli.err());
        assertEquals(1, cli.err().lines().count(), cli.err());
        assertEquals(
                1,
                cli.run(
                        "train",
                        "--data",
                        data.toString(),
                        "--resume",
                        dir.resolve("absent").toString()));
        assertEquals("panamax: --resume " + dir.resolve("absent") + ": no such directory\n", cli.err());
        assertEquals(2, cli.run("train", "--data", data.toString(), "--resume", empty.toString(), "--batch", "4"));
        assertTrue(cli.err().startsWith("panamax: --batch cannot change a resumed run"), cli.err());
    }

    @Test
    void aMissingTokenizerFileIsNamedWithItsOption() throws IOException {
        Path bpe = Files.createDirectories(dir.resolve("bpe"));
        assertEquals(1, cli.run("train", "--data", text().toString(), "--tokenizer", bpe.toString()));
        assertEquals(
                "panamax: --tokenizer " + bpe + ": GPT-2's encoder.json (or vocab.json) is missing there\n", cli.err());
        assertEquals(
                1,
                cli.run(
                        "train",
                        "--data",
                        text().toString(),
                        "--tokenizer",
                        dir.resolve("none").toString()));
        assertEquals("panamax: --tokenizer " + dir.resolve("none") + ": no such directory\n", cli.err());
    }
}
