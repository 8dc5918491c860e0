package dev.panamax.bench;

import dev.panamax.kernels.Attention;
import dev.panamax.kernels.Gemm;
import dev.panamax.kernels.Parallelism;
import dev.panamax.kernels.Softmax;
import dev.panamax.kernels.TensorView;
import dev.panamax.kernels.Transpose;
import java.lang.foreign.MemorySegment;
import java.util.Map;
import org.bytedeco.javacpp.FloatPointer;
import org.bytedeco.openblas.global.openblas;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.TearDown;

/**
 * Causal self-attention, batch 1, 12 heads of 64: the fused kernel ({@code panamax}) next to the three-step
 * composition {@code S = scale·Q·Kᵀ; P = softmax(S); O = P·V} built from our own {@link Gemm} and {@link Softmax}
 * ({@code unfused}) and from OpenBLAS's {@code cblas_sgemm} with the same softmax ({@code unfusedOpenblas}). The
 * compositions hold a {@code T × T} score matrix per head; the fused kernel holds tiles.
 *
 * <p>{@code backward} times {@link Attention#backward} (from saved O and log-sum-exp). Every rate in the table is in
 * forward GFLOP (4·heads·T²/2·headDim), so for {@code backward} the "panamax ÷ backward" ratio is the backward's time
 * over the forward's.
 */
public class AttentionBench extends Microbenchmark {
    static final int HEADS = 12;
    static final int HEAD_DIM = 64;

    @Param({"256", "512", "1024", "2048", "4096"})
    public int t;

    @Param({"1"})
    public int threads;

    private Attention.Shape shape;
    private float scale;
    private float[] q;
    private float[] k;
    private float[] v;
    private float[] o;
    private float[] lse;
    private float[] dO;
    private float[] dQ;
    private float[] dK;
    private float[] dV;
    private float[] scores;
    private FloatPointer qNative;
    private FloatPointer kNative;
    private FloatPointer vNative;
    private FloatPointer oNative;
    private FloatPointer scoresNative;
    private MemorySegment scoresSegment;

    /**
     * Forward flops of causal attention: two products over half of the {@code T × T} scores per head.
     *
     * @param params the benchmark's parameters
     * @return the workload
     */
    public static Workload workload(Map<String, String> params) {
        double t = Double.parseDouble(params.get("t"));
        return Workload.flops(4.0 * HEADS * t * t / 2 * HEAD_DIM, Integer.parseInt(params.get("threads")));
    }

    @Setup(Level.Trial)
    public void setUp() {
        Parallelism.setThreads(threads);
        Openblas.load(threads);
        shape = new Attention.Shape(1, HEADS, HEADS, t, t, HEAD_DIM);
        scale = shape.defaultScale();
        int size = HEADS * t * HEAD_DIM;
        q = Workload.random(1, size);
        k = Workload.random(2, size);
        v = Workload.random(3, size);
        dO = Workload.random(4, size);
        o = new float[size];
        lse = new float[HEADS * t];
        dQ = new float[size];
        dK = new float[size];
        dV = new float[size];
        scores = new float[t * t];
        qNative = new FloatPointer(q);
        kNative = new FloatPointer(k);
        vNative = new FloatPointer(v);
        oNative = new FloatPointer(size);
        scoresNative = new FloatPointer((long) t * t);
        // The softmax runs on OpenBLAS's own buffer, so the composition copies no matrix: only the softmax's rows go
        // through its per-thread buffer, as they would for any native memory.
        scoresSegment = MemorySegment.ofAddress(scoresNative.address()).reinterpret((long) t * t * Float.BYTES);
        Attention.forward(shape, scale, true, view(q), view(k), view(v), null, view(o), lseView());
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        for (FloatPointer pointer : new FloatPointer[] {qNative, kNative, vNative, oNative, scoresNative}) {
            pointer.close();
        }
    }

    private TensorView view(float[] data) {
        return TensorView.dense(data, HEADS, t, HEAD_DIM);
    }

    private TensorView lseView() {
        return TensorView.dense(lse, HEADS, t, 1);
    }

    /** The arrays the benchmarks read and write, each {@code [head, position, 64]}; for checking results. */
    record Tensors(float[] q, float[] k, float[] v, float[] o, float[] dO, float[] dQ, float[] dK, float[] dV) {}

    /** The arrays the benchmarks read and write; for checking results. */
    Tensors tensors() {
        return new Tensors(q, k, v, o, dO, dQ, dK, dV);
    }

    @Benchmark
    public float[] panamax() {
        Attention.forward(shape, scale, true, view(q), view(k), view(v), null, view(o), null);
        return o;
    }

    @Benchmark
    public float[] unfused() {
        for (int h = 0; h < HEADS; h++) {
            int at = h * t * HEAD_DIM;
            Gemm.sgemm(
                    Transpose.NO_TRANSPOSE,
                    Transpose.TRANSPOSE,
                    t,
                    t,
                    HEAD_DIM,
                    scale,
                    q,
                    at,
                    HEAD_DIM,
                    k,
                    at,
                    HEAD_DIM,
                    0,
                    scores,
                    0,
                    t);
            Softmax.forward(t, t, 1, 0, scores, 0, t, scores, 0, t);
            Gemm.sgemm(
                    Transpose.NO_TRANSPOSE,
                    Transpose.NO_TRANSPOSE,
                    t,
                    HEAD_DIM,
                    t,
                    1,
                    scores,
                    0,
                    t,
                    v,
                    at,
                    HEAD_DIM,
                    0,
                    o,
                    at,
                    HEAD_DIM);
        }
        return o;
    }

    @Benchmark
    public FloatPointer unfusedOpenblas() {
        for (int h = 0; h < HEADS; h++) {
            long at = (long) h * t * HEAD_DIM;
            openblas.cblas_sgemm(
                    openblas.CblasRowMajor,
                    openblas.CblasNoTrans,
                    openblas.CblasTrans,
                    t,
                    t,
                    HEAD_DIM,
                    scale,
                    qNative.position(at),
                    HEAD_DIM,
                    kNative.position(at),
                    HEAD_DIM,
                    0,
                    scoresNative.position(0),
                    t);
            Softmax.forward(t, t, 1, 0, scoresSegment, 0, t, scoresSegment, 0, t);
            openblas.cblas_sgemm(
                    openblas.CblasRowMajor,
                    openblas.CblasNoTrans,
                    openblas.CblasNoTrans,
                    t,
                    HEAD_DIM,
                    t,
                    1,
                    scoresNative.position(0),
                    t,
                    vNative.position(at),
                    HEAD_DIM,
                    0,
                    oNative.position(at),
                    HEAD_DIM);
        }
        return oNative;
    }

    @Benchmark
    public float[] backward() {
        Attention.backward(
                shape, scale, true, view(q), view(k), view(v), null, view(o), lseView(), view(dO), view(dQ), view(dK),
                view(dV));
        return dQ;
    }
}
