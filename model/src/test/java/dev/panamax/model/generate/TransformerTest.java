package dev.panamax.model.generate;

import static dev.panamax.model.testing.TinyModels.GPT2;
import static dev.panamax.model.testing.TinyModels.LLAMA;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.panamax.kernels.Parallelism;
import dev.panamax.kernels.testing.Inputs;
import dev.panamax.kernels.testing.Tolerance;
import dev.panamax.model.backend.CpuBackend;
import dev.panamax.model.backend.Tensor;
import dev.panamax.model.io.DType;
import dev.panamax.model.io.Gpt2Checkpoint;
import dev.panamax.model.io.Llama2cCheckpoint;
import dev.panamax.model.nn.ModelConfig;
import dev.panamax.model.nn.ModelConfig.Architecture;
import dev.panamax.model.testing.RandomWeights;
import dev.panamax.model.testing.ReferenceTransformer;
import dev.panamax.model.testing.TinyModels;
import java.io.IOException;
import java.nio.file.Path;
import java.util.List;
import java.util.function.BiFunction;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The Transformer's logits against the float64 {@link ReferenceTransformer}, for small random models of both
 * families, and decoding with the KV cache against recomputing the whole sequence.
 *
 * <p>Tolerance: each logit within 1e-4 absolute plus 1e-4 relative of the reference. The models have two layers of
 * width 32 to 64 with weights scaled by 1/√fan-in, so logits are of order 1 and float32 rounding over a few hundred
 * terms per dot product accumulates to about 1e-6; the bound leaves room for the different summation orders of the
 * batched and single-token paths, and catches any real error (a wrong position, head or bias moves logits by ≥ 1e-2).
 */
class TransformerTest {
    private static final double ABSOLUTE = 1e-4;
    private static final double RELATIVE = 1e-4;
    private static final int[] TOKENS = TinyModels.tokens();

    @TempDir
    Path dir;

    @Test
    void llamaMatchesTheReferenceInPrefillAndDecode() throws IOException {
        try (Llama2cCheckpoint checkpoint = randomLlama();
                CpuBackend backend = new CpuBackend()) {
            double[][] expected = ReferenceTransformer.llama(LLAMA, checkpoint.weights(), TOKENS);
            Transformer model = Transformer.llama(backend, LLAMA, checkpoint.weights(), 8);
            assertPrefillThenDecodeMatch(model, expected);
        }
    }

    @Test
    void gpt2FromSafetensorsMatchesTheReferenceInPrefillAndDecode() throws IOException {
        Gpt2Checkpoint.write(dir, GPT2, RandomWeights.gpt2(GPT2, Inputs.seed("gpt2")), DType.F32);
        try (Gpt2Checkpoint checkpoint = Gpt2Checkpoint.open(dir);
                CpuBackend backend = new CpuBackend()) {
            double[][] expected = ReferenceTransformer.gpt2(GPT2, checkpoint.weights(), TOKENS);
            Transformer model = Transformer.gpt2(backend, GPT2, checkpoint.weights(), 8);
            assertPrefillThenDecodeMatch(model, expected);
        }
    }

    /** Prefills half the tokens as one batch, then decodes the rest one at a time, checking the logits each time. */
    private static void assertPrefillThenDecodeMatch(Transformer model, double[][] expected) {
        int prefill = TOKENS.length / 2;
        assertClose(
                "logits after prefilling " + prefill, expected[prefill - 1], model.forward(TOKENS, 0, prefill), model);
        for (int i = prefill; i < TOKENS.length; i++) {
            assertClose("logits decoding position " + i, expected[i], model.forward(TOKENS, i, 1), model);
        }
        assertEquals(TOKENS.length, model.position());
    }

