package dev.panamax.bench;

import dev.panamax.kernels.Gemm;
import dev.panamax.kernels.Parallelism;
import dev.panamax.kernels.Transpose;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Map;
import java.util.concurrent.ForkJoinPool;
import java.util.stream.IntStream;
import org.bytedeco.javacpp.FloatPointer;
import org.bytedeco.openblas.global.openblas;
import org.ejml.concurrency.EjmlConcurrency;
import org.ejml.data.FMatrixRMaj;
import org.ejml.dense.row.CommonOps_FDRM;
import org.ejml.dense.row.CommonOps_MT_FDRM;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.TearDown;

/**
 * {@code C = A·B} (row-major, no transposes, beta = 0) on the same inputs for Panamax (arrays and native segments),
 * OpenBLAS ({@code cblas_sgemm}, its thread count set to match and checked), EJML and a plain-Java i-k-j loop (rows
 * split over a pool of the same size). Shapes are {@code m×k×n}; {@code B*m×k×n} is a batch of B products.
 */
public class GemmBench extends Microbenchmark {
    @Param({
        "64x64x64",
        "128x128x128",
        "256x256x256",
        "512x512x512",
        "1024x1024x1024",
        "2048x2048x2048",
        "64x768x3072",
        "512x768x768",
        "12*256x64x256"
    })
    public String shape;

    @Param({"1", "2"})
    public int threads;

    private int batch;
    private int m;
    private int k;
    private int n;
    private float[] a;
    private float[] b;
    private float[] c;
    private Arena arena;
    private MemorySegment aSegment;
    private MemorySegment bSegment;
    private MemorySegment cSegment;
    private FloatPointer aNative;
    private FloatPointer bNative;
    private FloatPointer cNative;
    private FMatrixRMaj[] aEjml;
    private FMatrixRMaj bEjml;
    private FMatrixRMaj[] cEjml;
    private ForkJoinPool plainPool;

    /** Parses {@code [B*]m×k×n}. */
    static int[] parse(String shape) {
        String[] batchAndDims = shape.split("\\*");
        String[] dims = batchAndDims[batchAndDims.length - 1].split("x");
        int batch = batchAndDims.length == 2 ? Integer.parseInt(batchAndDims[0]) : 1;
        return new int[] {batch, Integer.parseInt(dims[0]), Integer.parseInt(dims[1]), Integer.parseInt(dims[2])};
    }

    /**
     * The work of one operation: {@code 2·B·m·n·k} flops.
     *
     * @param params the benchmark's parameters
     * @return the workload
     */
    public static Workload workload(Map<String, String> params) {
        int[] s = parse(params.get("shape"));
        return Workload.flops(2.0 * s[0] * s[1] * s[2] * s[3], Integer.parseInt(params.get("threads")));
    }

    @Setup(Level.Trial)
    public void setUp() {
        int[] s = parse(shape);
        batch = s[0];
        m = s[1];
        k = s[2];
        n = s[3];
        // A has one matrix per batch entry; B is shared, as the weights of a layer are.
        a = Workload.random(1, batch * m * k);
        b = Workload.random(2, k * n);
        c = new float[batch * m * n];
        arena = Arena.ofShared();
        aSegment = arena.allocateFrom(ValueLayout.JAVA_FLOAT, a);
        bSegment = arena.allocateFrom(ValueLayout.JAVA_FLOAT, b);
        cSegment = arena.allocate(ValueLayout.JAVA_FLOAT, c.length);
        Openblas.load(threads);
        aNative = new FloatPointer(a);
        bNative = new FloatPointer(b);
        cNative = new FloatPointer(c.length);
        aEjml = new FMatrixRMaj[batch];
        cEjml = new FMatrixRMaj[batch];
        for (int i = 0; i < batch; i++) {
            aEjml[i] = new FMatrixRMaj(m, k);
            System.arraycopy(a, i * m * k, aEjml[i].data, 0, m * k);
            cEjml[i] = new FMatrixRMaj(m, n);
        }
        bEjml = FMatrixRMaj.wrap(k, n, b.clone());
        Parallelism.setThreads(threads);
        EjmlConcurrency.setMaxThreads(threads);
        plainPool = new ForkJoinPool(threads);
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        arena.close();
        aNative.close();
        bNative.close();
        cNative.close();
        plainPool.shutdown();
    }

    /** A (one matrix per batch entry, stacked), the input every implementation reads; for checking results. */
    float[] inputA() {
        return a;
    }

    /** B, shared by the batch; for checking results. */
    float[] inputB() {
        return b;
    }

    @Benchmark
    public float[] panamax() {
        Gemm.sgemmStridedBatched(
                Transpose.NO_TRANSPOSE,
                Transpose.NO_TRANSPOSE,
                m,
                n,
                k,
                1,
                a,
                0,
                k,
                (long) m * k,
                b,
                0,
                n,
                0,
                0,
                c,
                0,
                n,
                (long) m * n,
                batch);
        return c;
    }

    @Benchmark
    public MemorySegment panamaxSegment() {
        Gemm.sgemmStridedBatched(
                Transpose.NO_TRANSPOSE,
                Transpose.NO_TRANSPOSE,
                m,
                n,
                k,
                1,
                aSegment,
                0,
                k,
                (long) m * k,
                bSegment,
                0,
                n,
                0,
                0,
                cSegment,
                0,
                n,
                (long) m * n,
                batch);
        return cSegment;
    }

    @Benchmark
    public FloatPointer openblas() {
        for (int i = 0; i < batch; i++) {
            openblas.cblas_sgemm(
                    openblas.CblasRowMajor,
                    openblas.CblasNoTrans,
                    openblas.CblasNoTrans,
                    m,
                    n,
                    k,
                    1,
                    aNative.position((long) i * m * k),
                    k,
                    bNative,
                    n,
                    0,
                    cNative.position((long) i * m * n),
                    n);
        }
        return cNative;
    }

    @Benchmark
    public FMatrixRMaj[] ejml() {
        for (int i = 0; i < batch; i++) {
            if (threads == 1) {
                CommonOps_FDRM.mult(aEjml[i], bEjml, cEjml[i]);
            } else {
                CommonOps_MT_FDRM.mult(aEjml[i], bEjml, cEjml[i]);
            }
        }
        return cEjml;
    }

    @Benchmark
    public float[] plainJava() throws Exception {
        plainPool
                .submit(() -> IntStream.range(0, batch * m).parallel().forEach(this::plainRow))
                .get();
        return c;
    }

    /** Row {@code r} of the stacked product with an i-k-j loop, the fastest plain-Java order. */
    private void plainRow(int r) {
        int aRow = r * k;
        int cRow = r * n;
        java.util.Arrays.fill(c, cRow, cRow + n, 0f);
        for (int p = 0; p < k; p++) {
            float value = a[aRow + p];
            int bRow = p * n;
            for (int j = 0; j < n; j++) {
                c[cRow + j] += value * b[bRow + j];
            }
        }
    }
}
