package dev.panamax.model.cli;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.panamax.kernels.Parallelism;
import dev.panamax.model.io.DType;
import dev.panamax.model.io.Gpt2Checkpoint;
import dev.panamax.model.io.Llama2cCheckpoint;
import dev.panamax.model.nn.ModelConfig;
import dev.panamax.model.nn.ModelConfig.Architecture;
import dev.panamax.model.testing.RandomWeights;
import dev.panamax.model.testing.SharedData;
import dev.panamax.model.tokenizer.Llama2cTokenizer;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.stream.IntStream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code panamax generate} and {@code panamax info}. */
class GenerateCommandTest {
    private final CapturedCli cli = new CapturedCli(false);

    @TempDir
    Path dir;

    @Test
    void generatedControlCharactersAreNotWrittenButWhitespaceAndUtf8Are() {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        java.io.PrintStream out = new java.io.PrintStream(bytes, true, StandardCharsets.UTF_8);
        GenerateCommand.Printable text = new GenerateCommand.Printable(out);
        text.write(new byte[] {'a', 0x1B, '[', '2', 'J', 0x07, '\n', '\t', 0x7F, 0x00});
        text.write(new byte[] {(byte) 0xC3}); // é split across two tokens
        text.write(new byte[] {(byte) 0xA9, '\r', 0x0C});
        text.finish();
        assertEquals("a[2J\n\té\r\f", bytes.toString(StandardCharsets.UTF_8));
    }

    @Test
    void generatedC1ControlsAreNotWrittenAsCharactersOrBytes() {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        GenerateCommand.Printable text =
                new GenerateCommand.Printable(new PrintStream(bytes, true, StandardCharsets.UTF_8));
        // CSI as UTF-8 (C2 9B, split across tokens) and as a raw byte, NEL (C2 85) and 0x80 go; — (E2 80 94) stays,
        // though its continuation bytes are in C1's range.
        text.write(new byte[] {'a', (byte) 0xC2});
        text.write(new byte[] {(byte) 0x9B, '2', 'J', (byte) 0x9B, 'K', (byte) 0xC2, (byte) 0x85, (byte) 0x80});
        text.write("—é".getBytes(StandardCharsets.UTF_8));
        text.write(new byte[] {(byte) 0xE2, (byte) 0x80}); // a character cut short by the next byte, then the end
        text.write(new byte[] {'b', (byte) 0xE2, (byte) 0x9B});
        text.finish();
        // A cut-short character keeps its lead byte (E2), not its continuation bytes in C1's range.
        byte[] expected = {
            'a',
            '2',
            'J',
            'K',
            (byte) 0xE2,
            (byte) 0x80,
            (byte) 0x94,
            (byte) 0xC3,
            (byte) 0xA9,
            (byte) 0xE2,
            'b',
            (byte) 0xE2
        };
        assertArrayEquals(expected, bytes.toByteArray());
    }

    /**
     * Malformed UTF-8 whose bytes a lenient decoder reads as a control: an overlong ESC (E0 80 9B), a surrogate (ED A0
     * 80), a code point past U+10FFFF (F4 90 80 80). Their bytes in C1's range go; a well-formed Û (C3 9B) stays.
     */
    @Test
    void malformedUtf8IsNotWrittenAsACharacter() {
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        GenerateCommand.Printable text =
                new GenerateCommand.Printable(new PrintStream(bytes, true, StandardCharsets.UTF_8));
        text.write(new byte[] {(byte) 0xE0, (byte) 0x80, (byte) 0x9B, (byte) 0xED, (byte) 0xA0, (byte) 0x80});
        text.write(new byte[] {(byte) 0xF4, (byte) 0x90, (byte) 0x80, (byte) 0x80, (byte) 0xC3, (byte) 0x9B});
        text.finish();
        assertArrayEquals(
                new byte[] {(byte) 0xE0, (byte) 0xED, (byte) 0xA0, (byte) 0xF4, (byte) 0xC3, (byte) 0x9B},
                bytes.toByteArray());
    }

    @Test
    void infoPrintsTheConfigurationAndParameterCount() {
        String model = SharedData.require("stories260K.bin").toString();
        assertEquals(0, cli.run("info", model), cli.err());
        assertTrue(cli.out().contains("architecture:   Llama"), cli.out());
        assertTrue(cli.out().contains("heads:          8 (key/value heads 4, head size 8)"), cli.out());
        assertTrue(cli.out().contains("parameters:     260,032 (0.26 M)"), cli.out());
        String printed = cli.out();
        cli.resetOut();
        assertEquals(0, cli.run("info", "-m", model), cli.err());
        assertEquals(printed, cli.out(), "-m names the model as the operand does");
    }

