package dev.panamax.bench;

import static dev.panamax.kernels.Transpose.NO_TRANSPOSE;
import static dev.panamax.kernels.Transpose.TRANSPOSE;

import dev.panamax.kernels.Attention;
import dev.panamax.kernels.Gemm;
import dev.panamax.kernels.Parallelism;
import dev.panamax.kernels.Softmax;
import dev.panamax.kernels.TensorView;
import java.util.Map;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Setup;

/**
 * Causal self-attention, batch 1, 12 heads of 64: the fused kernel ({@code panamax}) next to the three-step
 * composition {@code S = scale·Q·Kᵀ; P = softmax(S); O = P·V} built from our own {@link Gemm} and {@link Softmax}
 * ({@code unfused}) and from OpenBLAS's {@code cblas_sgemm} with the same softmax ({@code unfusedOpenblas}).
 *
 * <p>The compositions are block-causal, as a user composing BLAS calls would write them: per block of {@value #BLOCK}
 * query rows, the products run over the keys up to the block's last row only, and the softmax masks the rest of the
 * block's diagonal. So they do the work the counted flops describe, not twice it (the diagonal blocks are computed
 * whole: {@code 32·T} more score pairs per head than the {@code T²/2} counted, 25% at T = 256 and 1.6% at 4096). Both compositions hold one block of scores, {@value #BLOCK} × T floats, in the same {@code float[]},
 * and run the same softmax on it: OpenBLAS reads and writes the Java arrays in place ({@link Openblas#sgemm}), so the
 * two differ in their products only.
 *
 * <p>{@code backward} times {@link Attention#backward} (from saved O and log-sum-exp). Every rate in the table is in
 * forward GFLOP (4·heads·T²/2·headDim), so for {@code backward} the "panamax ÷ backward" ratio is the backward's time
 * over the forward's.
 */
public class AttentionBench extends Microbenchmark {
    static final int HEADS = 12;
    static final int HEAD_DIM = 64;
    /** Query rows per step of the compositions, a tile's height in a fused kernel. */
    static final int BLOCK = 64;

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
        scores = new float[BLOCK * t];
        Attention.forward(shape, scale, true, view(q), view(k), view(v), null, view(o), lseView());
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
        return composition(false);
    }

    @Benchmark
    public float[] unfusedOpenblas() {
        return composition(true);
    }

    /**
     * Block-causal attention into o, its products by OpenBLAS or by Panamax: per head and block of query rows, the
     * scores, their softmax, then P·V.
     */
    private float[] composition(boolean openblas) {
        for (int h = 0; h < HEADS; h++) {
            int at = h * t * HEAD_DIM;
            for (int first = 0; first < t; first += BLOCK) {
                int rows = Math.min(BLOCK, t - first);
                int keys = first + rows;
                int queries = at + first * HEAD_DIM;
                if (openblas) {
                    Openblas.sgemm(
                            true, rows, keys, HEAD_DIM, scale, q, queries, HEAD_DIM, k, at, HEAD_DIM, scores, 0, keys);
                } else {
                    Gemm.sgemm(
                            NO_TRANSPOSE,
                            TRANSPOSE,
                            rows,
                            keys,
                            HEAD_DIM,
                            scale,
                            q,
                            queries,
                            HEAD_DIM,
                            k,
                            at,
                            HEAD_DIM,
                            0,
                            scores,
                            0,
                            keys);
                }
                // Row i of the block is query first + i, which sees keys up to first + i.
                Softmax.forward(rows, keys, 1, first, scores, 0, keys, scores, 0, keys);
                if (openblas) {
                    Openblas.sgemm(
                            false, rows, HEAD_DIM, keys, 1, scores, 0, keys, v, at, HEAD_DIM, o, queries, HEAD_DIM);
                } else {
                    Gemm.sgemm(
                            NO_TRANSPOSE,
                            NO_TRANSPOSE,
                            rows,
                            HEAD_DIM,
                            keys,
                            1,
                            scores,
                            0,
                            keys,
                            v,
                            at,
                            HEAD_DIM,
                            0,
                            o,
                            queries,
                            HEAD_DIM);
                }
            }
        }
        return o;
    }

    @Benchmark
    public float[] backward() {
        Attention.backward(
                shape, scale, true, view(q), view(k), view(v), null, view(o), lseView(), view(dO), view(dQ), view(dK),
                view(dV));
        return dQ;
    }
}
