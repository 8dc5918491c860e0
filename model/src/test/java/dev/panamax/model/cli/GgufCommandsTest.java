package dev.panamax.model.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.panamax.kernels.testing.ReferenceOps;
import dev.panamax.model.backend.CpuBackend;
import dev.panamax.model.generate.Transformer;
import dev.panamax.model.io.GgufFile;
import dev.panamax.model.io.GgufLlama;
import dev.panamax.model.io.GgufValue;
import dev.panamax.model.io.GgufWriter;
import dev.panamax.model.io.TokenFile;
import dev.panamax.model.testing.SharedData;
import dev.panamax.model.testing.TokenizerFixtures;
import dev.panamax.model.tokenizer.CharVocabulary;
import dev.panamax.model.tokenizer.GgufTokenizer;
import java.io.IOException;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Consumer;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code panamax quantize}, {@code info}, {@code generate}, {@code perplexity} and {@code tokenize} on GGUF files. */
class GgufCommandsTest {
    private final CapturedCli cli = new CapturedCli(true);

    @TempDir
    Path dir;

    private Path quantize(String type) throws IOException {
        Path tokenizer = dir.resolve("tokenizer.bin");
        TokenizerFixtures.llama2cVocabulary(512).write(tokenizer);
        Path out = dir.resolve("stories260K-" + type + ".gguf");
        String model = SharedData.require("stories260K.bin").toString();
        assertEquals(
                0, cli.run(quantizeArgs(model, out, "--type", type, "--tokenizer", tokenizer.toString())), cli.err());
        assertTrue(cli.out().startsWith("wrote " + out), cli.out());
        return out;
    }

    /** {@code panamax quantize}'s arguments for {@code model} into {@code out}, then {@code more}. */
    private static String[] quantizeArgs(String model, Path out, String... more) {
        return CliFixtures.with(new String[] {"quantize", "--model", model, "--out", out.toString()}, more);
    }

    /**
     * Perplexity's data is only text, as llama.cpp's perplexity reads it: a special token's text in it (WikiText's
     * {@code <unk>}, HTML's {@code <s>}) is not that token, while a prompt's is.
     */
    @Test
    void perplexityDataDoesNotParseSpecialTokens() throws IOException {
        Path file = dir.resolve("vocabulary.gguf");
        TokenizerFixtures.writeGpt2(file, "gpt-2");
        int endOfText = 256 + 15;
        ModelFiles.Codec codec;
        try (GgufFile gguf = GgufFile.open(file)) {
            codec = ModelFiles.gguf(GgufTokenizer.read(gguf));
        }
        String text = "hello<|endoftext|> all";
        assertTrue(Arrays.stream(codec.encode(text)).anyMatch(id -> id == endOfText));
        assertTrue(Arrays.stream(codec.encodeText(text)).noneMatch(id -> id == endOfText));
    }

    /** {@code panamax perplexity}'s arguments for {@code model} on {@code data} in windows of 64, then {@code more}. */
    private static String[] perplexity64(Path model, Path data, String... more) {
        return CliFixtures.with(
                new String[] {"perplexity", "--model", model.toString(), "--data", data.toString(), "--context", "64"},
                more);
    }

    @Test
    void anF32FileGeneratesRunCsGreedyIds() throws IOException {
        Path f32 = quantize("f32");
        assertEquals(
                0,
                cli.run(CliFixtures.with(
                        new String[] {"generate", "--model", f32.toString()},
                        "--prompt-ids",
                        "1",
                        "--temperature",
                        "0",
                        "--max-tokens",
                        "40",
                        "--print-ids")),
                cli.err());
        assertEquals(CliFixtures.greedyIds(40), cli.out().strip());
    }

    @Test
    void everyTypeGeneratesTextWithItsOwnTokenizer() throws IOException {
        for (String type : new String[] {"f16", "bf16", "q8_0", "q4_0"}) {
            Path file = quantize(type);
            assertEquals(
                    0,
                    cli.run(
                            "generate",
                            "--model",
                            file.toString(),
                            "--prompt",
                            "the hello",
                            "--temperature",
                            "0",
                            "--max-tokens",
                            "12",
                            "--print-ids"),
                    type + ": " + cli.err());
            assertEquals(12, cli.out().strip().split(" ").length, type + ": " + cli.out());
            assertEquals(
                    0, cli.run("generate", "--model", file.toString(), "--prompt", "the hello", "-n", "5"), cli.err());
            assertTrue(cli.err().contains("decode: 4 tokens"), cli.err());
        }
    }

