package dev.panamax.bench;

import dev.panamax.kernels.Activation;
import dev.panamax.kernels.Activations;
import dev.panamax.kernels.CrossEntropy;
import dev.panamax.kernels.LayerNorm;
import dev.panamax.kernels.Parallelism;
import dev.panamax.kernels.RmsNorm;
import dev.panamax.kernels.Softmax;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Map;
import java.util.SplittableRandom;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.TearDown;

/**
 * The transformer's memory-bound ops, single thread, on a tensor of {@code rows × cols} floats (16 MiB of input, 16
 * of output): Panamax next to the plain-Java scalar loop a user would write ({@code Math.exp}, {@code Math.tanh}).
 * Rates are GB/s of the bytes each op must move (input read once, output written once): 8 bytes an element, so
 * ns/element is 8 / (GB/s). {@link #arrayCopy} moves the same bytes with nothing computed: the floor, measured in the
 * same run. One input and output together would fit a 32 MiB L3, so each operation takes the next of {@value #PAIRS}
 * (x, y) pairs, 256 MiB in all: every implementation reads and writes memory the caches have let go of.
 */
public class OpsBench extends Microbenchmark {
    /** Floats in the input tensor: 16 MiB, well past L2. */
    private static final int ELEMENTS = 1 << 22;
    /** The (x, y) pairs the operations cycle through, 32 MiB each: 256 MiB, well past any last-level cache. */
    private static final int PAIRS = 8;

    @Param({"softmax", "layernorm", "rmsnorm", "gelu", "silu", "crossentropy"})
    public String op;

    @Param({"768", "1024", "4096", "50257"})
    public int cols;

    private int rows;
    private float[][] xs;
    private float[][] ys;
    private Operands[] onHeapPairs;
    private Operands[] offHeapPairs;
    private int next;
    // The pair of the operation running now, in fields, so that the plain-Java row loops below read it.
    private float[] x;
    private float[] y;
    private Operands onHeap;
    private Operands offHeap;
    private float[] weight;
    private float[] bias;
    private int[] targets;
    private Arena arena;

    /** One set of operands: over the arrays above, or native copies of them. */
    private record Operands(
            MemorySegment x, MemorySegment y, MemorySegment weight, MemorySegment bias, MemorySegment targets) {}

    /**
     * The bytes one operation moves: the input read and the output written once (cross-entropy: the logits read and
     * their gradient written).
     *
     * @param params the benchmark's parameters
     * @return the workload
     */
    public static Workload workload(Map<String, String> params) {
        int cols = Integer.parseInt(params.get("cols"));
        long elements = (long) rows(cols) * cols;
        return Workload.readAndWritten(2.0 * Float.BYTES * elements, 1);
    }

    private static int rows(int cols) {
        return Math.max(1, ELEMENTS / cols);
    }

    @Setup(Level.Trial)
    public void setUp() {
        rows = rows(cols);
        SplittableRandom random = new SplittableRandom(1);
        float[] first = new float[rows * cols];
        for (int i = 0; i < first.length; i++) {
            first[i] = (float) (random.nextDouble() * 8 - 4);
        }
        xs = new float[PAIRS][];
        ys = new float[PAIRS][];
        for (int p = 0; p < PAIRS; p++) {
            xs[p] = first.clone();
            ys[p] = new float[first.length];
        }
        weight = new float[cols];
        bias = new float[cols];
        for (int j = 0; j < cols; j++) {
            weight[j] = (float) (0.5 + random.nextDouble());
            bias[j] = (float) (random.nextDouble() - 0.5);
        }
        targets = new int[rows];
        for (int i = 0; i < rows; i++) {
            targets[i] = random.nextInt(cols);
        }
        arena = Arena.ofShared();
        MemorySegment nativeTargets = arena.allocate((long) rows * Integer.BYTES, 64);
        MemorySegment.copy(targets, 0, nativeTargets, ValueLayout.JAVA_INT, 0, rows);
        MemorySegment nativeWeight = copy(weight);
        MemorySegment nativeBias = copy(bias);
        onHeapPairs = new Operands[PAIRS];
        offHeapPairs = new Operands[PAIRS];
        for (int p = 0; p < PAIRS; p++) {
            onHeapPairs[p] = new Operands(
                    MemorySegment.ofArray(xs[p]),
                    MemorySegment.ofArray(ys[p]),
                    MemorySegment.ofArray(weight),
                    MemorySegment.ofArray(bias),
                    MemorySegment.ofArray(targets));
            offHeapPairs[p] = new Operands(
                    copy(xs[p]),
                    arena.allocate((long) ys[p].length * Float.BYTES, 64),
                    nativeWeight,
                    nativeBias,
                    nativeTargets);
        }
        usePair(0);
        Parallelism.setThreads(1);
    }