    @Test
    void greedyIdsFromBosAreRunCsAndTheRatesFollow() throws IOException {
        assertEquals(0, cli.run(CliFixtures.greedy("--threads", "1")), cli.err());
        assertEquals(CliFixtures.greedyIds(40), cli.out().strip());
        assertTrue(
                cli.err()
                        .matches("(?s)prefill: 1 tokens, [0-9.]+ tokens/s; decode: 39 tokens, [0-9.]+ tokens/s;"
                                + " first token after [0-9]+ ms from start\\R"),
                cli.err());
    }

    @Test
    void aTokenizerTurnsThePromptIntoIdsAndTheTokensIntoText() throws IOException {
        Llama llama = llamaWithTokenizer();
        Path model = llama.model();
        Path tokenizer = llama.tokenizer();
        List<byte[]> pieces = llama.pieces();

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
        assertEquals(0, cli.run(printIds), cli.err());
        String[] ids = cli.out().strip().split(" ");
        assertEquals(5, ids.length, cli.out());
        assertTrue(cli.err().contains("prefill: 4 tokens") && cli.err().contains("seed 9"), cli.err());

        cli.resetOut();
        assertEquals(0, cli.run(sampled), cli.err());
        // The same seed gives the same tokens, now decoded: byte tokens as their byte, the others as their piece.
        ByteArrayOutputStream text = new ByteArrayOutputStream();
        for (String id : ids) {
            int token = Integer.parseInt(id);
            text.writeBytes(token >= 3 && token < 259 ? new byte[] {(byte) (token - 3)} : pieces.get(token));
        }
        text.writeBytes(System.lineSeparator().getBytes(StandardCharsets.US_ASCII));
        // The sampled bytes start no UTF-8 character, so those in C1's range (0x80 to 0x9F) are not written.
        byte[] sampledBytes = text.toByteArray();
        assertTrue(
                IntStream.range(0, sampledBytes.length).allMatch(i -> (sampledBytes[i] & 0xFF) < 0xC2),
                Arrays.toString(sampledBytes));
        byte[] expected = IntStream.range(0, sampledBytes.length)
                .filter(i -> (sampledBytes[i] & 0xE0) != 0x80)
                .collect(ByteArrayOutputStream::new, (bytes, i) -> bytes.write(sampledBytes[i]), (a, b) -> {})
                .toByteArray();
        assertEquals(Arrays.toString(expected), Arrays.toString(cli.outBytes()));
    }

    @Test
    void aGpt2DirectoryRunsAndReportsItself() throws IOException {
        ModelConfig config = new ModelConfig(Architecture.GPT2, 16, 64, 2, 2, 2, 40, 32, 1e-5f, 0, true);
        Gpt2Checkpoint.write(dir, config, RandomWeights.gpt2(config, 5), DType.F16);
        assertEquals(0, cli.run("info", dir.toString()), cli.err());
        assertTrue(cli.out().contains("architecture:   GPT-2") && cli.out().contains("context length: 32"), cli.out());
        cli.resetOut();
        assertEquals(
                0,
                cli.run("generate", "--model", dir.toString(), "--prompt-ids", "3,4,5", "--temperature", "0"),
                cli.err());
        assertEquals(30, cli.out().strip().split(" ").length, "the default fills the context: " + cli.out());
        assertTrue(cli.err().contains("prefill: 3 tokens") && cli.err().contains("decode: 29 tokens"), cli.err());
        assertEquals(2, cli.run("generate", "--model", dir.toString()));
        assertTrue(
                cli.err()
                        .contains("this model has no beginning-of-text token to start from: give --prompt TEXT or"
                                + " --prompt-ids IDS"),
                cli.err());
    }

    @Test
    void theCacheHoldsWhatTheRunFeedsBackNotTheHeadersContext() throws IOException {
        // The issue's 8.5 MB file: a cache for its whole context would zero-fill 16 GB.
        ModelConfig config = new ModelConfig(Architecture.LLAMA, 2, 2, 1000, 1, 1, 4, 1 << 20, 1e-5f, 10000, true);
        Path file = dir.resolve("huge-context.bin");
        Llama2cCheckpoint.writeRandom(file, config, 1);
        assertEquals(
                0, cli.run("generate", "-m", file.toString(), "--prompt-ids", "1,2", "-n", "3", "-s", "1"), cli.err());
        assertTrue(cli.err().contains("prefill: 2 tokens"), cli.err());
    }