    @Test
    void infoListsTheTensorTypesAndTheTokenizer() throws IOException {
        Path q4 = quantize("q4_0");
        assertEquals(0, cli.run("info", q4.toString()), cli.err());
        String out = cli.out();
        assertTrue(out.contains("dim:            64"), out);
        assertTrue(out.contains("47 tensors (11 F32, 5 F16, 31 Q4_0)"), out);
        assertTrue(out.contains("tokenizer:      \"llama\", 512 tokens"), out);
    }

    /** Writes ids as an llm.c token file. */
    private Path tokenFile(int[] ids) throws IOException {
        ByteBuffer b = ByteBuffer.allocate(1024 + 2 * ids.length).order(ByteOrder.LITTLE_ENDIAN);
        b.putInt(TokenFile.MAGIC).putInt(1).putInt(ids.length).position(1024);
        for (int id : ids) {
            b.putShort((short) id);
        }
        Path file = dir.resolve("tokens.bin");
        Files.write(file, b.array());
        return file;
    }

    @Test
    void perplexityOfTheModelsOwnGreedyTextPredictsItBack() throws IOException {
        Path f32 = quantize("f32");
        int[] greedy = Arrays.stream(CliFixtures.greedyIds(127).split(" "))
                .mapToInt(Integer::parseInt)
                .toArray();
        int[] ids = new int[128];
        ids[0] = 1;
        System.arraycopy(greedy, 0, ids, 1, greedy.length);
        Path data = tokenFile(ids);
        assertEquals(0, cli.run(perplexity64(f32, data, "--print-top1")), cli.err());
        String[] lines = cli.out().split("\n");
        // Each window's second half predicts, greedily, the token that follows: its own greedy continuation.
        for (int w = 0; w < 2; w++) {
            int[] top1 = Arrays.stream(lines[w].strip().split(" "))
                    .mapToInt(Integer::parseInt)
                    .toArray();
            assertEquals(31, top1.length);
            if (w == 0) {
                assertEquals(
                        Arrays.toString(Arrays.copyOfRange(ids, 33, 64)), Arrays.toString(top1), "window 0's top-1");
            }
        }
        assertTrue(
                lines[2].startsWith("windows: 2 of 64 tokens (128 tokens in the data), 62 positions scored"), lines[2]);
        assertTrue(lines[3].startsWith("mean NLL: "), lines[3]);
        Path q8 = quantize("q8_0");
        assertEquals(0, cli.run(perplexity64(q8, data, "--base", f32.toString())), cli.err());
        // The numbers, against the same model decoded a token at a time (no batch) and the log-softmax in double: the
        // two passes' logits differ by float rounding only, far below the printed digits' 1e-6.
        double[] expected = teacherForced(q8, f32, ids, 64, 1);
        java.util.regex.Matcher printed = java.util.regex.Pattern.compile(
                        "mean NLL: ([0-9.]+) nats/token, perplexity: ([0-9.]+)\\n"
                                + "against the base: top-1 agreement [0-9.]+% \\(([0-9]+) of 62\\), mean KL divergence"
                                + " ([0-9.]+)")
                .matcher(cli.out());
        assertTrue(printed.find(), cli.out());
        assertEquals(expected[0], Double.parseDouble(printed.group(1)), 1e-5, "mean NLL");
        assertEquals(Math.exp(expected[0]), Double.parseDouble(printed.group(2)), 1e-4 * Math.exp(expected[0]));
        assertEquals((long) expected[2], Long.parseLong(printed.group(3)), "top-1 agreements");
        assertEquals(expected[1], Double.parseDouble(printed.group(4)), 1e-5, "mean KL divergence");
        assertEquals(0, cli.run(perplexity64(f32, data, "--base", f32.toString())), cli.err());
        assertTrue(cli.out().contains("top-1 agreement 100.00% (62 of 62), mean KL divergence 0.000000"), cli.out());
    }

