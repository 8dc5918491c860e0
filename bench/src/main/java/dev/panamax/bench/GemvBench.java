package dev.panamax.bench;

import dev.panamax.kernels.Gemm;
import dev.panamax.kernels.Parallelism;
import dev.panamax.kernels.Transpose;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.Map;
import org.bytedeco.javacpp.FloatPointer;
import org.bytedeco.openblas.global.openblas;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.TearDown;

/**
 * The matrix-vector product of decoding, {@code y = A·x} (layout {@code N}: A {@code [rows, cols]}, Llama's weights)
 * or {@code y = Aᵀ·x} ({@code T}: GPT-2's {@code [in, out]} weights), in native memory, next to OpenBLAS's {@code
 * cblas_sgemv} (its thread count set with {@code openblas_set_num_threads} and checked) and to a plain read of the
 * same bytes by as many threads ({@code plainRead}: a vector sum on Panamax's own team of threads, the bandwidth
 * ceiling of a product that reads A once). Decode streams every weight from memory, not from the caches, so each
 * operation takes the next of enough copies of A to fill 256 MiB: every implementation reads A from memory, as a
 * decode step does. Shapes are {@code rows×cols} of A: the 110M shape's projections (768×768), gate and up
 * (2048×768), down (768×2048) and classifier (32000×768), and a 4096×4096 layer of a 7B model.
 */
public class GemvBench extends Microbenchmark {
    /** Bytes of copies of A that the operations cycle through: well beyond any last-level cache. */
    private static final long FOOTPRINT = 256L << 20;

    private static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT.withOrder(ByteOrder.nativeOrder());

    @Param({"768x768", "2048x768", "768x2048", "32000x768", "4096x4096"})
    public String shape;

    @Param({"N", "T"})
    public String layout;

    @Param({"1", "2"})
    public int threads;

    private int rows;
    private int cols;
    private int copies;
    private int next;
    private Arena arena;
    private MemorySegment a;
    private MemorySegment x;
    private MemorySegment y;
    private FloatPointer aNative;
    private FloatPointer xNative;
    private FloatPointer yNative;

    /** Parses {@code rows×cols}. */
    private static int[] parse(String shape) {
        String[] dims = shape.split("x");
        return new int[] {Integer.parseInt(dims[0]), Integer.parseInt(dims[1])};
    }

    /**
     * The bytes of A, read once per operation.
     *
     * @param params the benchmark's parameters
     * @return the workload
     */
    public static Workload workload(Map<String, String> params) {
        int[] s = parse(params.get("shape"));
        return Workload.read(4.0 * s[0] * s[1], Integer.parseInt(params.get("threads")));
    }

    @Setup(Level.Trial)
    public void setUp() {
        int[] s = parse(shape);
        rows = s[0];
        cols = s[1];
        long matrixBytes = 4L * rows * cols;
        copies = (int) Math.max(1, FOOTPRINT / matrixBytes);
        arena = Arena.ofShared();
        a = arena.allocate(matrixBytes * copies, 64);
        float[] values = Workload.random(1, rows * cols);
        for (int c = 0; c < copies; c++) {
            MemorySegment.copy(values, 0, a, FLOAT, c * matrixBytes, values.length);
        }
        int longest = Math.max(rows, cols);
        x = arena.allocate(4L * longest, 64);
        MemorySegment.copy(Workload.random(2, longest), 0, x, FLOAT, 0, longest);
        y = arena.allocate(4L * longest, 64);
        Openblas.load(threads);
        // Direct buffers over the same native memory: OpenBLAS reads the very bytes Panamax reads.
        aNative =
                new FloatPointer(a.asByteBuffer().order(ByteOrder.nativeOrder()).asFloatBuffer());
        xNative =
                new FloatPointer(x.asByteBuffer().order(ByteOrder.nativeOrder()).asFloatBuffer());
        yNative =
                new FloatPointer(y.asByteBuffer().order(ByteOrder.nativeOrder()).asFloatBuffer());
        Parallelism.setThreads(threads);
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        arena.close();
    }

    /** The float offset of the next copy of A. */
    private long nextCopy() {
        next = next + 1 == copies ? 0 : next + 1;
        return (long) next * rows * cols;
    }

    /** The copy of A the last operation read, {@code rows × cols} floats; for checking results. */
    MemorySegment lastMatrix() {
        long bytes = (long) Float.BYTES * rows * cols;
        return a.asSlice(next * bytes, bytes);
    }

    /** x, as many floats as A's longer side (a product reads the first {@code cols}, or {@code rows} for T). */
    MemorySegment vector() {
        return x;
    }

    @Benchmark
    public MemorySegment panamax() {
        Transpose trans = layout.equals("N") ? Transpose.NO_TRANSPOSE : Transpose.TRANSPOSE;
        Gemm.sgemv(trans, rows, cols, 1f, a, nextCopy(), cols, x, 0, 0f, y, 0);
        return y;
    }

    @Benchmark
    public FloatPointer openblas() {
        int trans = layout.equals("N") ? openblas.CblasNoTrans : openblas.CblasTrans;
        openblas.cblas_sgemv(
                openblas.CblasRowMajor,
                trans,
                rows,
                cols,
                1f,
                aNative.position(nextCopy()),
                cols,
                xNative,
                1,
                0f,
                yNative,
                1);
        return yNative;
    }

    @Benchmark
    public long plainRead() {
        long first = nextCopy() * Float.BYTES;
        return PlainRead.read(a, first, first + (long) Float.BYTES * rows * cols);
    }
}
