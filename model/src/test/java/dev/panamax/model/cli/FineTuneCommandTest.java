package dev.panamax.model.cli;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.panamax.model.backend.CpuBackend;
import dev.panamax.model.io.DType;
import dev.panamax.model.io.Gpt2Checkpoint;
import dev.panamax.model.io.Llama2cCheckpoint;
import dev.panamax.model.nn.ModelConfig;
import dev.panamax.model.nn.ModelConfig.Architecture;
import dev.panamax.model.testing.RandomWeights;
import dev.panamax.model.testing.TokenFiles;
import dev.panamax.model.tokenizer.CharVocabulary;
import dev.panamax.model.tokenizer.Llama2cTokenizer;
import dev.panamax.model.train.LossCurve;
import dev.panamax.model.train.Trainer;
import dev.panamax.model.train.TrainingOptions;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code panamax train --init}, llm.c token files, {@code --data-order} and the optimizer options. */
class FineTuneCommandTest {
    private static final int VOCAB = 64;
    private static final ModelConfig GPT2 =
            new ModelConfig(Architecture.GPT2, 32, 128, 2, 4, 4, VOCAB, 32, 1e-5f, 10000, true);
    private static final ModelConfig LLAMA =
            new ModelConfig(Architecture.LLAMA, 32, 88, 2, 4, 2, VOCAB, 32, 1e-5f, 10000, false);

    @TempDir
    Path dir;

    private final CapturedCli cli = new CapturedCli(true);

    private Path gpt2() throws IOException {
        Path model = Files.createDirectories(dir.resolve("gpt2"));
        Gpt2Checkpoint.write(model, GPT2, RandomWeights.gpt2(GPT2, 3), DType.F32);
        return model;
    }

    private Path llama() throws IOException {
        Path model = dir.resolve("llama.bin");
        Llama2cCheckpoint.writeRandom(model, LLAMA, 3);
        return model;
    }

    private Path tokens() throws IOException {
        return TokenFiles.write(dir.resolve("tokens.bin"), TokenFiles.walk(30 * 8 + 1, VOCAB, 4));
    }

    private String[] fineTune(Path model, Path data, Path out, String... more) {
        return CliFixtures.with(CliFixtures.train(data, 3, 8, out, "--init", model.toString()), more);
    }

    @Test
    void aGpt2DirectoryIsFineTunedOnTokensAndExportedAsAHuggingFaceDirectory() throws IOException {
        Path run = dir.resolve("run");
        Path shipped = dir.resolve("shipped");
        assertEquals(0, cli.run(fineTune(gpt2(), tokens(), run, "--export", shipped.toString(), "--log-every", "1")));
        assertTrue(cli.err().contains("fine-tuning " + dir.resolve("gpt2")), cli.err());
        for (int step = 1; step <= 3; step++) {
            assertTrue(cli.out().contains("step " + step + "/3  loss "), cli.out());
        }
        try (CpuBackend backend = new CpuBackend()) {
            Trainer trainer = Trainer.resume(backend, run);
            assertEquals(Gpt2Checkpoint.readConfig(dir.resolve("gpt2/config.json")), trainer.config());
            assertEquals(3, trainer.step()); // the run's own steps: the pretrained model brings no optimizer state
        }
        try (Gpt2Checkpoint exported = Gpt2Checkpoint.open(shipped)) {
            assertEquals(Gpt2Checkpoint.readConfig(dir.resolve("gpt2/config.json")), exported.config());
        }
        assertEquals(0, cli.run("generate", "--model", run.toString(), "--prompt-ids", "1", "--max-tokens", "4"));
        assertEquals(4, cli.out().strip().split("\\s+").length, cli.out());
    }

    @Test
    void aLlama2cFileIsFineTunedAndExportedAsALlama2cFile() throws IOException {
        Path run = dir.resolve("run");
        Path shipped = dir.resolve("shipped");
        assertEquals(0, cli.run(fineTune(llama(), tokens(), run, "--export", shipped.toString())), cli.err());
        Path exported = shipped.resolve(Trainer.LLAMA2C_FILE);
        try (Llama2cCheckpoint checkpoint = Llama2cCheckpoint.open(exported)) {
            assertEquals(LLAMA, checkpoint.config());
        }
        for (Path model : new Path[] {run.resolve(Trainer.LLAMA2C_FILE), exported}) {
            assertEquals(
                    0,
                    cli.run("generate", "--model", model.toString(), "--prompt-ids", "1", "--max-tokens", "4"),
                    cli.err());
        }
        assertFalse(Files.isSameFile(run.resolve(Trainer.LLAMA2C_FILE), exported));
    }

