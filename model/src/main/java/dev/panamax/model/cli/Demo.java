package dev.panamax.model.cli;

import dev.panamax.kernels.Attention;
import dev.panamax.kernels.Gemm;
import dev.panamax.kernels.Parallelism;
import dev.panamax.kernels.Softmax;
import dev.panamax.kernels.TensorView;
import dev.panamax.kernels.Transpose;
import dev.panamax.model.backend.Backend;
import dev.panamax.model.backend.CpuBackend;
import dev.panamax.model.backend.Tensor;
import java.io.PrintStream;
import java.util.Locale;
import java.util.SplittableRandom;
import java.util.function.ToDoubleFunction;

/**
 * {@code panamax demo}: runs each kernel on a small problem, checks it against a float64 loop, and times it next to
 * the plain-Java loop a user would otherwise write; with {@code --backend} other than {@code cpu}, runs the same
 * problems through the {@link Backend} operations on that backend, next to the CPU backend. A smoke test and a first
 * impression, not a benchmark: the JMH suites in {@code bench} measure properly, side by side with OpenBLAS.
 */
final class Demo {
    private final PrintStream out;

    Demo(PrintStream out) {
        this.out = out;
    }

    /** Runs every kernel; returns false if any result broke its tolerance. */
    boolean run() {
        out.printf(
                Locale.ROOT,
                "Panamax kernels on %d thread(s); each checked against a reference loop (float64; float32 for attention).%n%n",
                Parallelism.threads());
        header("panamax", "plain Java");
        boolean ok = sgemm(256, 256, 256);
        ok &= sgemv(2048, 2048);
        ok &= softmax(512, 1024);
        ok &= attention(4, 256, 64);
        out.println();
        out.println(ok ? "All kernels match the reference." : "SOME KERNELS BROKE THEIR TOLERANCE.");
        return ok;
    }

    private void header(String ours, String theirs) {
        out.printf(
                Locale.ROOT,
                "%-10s %-16s %12s %10s %17s %17s %9s%n",
                "kernel",
                "shape",
                "error/bound",
                "result",
                ours,
                theirs,
                "speed-up");
    }

    private boolean sgemm(int m, int n, int k) {
        float[] a = random(1, m * k);
        float[] b = random(2, k * n);
        float[] c = new float[m * n];
        Gemm.sgemm(Transpose.NO_TRANSPOSE, Transpose.NO_TRANSPOSE, m, n, k, 1, a, 0, k, b, 0, n, 0, c, 0, n);
        double worst = gemmError(m, n, k, a, b, c);
        float[] plain = new float[m * n];
        double flop = 2.0 * m * n * k;
        Timing.Rate ours = rate(
                flop,
                () -> Gemm.sgemm(
                        Transpose.NO_TRANSPOSE, Transpose.NO_TRANSPOSE, m, n, k, 1, a, 0, k, b, 0, n, 0, c, 0, n));
        Timing.Rate theirs = rate(flop, () -> plainGemm(m, n, k, a, b, plain));
        return report("sgemm", m + "×" + n + "×" + k, worst, ours, theirs, "GFLOP/s");
    }

    private boolean sgemv(int m, int n) {
        float[] a = random(3, m * n);
        float[] x = random(4, n);
        float[] y = new float[m];
        Gemm.sgemv(Transpose.NO_TRANSPOSE, m, n, 1, a, 0, n, x, 0, 0, y, 0);
        double worst = 0;
        for (int i = 0; i < m; i++) {
            double sum = 0;
            double magnitude = 0;
            for (int j = 0; j < n; j++) {
                double product = (double) a[i * n + j] * x[j];
                sum += product;
                magnitude += Math.abs(product);
            }
            worst = Math.max(worst, Math.abs(sum - y[i]) / (n * 0x1p-24 * magnitude));
        }
        float[] plain = new float[m];
        double bytes = 4.0 * m * n;
        Timing.Rate ours = rate(bytes, () -> Gemm.sgemv(Transpose.NO_TRANSPOSE, m, n, 1, a, 0, n, x, 0, 0, y, 0));
        Timing.Rate theirs = rate(bytes, () -> {
            for (int i = 0; i < m; i++) {
                float sum = 0;
                for (int j = 0; j < n; j++) {
                    sum += a[i * n + j] * x[j];
                }
                plain[i] = sum;
            }
        });
        return report("sgemv", m + "×" + n, worst, ours, theirs, "GB/s");
    }

