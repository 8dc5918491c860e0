package dev.panamax.model.generate;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.panamax.kernels.testing.Inputs;
import dev.panamax.model.backend.CpuBackend;
import dev.panamax.model.io.Llama2cCheckpoint;
import dev.panamax.model.nn.ModelConfig;
import dev.panamax.model.nn.ModelConfig.Architecture;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.stream.IntStream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class GeneratorTest {
    private static final ModelConfig CONFIG =
            new ModelConfig(Architecture.LLAMA, 32, 64, 2, 4, 4, 50, 40, 1e-5f, 10000f, true);
    private static final int[] PROMPT = {1, 7, 9};

    @TempDir
    Path dir;

    private Llama2cCheckpoint checkpoint;
    private CpuBackend backend;
    private Transformer model;

    @BeforeEach
    void open() throws IOException {
        Path file = dir.resolve("model.bin");
        Llama2cCheckpoint.writeRandom(file, CONFIG, Inputs.seed("generator"));
        checkpoint = Llama2cCheckpoint.open(file);
        backend = new CpuBackend();
        model = Transformer.llama(backend, CONFIG, checkpoint.weights(), Transformer.DEFAULT_MAX_BATCH);
    }

    @AfterEach
    void close() {
        backend.close();
        checkpoint.close();
    }

    @Test
    void streamsEachTokenAsTheResultListsIt() {
        List<Integer> streamed = new ArrayList<>();
        Generator.Result result = new Generator(model, Sampler.greedy(), Set.of()).generate(PROMPT, 12, streamed::add);
        assertEquals(12, result.tokens().length);
        assertArrayEquals(
                result.tokens(), streamed.stream().mapToInt(Integer::intValue).toArray());
        assertEquals(3, result.promptTokens());
        assertEquals(11, result.decodeSteps());
        assertFalse(result.stopped());
        assertTrue(result.prefillTokensPerSecond() > 0 && result.decodeTokensPerSecond() > 0);
    }

    @Test
    void aStopTokenEndsTheGenerationUnseen() {
        int[] free = new Generator(model, Sampler.greedy(), Set.of())
                .generate(PROMPT, 12, t -> {})
                .tokens();
        int stop = free[5];
        int first = IntStream.range(0, free.length)
                .filter(i -> free[i] == stop)
                .findFirst()
                .orElseThrow();
        List<Integer> streamed = new ArrayList<>();
        Generator.Result result =
                new Generator(model, Sampler.greedy(), Set.of(stop)).generate(PROMPT, 12, streamed::add);
        assertTrue(result.stopped());
        assertArrayEquals(java.util.Arrays.copyOf(free, first), result.tokens());
        assertEquals(first, streamed.size());
    }

    @Test
    void aPromptLongerThanTheContextIsNamedAsSuch() {
        int[] prompt = new int[model.contextLength() + 1];
        assertEquals(
                "prompt (" + prompt.length + " tokens) must fit in the context length (" + model.contextLength() + ")",
                assertThrows(IllegalArgumentException.class, () -> new Generator(model, Sampler.greedy(), Set.of())
                                .generate(prompt, 0, t -> {}))
                        .getMessage());
    }

    @Test
    void aSeededSamplerReproducesAGeneration() {
        int[] once = new Generator(model, new Sampler(1, 0, 0.9f, 11), Set.of())
                .generate(PROMPT, 20, t -> {})
                .tokens();
        int[] twice = new Generator(model, new Sampler(1, 0, 0.9f, 11), Set.of())
                .generate(PROMPT, 20, t -> {})
                .tokens();
        assertArrayEquals(once, twice);
    }

    @Test
    void nonFiniteLogitsStopTheGenerationNamingTheStepAndPosition() throws IOException {
        // A separate classifier, so that a NaN embedding row spoils only the passes that feed its token.
        ModelConfig config = new ModelConfig(Architecture.LLAMA, 32, 64, 2, 4, 4, 50, 40, 1e-5f, 10000f, false);
        Path file = dir.resolve("separate.bin");
        Llama2cCheckpoint.writeRandom(file, config, Inputs.seed("generator"));
        int[] clean = generate(file, config, new ArrayList<>());
        // The first generated token, after the first, that neither the prompt nor an earlier token holds.
        int k = IntStream.range(1, clean.length)
                .filter(i -> IntStream.concat(
                                IntStream.of(PROMPT), IntStream.of(clean).limit(i))
                        .noneMatch(t -> t == clean[i]))
                .findFirst()
                .orElseThrow();
        spoilEmbedding(file, config, clean[k], Float.NaN);
        List<Integer> streamed = new ArrayList<>();
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> generate(file, config, streamed));
        assertEquals(
                "generation stopped: the logits of decode step " + (k + 1) + " (choosing the token at position "
                        + (PROMPT.length + k + 1) + ") are not finite: 50 of the 50 logits are not finite (logit 0"
                        + " is NaN)",
                e.getMessage());
        assertEquals(IntStream.of(clean).limit(k + 1).boxed().toList(), streamed, "the tokens before the step stand");

        spoilEmbedding(file, config, PROMPT[2], Float.POSITIVE_INFINITY);
        e = assertThrows(IllegalStateException.class, () -> generate(file, config, new ArrayList<>()));
        assertTrue(
                e.getMessage()
                        .startsWith("generation stopped: the logits of the prompt's forward pass (choosing the token at"
                                + " position 3) are not finite: "),
                e.getMessage());
    }

    private static int[] generate(Path file, ModelConfig config, List<Integer> streamed) throws IOException {
        try (Llama2cCheckpoint spoilt = Llama2cCheckpoint.open(file);
                CpuBackend cpu = new CpuBackend()) {
            Transformer transformer = Transformer.llama(cpu, config, spoilt.weights(), Transformer.DEFAULT_MAX_BATCH);
            return new Generator(transformer, Sampler.greedy(), Set.of())
                    .generate(PROMPT, 12, streamed::add)
                    .tokens();
        }
    }

    /** Overwrites a token's embedding row, which follows llama2.c's 28-byte header. */
    private static void spoilEmbedding(Path file, ModelConfig config, int token, float value) throws IOException {
        ByteBuffer row = ByteBuffer.allocate(config.dim() * Float.BYTES).order(ByteOrder.LITTLE_ENDIAN);
        while (row.hasRemaining()) {
            row.putFloat(value);
        }
        try (FileChannel channel = FileChannel.open(file, StandardOpenOption.WRITE)) {
            channel.write(row.flip(), 28 + (long) token * config.dim() * Float.BYTES);
        }
    }

    @Test
    void theWholeContextCanBeUsedButNotMore() {
        Generator generator = new Generator(model, Sampler.greedy(), Set.of());
        int room = CONFIG.seqLen() + 1 - PROMPT.length;
        assertEquals(room, generator.generate(PROMPT, room, t -> {}).tokens().length);
        IllegalArgumentException e =
                assertThrows(IllegalArgumentException.class, () -> generator.generate(PROMPT, room + 1, t -> {}));
        assertTrue(
                e.getMessage().contains("maxTokens (" + (room + 1) + ") must be in [0, " + room + "]"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> generator.generate(new int[0], 1, t -> {}));
    }
}
