package dev.panamax.bench;

import dev.panamax.cuda.Cuda;
import dev.panamax.cuda.CudaKernel;
import dev.panamax.cuda.CudaModule;
import dev.panamax.cuda.DeviceBuffer;
import dev.panamax.cuda.Dim3;
import dev.panamax.cuda.ElementType;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

/**
 * What emulation costs: the sample {@code sgemm_tiled} kernel (16×16 tiles in shared memory, two barriers per tile)
 * on the emulated device, square n×n×n (an empty launch's cost is printed by the cuda-bindings kernel tests). Every
 * thread of the grid is a fiber that switches at each barrier, so this measures the emulator's scheduling as much as
 * the arithmetic. Needs the emulated device's library (built with g++), no GPU.
 */
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Warmup(iterations = 2, time = 2)
@Measurement(iterations = 3, time = 2)
public class EmulatorBench extends Microbenchmark {
    @Param({"64", "128", "256"})
    public int n;

    private CudaModule module;
    private CudaKernel sgemm;
    private DeviceBuffer a;
    private DeviceBuffer b;
    private DeviceBuffer c;

    /**
     * The tiled product's floating-point operations, on one core.
     *
     * @param params the benchmark's parameters ({@code n})
     * @return the workload
     */
    public static Workload workload(Map<String, String> params) {
        double n = Double.parseDouble(params.getOrDefault("n", "1"));
        return Workload.flops(2 * n * n * n, 1);
    }

    @Setup(Level.Trial)
    public void setUp() {
        Cuda.useEmulatedDevice();
        module = CudaModule.load("dev/panamax/cuda/ptx/samples.ptx");
        sgemm = module.kernel("sgemm_tiled");
        a = DeviceBuffer.allocate(ElementType.FLOAT, (long) n * n);
        b = DeviceBuffer.allocate(ElementType.FLOAT, (long) n * n);
        c = DeviceBuffer.allocate(ElementType.FLOAT, (long) n * n);
        a.copyFrom(Workload.random(1, n * n));
        b.copyFrom(Workload.random(2, n * n));
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        c.close();
        b.close();
        a.close();
        module.close();
    }

    @Benchmark
    public void sgemmTiled() {
        sgemm.launch(
                Dim3.of((n + 15) / 16, (n + 15) / 16), Dim3.of(16, 16), 0, null, n, n, n, 1f, a, n, b, n, 0f, c, n);
    }
}