    private MemorySegment copy(float[] values) {
        MemorySegment segment = arena.allocate((long) values.length * Float.BYTES, 64);
        MemorySegment.copy(values, 0, segment, ValueLayout.JAVA_FLOAT, 0, values.length);
        return segment;
    }

    /** Makes pair {@code p} current: the operation running now reads and writes it, and it stays current after. */
    private void usePair(int p) {
        next = p;
        x = xs[p];
        y = ys[p];
        onHeap = onHeapPairs[p];
        offHeap = offHeapPairs[p];
    }

    private void nextPair() {
        usePair(next + 1 == PAIRS ? 0 : next + 1);
    }

    /** Frees the native copies. */
    @TearDown(Level.Trial)
    public void tearDown() {
        arena.close();
    }

    /**
     * The ops on the caller's {@code float[]}s (as heap segments over them, which is what the kernels' array forms
     * pass on).
     *
     * @return a value derived from the output, so that nothing is optimised away
     */
    @Benchmark
    public float panamax() {
        nextPair();
        return run(onHeap);
    }

    /**
     * The same ops on native memory, as the model calls them: kernels use arrays in place and copy native rows in and
     * out, so both forms are measured.
     *
     * @return a value derived from the output, so that nothing is optimised away
     */
    @Benchmark
    public float panamaxNative() {
        nextPair();
        return run(offHeap);
    }

    private float run(Operands o) {
        int n = rows * cols;
        switch (op) {
            case "softmax" -> Softmax.forward(rows, cols, 1f, Softmax.UNMASKED, o.x, 0, cols, o.y, 0, cols);
            case "layernorm" ->
                LayerNorm.forward(
                        rows, cols, 1e-5f, o.x, 0, cols, o.weight, 0, o.bias, 0, o.y, 0, cols, null, 0, null, 0);
            case "rmsnorm" -> RmsNorm.forward(rows, cols, 1e-5f, o.x, 0, cols, o.weight, 0, o.y, 0, cols, null, 0);
            case "gelu" -> Activations.forward(Activation.GELU_TANH, n, o.x, 0, o.y, 0);
            case "silu" -> Activations.forward(Activation.SILU, n, o.x, 0, o.y, 0);
            default -> {
                return CrossEntropy.forward(rows, cols, o.x, 0, cols, o.targets, 0, -100, o.y, 0, cols);
            }
        }
        return o.y.getAtIndex(ValueLayout.JAVA_FLOAT, 0);
    }

    /**
     * The memory floor of every op here, in the same run: the same bytes (the input read, the output written) moved by
     * {@code System.arraycopy}. {@code panamax ÷ arrayCopy} is the fraction of the bandwidth the machine gives at that
     * moment, which on a shared machine varies more than the ops do (limits.md: 15 GB/s best seen, 10–14 typical).
     * The copy does not depend on {@code op}: it is measured again beside each op, in the same run.
     *
     * @return a value derived from the output, so that nothing is optimised away
     */
    @Benchmark
    public float arrayCopy() {
        nextPair();
        System.arraycopy(x, 0, y, 0, rows * cols);
        return y[0];
    }