    /**
     * {mean NLL, mean KL(base ‖ model), top-1 agreements} over windows of {@code context} tokens (the first replaced by
     * {@code bos} unless it is null, the second half scored), computed independently of the command: each model decoded one token at a time,
     * the log-softmax in double.
     */
    private static double[] teacherForced(Path model, Path base, int[] ids, int context, Integer bos)
            throws IOException {
        try (GgufLlama m = GgufLlama.open(model);
                GgufLlama b = GgufLlama.open(base);
                CpuBackend backend = new CpuBackend()) {
            Transformer t = Transformer.llama(backend, m, 1, context);
            Transformer tb = Transformer.llama(backend, b, 1, context);
            int vocab = m.config().vocabSize();
            float[] logits = new float[vocab];
            float[] baseLogits = new float[vocab];
            double nll = 0;
            double kl = 0;
            long agree = 0;
            long scored = 0;
            for (int w = 0; w + context <= ids.length; w += context) {
                int[] window = Arrays.copyOfRange(ids, w, w + context);
                if (bos != null) {
                    window[0] = bos;
                }
                t.reset();
                tb.reset();
                for (int j = 0; j + 1 < context; j++) {
                    backend.read(t.forward(window, j, 1), logits);
                    backend.read(tb.forward(window, j, 1), baseLogits);
                    if (j < context / 2) {
                        continue;
                    }
                    double[] lp = ReferenceOps.logSoftmax(ReferenceOps.toDouble(logits, 0, vocab), 1, vocab);
                    double[] blp = ReferenceOps.logSoftmax(ReferenceOps.toDouble(baseLogits, 0, vocab), 1, vocab);
                    nll -= lp[window[j + 1]];
                    int best = 0;
                    int baseBest = 0;
                    for (int v = 0; v < vocab; v++) {
                        kl += Math.exp(blp[v]) * (blp[v] - lp[v]);
                        best = logits[v] > logits[best] ? v : best;
                        baseBest = baseLogits[v] > baseLogits[baseBest] ? v : baseBest;
                    }
                    agree += best == baseBest ? 1 : 0;
                    scored++;
                }
            }
            return new double[] {nll / scored, kl / scored, agree};
        }
    }

    /** The mean NLL {@code panamax perplexity} prints for {@code model} on {@code data} in windows of 64. */
    private double printedNll(Path model, Path data, String... more) {
        assertEquals(0, cli.run(perplexity64(model, data, more)), cli.err());
        Matcher printed = Pattern.compile("mean NLL: ([0-9.]+) nats/token").matcher(cli.out());
        assertTrue(printed.find(), cli.out());
        return Double.parseDouble(printed.group(1));
    }

    /**
     * Writes a copy of a GGUF file with its metadata edited and, if {@code nanTensor} is not null, the first float of
     * that F32 tensor made NaN.
     */
    private static void copy(Path from, Path to, Consumer<Map<String, GgufValue>> edit, String nanTensor)
            throws IOException {
        try (GgufFile gguf = GgufFile.open(from)) {
            Map<String, GgufValue> metadata = new LinkedHashMap<>(gguf.metadata());
            metadata.remove(GgufFile.ALIGNMENT_KEY);
            edit.accept(metadata);
            List<GgufWriter.TensorData> tensors = new ArrayList<>();
            for (GgufFile.Tensor t : gguf.tensors().values()) {
                tensors.add(new GgufWriter.TensorData(t.name(), t.type(), t.dimensions(), target -> {
                    target.copyFrom(gguf.data(t));
                    if (t.name().equals(nanTensor)) {
                        target.setAtIndex(ValueLayout.JAVA_FLOAT_UNALIGNED, 0, Float.NaN);
                    }
                }));
            }
            GgufWriter.write(to, metadata, tensors);
        }
    }

    /**
     * llama.cpp starts each window with BOS only where the tokenizer adds one ({@code add_bos_token}); the data's own
     * first token stays otherwise.
     */
    @Test
    void perplexityStartsAWindowWithBosOnlyWhereTheTokenizerAddsIt() throws IOException {
        Path f32 = quantize("f32");
        Path noBos = dir.resolve("no-bos.gguf");
        copy(f32, noBos, m -> m.put("tokenizer.ggml.add_bos_token", GgufValue.of(false)), null);
        int[] ids = Arrays.stream(CliFixtures.greedyIds(128).split(" "))
                .mapToInt(Integer::parseInt)
                .toArray();
        assertTrue(ids[0] != 1 && ids[64] != 1, "windows that do not start with BOS");
        Path data = tokenFile(ids);
        assertEquals(teacherForced(f32, f32, ids, 64, 1)[0], printedNll(f32, data), 1e-5, "BOS added");
        assertEquals(teacherForced(noBos, noBos, ids, 64, null)[0], printedNll(noBos, data), 1e-5, "no BOS");
    }

