package dev.panamax.bench;

import dev.panamax.kernels.Parallelism;
import dev.panamax.kernels.Quantization;
import dev.panamax.kernels.QuantizedMatrix;
import dev.panamax.kernels.QuantizedProduct;
import dev.panamax.kernels.WeightFormat;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import jdk.incubator.vector.LongVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

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
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(1)
public class QuantBench {
    /** The bytes of all copies of W together: well past any L3 cache. */
    private static final long ROTATION_BYTES = 512L << 20;

    private static final VectorSpecies<Long> LONGS = LongVector.SPECIES_PREFERRED;

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
    private ExecutorService readers;

    /**
     * The weight bytes of one product.
     *
     * @param params the benchmark's parameters
     * @return the workload
     */
    public static Workload workload(Map<String, String> params) {
        int[] s = parse(params.get("shape"));
        return Workload.bytes(
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
        readers = Executors.newFixedThreadPool(Math.max(1, threads - 1));
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        readers.shutdown();
        arena.close();
    }

    private QuantizedMatrix nextCopy() {
        QuantizedMatrix w = copies[next];
        next = (next + 1) % copies.length;
        return w;
    }

    @Benchmark
    public float[] panamax() {
        QuantizedMatrix w = nextCopy();
        QuantizedProduct.multiply(w, 1, x, 0, w.columns(), y, 0, w.rows());
        return y;
    }

    /**
     * The same bytes read with vector loads and summed (so that nothing is optimised away), split into equal parts
     * over {@code threads} threads (the caller and a pool's workers).
     *
     * @return the sum
     * @throws Exception if a reader fails
     */
    @Benchmark
    public long plainRead() throws ExecutionException, InterruptedException {
        MemorySegment data = nextCopy().data();
        long part = data.byteSize() / threads / 64 * 64;
        List<Future<Long>> others = new ArrayList<>(threads - 1);
        for (int i = 1; i < threads; i++) {
            long from = i * part;
            long to = i == threads - 1 ? data.byteSize() : from + part;
            others.add(readers.submit(() -> read(data, from, to)));
        }
        long sum = read(data, 0, threads == 1 ? data.byteSize() : part);
        for (Future<Long> other : others) {
            sum += other.get();
        }
        return sum;
    }

    /** The sum of the longs in bytes {@code [from, to)}, four vectors at a time; the bytes past whole vectors one by one. */
    private static long read(MemorySegment data, long from, long to) {
        int step = LONGS.vectorByteSize();
        long end = from + (to - from) / (4L * step) * 4 * step;
        LongVector s0 = LongVector.zero(LONGS), s1 = s0, s2 = s0, s3 = s0;
        for (long at = from; at < end; at += 4L * step) {
            s0 = s0.add(LongVector.fromMemorySegment(LONGS, data, at, ByteOrder.LITTLE_ENDIAN));
            s1 = s1.add(LongVector.fromMemorySegment(LONGS, data, at + step, ByteOrder.LITTLE_ENDIAN));
            s2 = s2.add(LongVector.fromMemorySegment(LONGS, data, at + 2L * step, ByteOrder.LITTLE_ENDIAN));
            s3 = s3.add(LongVector.fromMemorySegment(LONGS, data, at + 3L * step, ByteOrder.LITTLE_ENDIAN));
        }
        long sum = s0.add(s1).add(s2.add(s3)).reduceLanes(VectorOperators.ADD);
        for (long at = end; at < to; at++) {
            sum += data.get(ValueLayout.JAVA_BYTE, at);
        }
        return sum;
    }
}
