package dev.panamax.bench;

import dev.panamax.model.backend.Backend;
import dev.panamax.model.backend.Backends;
import dev.panamax.model.io.GgmlType;
import dev.panamax.model.nn.ModelConfig;
import dev.panamax.model.nn.ModelConfig.Architecture;
import dev.panamax.model.train.Metrics;
import dev.panamax.model.train.TokenDataset;
import dev.panamax.model.train.Trainer;
import dev.panamax.model.train.TrainingOptions;
import java.util.Arrays;
import java.util.SplittableRandom;

/**
 * Milliseconds per GPT-2 training step on a chosen backend, as {@code panamax train} takes it: forward, the fused
 * cross-entropy, backward, global-norm clipping and AdamW over every parameter, on random tokens, with products at the
 * chosen precision (FP32, TF32 or BF16 inputs with FP32 accumulation; everything else FP32). Each step is
 * timed from its start until a weight written by its last AdamW update has been read back, so the device's queue is
 * drained; the first steps are left out as warm-up and the median of the rest is printed as the CSV line
 * {@code panamax,train,SHAPE,PRECISION,MS,ms/step}. The peer doing the same step in PyTorch is {@code gpu/torch_train_step.py}.
 *
 * <p>Usage: {@code GpuTrainStep [--backend auto|cpu|cuda|emulated] [--precision fp32|tf32|bf16] [--tiny] [--steps N]
 * [--warmup N]}: {@code 124M}
 * (12 layers, 12 heads, 768 channels, vocabulary 50257) at batch 8 × 1024 tokens by default, {@code --tiny} a 2-layer
 * model at batch 2 × 32 tokens for checking the program on the CPU or the emulated device.
 */
public final class GpuTrainStep {
    private GpuTrainStep() {}

    /** The shape the GPU check times and the one the program is checked with where no GPU is. */
    record Shape(String name, ModelConfig config, int batchSize, int seqLen) {
        static Shape of(boolean tiny) {
            return tiny
                    ? new Shape(
                            "gpt2-tiny B2xT32",
                            new ModelConfig(Architecture.GPT2, 64, 256, 2, 4, 4, 97, 64, 1e-5f, 0, true),
                            2,
                            32)
                    : new Shape(
                            "gpt2-124M B8xT1024",
                            new ModelConfig(Architecture.GPT2, 768, 3072, 12, 12, 12, 50257, 1024, 1e-5f, 0, true),
                            8,
                            1024);
        }
    }

    /**
     * Runs the benchmark.
     *
     * @param args the options above
     */
    public static void main(String[] args) {
        BenchArguments arguments = BenchArguments.parse("GpuTrainStep", args, 10, 2);
        if (arguments.checkpoint() != null || arguments.weights() != GgmlType.F32) {
            throw new IllegalArgumentException("GpuTrainStep: --checkpoint and --weights are GpuDecode's; training"
                    + " starts from random float32 weights in memory");
        }
        Shape shape = Shape.of(arguments.tiny());
        // panamax train's defaults: AdamW betas 0.9/0.95, weight decay 0.1 on matrices and embeddings, clipping at 1.
        TrainingOptions options = TrainingOptions.defaults(shape.batchSize(), shape.seqLen());
        Backends.Selection selection = arguments.open();
        try (Backend backend = selection.backend()) {
            System.err.println(selection.description());
            System.err.println("precision: " + backend.precision() + " products, FP32 accumulation; the rest FP32");
            Trainer trainer = Trainer.create(backend, shape.config(), options, 1);
            int windowCount = 4 * shape.batchSize();
            int[] tokens = new SplittableRandom(2)
                    .ints(windowCount * shape.seqLen() + 1, 0, shape.config().vocabSize())
                    .toArray();
            TokenDataset data = new TokenDataset(tokens, shape.config().vocabSize(), shape.seqLen(), 0);
            int[] windows = new int[shape.batchSize()];
            int total = arguments.warmup() + arguments.steps();
            double[] millis = new double[arguments.steps()];
            for (int s = 0; s < total; s++) {
                for (int i = 0; i < windows.length; i++) {
                    windows[i] = (s * windows.length + i) % windowCount;
                }
                long start = System.nanoTime();
                Metrics metrics = trainer.trainStep(data, windows);
                trainer.weight("ln_f.bias"); // a read waits for the queued AdamW updates
                double ms = (System.nanoTime() - start) / 1e6;
                if (s >= arguments.warmup()) {
                    millis[s - arguments.warmup()] = ms;
                }
                System.err.printf(
                        "step %d: loss %.4f, %.1f ms%s%n",
                        s + 1, metrics.trainLoss(), ms, s < arguments.warmup() ? " (warm-up)" : "");
            }
            System.out.printf("panamax,train,%s,%s,%.3f,ms/step%n", shape.name(), backend.precision(), median(millis));
        }
    }

    static double median(double[] values) {
        double[] sorted = values.clone();
        Arrays.sort(sorted);
        int n = sorted.length;
        return n % 2 == 1 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
    }
}
