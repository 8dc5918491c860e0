package dev.panamax.bench;

import dev.panamax.kernels.Parallelism;
import dev.panamax.model.backend.CpuBackend;
import dev.panamax.model.nn.ModelConfig;
import dev.panamax.model.nn.ModelConfig.Architecture;
import dev.panamax.model.train.Metrics;
import dev.panamax.model.train.TokenDataset;
import dev.panamax.model.train.Trainer;
import dev.panamax.model.train.TrainingOptions;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

/**
 * Milliseconds per training step (forward, backward and AdamW over every parameter) of a GPT-2 with random weights
 * on random tokens: the 124M shape (12 layers, 12 heads, 768 channels, vocabulary 50257) at batch 4 × 64 tokens, the
 * shape the peers llm.c ({@code train_gpt2.c}) and PyTorch are timed on, and the small shape Panamax's built-in model
 * trains with. Rates are GFLOP/s at 6 FLOP per parameter per token (forward 2, backward 4) plus attention's
 * {@code 12·layers·T²·dim} per sequence.
 */
@OutputTimeUnit(TimeUnit.MILLISECONDS)
// A step of the 124M shape takes seconds, so an iteration is one step, and ten (after three that fault in the arena's
// pages and compile) give the mean and its interval more than a handful of samples.
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 10, time = 1)
@Fork(
        value = 1,
        // Gradients and optimizer moments live on the Java heap (1.5 GB for the 124M shape).
        jvmArgsAppend = {"-Xmx4g"})
public class TrainBench extends Microbenchmark {
    @Param({"124M"})
    public String shape;

    @Param({"1", "2"})
    public int threads;

    private CpuBackend backend;
    private Trainer trainer;
    private TokenDataset data;
    private int[] windows;

    private static ModelConfig config(String shape) {
        return switch (shape) {
            case "124M" -> new ModelConfig(Architecture.GPT2, 768, 3072, 12, 12, 12, 50257, 1024, 1e-5f, 0, true);
            case "tiny" -> new ModelConfig(Architecture.GPT2, 128, 512, 4, 4, 4, 113, 256, 1e-5f, 0, true);
            default -> throw new IllegalArgumentException("shape (" + shape + ") must be 124M or tiny");
        };
    }

    private static TrainingOptions options(String shape) {
        return shape.equals("124M") ? TrainingOptions.defaults(4, 64) : TrainingOptions.defaults(16, 128);
    }

    /**
     * The FLOPs of one step.
     *
     * @param params the benchmark's parameters
     * @return the workload
     */
    public static Workload workload(Map<String, String> params) {
        ModelConfig c = config(params.get("shape"));
        TrainingOptions o = options(params.get("shape"));
        double tokens = o.tokensPerStep();
        double attention = 12.0 * c.layers() * o.seqLen() * o.seqLen() * c.dim() * o.batchSize();
        return Workload.flops(6.0 * c.parameterCount() * tokens + attention, Integer.parseInt(params.get("threads")));
    }

    @Setup(Level.Trial)
    public void setUp() {
        ModelConfig config = config(shape);
        TrainingOptions options = options(shape);
        Parallelism.setThreads(threads);
        backend = new CpuBackend();
        trainer = Trainer.create(backend, config, options, 1);
        int windowCount = options.batchSize() * 4;
        int[] tokens = new SplittableRandom(2)
                .ints(windowCount * options.seqLen() + 1, 0, config.vocabSize())
                .toArray();
        data = new TokenDataset(tokens, config.vocabSize(), options.seqLen(), 0);
        windows = new int[options.batchSize()];
        for (int i = 0; i < windows.length; i++) {
            windows[i] = i;
        }
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        backend.close();
    }

    @Benchmark
    public Metrics step() {
        return trainer.trainStep(data, windows);
    }
}
