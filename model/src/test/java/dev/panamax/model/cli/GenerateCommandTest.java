package dev.panamax.model.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.panamax.model.io.DType;
import dev.panamax.model.io.Gpt2Checkpoint;
import dev.panamax.model.io.Llama2cCheckpoint;
import dev.panamax.model.io.ModelConfig;
import dev.panamax.model.io.ModelConfig.Architecture;
import dev.panamax.model.testing.RandomWeights;
import dev.panamax.model.testing.SharedData;
import dev.panamax.model.tokenizer.Llama2cTokenizer;
import java.io.BufferedReader;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Objects;
import java.util.stream.Collectors;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code panamax generate} and {@code panamax info}. */
class GenerateCommandTest {
    private final ByteArrayOutputStream out = new ByteArrayOutputStream();
    private final ByteArrayOutputStream err = new ByteArrayOutputStream();

    @TempDir
    Path dir;

    private int run(String... args) {
        return Panamax.run(
                args,
                new PrintStream(out, true, StandardCharsets.UTF_8),
                new PrintStream(err, true, StandardCharsets.UTF_8));
    }

    private String out() {
        return out.toString(StandardCharsets.UTF_8);
    }

    private String err() {
        return err.toString(StandardCharsets.UTF_8);
    }

    @Test
    void infoPrintsTheConfigurationAndParameterCount() {
        String model = SharedData.require("stories260K.bin").toString();
        assertEquals(0, run("info", model), err());
        assertTrue(out().contains("architecture:   Llama"), out());
        assertTrue(out().contains("heads:          8 (key/value heads 4, head size 8)"), out());
        assertTrue(out().contains("parameters:     260,032 (0.26 M)"), out());
    }

    @Test
    void greedyIdsFromBosAreRunCsAndTheRatesFollow() throws IOException {
        String model = SharedData.require("stories260K.bin").toString();
        assertEquals(
                0,
                run(
                        "generate",
                        "--model",
                        model,
                        "--prompt-ids",
                        "1",
                        "--temperature",
                        "0",
                        "--max-tokens",
                        "40",
                        "--threads",
                        "1"),
                err());
        String expected;
        try (var in = Objects.requireNonNull(
                        getClass().getResourceAsStream("/dev/panamax/model/generate/stories260K-greedy.txt"));
                var reader = new BufferedReader(new InputStreamReader(in, StandardCharsets.UTF_8))) {
            expected = reader.lines().filter(l -> !l.startsWith("#")).limit(40).collect(Collectors.joining(" "));
        }
        assertEquals(expected, out().strip());
        assertTrue(
                err().matches("(?s)prefill: 1 tokens, [0-9.]+ tokens/s; decode: 39 tokens, [0-9.]+ tokens/s\\R"),
                err());
    }

    @Test
    void aTokenizerTurnsThePromptIntoIdsAndTheTokensIntoText() throws IOException {
        ModelConfig config = new ModelConfig(Architecture.LLAMA, 16, 32, 1, 2, 2, 300, 64, 1e-5f, 10000f, true);
        Path model = dir.resolve("model.bin");
        Llama2cCheckpoint.writeRandom(model, config, 3);
        List<byte[]> pieces = new ArrayList<>(List.of(new byte[0], "\n<s>\n".getBytes(), "\n</s>\n".getBytes()));
        for (int b = 0; b < 256; b++) {
            pieces.add("<0x%02X>".formatted(b).getBytes(StandardCharsets.US_ASCII));
        }
        while (pieces.size() < config.vocabSize()) {
            pieces.add(("x" + pieces.size()).getBytes(StandardCharsets.US_ASCII));
        }
        pieces.set(259, " ".getBytes(StandardCharsets.US_ASCII));
        Path tokenizer = dir.resolve("tokenizer.bin");
        new Llama2cTokenizer(pieces, new float[config.vocabSize()]).write(tokenizer);

        String[] sampled = {
            "generate",
            "--model",
            model.toString(),
            "--tokenizer",
            tokenizer.toString(),
            "--prompt",
            "hi",
            "--max-tokens",
            "5",
            "--seed",
            "9"
        };
        String[] printIds = Arrays.copyOf(sampled, sampled.length + 1);
        printIds[sampled.length] = "--print-ids";
        assertEquals(0, run(printIds), err());
        String[] ids = out().strip().split(" ");
        assertEquals(5, ids.length, out());
        assertTrue(err().contains("prefill: 4 tokens") && err().contains("seed 9"), err());

        out.reset();
        assertEquals(0, run(sampled), err());
        // The same seed gives the same tokens, now decoded: byte tokens as their byte, the others as their piece.
        ByteArrayOutputStream text = new ByteArrayOutputStream();
        for (String id : ids) {
            int token = Integer.parseInt(id);
            text.writeBytes(token >= 3 && token < 259 ? new byte[] {(byte) (token - 3)} : pieces.get(token));
        }
        text.writeBytes(System.lineSeparator().getBytes(StandardCharsets.US_ASCII));
        assertEquals(Arrays.toString(text.toByteArray()), Arrays.toString(out.toByteArray()));
    }