    @Test
    void threadsSetTheKernelsThreadCountForTheProcess() throws IOException {
        ModelConfig config = new ModelConfig(Architecture.LLAMA, 8, 16, 1, 2, 2, 8, 16, 1e-5f, 10000, true);
        Path file = dir.resolve("tiny.bin");
        Llama2cCheckpoint.writeRandom(file, config, 1);
        int before = Parallelism.threads();
        try {
            assertEquals(
                    0,
                    cli.run("generate", "-m", file.toString(), "--prompt-ids", "1", "-n", "2", "-t", "3"),
                    cli.err());
            assertEquals(3, Parallelism.threads());
        } finally {
            Parallelism.setThreads(before);
        }
    }

    @Test
    void aModelThatIsNotARegularFileIsRefusedWithoutBlocking() throws IOException, InterruptedException {
        Path fifo = dir.resolve("model.bin");
        assertEquals(0, new ProcessBuilder("mkfifo", fifo.toString()).start().waitFor());
        assertEquals(1, cli.run("generate", "-m", fifo.toString(), "--prompt-ids", "1"));
        assertEquals("panamax: " + fifo + ": not a regular file or directory\n", cli.err());
    }

    @Test
    void aVocabularyOfAnotherSizeIsRefusedBeforeAnythingRuns() throws IOException {
        ModelConfig config = new ModelConfig(Architecture.GPT2, 16, 64, 2, 2, 2, 40, 32, 1e-5f, 0, true);
        Gpt2Checkpoint.write(dir, config, RandomWeights.gpt2(config, 5), DType.F16);
        Path chars = dir.resolve(dev.panamax.model.tokenizer.CharVocabulary.FILE);
        dev.panamax.model.tokenizer.CharVocabulary.of("abc").write(chars);
        assertEquals(1, cli.run("generate", "-m", dir.toString(), "-p", "ab"));
        assertEquals(
                "panamax: " + chars + ": character vocabulary has 3 tokens, but the model " + dir
                        + " has a vocabulary of 40; they must be equal (is this the model's tokenizer?)\n",
                cli.err());
        assertEquals("", cli.out(), "nothing generated");
    }

    @Test
    void badArgumentsAreUsageErrorsThatSayWhy() {
        String model = SharedData.require("stories260K.bin").toString();
        String[][] cases = {
            {"give --prompt or --prompt-ids, not both", "generate", "-m", model, "--prompt", "a", "--prompt-ids", "1"},
            {"-p needs --tokenizer FILE for this model", "generate", "--model", model, "-p", "Once"},
            {"--prompt-ids: '512' must be a token id in [0, 512)", "generate", "--model", model, "--prompt-ids", "1,512"
            },
            {
                "--max-tokens (600) must be a whole number in [0, 512]: the prompt (1 token) and the tokens generated"
                        + " after it, but the last (which is never fed back), must fit in the context (512)",
                "generate",
                "--model",
                model,
                "--prompt-ids",
                "1",
                "--max-tokens",
                "600"
            },
            {"-n (-1) must be a whole number >= 0", "generate", "-m", model, "-n", "-1"},
            {"--top-p (1.5) must be a finite number in (0, 1]", "generate", "-m", model, "--top-p", "1.5"},
            {"--temperature (1e50) must be a finite number >= 0", "generate", "-m", model, "--temperature=1e50"},
            {"unknown option '--bogus'", "generate", "--bogus"},
            {"info needs FILE", "info"},
            {
                "--precision tf32: the cpu backend computes products in fp32 only",
                "generate",
                "-m",
                model,
                "--precision",
                "tf32",
                "-n",
                "0"
            }
        };
        for (String[] c : cases) {
            cli.resetErr();
            assertEquals(2, cli.run(Arrays.copyOfRange(c, 1, c.length)), String.join(" ", c));
            assertTrue(cli.err().startsWith("panamax: " + c[0]), c[0] + " in: " + cli.err());
            assertTrue(cli.err().contains("usage: panamax "), cli.err());
        }
    }

