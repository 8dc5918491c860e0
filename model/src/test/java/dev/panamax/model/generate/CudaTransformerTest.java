package dev.panamax.model.generate;

import static dev.panamax.model.testing.TinyModels.GPT2;
import static dev.panamax.model.testing.TinyModels.LLAMA;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;

import dev.panamax.kernels.testing.Inputs;
import dev.panamax.kernels.testing.Tolerance;
import dev.panamax.model.backend.Backend;
import dev.panamax.model.backend.CpuBackend;
import dev.panamax.model.backend.EmulatedBackends;
import dev.panamax.model.io.DType;
import dev.panamax.model.io.GgmlType;
import dev.panamax.model.io.GgufLlama;
import dev.panamax.model.io.Gpt2Checkpoint;
import dev.panamax.model.io.Llama2cCheckpoint;
import dev.panamax.model.testing.RandomWeights;
import dev.panamax.model.testing.SharedData;
import dev.panamax.model.testing.TinyModels;
import java.io.IOException;
import java.nio.file.Path;
import java.util.Map;
import java.util.Set;
import java.util.function.Function;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The Transformer on the CUDA backend (emulated device) against the same model on the CPU backend: the logits of small
 * random models of both families through prefill and decode, and {@code stories260K.bin}'s greedy generation against
 * run.c's token ids.
 *
 * <p>Tolerance for logits: 1e-4 absolute plus 1e-4 relative, as {@link TransformerTest} allows against its float64
 * reference, and for the same reason: logits of order 1 from two layers of float32 dot products of a few hundred
 * terms, summed in different orders by the two backends, differ by about 1e-6; a wrong head, position or bias moves
 * them by 1e-2 or more.
 */
class CudaTransformerTest {
    /**
     * Runs {@code body} on a fresh CUDA backend and closes it: here on the emulated device; {@link GpuTransformerTest}
     * runs the same tests on a GPU.
     *
     * @param body what to run
     * @param <T> the result type
     * @return what body returned
     */
    <T> T onDevice(Function<Backend, T> body) {
        return EmulatedBackends.run(0, body::apply);
    }

    private static final int BOS = 1;
    private static final int[] TOKENS = TinyModels.tokens();

    @TempDir
    Path dir;

    @Test
    void llamaLogitsMatchTheCpuInPrefillAndDecode() throws IOException {
        Path file = dir.resolve("llama.bin");
        Llama2cCheckpoint.writeRandom(file, LLAMA, Inputs.seed("cuda llama"));
        try (Llama2cCheckpoint checkpoint = Llama2cCheckpoint.open(file)) {
            assertSameLogits("llama", 6, backend -> Transformer.llama(backend, LLAMA, checkpoint.weights(), 4));
        }
    }

    @Test
    void gpt2LogitsMatchTheCpuInPrefillAndDecode() throws IOException {
        Gpt2Checkpoint.write(dir, GPT2, RandomWeights.gpt2(GPT2, Inputs.seed("cuda gpt2")), DType.F32);
        try (Gpt2Checkpoint checkpoint = Gpt2Checkpoint.open(dir)) {
            assertSameLogits("gpt2", 6, backend -> Transformer.gpt2(backend, GPT2, checkpoint.weights(), 4));
        }
    }

    /**
     * A GGUF file of each type a model computes with: Q8_0, Q4_0, F16 and BF16 matrices stay in their format on the
     * device (the down projection, whose rows of 48 are not whole blocks, in F16), and the logits match the CPU's, which
     * multiplies the same blocks: a prefill of 10 tokens (two passes of {@code quantized_matvec}), then single-token
     * decodes.
     */
    @Test
    void ggufLogitsOfEveryTypeMatchTheCpu() throws IOException {
        Path bin = dir.resolve("llama.bin");
        Llama2cCheckpoint.writeRandom(bin, LLAMA, Inputs.seed("cuda gguf"));
        try (Llama2cCheckpoint checkpoint = Llama2cCheckpoint.open(bin)) {
            for (GgmlType type : GgufLlama.COMPUTE_TYPES) {
                Path file = dir.resolve(type + ".gguf");
                GgufLlama.write(file, LLAMA, checkpoint.weights(), "test", Map.of(), type);
                try (GgufLlama gguf = GgufLlama.open(file)) {
                    assertSameLogits(
                            type.toString(), 10, backend -> Transformer.llama(backend, gguf, 16, LLAMA.seqLen()));
                }
            }
        }
    }

    /**
     * Prefills {@code prefill} tokens (in batches of the model's largest), then decodes the rest one at a time, on both
     * backends; every step's logits must agree.
     */
    private void assertSameLogits(String what, int prefill, Function<Backend, Transformer> model) {
        float[][] expected;
        try (CpuBackend cpu = new CpuBackend()) {
            expected = run(model.apply(cpu), prefill);
        }
        float[][] actual = onDevice(backend -> run(model.apply(backend), prefill));
        for (int i = 0; i < expected.length; i++) {
            double[] reference = new double[expected[i].length];
            for (int j = 0; j < reference.length; j++) {
                reference[j] = expected[i][j];
            }
            Tolerance.assertClose(what + ": logits of step " + i, reference, actual[i], 1e-4, 1e-4);
        }
    }

    private static float[][] run(Transformer model, int prefill) {
        float[][] logits = new float[TOKENS.length - prefill + 1][];
        logits[0] = read(model, model.forward(TOKENS, 0, prefill));
        for (int i = prefill; i < TOKENS.length; i++) {
            logits[i - prefill + 1] = read(model, model.forward(TOKENS, i, 1));
        }
        return logits;
    }

    private static float[] read(Transformer model, dev.panamax.model.backend.Tensor logits) {
        float[] values = new float[logits.cols()];
        model.backend().read(logits, values);
        return values;
    }

    /**
     * Greedy generation from BOS on the emulated device gives run.c's 512 token ids (the whole context), as the CPU
     * backend does (see {@link Stories260KTest}): attention against a cache of up to 16 tiles of 32 keys.
     */
    @Test
    void stories260KGreedyGenerationMatchesRunC() throws IOException {
        int[] expected = Stories260KTest.expectedIds();
        try (Llama2cCheckpoint checkpoint = Llama2cCheckpoint.open(SharedData.require("stories260K.bin"))) {
            int[] tokens = onDevice(backend -> {
                Transformer model = Transformer.llama(
                        backend, checkpoint.config(), checkpoint.weights(), Transformer.DEFAULT_MAX_BATCH);
                Generator.Result result = new Generator(model, Sampler.greedy(), Set.of(BOS))
                        .generate(new int[] {BOS}, expected.length, token -> {});
                assertFalse(result.stopped());
                return result.tokens();
            });
            assertArrayEquals(expected, tokens);
        }
    }
}