    @Test
    void perplexityRefusesWindowsThatScoreNothingAndBrokenLogits() throws IOException {
        Path f32 = quantize("f32");
        Path data = tokenFile(new int[] {1, 5, 6, 7, 8, 9});
        String[] perplexity = {"perplexity", "--model", f32.toString(), "--data", data.toString(), "--context"};
        assertEquals(2, cli.run(CliFixtures.with(perplexity, "2")));
        assertTrue(cli.err().contains("--context"), cli.err());
        // A NaN in the final norm's weights makes every logit NaN: the figures would all be NaN.
        Path broken = dir.resolve("broken.gguf");
        copy(f32, broken, m -> {}, "output_norm.weight");
        perplexity[2] = broken.toString();
        assertEquals(1, cli.run(CliFixtures.with(perplexity, "4")));
        assertTrue(cli.err().contains("logits are not finite (token 0 is NaN at window 0, position 2)"), cli.err());
    }

    /** A character vocabulary that happens to lie beside a GGUF file is another model's; the file's own tokenizer wins. */
    @Test
    void aGgufFilesOwnTokenizerComesBeforeAVocabularyBesideIt() throws IOException {
        Path q8 = quantize("q8_0");
        CharVocabulary.of("abc").write(dir.resolve(CharVocabulary.FILE));
        String[] greedy = {"generate", "-m", q8.toString(), "-p", "the hello", "-n", "3", "--print-ids", "--temperature"
        };
        assertEquals(0, cli.run(CliFixtures.with(greedy, "0")), cli.err());
        String ids = cli.out().strip();
        // The file's tokenizer encoded the prompt (the 3-token vocabulary has no 't'); generation may stop at EOS.
        assertTrue(ids.matches("[0-9]+( [0-9]+){0,2}"), ids);
    }

    @Test
    void tokenizePrintsTheFileTokenizersIds() throws IOException {
        Path vocabulary = dir.resolve("spm.gguf");
        TokenizerFixtures.writeLlama(vocabulary);
        assertEquals(
                0, cli.run("tokenize", "--model", vocabulary.toString(), "--prompt", "the hello world"), cli.err());
        assertEquals("1 278 291 296", cli.out().strip());
        assertEquals(0, cli.run("tokenize", "-m", vocabulary.toString(), "-p", "<s>the", "--no-bos"), cli.err());
        assertEquals("1 278", cli.out().strip());
        Path absent = dir.resolve("absent.txt");
        assertEquals(1, cli.run("tokenize", "-m", vocabulary.toString(), "--file", absent.toString()));
        assertEquals("panamax: --file " + absent + ": no such file\n", cli.err());
    }

    @Test
    void aFifoGivenAsTheModelIsRefusedNotWaitedOn() throws Exception {
        Path fifo = dir.resolve("fifo");
        Process mkfifo = new ProcessBuilder("mkfifo", fifo.toString()).start();
        assumeTrue(mkfifo.waitFor() == 0, "no mkfifo here");
        int status = assertTimeoutPreemptively(
                java.time.Duration.ofSeconds(20), () -> cli.run(quantizeArgs(fifo.toString(), dir.resolve("f.gguf"))));
        assertEquals(1, status);
        assertTrue(cli.err().contains("not a regular file"), cli.err());
    }

    @Test
    void badChoicesAreUsageErrors() throws IOException {
        String model = SharedData.require("stories260K.bin").toString();
        assertEquals(2, cli.run(quantizeArgs(model, dir.resolve("x.gguf"), "--type", "q5_0")));
        assertTrue(cli.err().contains("--type (q5_0) must be one of f32, f16, bf16, q8_0 and q4_0"), cli.err());
        Path f32 = quantize("f32");
        assertEquals(2, cli.run(quantizeArgs(f32.toString(), dir.resolve("y.gguf"))));
        assertTrue(cli.err().contains("is already a GGUF file"), cli.err());
        // A target the file cannot be written to is named with its option, before the checkpoint is read.
        Path noFolder = dir.resolve("absent").resolve("z.gguf");
        assertEquals(1, cli.run(quantizeArgs(model, noFolder)));
        assertEquals(
                "panamax: --out " + noFolder + ": no such directory "
                        + noFolder.toAbsolutePath().getParent() + "\n",
                cli.err());
        assertEquals(1, cli.run(quantizeArgs(model, dir)));
        assertEquals("panamax: --out " + dir + ": is a directory; give the file to write\n", cli.err());
        Path text = dir.resolve("short.txt");
        Files.writeString(text, "the");
        assertEquals(2, cli.run("perplexity", "--model", f32.toString(), "--data", text.toString()));
        assertTrue(cli.err().contains("fewer than one window of 512"), cli.err());
    }
}