    @Test
    void decodingWithTheCacheEqualsRecomputingForBothFamilies() throws IOException {
        Gpt2Checkpoint.write(dir, GPT2, RandomWeights.gpt2(GPT2, Inputs.seed("cache")), DType.F32);
        try (Llama2cCheckpoint llama = randomLlama();
                Gpt2Checkpoint gpt2 = Gpt2Checkpoint.open(dir);
                CpuBackend backend = new CpuBackend()) {
            List<BiFunction<CpuBackend, Integer, Transformer>> families = List.of(
                    (b, batch) -> Transformer.llama(b, LLAMA, llama.weights(), batch),
                    (b, batch) -> Transformer.gpt2(b, GPT2, gpt2.weights(), batch));
            for (BiFunction<CpuBackend, Integer, Transformer> family : families) {
                Transformer cached = family.apply(backend, 1);
                Transformer recomputed = family.apply(backend, Transformer.DEFAULT_MAX_BATCH);
                for (int i = 0; i < TOKENS.length; i++) {
                    float[] step = read(cached, cached.forward(TOKENS, i, 1));
                    recomputed.reset();
                    float[] whole = read(recomputed, recomputed.forward(TOKENS, 0, i + 1));
                    double[] reference = new double[whole.length];
                    for (int j = 0; j < whole.length; j++) {
                        reference[j] = whole[j];
                    }
                    Tolerance.assertClose(
                            cached.config().architecture() + " position " + i, reference, step, ABSOLUTE, RELATIVE);
                }
            }
        }
    }

    /**
     * Greedy decoding of a Llama wide and long enough that every step's products, its attention (from about 170
     * cached positions) and its classifier are split over the threads gives the same logits, bit for bit, at 1, 2 and
     * 3 threads.
     */
    @Test
    void decodeGivesTheSameBitsForEveryThreadCount() throws IOException {
        ModelConfig config = new ModelConfig(Architecture.LLAMA, 192, 512, 2, 4, 4, 400, 200, 1e-5f, 10000f, true);
        Path file = dir.resolve("wide.bin");
        Llama2cCheckpoint.writeRandom(file, config, Inputs.seed("threads"));
        int saved = Parallelism.threads();
        try (Llama2cCheckpoint checkpoint = Llama2cCheckpoint.open(file);
                CpuBackend backend = new CpuBackend()) {
            float[][] first = null;
            for (int threads = 1; threads <= 3; threads++) {
                Parallelism.setThreads(threads);
                Transformer model = Transformer.llama(backend, config, checkpoint.weights(), 1);
                float[][] logits = new float[config.seqLen()][];
                int[] token = {1};
                for (int position = 0; position < config.seqLen(); position++) {
                    Tensor out = model.forward(token, 0, 1);
                    logits[position] = read(model, out);
                    token[0] = backend.argmax(out);
                }
                if (first == null) {
                    first = logits;
                } else {
                    for (int position = 0; position < config.seqLen(); position++) {
                        assertArrayEquals(
                                first[position], logits[position], threads + " threads, position " + position);
                    }
                }
            }
        } finally {
            Parallelism.setThreads(saved);
        }
    }

    @Test
    void pastTheContextLengthIsAClearError() throws IOException {
        try (Llama2cCheckpoint checkpoint = randomLlama();
                CpuBackend backend = new CpuBackend()) {
            Transformer model = Transformer.llama(backend, LLAMA, checkpoint.weights(), 4);
            int[] tokens = new int[LLAMA.seqLen()];
            model.forward(tokens, 0, LLAMA.seqLen() - 1);
            model.forward(tokens, 0, 1);
            IllegalStateException e = assertThrows(IllegalStateException.class, () -> model.forward(tokens, 0, 1));
            assertTrue(e.getMessage().contains("context length"), e.getMessage());
            assertEquals(LLAMA.seqLen(), model.position(), "a refused call leaves the cache as it was");
            model.reset();
            IllegalArgumentException bad =
                    assertThrows(IllegalArgumentException.class, () -> model.forward(new int[] {61}, 0, 1));
            assertTrue(bad.getMessage().contains("tokens[0] (61) must be in [0, vocabSize (61))"), bad.getMessage());
        }
    }

    private Llama2cCheckpoint randomLlama() throws IOException {
        Path file = dir.resolve("llama.bin");
        Llama2cCheckpoint.writeRandom(file, LLAMA, Inputs.seed("llama"));
        return Llama2cCheckpoint.open(file);
    }

    private static float[] read(Transformer model, Tensor logits) {
        float[] values = new float[logits.cols()];
        model.backend().read(logits, values);
        return values;
    }

    private static void assertClose(String what, double[] expected, Tensor logits, Transformer model) {
        Tolerance.assertClose(what, expected, read(model, logits), ABSOLUTE, RELATIVE);
    }
}
