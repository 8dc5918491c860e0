package dev.panamax.bench;

import dev.panamax.kernels.Parallelism;
import dev.panamax.kernels.Quantization;
import dev.panamax.kernels.QuantizedMatrix;
import dev.panamax.kernels.QuantizedProduct;
import dev.panamax.kernels.WeightFormat;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Map;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.TearDown;

/**
 * The decode GEMV with quantized weights, {@code y = W·x} for one token ({@link QuantizedProduct}), next to a plain read
 * of the same bytes on the same number of threads: the read is the bandwidth the machine gives at that moment, so
 * {@code panamax ÷ plainRead} is the fraction of it the product reaches. Shapes are {@code rows×columns} of W: the
 * stories110M matrices (768×768, 2048×768, 768×2048, the 32000×768 classifier) and those of a Llama of about 1B
 * (2048×2048, 8192×2048, 32000×2048). The rate is GB/s of weights read (x and y are a few KiB).
 *
 * <p>A model's weights do not fit in the caches, so neither do these: each operation uses the next of enough copies
 * of W (at least 512 MiB in all) that a copy has left the caches when its turn comes again; the read rotates through
 * the same copies.
 */
public class QuantBench extends Microbenchmark {
    /** The bytes of all copies of W together: well past any L3 cache. */
    private static final long ROTATION_BYTES = 512L << 20;

    @Param({"Q8_0", "Q4_0", "F16", "BF16"})
    public String format;

    @Param({"768x768", "2048x768", "768x2048", "32000x768", "2048x2048", "8192x2048", "32000x2048"})
    public String shape;

    @Param({"1", "2"})
    public int threads;

    private Arena arena;
    private QuantizedMatrix[] copies;
    private int next;
    private float[] x;
    private float[] y;

    /**
     * The weight bytes of one product.
     *
     * @param params the benchmark's parameters
     * @return the workload
     */
    public static Workload workload(Map<String, String> params) {
        int[] s = parse(params.get("shape"));
        return Workload.read(
                (double) s[0] * WeightFormat.valueOf(params.get("format")).rowBytes(s[1]),
                Integer.parseInt(params.get("threads")));
    }

    static int[] parse(String shape) {
        String[] dims = shape.split("x");
        return new int[] {Integer.parseInt(dims[0]), Integer.parseInt(dims[1])};
    }

    @Setup(Level.Trial)
    public void setUp() {
        int[] s = parse(shape);
        int rows = s[0];
        int columns = s[1];
        WeightFormat weights = WeightFormat.valueOf(format);
        long bytes = rows * weights.rowBytes(columns);
        arena = Arena.ofShared();
        // Seeded weights of a trained layer's size (Gaussian-like spread around 0), quantized by Panamax's encoder.
        float[] values = Workload.random(1, rows * columns);
        for (int i = 0; i < values.length; i++) {
            values[i] *= 0.05f;
        }
        MemorySegment first = arena.allocate(bytes, 64);
        Quantization.quantize(weights, MemorySegment.ofArray(values), 0, rows, columns, columns, first, 0);
        copies = new QuantizedMatrix[(int) Math.max(1, (ROTATION_BYTES + bytes - 1) / bytes)];
        for (int i = 0; i < copies.length; i++) {
            MemorySegment copy = i == 0 ? first : arena.allocate(bytes, 64);
            if (i > 0) {
                copy.copyFrom(first);
            }
            copies[i] = new QuantizedMatrix(weights, copy.asReadOnly(), 0, rows, columns);
        }
        x = Workload.random(2, columns);
        y = new float[rows];
        Parallelism.setThreads(threads);
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        arena.close();
    }

    private QuantizedMatrix nextCopy() {
        QuantizedMatrix w = copies[next];
        next = (next + 1) % copies.length;
        return w;
    }

    /** The copy of W the last operation read; for checking results. */
    QuantizedMatrix lastWeights() {
        return copies[(next + copies.length - 1) % copies.length];
    }

    /** x, the token's activations; for checking results. */
    float[] activations() {
        return x;
    }

    @Benchmark
    public float[] panamax() {
        QuantizedMatrix w = nextCopy();
        QuantizedProduct.multiply(w, 1, x, 0, w.columns(), y, 0, w.rows());
        return y;
    }

    /**
     * The same bytes read with vector loads on the same threads, through Panamax's own team ({@link PlainRead}).
     *
     * @return the sum
     */
    @Benchmark
    public long plainRead() {
        MemorySegment data = nextCopy().data();
        return PlainRead.read(data, 0, data.byteSize());
    }
}