    private boolean softmax(int rows, int cols) {
        float[] x = random(5, rows * cols);
        float[] y = new float[rows * cols];
        Softmax.forward(rows, cols, 1, Softmax.UNMASKED, x, 0, cols, y, 0, cols);
        // Each probability is within a few ε of the exact one relative to itself; 16ε·p is the bound checked here.
        double worst = softmaxError(rows, cols, x, y);
        double bytes = 8.0 * rows * cols;
        Timing.Rate ours = rate(bytes, () -> Softmax.forward(rows, cols, 1, Softmax.UNMASKED, x, 0, cols, y, 0, cols));
        Timing.Rate theirs = rate(bytes, () -> {
            for (int r = 0; r < rows; r++) {
                float max = Float.NEGATIVE_INFINITY;
                for (int c = 0; c < cols; c++) {
                    max = Math.max(max, x[r * cols + c]);
                }
                float sum = 0;
                for (int c = 0; c < cols; c++) {
                    y[r * cols + c] = (float) Math.exp(x[r * cols + c] - max);
                    sum += y[r * cols + c];
                }
                for (int c = 0; c < cols; c++) {
                    y[r * cols + c] /= sum;
                }
            }
        });
        return report("softmax", rows + "×" + cols, worst, ours, theirs, "GB/s");
    }

    private boolean attention(int heads, int t, int d) {
        float[] q = random(6, heads * t * d);
        float[] k = random(7, heads * t * d);
        float[] v = random(8, heads * t * d);
        float[] o = new float[heads * t * d];
        Attention.Shape shape = new Attention.Shape(1, heads, heads, t, t, d);
        Runnable fused = () -> Attention.forward(
                shape,
                true,
                TensorView.dense(q, heads, t, d),
                TensorView.dense(k, heads, t, d),
                TensorView.dense(v, heads, t, d),
                TensorView.dense(o, heads, t, d));
        fused.run();
        float[] plain = new float[o.length];
        Runnable naive = () -> plainAttention(heads, t, d, q, k, v, plain);
        naive.run();
        // The float32 naive loop is the yardstick here; both are within (d + t)·ε of exact for inputs in [-1, 1).
        double worst = attentionError(t, d, o, plain);
        double flop = 4.0 * heads * t * t / 2 * d;
        return report("attention", heads + "×" + t + "×" + d, worst, rate(flop, fused), rate(flop, naive), "GFLOP/s");
    }

    /**
     * The worst error of a row-major {@code C = A·B} over its bound: a float dot product of length k is within
     * k·2⁻²⁴·Σ|a||b| of the exact value.
     */
    private static double gemmError(int m, int n, int k, float[] a, float[] b, float[] c) {
        double worst = 0;
        for (int i = 0; i < m; i++) {
            for (int j = 0; j < n; j++) {
                double sum = 0;
                double magnitude = 0;
                for (int p = 0; p < k; p++) {
                    double product = (double) a[i * k + p] * b[p * n + j];
                    sum += product;
                    magnitude += Math.abs(product);
                }
                worst = Math.max(worst, Math.abs(sum - c[i * n + j]) / (k * 0x1p-24 * magnitude));
            }
        }
        return worst;
    }

    /** The worst error of row-wise softmax probabilities over 16 float roundings of each. */
    private static double softmaxError(int rows, int cols, float[] x, float[] y) {
        double worst = 0;
        for (int r = 0; r < rows; r++) {
            double max = Double.NEGATIVE_INFINITY;
            for (int c = 0; c < cols; c++) {
                max = Math.max(max, x[r * cols + c]);
            }
            double sum = 0;
            for (int c = 0; c < cols; c++) {
                sum += Math.exp(x[r * cols + c] - max);
            }
            for (int c = 0; c < cols; c++) {
                double p = Math.exp(x[r * cols + c] - max) / sum;
                worst = Math.max(worst, Math.abs(p - y[r * cols + c]) / (16 * 0x1p-24 * p));
            }
        }
        return worst;
    }

