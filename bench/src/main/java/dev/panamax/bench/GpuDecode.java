package dev.panamax.bench;

import dev.panamax.model.backend.Backend;
import dev.panamax.model.backend.Backends;
import dev.panamax.model.generate.Generator;
import dev.panamax.model.generate.Sampler;
import dev.panamax.model.generate.Transformer;
import dev.panamax.model.io.GgmlType;
import dev.panamax.model.io.GgufLlama;
import dev.panamax.model.io.Llama2cCheckpoint;
import dev.panamax.model.nn.ModelConfig;
import dev.panamax.model.nn.ModelConfig.Architecture;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Map;
import java.util.Set;
import java.util.stream.Collectors;

/**
 * Greedy decode tokens per second of a llama2.c checkpoint with random weights on a chosen backend, as {@code panamax
 * generate} runs it: a 16-token prompt prefilled as one batch, then one forward pass per generated token, each
 * ending with the chosen token back on the host. The checkpoint is written to a temporary file and deleted after;
 * with {@code --weights} other than f32, a GGUF file of the same weights in that type (written beside it, deleted
 * after) is decoded instead, its matrices kept in their format on the backend.
 * The first generations are left out as warm-up; the median rate of the rest is printed as the CSV line {@code
 * panamax,decode,SHAPE,PRECISION,TOKENS_PER_S,tokens/s}. The peer, a PyTorch loop doing the same, is {@code
 * gpu/torch_decode.py}.
 *
 * <p>Usage: {@code GpuDecode [--backend auto|cpu|cuda|emulated] [--precision fp32|tf32|bf16] [--tiny] [--steps N]
 * [--warmup N] [--checkpoint FILE] [--weights f32|f16|bf16|q8_0|q4_0]}: the stories110M
 * shape (dim 768, 12 layers, 12 heads, vocabulary 32000, context 1024) generating 256 tokens per run by default,
 * {@code --tiny} a 2-layer model generating 8 for checking the program on the CPU or the emulated device.
 */
public final class GpuDecode {
    /** Prompt tokens, prefilled as one batch before decoding starts. */
    static final int PROMPT = 16;

    private GpuDecode() {}

    /**
     * Runs the benchmark.
     *
     * @param args the options above
     * @throws IOException if the temporary checkpoint cannot be written or read
     */
    public static void main(String[] args) throws IOException {
        BenchArguments arguments = BenchArguments.parse("GpuDecode", args, 3, 1);
        boolean tiny = arguments.tiny();
        ModelConfig config = tiny
                ? new ModelConfig(Architecture.LLAMA, 64, 172, 2, 4, 4, 97, 64, 1e-5f, 10000f, true)
                : new ModelConfig(Architecture.LLAMA, 768, 2048, 12, 12, 12, 32000, 1024, 1e-5f, 10000f, true);
        GgmlType weights = arguments.weights();
        String shape = (tiny ? "llama-tiny" : "llama2.c-110M") + (weights == GgmlType.F32 ? "" : " " + weights);
        int generated = tiny ? 8 : 256;
        Path file = arguments.checkpoint() != null
                ? arguments.checkpoint()
                : Files.createTempFile("panamax-decode-", ".bin");
        Path gguf = weights == GgmlType.F32 ? null : Files.createTempFile("panamax-decode-", ".gguf");
        try {
            Llama2cCheckpoint.writeRandom(file, config, 1);
            Backends.Selection selection = arguments.open();
            try (Llama2cCheckpoint checkpoint = Llama2cCheckpoint.open(file);
                    GgufLlama quantized = gguf == null ? null : quantized(gguf, config, checkpoint, weights);
                    Backend backend = selection.backend()) {
                System.err.println(selection.description());
                Transformer model = quantized == null
                        ? Transformer.llama(backend, config, checkpoint.weights(), PROMPT, PROMPT + generated)
                        : Transformer.llama(backend, quantized, PROMPT, PROMPT + generated);
                Generator generator = new Generator(model, Sampler.greedy(), Set.of());
                int[] prompt = new int[PROMPT];
                for (int i = 0; i < PROMPT; i++) {
                    prompt[i] = 1 + i * 97 % (config.vocabSize() - 1);
                }
                int runs = arguments.warmup() + arguments.steps();
                double[] rates = new double[arguments.steps()];
                int[] tokens = new int[0];
                for (int r = 0; r < runs; r++) {
                    Generator.Result result = generator.generate(prompt, generated, token -> {});
                    double rate = result.decodeTokensPerSecond();
                    tokens = result.tokens();
                    if (r >= arguments.warmup()) {
                        rates[r - arguments.warmup()] = rate;
                    }
                    System.err.printf(
                            "run %d: %d tokens, prefill %.1f ms, decode %.1f tokens/s%s%n",
                            r + 1,
                            result.tokens().length,
                            result.prefillNanos() / 1e6,
                            rate,
                            r < arguments.warmup() ? " (warm-up)" : "");
                }
                // Only the float32 run's tokens are compared with PyTorch's, which decodes the float32 weights.
                System.err.println((quantized == null ? "tokens: " : "tokens of " + weights + " weights: ")
                        + Arrays.stream(tokens).mapToObj(String::valueOf).collect(Collectors.joining(" ")));
                System.out.printf(
                        "panamax,decode,%s P%d+%d,%s,%.1f,tokens/s%n",
                        shape, PROMPT, generated, backend.precision(), GpuTrainStep.median(rates));
            }
        } finally {
            if (arguments.checkpoint() == null) {
                Files.deleteIfExists(file);
            }
            if (gguf != null) {
                Files.deleteIfExists(gguf);
            }
        }
    }

    /** The checkpoint's weights written to {@code file} as a GGUF of {@code type}, opened. */
    private static GgufLlama quantized(Path file, ModelConfig config, Llama2cCheckpoint checkpoint, GgmlType type)
            throws IOException {
        GgufLlama.write(file, config, checkpoint.weights(), "GpuDecode", Map.of(), type);
        return GgufLlama.open(file);
    }
}
