package dev.panamax.bench;

import dev.panamax.kernels.Parallelism;
import dev.panamax.model.backend.CpuBackend;
import dev.panamax.model.generate.Generator;
import dev.panamax.model.generate.Sampler;
import dev.panamax.model.generate.Transformer;
import dev.panamax.model.io.GgmlType;
import dev.panamax.model.io.GgufLlama;
import dev.panamax.model.io.Llama2cCheckpoint;
import dev.panamax.model.nn.Gpt2Weights;
import dev.panamax.model.nn.ModelConfig;
import dev.panamax.model.nn.ModelConfig.Architecture;
import dev.panamax.model.nn.Parameters;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;
import java.util.Set;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.OperationsPerInvocation;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

/**
 * Tokens per second of the Transformer on llama2.c checkpoints with random weights shaped like stories15M and
 * stories110M (or, with {@code -p shape=1B}, TinyLlama), written to a temporary file at setup, and with {@code -p
 * shape=gpt2-124M} on a GPT-2 124M with random weights in native memory, whose {@code [in, out]} matrices make every
 * decode product a transposed one: {@code prefill} runs a 128-token prompt as one batch, {@code
 * decode} generates 64 tokens greedily after BOS, one forward pass each. Time per operation is time per token.
 * Prefill's rate is tokens/s; decode's is the GB/s of weights a decoded token streams (every weight once), the bound of
 * decode.
 *
 * <p>{@code -p weights=} chooses how a Llama shape's weights are stored: {@code llama2c} (the float32 checkpoint, read
 * in place), or a GGUF written from that checkpoint by {@code panamax quantize}'s writer, {@code f32}, {@code q8_0} or
 * {@code q4_0} (read in place, the quantized products on {@code QuantizedProduct}). {@code RandomCheckpoint} and
 * {@code panamax quantize} make the same files for llama.cpp's {@code llama-bench}.
 */
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Warmup(iterations = 2, time = 2)
@Measurement(iterations = 3, time = 2)
public class GenerateBench extends Microbenchmark {
    private static final int PROMPT = 128;
    private static final int DECODED = 64;

    @Param({"15M", "110M"})
    public String shape;

    @Param({"1", "2"})
    public int threads;

    @Param({"llama2c"})
    public String weights;

    private Path file;
    private Path gguf;
    private GgufLlama quantized;
    private Arena arena;
    private Llama2cCheckpoint checkpoint;
    private CpuBackend backend;
    private Transformer model;
    private Generator generator;
    private int[] prompt;

    static ModelConfig config(String shape) {
        return switch (shape) {
            case "15M" -> new ModelConfig(Architecture.LLAMA, 288, 768, 6, 6, 6, 32000, 256, 1e-5f, 10000f, true);
            case "110M" -> new ModelConfig(Architecture.LLAMA, 768, 2048, 12, 12, 12, 32000, 1024, 1e-5f, 10000f, true);
            // A Llama of about 1.1B parameters with grouped-query attention and its own classifier, TinyLlama's shape.
            case "1B" -> new ModelConfig(Architecture.LLAMA, 2048, 5632, 22, 32, 4, 32000, 2048, 1e-5f, 10000f, false);
            case "gpt2-124M" -> new ModelConfig(Architecture.GPT2, 768, 3072, 12, 12, 12, 50257, 1024, 1e-5f, 0, true);
            default -> throw new IllegalArgumentException("shape (" + shape + ") must be 15M, 110M, 1B or gpt2-124M");
        };
    }

    /**
     * For {@code decode}, the bytes of the weights a decoded token streams: all of them but the embedding tables, of
     * which it reads one row (the token embedding counts when it is also the classifier, which reads all of it). For
     * {@code prefill}, one token: a batch of {@value #PROMPT} reads the weights about once, so GB/s of weights would
     * overstate its traffic up to {@value #PROMPT}-fold.
     *
     * @param method the benchmark method
     * @param params the benchmark's parameters
     * @return the workload
     */
    public static Workload workload(String method, Map<String, String> params) {
        if (method.equals("prefill")) {
            return Workload.counted(1, "token");
        }
        String weights = params.getOrDefault("weights", "llama2c");
        GgmlType type = weights.equals("llama2c") ? GgmlType.F32 : ggufType(weights);
        double bytesPerWeight = (double) type.bytesPerBlock() / type.blockLength();
        ModelConfig config = config(params.get("shape"));
        long streamed = config.parameterCount()
                - (config.sharedClassifier() ? 0 : (long) config.vocabSize() * config.dim())
                - (config.architecture() == Architecture.GPT2 ? (long) config.seqLen() * config.dim() : 0);
        return Workload.read(streamed * bytesPerWeight, Integer.parseInt(params.get("threads")));
    }