    @Test
    void withoutAPromptALlamaStartsFromBosAsRunCDoes() throws IOException {
        String model = SharedData.require("stories260K.bin").toString();
        assertEquals(0, cli.run("generate", "-m", model, "--temperature", "0", "-n", "40", "-t", "1"), cli.err());
        String fromBos = cli.out();
        cli.resetOut();
        assertEquals(
                0, cli.run("generate", "-m", model, "--prompt-ids", "1", "--temperature", "0", "-n", "40"), cli.err());
        assertEquals(cli.out(), fromBos);
        assertTrue(cli.err().contains("prefill: 1 token"), cli.err());
    }

    @Test
    void aPromptLongerThanTheContextIsRefusedBeforeAnythingRuns() throws IOException {
        String model = SharedData.require("stories260K.bin").toString();
        String ids = String.join(",", java.util.Collections.nCopies(513, "5"));
        assertEquals(2, cli.run("generate", "-m", model, "--prompt-ids", ids));
        assertTrue(
                cli.err().startsWith("panamax: the prompt (513 tokens) is longer than the context (512)\n"), cli.err());
        assertTrue(!cli.err().contains("prefill") && cli.out().isEmpty(), cli.err());

        // A prompt that fills the context leaves room for one token, and the bound says so.
        String full = String.join(",", java.util.Collections.nCopies(512, "5"));
        cli.resetErr();
        assertEquals(2, cli.run("generate", "-m", model, "--prompt-ids", full, "-n", "2"));
        assertTrue(
                cli.err().startsWith("panamax: -n (2) must be a whole number in [0, 1]: the prompt (512 tokens)"),
                cli.err());

        // Text is measured before it is encoded: a character model's prompt by its characters.
        cli.resetErr();
        assertEquals(2, cli.run("generate", "--prompt", "x".repeat(40_000)));
        assertTrue(
                cli.err().startsWith("panamax: the prompt (at least 40000 tokens) is longer than the context (128)\n"),
                cli.err());
    }

    @Test
    void aLlama2cPromptIsMeasuredByTheTokenizersLongestPieceBeforeEncoding() throws IOException {
        Llama llama = llamaWithTokenizer();
        String model = llama.model().toString();
        String tokenizer = llama.tokenizer().toString();
        // The longest piece has 6 bytes: 60,000 bytes are at least 10,001 tokens with BOS.
        assertEquals(2, cli.run("generate", "-m", model, "--tokenizer", tokenizer, "-p", "ab".repeat(30_000)));
        assertTrue(
                cli.err().startsWith("panamax: the prompt (at least 10001 tokens) is longer than the context (64)\n"),
                cli.err());
        // Short enough by that bound, too long once encoded.
        cli.resetErr();
        assertEquals(2, cli.run("generate", "-m", model, "--tokenizer", tokenizer, "-p", "hi ".repeat(30)));
        assertTrue(
                cli.err().matches("panamax: the prompt \\(\\d+ tokens\\) is longer than the context \\(64\\)\\n(?s).*"),
                cli.err());
    }

    @Test
    void maxTokensZeroRunsNothingAndReportsNothing() {
        String model = SharedData.require("stories260K.bin").toString();
        assertEquals(0, cli.run("generate", "-m", model, "--prompt-ids", "1,2,3", "-n", "0"), cli.err());
        assertEquals("", cli.out());
        assertEquals("", cli.err());
    }

    @Test
    void oneTokenReportsThePrefillAndNoDecodeRate() {
        String model = SharedData.require("stories260K.bin").toString();
        assertEquals(
                0,
                cli.run("generate", "-m", model, "--prompt-ids", "1,2,3", "-n", "1", "--temperature", "0"),
                cli.err());
        assertTrue(
                cli.err()
                        .matches("prefill: 3 tokens, [0-9.]+ tokens/s; decode: 0 tokens; first token after [0-9]+ ms"
                                + " from start\\R"),
                cli.err());
    }

    @Test
    void aGgufFileIsReadAsGgufNotMisreadAsLlama2c() throws IOException {
        Path gguf = dir.resolve("model.gguf");
        java.nio.file.Files.write(gguf, "GGUF\3\0\0\0 and then a header llama2.c would misread".getBytes());
        for (String[] args : new String[][] {{"info", gguf.toString()}, {"generate", "-m", gguf.toString()}}) {
            cli.resetErr();
            assertEquals(1, cli.run(args));
            assertTrue(cli.err().startsWith("panamax: " + gguf + ": tensor_count is "), cli.err());
            assertTrue(
                    cli.err().contains("more than the 33 bytes left in the file can hold (1 of at least 33 bytes)"),
                    cli.err());
        }
    }

