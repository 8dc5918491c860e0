package dev.panamax.bench;

import dev.panamax.cuda.Cublas;
import dev.panamax.cuda.Cuda;
import dev.panamax.cuda.CudaEvent;
import dev.panamax.cuda.CudaStream;
import dev.panamax.cuda.DeviceBuffer;
import dev.panamax.cuda.ElementType;
import java.util.Locale;
import java.util.SplittableRandom;

/**
 * GEMM through Panamax's cuBLAS binding on a GPU, for {@code bench/gpu/check.sh}: {@code C = A·B} square, FP32
 * ({@code sgemm}) and BF16 in/out with FP32 accumulation ({@code gemmEx}), timed with CUDA events on one stream; then
 * the per-call overhead of small products, host time per call with the stream kept busy. Prints CSV lines {@code
 * panamax,TYPE,N,MS,TFLOPS} and {@code panamax-small,TYPE,N,US_PER_CALL,}.
 */
public final class CublasGemm {
    private CublasGemm() {}

    /**
     * Runs the benchmark.
     *
     * @param args sizes for the large products, e.g. {@code 1024 2048 4096 8192}
     */
    public static void main(String[] args) {
        if (!Cuda.isAvailable()) {
            System.err.println(
                    "CUDA is not available: " + Cuda.unavailableReason().orElseThrow());
            System.exit(2);
        }
        System.err.println(Cuda.device(0) + ", cuBLAS " + Cublas.libraryVersion() + " from "
                + Cublas.library().orElseThrow());
        try (Cublas cublas = Cublas.create();
                CudaStream stream = CudaStream.create()) {
            cublas.setStream(stream);
            for (ElementType type : new ElementType[] {ElementType.FLOAT, ElementType.BFLOAT16}) {
                for (String arg : args) {
                    int n = Integer.parseInt(arg);
                    double ms = time(cublas, stream, type, n, Math.max(3, (int) (4e12 / (2.0 * n * n * n))));
                    System.out.printf(
                            Locale.ROOT, "panamax,%s,%d,%.4f,%.2f%n", type, n, ms, 2.0 * n * n * n / ms / 1e9);
                }
                for (int n : new int[] {16, 64}) {
                    System.out.printf(
                            Locale.ROOT, "panamax-small,%s,%d,%.3f,%n", type, n, perCall(cublas, stream, type, n));
                }
            }
        }
    }

    /** Mean milliseconds of one product over {@code reps}, after two warm-up products. */
    private static double time(Cublas cublas, CudaStream stream, ElementType type, int n, int reps) {
        try (DeviceBuffer a = filled(type, (long) n * n, 1);
                DeviceBuffer b = filled(type, (long) n * n, 2);
                DeviceBuffer c = DeviceBuffer.allocate(type, (long) n * n);
                CudaEvent start = CudaEvent.create(true);
                CudaEvent end = CudaEvent.create(true)) {
            for (int i = 0; i < 2; i++) {
                product(cublas, type, n, a, b, c);
            }
            start.record(stream);
            for (int i = 0; i < reps; i++) {
                product(cublas, type, n, a, b, c);
            }
            end.record(stream);
            end.synchronize();
            return end.elapsedMillis(start) / reps;
        }
    }

    /** Microseconds of host time per small product, queued back to back, the stream drained at the end. */
    private static double perCall(Cublas cublas, CudaStream stream, ElementType type, int n) {
        try (DeviceBuffer a = filled(type, (long) n * n, 3);
                DeviceBuffer b = filled(type, (long) n * n, 4);
                DeviceBuffer c = DeviceBuffer.allocate(type, (long) n * n)) {
            int calls = 20_000;
            for (int i = 0; i < calls; i++) {
                product(cublas, type, n, a, b, c);
            }
            stream.synchronize();
            long t0 = System.nanoTime();
            for (int i = 0; i < calls; i++) {
                product(cublas, type, n, a, b, c);
            }
            stream.synchronize();
            return (System.nanoTime() - t0) / 1e3 / calls;
        }
    }

    private static void product(
            Cublas cublas, ElementType type, int n, DeviceBuffer a, DeviceBuffer b, DeviceBuffer c) {
        Cublas.Matrix ma = Cublas.Matrix.of(a, 0, n);
        Cublas.Matrix mb = Cublas.Matrix.of(b, 0, n);
        Cublas.Matrix mc = Cublas.Matrix.of(c, 0, n);
        if (type == ElementType.FLOAT) {
            cublas.sgemm(n, n, n, 1f, ma, mb, 0f, mc);
        } else {
            cublas.gemmEx(Cublas.ComputeType.FP32, n, n, n, 1f, ma, mb, 0f, mc);
        }
    }

    private static DeviceBuffer filled(ElementType type, long length, long seed) {
        DeviceBuffer buffer = DeviceBuffer.allocate(type, length);
        SplittableRandom random = new SplittableRandom(seed);
        float[] row = new float[(int) Math.min(length, 1 << 20)];
        for (long at = 0; at < length; at += row.length) {
            int count = (int) Math.min(row.length, length - at);
            for (int i = 0; i < count; i++) {
                row[i] = (float) random.nextDouble(-1, 1);
            }
            buffer.copyFrom(at, row, 0, count);
        }
        return buffer;
    }
}
