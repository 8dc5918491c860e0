package dev.panamax.bench;

import dev.panamax.kernels.Attention;
import dev.panamax.kernels.Parallelism;
import dev.panamax.kernels.TensorView;
import java.util.Map;
import java.util.SplittableRandom;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Setup;

/**
 * Decoding one token against a KV cache of {@code tk} entries (12 heads of 64, the cache allocated for 8192): the
 * fused kernel with {@code tq = 1} next to a plain-Java loop (scores, softmax, weighted sum per head). Decode is bound
 * by streaming K and V once, so the rate is the GB/s of K and V read. The cache is laid out {@code heads} first
 * ({@code [head, position, 64]}, each head's keys contiguous) or {@code rows} first ({@code [position, head, 64]}, as
 * a model's projections write it). As a decode step reads a layer's cache after the other layers' weights and caches
 * have passed through the last-level cache, each operation reads the next of {@value #COPIES} caches' windows of
 * {@code tk} positions (150 MB in all), so K and V come from memory at every size, not from the caches.
 */
public class AttentionDecodeBench extends Microbenchmark {
    static final int HEADS = 12;
    static final int HEAD_DIM = 64;
    static final int CAPACITY = 8192;
    /** Whole caches the operations cycle through, K and V together 50 MB each: well beyond a last-level cache. */
    static final int COPIES = 3;

    @Param({"512", "2048", "8192"})
    public int tk;

    @Param({"1"})
    public int threads;

    @Param({"heads", "rows"})
    public String layout;

    private Attention.Shape shape;
    private float[] q;
    private float[] keys;
    private float[] values;
    private float[] o;
    private float[] scores;
    /** The window read last: {@code copy · windows + window}. */
    private int region;

    /**
     * Bytes of K and V streamed per decoded token.
     *
     * @param params the benchmark's parameters
     * @return the workload
     */
    public static Workload workload(Map<String, String> params) {
        return Workload.read(
                2.0 * HEADS * Integer.parseInt(params.get("tk")) * HEAD_DIM * Float.BYTES,
                Integer.parseInt(params.get("threads")));
    }

    @Setup(Level.Trial)
    public void setUp() {
        Parallelism.setThreads(threads);
        shape = new Attention.Shape(1, HEADS, HEADS, 1, tk, HEAD_DIM);
        SplittableRandom random = new SplittableRandom(1);
        q = new float[HEADS * HEAD_DIM];
        keys = new float[COPIES * HEADS * CAPACITY * HEAD_DIM];
        values = new float[keys.length];
        for (float[] array : new float[][] {q, keys, values}) {
            for (int i = 0; i < array.length; i++) {
                array[i] = (float) (random.nextDouble() * 2 - 1);
            }
        }
        o = new float[q.length];
        scores = new float[tk];
    }

    private TensorView cache(float[] data, int offset) {
        return TensorView.of(data, offset, (long) HEADS * CAPACITY * HEAD_DIM, headStride(), rowStride());
    }

    /** The float offset of the next window of {@code tk} positions, in the next cache once a cache's are all read. */
    private int nextWindow() {
        region = region + 1 == COPIES * (CAPACITY / tk) ? 0 : region + 1;
        return lastWindow();
    }

    /** The float offset in K and V of the window read last: its first position of head 0; for checking results. */
    int lastWindow() {
        int windows = CAPACITY / tk;
        return region / windows * HEADS * CAPACITY * HEAD_DIM + region % windows * tk * rowStride();
    }

    /** The query, {@code [head, 64]}; for checking results. */
    float[] query() {
        return q;
    }

    /** The caches' keys, {@value #COPIES} caches one after another, each laid out as {@code layout} says. */
    float[] keys() {
        return keys;
    }

    /** The caches' values, laid out as the keys. */
    float[] values() {
        return values;
    }

    private int headStride() {
        return layout.equals("rows") ? HEAD_DIM : CAPACITY * HEAD_DIM;
    }

    private int rowStride() {
        return layout.equals("rows") ? HEADS * HEAD_DIM : HEAD_DIM;
    }

    @Benchmark
    public float[] panamax() {
        int window = nextWindow();
        Attention.forward(
                shape,
                true,
                TensorView.dense(q, HEADS, 1, HEAD_DIM),
                cache(keys, window),
                cache(values, window),
                TensorView.dense(o, HEADS, 1, HEAD_DIM));
        return o;
    }

    @Benchmark
    public float[] plainJava() {
        float scale = shape.defaultScale();
        int rowStride = rowStride();
        int window = nextWindow();
        for (int h = 0; h < HEADS; h++) {
            int base = window + h * headStride();
            float max = Float.NEGATIVE_INFINITY;
            for (int j = 0; j < tk; j++) {
                float dot = 0;
                for (int c = 0; c < HEAD_DIM; c++) {
                    dot += q[h * HEAD_DIM + c] * keys[base + j * rowStride + c];
                }
                scores[j] = dot * scale;
                max = Math.max(max, scores[j]);
            }
            float sum = 0;
            for (int j = 0; j < tk; j++) {
                scores[j] = (float) Math.exp(scores[j] - max);
                sum += scores[j];
            }
            for (int c = 0; c < HEAD_DIM; c++) {
                o[h * HEAD_DIM + c] = 0;
            }
            for (int j = 0; j < tk; j++) {
                float weight = scores[j] / sum;
                for (int c = 0; c < HEAD_DIM; c++) {
                    o[h * HEAD_DIM + c] += weight * values[base + j * rowStride + c];
                }
            }
        }
        return o;
    }
}