    /**
     * The random checkpoint of {@code shape} written again to {@code gguf} with {@code panamax quantize}'s writer, in
     * the type a {@code weights} parameter other than {@code llama2c} names, and opened.
     */
    static GgufLlama quantizedCopy(
            Path gguf, String shape, ModelConfig config, Llama2cCheckpoint checkpoint, String weights)
            throws IOException {
        GgufLlama.write(gguf, config, checkpoint.weights(), "random-" + shape, Map.of(), ggufType(weights));
        return GgufLlama.open(gguf);
    }

    private static GgmlType ggufType(String weights) {
        return switch (weights) {
            case "f32" -> GgmlType.F32;
            case "q8_0" -> GgmlType.Q8_0;
            case "q4_0" -> GgmlType.Q4_0;
            default ->
                throw new IllegalArgumentException("weights (" + weights + ") must be llama2c, f32, q8_0 or q4_0");
        };
    }

    @Setup(Level.Trial)
    public void setUp() throws IOException {
        ModelConfig config = config(shape);
        Parallelism.setThreads(threads);
        backend = new CpuBackend();
        if (config.architecture() == Architecture.GPT2) {
            if (!weights.equals("llama2c")) {
                throw new IllegalArgumentException("shape gpt2-124M takes weights=llama2c (float32), not " + weights);
            }
            arena = Arena.ofShared();
            model = Transformer.gpt2(backend, config, randomGpt2(config, arena), PROMPT);
        } else {
            file = Files.createTempFile("panamax-" + shape, ".bin");
            Llama2cCheckpoint.writeRandom(file, config, 1);
            checkpoint = Llama2cCheckpoint.open(file);
            if (weights.equals("llama2c")) {
                model = Transformer.llama(backend, config, checkpoint.weights(), PROMPT);
            } else {
                gguf = Files.createTempFile("panamax-" + shape, ".gguf");
                quantized = quantizedCopy(gguf, shape, config, checkpoint, weights);
                model = Transformer.llama(backend, quantized, PROMPT, config.seqLen());
            }
        }
        generator = new Generator(model, Sampler.greedy(), Set.of());
        prompt = new int[PROMPT];
        for (int i = 0; i < PROMPT; i++) {
            prompt[i] = 1 + i * 97 % (config.vocabSize() - 1);
        }
    }

    /** GPT-2 weights as a fresh training run starts from ({@link Parameters#initialise}), in native memory. */
    private static Gpt2Weights<MemorySegment> randomGpt2(ModelConfig config, Arena arena) {
        Map<String, MemorySegment> named = new HashMap<>();
        SplittableRandom random = new SplittableRandom(1);
        for (Parameters.Spec spec : Parameters.of(config)) {
            float[] values = new float[Math.toIntExact(spec.size())];
            Parameters.initialise(config, spec, random, values);
            named.put(spec.name(), arena.allocateFrom(ValueLayout.JAVA_FLOAT, values));
        }
        return Gpt2Weights.fromNames(config.layers(), named);
    }

    @TearDown(Level.Trial)
    public void tearDown() throws IOException {
        backend.close();
        if (quantized != null) {
            quantized.close();
            Files.deleteIfExists(gguf);
        }
        if (checkpoint != null) {
            checkpoint.close();
            Files.deleteIfExists(file);
        }
        if (arena != null) {
            arena.close();
        }
    }

    @Benchmark
    @OperationsPerInvocation(PROMPT)
    public Object prefill() {
        model.reset();
        return model.forward(prompt, 0, PROMPT);
    }

    @Benchmark
    @OperationsPerInvocation(DECODED)
    public int[] decode() {
        return generator.generate(new int[] {1}, DECODED, token -> {}).tokens();
    }
}