    /** The worst difference from the plain loop's attention over 2·(d + t) float roundings of a unit value. */
    private static double attentionError(int t, int d, float[] o, float[] plain) {
        double worst = 0;
        for (int i = 0; i < o.length; i++) {
            worst = Math.max(worst, Math.abs(o[i] - plain[i]) / (2 * (d + t) * 0x1p-24));
        }
        return worst;
    }

    /**
     * Runs the same problems through the {@link Backend} interface on {@code chosen} and on the CPU backend: each
     * checked on the chosen backend against the same references and bounds as the kernels, each timed per call until
     * its result is back on the host.
     *
     * @param chosen the backend to demonstrate
     * @param name what it is, for the header
     * @return false if any result broke its tolerance
     */
    boolean runOn(Backend chosen, String name) {
        out.printf(
                Locale.ROOT,
                "The Backend operations on %s, next to the CPU backend on %d thread(s); each checked against a"
                        + " reference loop.%n%n",
                name,
                Parallelism.threads());
        header("this backend", "cpu backend");
        boolean ok;
        try (CpuBackend cpu = new CpuBackend()) {
            ok = backendMatmul(chosen, cpu, 256, 256, 256);
            ok &= backendSoftmax(chosen, cpu, 512, 1024);
            ok &= backendAttention(chosen, cpu, 4, 256, 64);
        }
        out.println();
        out.println(ok ? "All operations match the reference." : "SOME OPERATIONS BROKE THEIR TOLERANCE.");
        return ok;
    }

    /** Writes an operation's inputs into a backend and returns a call that computes it and reads the result into out. */
    private interface BackendProblem {
        Runnable on(Backend backend, float[] out);
    }

    /** Runs a problem on both backends: checks the chosen one's result, times both. */
    private boolean compare(
            String kernel,
            String shape,
            Backend chosen,
            Backend cpu,
            BackendProblem problem,
            int size,
            ToDoubleFunction<float[]> error,
            double work,
            String unit) {
        float[] result = new float[size];
        Runnable call = problem.on(chosen, result);
        call.run();
        double worst = error.applyAsDouble(result);
        Runnable onCpu = problem.on(cpu, new float[size]);
        return report(kernel, shape, worst, rate(work, call), rate(work, onCpu), unit);
    }

    private boolean backendMatmul(Backend chosen, Backend cpu, int m, int n, int k) {
        float[] a = random(1, m * k);
        float[] b = random(2, k * n);
        return compare(
                "matmul",
                m + "×" + n + "×" + k,
                chosen,
                cpu,
                (backend, result) -> {
                    Tensor x = tensor(backend, m, k, a);
                    Tensor w = tensor(backend, k, n, b);
                    Tensor y = backend.allocate(m, n);
                    return () -> {
                        backend.matmul(x, w, Backend.Layout.IN_OUT, null, y);
                        backend.read(y, result);
                    };
                },
                m * n,
                c -> gemmError(m, n, k, a, b, c),
                2.0 * m * n * k,
                "GFLOP/s");
    }

    private boolean backendSoftmax(Backend chosen, Backend cpu, int rows, int cols) {
        float[] x = random(5, rows * cols);
        return compare(
                "softmax",
                rows + "×" + cols,
                chosen,
                cpu,
                (backend, result) -> {
                    Tensor t = backend.allocate(rows, cols);
                    return () -> {
                        backend.write(x, t); // softmax works in place: each call starts from the inputs
                        backend.softmax(t, 1);
                        backend.read(t, result);
                    };
                },
                rows * cols,
                y -> softmaxError(rows, cols, x, y),
                8.0 * rows * cols,
                "GB/s");
    }

