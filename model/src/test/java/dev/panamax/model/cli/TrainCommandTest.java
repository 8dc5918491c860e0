package dev.panamax.model.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.panamax.model.testing.Gpt2Vocabulary;
import dev.panamax.model.train.LossCurve;
import dev.panamax.model.train.Trainer;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code panamax train}, then {@code generate} from what it wrote. */
class TrainCommandTest {
    private ByteArrayOutputStream out = new ByteArrayOutputStream();
    private ByteArrayOutputStream err = new ByteArrayOutputStream();

    @TempDir
    Path dir;

    private int run(String... args) {
        out = new ByteArrayOutputStream();
        err = new ByteArrayOutputStream();
        return Panamax.run(
                args,
                new PrintStream(out, true, StandardCharsets.UTF_8),
                new PrintStream(err, true, StandardCharsets.UTF_8));
    }

    private Path text() throws IOException {
        Path file = dir.resolve("text.txt");
        Files.writeString(file, "the quick brown fox jumps over the lazy dog.\n".repeat(30), StandardCharsets.UTF_8);
        return file;
    }

    @Test
    void trainsResumesExportsAndGenerates() throws IOException {
        Path data = text();
        Path run = dir.resolve("run");
        Path shipped = dir.resolve("shipped");
        String[] train = {
            "train",
            "--data",
            data.toString(),
            "--steps",
            "4",
            "--batch",
            "2",
            "--seq",
            "16",
            "--eval-every",
            "2",
            "--out",
            run.toString(),
            "--export",
            shipped.toString(),
            "--log-every",
            "1"
        };
        assertEquals(0, run(train), err.toString(StandardCharsets.UTF_8));
        String printed = out.toString(StandardCharsets.UTF_8);
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

        // Resuming a finished run has nothing left to do; asking for another plan is refused.
        assertEquals(0, run("train", "--data", data.toString(), "--resume", run.toString()));
        assertEquals(2, run("train", "--data", data.toString(), "--resume", run.toString(), "--steps", "8"));
        assertTrue(err.toString(StandardCharsets.UTF_8).contains("planned for 4 steps"));

        for (Path model : new Path[] {run, shipped}) {
            assertEquals(
                    0,
                    run(
                            "generate",
                            "--model",
                            model.toString(),
                            "--prompt",
                            "the ",
                            "--max-tokens",
                            "5",
                            "--seed",
                            "1"),
                    err.toString(StandardCharsets.UTF_8));
            String generated = out.toString(StandardCharsets.UTF_8).strip();
            assertEquals(5, generated.codePointCount(0, generated.length()), generated);
        }
    }

    @Test
    void trainsALlamaThatGenerateReadsAsALlama2cCheckpoint() throws IOException {
        Path run = dir.resolve("llama");
        assertEquals(
                0,
                run(
                        "train",
                        "--data",
                        text().toString(),
                        "--arch",
                        "llama",
                        "--steps",
                        "2",
                        "--batch",
                        "2",
                        "--seq",
                        "8",
                        "--out",
                        run.toString()),
                err.toString(StandardCharsets.UTF_8));
        assertTrue(Files.isRegularFile(run.resolve(Trainer.LLAMA2C_FILE)));
        assertEquals(0, run("generate", "--model", run.toString(), "--prompt", "fox", "--max-tokens", "3"));
        assertEquals(0, run("info", run.resolve(Trainer.LLAMA2C_FILE).toString()));
        assertTrue(out.toString(StandardCharsets.UTF_8).contains("architecture:   Llama"));
    }

    @Test
    void trainsOnGpt2TokensAndGeneratesWithTheSameTokenizer() throws IOException {
        Path vocabulary = Gpt2Vocabulary.require();
        Path run = dir.resolve("bpe");
        assertEquals(
                0,
                run(
                        "train",
                        "--data",
                        text().toString(),
                        "--tokenizer",
                        vocabulary.toString(),
                        "--steps",
                        "2",
                        "--batch",
                        "2",
                        "--seq",
                        "8",
                        "--out",
                        run.toString()),
                err.toString(StandardCharsets.UTF_8));
        assertTrue(err.toString(StandardCharsets.UTF_8).contains("vocabulary 50257"));
        assertTrue(Files.notExists(run.resolve("chars.json")));
        assertEquals(
                0,
                run(
                        "generate",
                        "--model",
                        run.toString(),
                        "--tokenizer",
                        vocabulary.toString(),
                        "--prompt",
                        "the quick",
                        "--max-tokens",
                        "3"),
                err.toString(StandardCharsets.UTF_8));
    }

    @Test
    void badDataIsReportedNotThrown() throws IOException {
        Path empty = Files.createFile(dir.resolve("empty.txt"));
        assertEquals(2, run("train", "--data", empty.toString()));
        assertTrue(err.toString(StandardCharsets.UTF_8).contains("holds no text"));
        assertEquals(1, run("train", "--data", dir.resolve("missing").toString()));
        assertTrue(err.toString(StandardCharsets.UTF_8).contains("no such text file or directory"));
        assertEquals(2, run("train", "--data", text().toString(), "--seq", "10000"));
        assertTrue(err.toString(StandardCharsets.UTF_8).contains("--seq (10000) must be a whole number in [1, 4096]"));
        assertEquals(2, run("train", "--data", text().toString(), "--config", "huge"));
        Files.write(dir.resolve("latin1.txt"), new byte[] {'a', (byte) 0xE9, 'b'});
        assertEquals(1, run("train", "--data", dir.resolve("latin1.txt").toString()));
    }
}
