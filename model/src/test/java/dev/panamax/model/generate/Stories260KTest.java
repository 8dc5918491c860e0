package dev.panamax.model.generate;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;

import dev.panamax.model.backend.CpuBackend;
import dev.panamax.model.io.Llama2cCheckpoint;
import dev.panamax.model.testing.SharedData;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.Objects;
import java.util.Set;
import java.util.stream.IntStream;
import org.junit.jupiter.api.Test;

/**
 * The real pretrained llama2.c checkpoint {@code ../shared/data/stories260K.bin} against the ids karpathy/llama2.c's
 * {@code run.c} generates greedily from BOS (see the resource's header for how they were produced).
 */
class Stories260KTest {
    private static final int BOS = 1;

    static int[] expectedIds() throws IOException {
        try (var in = Objects.requireNonNull(Stories260KTest.class.getResourceAsStream("stories260K-greedy.txt"));
                var reader = new BufferedReader(new InputStreamReader(in, StandardCharsets.UTF_8))) {
            return reader.lines()
                    .filter(line -> !line.startsWith("#"))
                    .mapToInt(Integer::parseInt)
                    .toArray();
        }
    }

    @Test
    void greedyGenerationFromBosMatchesRunCTokenForToken() throws IOException {
        int[] expected = expectedIds();
        assertEquals(512, expected.length);
        try (Llama2cCheckpoint checkpoint = Llama2cCheckpoint.open(SharedData.require("stories260K.bin"));
                CpuBackend backend = new CpuBackend()) {
            Transformer model = Transformer.llama(
                    backend, checkpoint.config(), checkpoint.weights(), Transformer.DEFAULT_MAX_BATCH);
            // run.c ends a generation at BOS; the expected ids hold none, so the whole context is compared.
            Generator generator = new Generator(model, Sampler.greedy(), Set.of(BOS));
            Generator.Result result = generator.generate(new int[] {BOS}, expected.length, token -> {});
            assertFalse(result.stopped());
            assertArrayEquals(expected, result.tokens());
        }
    }

    @Test
    void aPrefilledPromptContinuesAsTheTokenByTokenRun() throws IOException {
        int[] expected = expectedIds();
        // The first 100 generated ids, fed back as a prompt after BOS, must lead to the same next 50.
        int[] prompt = IntStream.concat(
                        IntStream.of(BOS), IntStream.of(expected).limit(100))
                .toArray();
        try (Llama2cCheckpoint checkpoint = Llama2cCheckpoint.open(SharedData.require("stories260K.bin"));
                CpuBackend backend = new CpuBackend()) {
            // A batch smaller than the prompt also exercises prefill in several batches.
            Transformer model = Transformer.llama(backend, checkpoint.config(), checkpoint.weights(), 32);
            Generator.Result result =
                    new Generator(model, Sampler.greedy(), Set.of()).generate(prompt, 50, token -> {});
            assertArrayEquals(IntStream.of(expected).skip(100).limit(50).toArray(), result.tokens());
        }
    }
}