    private boolean backendAttention(Backend chosen, Backend cpu, int heads, int t, int d) {
        float[] q = random(6, heads * t * d);
        float[] k = random(7, heads * t * d);
        float[] v = random(8, heads * t * d);
        float[] plain = new float[heads * t * d];
        plainAttention(heads, t, d, q, k, v, plain);
        return compare(
                "attention",
                heads + "×" + t + "×" + d,
                chosen,
                cpu,
                (backend, result) -> {
                    // The Backend's layout is a row per position, heads side by side: [t, heads·d].
                    Tensor tq = tensor(backend, t, heads * d, byPosition(heads, t, d, q));
                    Tensor tk = tensor(backend, t, heads * d, byPosition(heads, t, d, k));
                    Tensor tv = tensor(backend, t, heads * d, byPosition(heads, t, d, v));
                    Tensor o = backend.allocate(t, heads * d);
                    float[] rows = new float[t * heads * d];
                    return () -> {
                        backend.attention(tq, tk, tv, heads, heads, 1, 0, o, null);
                        backend.read(o, rows);
                        for (int h = 0; h < heads; h++) {
                            for (int i = 0; i < t; i++) {
                                System.arraycopy(rows, (i * heads + h) * d, result, (h * t + i) * d, d);
                            }
                        }
                    };
                },
                heads * t * d,
                o -> attentionError(t, d, o, plain),
                4.0 * heads * t * t / 2 * d,
                "GFLOP/s");
    }

    /** {@code [heads, t, d]} as {@code [t, heads·d]}. */
    private static float[] byPosition(int heads, int t, int d, float[] values) {
        float[] rows = new float[values.length];
        for (int h = 0; h < heads; h++) {
            for (int i = 0; i < t; i++) {
                System.arraycopy(values, (h * t + i) * d, rows, (i * heads + h) * d, d);
            }
        }
        return rows;
    }

    private static Tensor tensor(Backend backend, int rows, int cols, float[] values) {
        Tensor t = backend.allocate(rows, cols);
        backend.write(values, t);
        return t;
    }

    /** Causal attention the straightforward way: scores, softmax, weighted sum, one query at a time. */
    private static void plainAttention(int heads, int t, int d, float[] q, float[] k, float[] v, float[] o) {
        float scale = (float) (1 / Math.sqrt(d));
        float[] p = new float[t];
        for (int h = 0; h < heads; h++) {
            int base = h * t * d;
            for (int i = 0; i < t; i++) {
                float max = Float.NEGATIVE_INFINITY;
                for (int j = 0; j <= i; j++) {
                    float dot = 0;
                    for (int c = 0; c < d; c++) {
                        dot += q[base + i * d + c] * k[base + j * d + c];
                    }
                    p[j] = dot * scale;
                    max = Math.max(max, p[j]);
                }
                float sum = 0;
                for (int j = 0; j <= i; j++) {
                    p[j] = (float) Math.exp(p[j] - max);
                    sum += p[j];
                }
                for (int c = 0; c < d; c++) {
                    float value = 0;
                    for (int j = 0; j <= i; j++) {
                        value += p[j] * v[base + j * d + c];
                    }
                    o[base + i * d + c] = value / sum;
                }
            }
        }
    }

    private boolean report(
            String kernel, String shape, double worst, Timing.Rate ours, Timing.Rate theirs, String unit) {
        boolean ok = worst <= 1;
        out.printf(
                Locale.ROOT,
                "%-10s %-16s %12.3f %10s %17s %17s %9s%n",
                kernel,
                shape,
                worst,
                ok ? "ok" : "WRONG",
                rate(ours, unit),
                rate(theirs, unit),
                ours.settled() && theirs.settled()
                        ? Timing.significant(ours.perSecond() / theirs.perSecond()) + "×"
                        : "-");
        return ok;
    }

    private static String rate(Timing.Rate rate, String unit) {
        return rate.settled() ? String.format(Locale.ROOT, "%9s %-7s", rate.giga(), unit) : "unsettled        ";
    }

    private static void plainGemm(int m, int n, int k, float[] a, float[] b, float[] c) {
        for (int i = 0; i < m; i++) {
            for (int j = 0; j < n; j++) {
                c[i * n + j] = 0;
            }
            for (int p = 0; p < k; p++) {
                float aip = a[i * k + p];
                for (int j = 0; j < n; j++) {
                    c[i * n + j] += aip * b[p * n + j];
                }
            }
        }
    }

    private static Timing.Rate rate(double work, Runnable kernel) {
        return Timing.measure(work, kernel, System::nanoTime);
    }

    private static float[] random(long seed, int length) {
        SplittableRandom random = new SplittableRandom(seed);
        float[] values = new float[length];
        for (int i = 0; i < length; i++) {
            values[i] = (float) (random.nextDouble() * 2 - 1);
        }
        return values;
    }
}