    @Benchmark
    public float plainJava() {
        nextPair();
        int n = rows * cols;
        switch (op) {
            case "softmax" -> {
                for (int i = 0; i < rows; i++) {
                    softmaxRow(i * cols, 1f);
                }
            }
            case "layernorm" -> {
                for (int i = 0; i < rows; i++) {
                    layerNormRow(i * cols);
                }
            }
            case "rmsnorm" -> {
                for (int i = 0; i < rows; i++) {
                    rmsNormRow(i * cols);
                }
            }
            case "gelu" -> {
                for (int i = 0; i < n; i++) {
                    float v = x[i];
                    y[i] = (float) (0.5 * v * (1 + Math.tanh(0.7978845608 * (v + 0.044715 * v * v * v))));
                }
            }
            case "silu" -> {
                for (int i = 0; i < n; i++) {
                    y[i] = (float) (x[i] / (1 + Math.exp(-x[i])));
                }
            }
            default -> {
                double loss = 0;
                for (int i = 0; i < rows; i++) {
                    loss += crossEntropyRow(i, 1f / rows);
                }
                return (float) (loss / rows);
            }
        }
        return y[0];
    }

    /** Writes {@code weight·softmax} of the row at {@code at} into y; returns the row's log-sum-exp. */
    private double softmaxRow(int at, float weight) {
        float max = Float.NEGATIVE_INFINITY;
        for (int j = 0; j < cols; j++) {
            max = Math.max(max, x[at + j]);
        }
        float sum = 0;
        for (int j = 0; j < cols; j++) {
            float e = (float) Math.exp(x[at + j] - max);
            y[at + j] = e;
            sum += e;
        }
        float scale = weight / sum;
        for (int j = 0; j < cols; j++) {
            y[at + j] *= scale;
        }
        return max + Math.log(sum);
    }

    private void layerNormRow(int at) {
        float sum = 0;
        for (int j = 0; j < cols; j++) {
            sum += x[at + j];
        }
        float mean = sum / cols;
        float squares = 0;
        for (int j = 0; j < cols; j++) {
            float d = x[at + j] - mean;
            squares += d * d;
        }
        float rstd = (float) (1 / Math.sqrt(squares / cols + 1e-5));
        for (int j = 0; j < cols; j++) {
            y[at + j] = (x[at + j] - mean) * rstd * weight[j] + bias[j];
        }
    }

    private void rmsNormRow(int at) {
        float squares = 0;
        for (int j = 0; j < cols; j++) {
            squares += x[at + j] * x[at + j];
        }
        float rstd = (float) (1 / Math.sqrt(squares / cols + 1e-5));
        for (int j = 0; j < cols; j++) {
            y[at + j] = x[at + j] * rstd * weight[j];
        }
    }

    private double crossEntropyRow(int i, float weightOfRow) {
        int at = i * cols;
        double logSumExp = softmaxRow(at, weightOfRow);
        y[at + targets[i]] -= weightOfRow;
        return logSumExp - x[at + targets[i]];
    }

    // For BenchCorrectnessTest, which checks each benchmark's output against a reference computed from its inputs.

    /**
     * An operation's inputs.
     *
     * @param rows the tensor's rows
     * @param x the input, {@code rows × cols} (every pair holds the same values)
     * @param weight the norms' weight, one per column
     * @param bias LayerNorm's bias, one per column
     * @param targets cross-entropy's target class of each row
     */
    record Inputs(int rows, float[] x, float[] weight, float[] bias, int[] targets) {}

    /** The inputs of the current pair. */
    Inputs inputs() {
        return new Inputs(rows, x, weight, bias, targets);
    }

    /** The output y of the current pair, which the array forms wrote last. */
    float[] output() {
        return y;
    }

    /** The output the native form wrote last: the current pair's native y. */
    MemorySegment nativeOutput() {
        return offHeap.y();
    }
}