    /** A llama2.c tokenizer of 260 tokens: the specials, the 256 byte tokens and the single space. */
    private Path llama2cTokenizer() throws IOException {
        List<byte[]> pieces = new ArrayList<>();
        for (String special : new String[] {"<unk>", "\n<s>\n", "\n</s>\n"}) {
            pieces.add(special.getBytes(StandardCharsets.UTF_8));
        }
        for (int b = 0; b < 256; b++) {
            pieces.add("<0x%02X>".formatted(b).getBytes(StandardCharsets.UTF_8));
        }
        pieces.add(new byte[] {' '});
        Path file = dir.resolve("tok260.bin");
        new Llama2cTokenizer(pieces, new float[pieces.size()]).write(file);
        return file;
    }

    @Test
    void aLlama2cModelTrainsOnTextWithItsTokenizerBinWhichIsKeptBesideIt() throws IOException {
        ModelConfig config = new ModelConfig(Architecture.LLAMA, 32, 88, 2, 4, 2, 260, 32, 1e-5f, 10000, true);
        Path model = dir.resolve("llama260.bin");
        Llama2cCheckpoint.writeRandom(model, config, 3);
        Path tokenizer = llama2cTokenizer();
        Path run = dir.resolve("run");
        assertEquals(
                0,
                cli.run(fineTune(model, CliFixtures.trainingText(dir), run, "--tokenizer", tokenizer.toString())),
                cli.err());
        Path kept = run.resolve("tokenizer.bin");
        assertTrue(cli.err().contains("--tokenizer " + kept), cli.err());
        assertEquals(
                0,
                cli.run(
                        "generate",
                        "--model",
                        run.resolve(Trainer.LLAMA2C_FILE).toString(),
                        "--tokenizer",
                        kept.toString(),
                        "--prompt",
                        "the",
                        "--max-tokens",
                        "3"),
                cli.err());
        // Stopped midway, the run resumes with the tokenizer kept beside it.
        CliFixtures.stopMidway(run, 5);
        assertEquals(
                0,
                cli.run("train", "--data", CliFixtures.trainingText(dir).toString(), "--resume", run.toString()),
                cli.err());
        assertTrue(cli.err().contains("saved step 5 to " + run), cli.err());
        // The tokenizer's 260 tokens are not the 64 of another model.
        assertRefused(
                fineTune(
                        llama(),
                        CliFixtures.trainingText(dir),
                        dir.resolve("other"),
                        "--tokenizer",
                        tokenizer.toString()),
                tokenizer.toString());
    }

    @Test
    void aPanamaxRunIsFineTunedWithItsCharacterVocabulary() throws IOException {
        Path text = CliFixtures.trainingText(dir);
        Path first = dir.resolve("first");
        String[] scratch = CliFixtures.train(text, 6, 16, first);
        assertEquals(0, cli.run(scratch), cli.err());
        Path second = dir.resolve("second");
        assertEquals(0, cli.run(fineTune(first, text, second)), cli.err());
        assertEquals(
                Files.readString(first.resolve(CharVocabulary.FILE)),
                Files.readString(second.resolve(CharVocabulary.FILE)));
        // Starting from trained weights, the first step's loss is that of a model that has learnt something.
        assertTrue(firstLoss(second) < firstLoss(first) - 0.1, firstLoss(second) + " vs " + firstLoss(first));
        assertEquals(
                0,
                cli.run("generate", "--model", second.toString(), "--prompt", "the ", "--max-tokens", "4"),
                cli.err());
    }

    private static double firstLoss(Path run) throws IOException {
        return Double.parseDouble(
                Files.readAllLines(run.resolve(LossCurve.CSV)).get(1).split(",")[2]);
    }

    @Test
    void optionsThatContradictThePretrainedModelAreRefusedInOneLine() throws IOException {
        Path gpt2 = gpt2();
        Path data = tokens();
        Path out = dir.resolve("out");
        assertRefused(fineTune(gpt2, data, out, "--config", "tiny"), "panamax: --config contradicts --init " + gpt2);
        assertRefused(fineTune(gpt2, data, out, "--arch", "llama"), "panamax: --arch contradicts --init " + gpt2);
        assertRefused(
                new String[] {"train", "--init", gpt2.toString(), "--data", data.toString(), "--seq", "64"},
                "panamax: --seq (64) must be at most the context of --init " + gpt2 + " (32)");
        Path llama = llama();
        CharVocabulary.of("abc").write(dir.resolve(CharVocabulary.FILE)); // beside llama.bin, of another size
        assertRefused(fineTune(llama, data, out), "has 3 tokens");
        Files.delete(dir.resolve(CharVocabulary.FILE));
        assertRefused(
                fineTune(llama, CliFixtures.trainingText(dir), out),
                "panamax: --data is text, but no tokenizer is known for the model (--init " + llama
                        + " has none beside it): give --tokenizer, or the data as an llm.c token file");
        assertRefused(
                new String[] {"train", "--data", data.toString(), "--resume", out.toString(), "--init", gpt2.toString()
                },
                "panamax: --init cannot change a resumed run");
        assertFalse(Files.exists(out));
        // Into the directory it starts from, --force would remove the model before the first checkpoint replaced it.
        byte[] weights = Files.readAllBytes(gpt2.resolve("model.safetensors"));
        assertRefused(
                fineTune(gpt2, data, gpt2, "--force"),
                "panamax: --init " + gpt2 + " is in --out " + gpt2 + ", which this run writes");
        assertArrayEquals(weights, Files.readAllBytes(gpt2.resolve("model.safetensors")));
        assertRefused(fineTune(llama, data, dir, "--force"), "panamax: --init " + llama + " is in --out " + dir);
        assertTrue(Files.exists(llama));
        // A run's checkpoint, through its current link or step directory, is in that run's directory too.
        Path run = dir.resolve("run");
        assertEquals(0, cli.run(fineTune(gpt2, data, run)), cli.err());
        for (Path inside : new Path[] {run.resolve("current"), run.resolve("current/model.safetensors")}) {
            assertRefused(fineTune(inside, data, run, "--force"), "panamax: --init " + inside + " is in --out " + run);
        }
        assertTrue(Files.exists(run.resolve("current/model.safetensors")));
    }