    @Test
    void missingFilesSayWhatIsMissingWhereAndWhichOptionNamedIt() throws IOException {
        Llama llama = llamaWithTokenizer();
        ModelConfig config = new ModelConfig(Architecture.GPT2, 16, 64, 2, 2, 2, 40, 32, 1e-5f, 0, true);
        Path gpt2 = java.nio.file.Files.createDirectories(dir.resolve("gpt2"));
        Gpt2Checkpoint.write(gpt2, config, RandomWeights.gpt2(config, 5), DType.F16);
        Path empty = java.nio.file.Files.createDirectories(dir.resolve("empty"));
        Path weightsAlone = java.nio.file.Files.createDirectories(dir.resolve("alone"));
        java.nio.file.Files.copy(gpt2.resolve("model.safetensors"), weightsAlone.resolve("model.safetensors"));
        Path tokenizerDir = java.nio.file.Files.createDirectories(dir.resolve("bpe"));
        java.nio.file.Files.writeString(tokenizerDir.resolve("encoder.json"), "{}");
        String[][] cases = {
            {
                "-m " + dir.resolve("absent.bin") + ": no such file or directory",
                "-m",
                dir.resolve("absent.bin").toString()
            },
            {
                "--model " + empty + ": holds neither config.json and model.safetensors (GPT-2) nor model.bin"
                        + " (llama2.c)",
                "--model",
                empty.toString()
            },
            {
                "-m " + weightsAlone.resolve("model.safetensors") + ": GPT-2's config.json is missing (looked for "
                        + weightsAlone.toAbsolutePath().resolve("config.json") + ")",
                "-m",
                weightsAlone.resolve("model.safetensors").toString()
            },
            {
                "--tokenizer " + dir.resolve("tok.bin") + ": no such file or directory",
                "-m",
                llama.model().toString(),
                "--tokenizer",
                dir.resolve("tok.bin").toString(),
                "-p",
                "hi"
            },
            {
                "--tokenizer " + tokenizerDir + ": GPT-2's vocab.bpe (or merges.txt) is missing there",
                "-m",
                gpt2.toString(),
                "--tokenizer",
                tokenizerDir.toString()
            },
        };
        for (String[] c : cases) {
            cli.resetErr();
            String[] args = new String[c.length];
            args[0] = "generate";
            System.arraycopy(c, 1, args, 1, c.length - 1);
            assertEquals(1, cli.run(args), String.join(" ", args));
            assertEquals("panamax: " + c[0] + "\n", cli.err(), "one line, no usage");
        }
    }

    /** A random llama2.c model with context 64, and a tokenizer for it with these pieces. */
    private record Llama(Path model, Path tokenizer, List<byte[]> pieces) {}

    /** Byte tokens, a space and filler pieces: the longest piece, "<0xFF>" and the like, has 6 bytes. */
    private Llama llamaWithTokenizer() throws IOException {
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
        return new Llama(model, tokenizer, pieces);
    }

    @Test
    void withoutAModelTheBuiltInOneGenerates() {
        assertEquals(0, cli.run("generate", "--prompt", "The ", "--max-tokens", "20", "--seed", "3"), cli.err());
        String text = cli.out().replaceFirst("\\R$", "");
        assertEquals(20, text.codePointCount(0, text.length()), text);
        assertTrue(cli.err().contains("decode: 19 tokens"), cli.err());

        // With nothing at all it starts from a line break, the start of a text in the data it was trained on.
        cli.resetOut();
        cli.resetErr();
        assertEquals(0, cli.run("generate", "-n", "10", "-s", "3"), cli.err());
        text = cli.out().replaceFirst("\\R$", "");
        assertEquals(10, text.codePointCount(0, text.length()), text);
        assertTrue(cli.err().startsWith("prefill: 1 tokens, "), cli.err());
    }

    @Test
    void aMissingOrBrokenModelFileIsOneClearLine() throws IOException {
        assertEquals(1, cli.run("info", dir.resolve("absent.bin").toString()));
        assertTrue(cli.err().contains("absent.bin"), cli.err());
        Path broken = dir.resolve("broken.bin");
        java.nio.file.Files.write(broken, new byte[10]);
        cli.resetErr();
        assertEquals(1, cli.run("generate", "--model", broken.toString(), "--prompt-ids", "1"));
        assertTrue(
                cli.err().startsWith("panamax: " + broken) && cli.err().lines().count() == 1, cli.err());
        assertTrue(!cli.err().contains("usage"), cli.err());
    }
}
