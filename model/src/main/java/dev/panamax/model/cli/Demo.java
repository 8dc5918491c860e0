package dev.panamax.model.cli;

import dev.panamax.kernels.Gemm;
import dev.panamax.kernels.Parallelism;
import dev.panamax.kernels.Transpose;
import java.io.PrintStream;
import java.util.Locale;
import java.util.SplittableRandom;

/**
 * {@code panamax demo}: runs each kernel on a small problem, checks it against a float64 loop, and times it next to
 * the plain-Java loop a user would otherwise write. A smoke test and a first impression, not a benchmark: the JMH
 * suites in {@code bench} measure properly, side by side with OpenBLAS.
 */
final class Demo {
    private static final double TIMING_SECONDS = 0.3;

    private final PrintStream out;

    Demo(PrintStream out) {
        this.out = out;
    }

    /** Runs every kernel; returns false if any result broke its tolerance. */
    boolean run() {
        out.printf(
                Locale.ROOT,
                "Panamax kernels on %d thread(s); each checked against a float64 loop.%n%n",
                Parallelism.threads());
        out.printf(
                Locale.ROOT,
                "%-8s %-16s %12s %10s %16s %16s %9s%n",
                "kernel",
                "shape",
                "error/bound",
                "result",
                "panamax",
                "plain Java",
                "speed-up");
        boolean ok = sgemm(256, 256, 256);
        ok &= sgemv(2048, 2048);
        out.println();
        out.println(ok ? "All kernels match the reference." : "SOME KERNELS BROKE THEIR TOLERANCE.");
        return ok;
    }

    private boolean sgemm(int m, int n, int k) {
        float[] a = random(1, m * k);
        float[] b = random(2, k * n);
        float[] c = new float[m * n];
        Gemm.sgemm(Transpose.NO_TRANSPOSE, Transpose.NO_TRANSPOSE, m, n, k, 1, a, 0, k, b, 0, n, 0, c, 0, n);
        // A float dot product of length k is within k·2⁻²⁴·Σ|a||b| of the exact value.
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
        float[] plain = new float[m * n];
        double flop = 2.0 * m * n * k;
        double ours = rate(
                flop,
                () -> Gemm.sgemm(
                        Transpose.NO_TRANSPOSE, Transpose.NO_TRANSPOSE, m, n, k, 1, a, 0, k, b, 0, n, 0, c, 0, n));
        double theirs = rate(flop, () -> plainGemm(m, n, k, a, b, plain));
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
        double ours = rate(bytes, () -> Gemm.sgemv(Transpose.NO_TRANSPOSE, m, n, 1, a, 0, n, x, 0, 0, y, 0));
        double theirs = rate(bytes, () -> {
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

    private boolean report(String kernel, String shape, double worst, double ours, double theirs, String unit) {
        boolean ok = worst <= 1;
        out.printf(
                Locale.ROOT,
                "%-8s %-16s %12.3f %10s %9.1f %-6s %9.1f %-6s %8.1f×%n",
                kernel,
                shape,
                worst,
                ok ? "ok" : "WRONG",
                ours / 1e9,
                unit,
                theirs / 1e9,
                unit,
                ours / theirs);
        return ok;
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

    /** Work per second of the fastest of several timed runs, after a warm-up of the same length. */
    private static double rate(double work, Runnable kernel) {
        long budget = (long) (TIMING_SECONDS * 1e9);
        for (long start = System.nanoTime(); System.nanoTime() - start < budget; ) {
            kernel.run();
        }
        long best = Long.MAX_VALUE;
        for (long start = System.nanoTime(); System.nanoTime() - start < budget; ) {
            long t0 = System.nanoTime();
            kernel.run();
            best = Math.min(best, System.nanoTime() - t0);
        }
        return work / (best * 1e-9);
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