    @Test
    void aGpt2DirectoryRunsAndReportsItself() throws IOException {
        ModelConfig config = new ModelConfig(Architecture.GPT2, 16, 64, 2, 2, 2, 40, 32, 1e-5f, 0, true);
        Gpt2Checkpoint.write(dir, config, RandomWeights.gpt2(config, 5), DType.F16);
        assertEquals(0, run("info", dir.toString()), err());
        assertTrue(out().contains("architecture:   GPT-2") && out().contains("context length: 32"), out());
        out.reset();
        assertEquals(
                0, run("generate", "--model", dir.toString(), "--prompt-ids", "3,4,5", "--temperature", "0"), err());
        assertEquals(30, out().strip().split(" ").length, "the default fills the context: " + out());
        assertTrue(err().contains("prefill: 3 tokens") && err().contains("decode: 29 tokens"), err());
    }

    @Test
    void badArgumentsAreUsageErrorsThatSayWhy() {
        String model = SharedData.require("stories260K.bin").toString();
        String[][] cases = {
            {"exactly one of --prompt TEXT and --prompt-ids", "generate", "--model", model},
            {"--prompt needs --tokenizer FILE", "generate", "--model", model, "--prompt", "Once"},
            {"--prompt-ids: '512' must be a token id in [0, 512)", "generate", "--model", model, "--prompt-ids", "1,512"
            },
            {
                "--max-tokens (600) must be a whole number in [0, 512]",
                "generate",
                "--model",
                model,
                "--prompt-ids",
                "1",
                "--max-tokens",
                "600"
            },
            {"topP (1.5) must be in (0, 1]", "generate", "--model", model, "--prompt-ids", "1", "--top-p", "1.5"},
            {"unknown option '--bogus'", "generate", "--bogus"},
            {"info needs exactly one model FILE", "info"}
        };
        for (String[] c : cases) {
            err.reset();
            assertEquals(2, run(Arrays.copyOfRange(c, 1, c.length)), String.join(" ", c));
            assertTrue(err().contains(c[0]), c[0] + " in: " + err());
        }
    }

    @Test
    void withoutAModelTheBuiltInOneGenerates() {
        assertEquals(0, run("generate", "--prompt", "The ", "--max-tokens", "20", "--seed", "3"), err());
        String text = out().replaceFirst("\\R$", "");
        assertEquals(20, text.codePointCount(0, text.length()), text);
        assertTrue(err().contains("decode: 19 tokens"), err());
    }

    @Test
    void aMissingOrBrokenModelFileIsOneClearLine() throws IOException {
        assertEquals(1, run("info", dir.resolve("absent.bin").toString()));
        assertTrue(err().contains("absent.bin"), err());
        Path broken = dir.resolve("broken.bin");
        java.nio.file.Files.write(broken, new byte[10]);
        err.reset();
        assertEquals(1, run("generate", "--model", broken.toString(), "--prompt-ids", "1"));
        assertTrue(err().startsWith("panamax: " + broken) && err().lines().count() == 1, err());
    }
}