    @Test
    void aTokenFileOutsideTheModelsVocabularyIsRefusedNamingItAndTheBound() throws IOException {
        Path data = TokenFiles.write(dir.resolve("big.bin"), 1, 2, VOCAB, 3);
        assertRefused(
                fineTune(gpt2(), data, dir.resolve("out")),
                "panamax: " + data + ": token 2 is " + VOCAB + ", not below the model's vocabulary size " + VOCAB);
        Path text = CliFixtures.trainingText(dir);
        assertRefused(
                new String[] {
                    "train",
                    "--data",
                    TokenFiles.write(dir.resolve("t.bin"), 1, 2).toString()
                },
                "panamax: --data is an llm.c token file, whose ids need the model's vocabulary: give --init MODEL,"
                        + " --tokenizer DIR (GPT-2's BPE) or --config config.json");
        assertTrue(Files.exists(text));
    }

    @Test
    void optimizerOptionsAreCheckedByName() {
        String[] base = {
            "train", "--data", "unused.txt", "--out", dir.resolve("out").toString()
        };
        assertRefused(CliFixtures.with(base, "--beta1", "1"), "panamax: --beta1 (1) must be a finite number in [0, 1)");
        assertRefused(
                CliFixtures.with(base, "--beta2", "-0.1"), "panamax: --beta2 (-0.1) must be a finite number in [0, 1)");
        assertRefused(CliFixtures.with(base, "--eps", "0"), "panamax: --eps (0) must be a finite number > 0");
        assertRefused(
                CliFixtures.with(base, "--weight-decay", "-1"),
                "panamax: --weight-decay (-1) must be a finite number >= 0");
        assertRefused(
                CliFixtures.with(base, "--grad-clip", "NaN"),
                "panamax: --grad-clip (NaN) must be a finite number >= 0");
        assertRefused(
                CliFixtures.with(base, "--lr", "0.01", "--min-lr", "0.1"),
                "panamax: --min-lr (0.1) must be at most --lr (0.01)");
        assertRefused(
                CliFixtures.with(base, "--data-order", "random"),
                "panamax: --data-order (random) must be shuffled or sequential");
    }

    @Test
    void optimizerOptionsAndTheDataOrderAreStoredAndKeptOnResume() throws IOException {
        Path run = dir.resolve("run");
        String[] train = CliFixtures.train(
                CliFixtures.trainingText(dir),
                2,
                16,
                run,
                "--lr",
                "0.002",
                "--min-lr",
                "0.0005",
                "--warmup",
                "1",
                "--weight-decay",
                "0.05",
                "--beta1",
                "0.8",
                "--beta2",
                "0.99",
                "--eps",
                "1e-6",
                "--grad-clip",
                "0.5",
                "--data-order",
                "sequential");
        assertEquals(0, cli.run(train), cli.err());
        TrainingOptions expected = new TrainingOptions(
                2,
                16,
                1,
                0.002f,
                0.0005f,
                1,
                0.05f,
                0.8f,
                0.99f,
                1e-6f,
                0.5f,
                1337,
                TrainingOptions.DataOrder.SEQUENTIAL);
        try (CpuBackend backend = new CpuBackend()) {
            assertEquals(expected, Trainer.resume(backend, run).options());
        }
        for (String option :
                List.of("--lr", "--min-lr", "--weight-decay", "--beta1", "--beta2", "--eps", "--grad-clip")) {
            assertRefused(
                    new String[] {"train", "--data", "x", "--resume", run.toString(), option, "0.1"},
                    "panamax: " + option + " cannot change a resumed run");
        }
        assertRefused(
                new String[] {"train", "--data", "x", "--resume", run.toString(), "--data-order", "shuffled"},
                "panamax: --data-order cannot change a resumed run");
    }

    /** The command fails, and the first line it prints (the rest is the usage hint) says why. */
    private void assertRefused(String[] args, String expected) {
        assertTrue(cli.run(args) != 0, cli.err());
        String first = cli.err().lines().findFirst().orElse("");
        assertTrue(first.contains(expected), cli.err());
    }
}
