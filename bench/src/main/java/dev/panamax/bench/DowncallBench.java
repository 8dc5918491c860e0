package dev.panamax.bench;

import dev.panamax.cuda.Cublas;
import dev.panamax.cuda.Version;
import dev.panamax.cuda.ffi.CudaFfi;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.CompilerControl;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.TearDown;

/**
 * The cost of calling into libcublas through FFM, so users know the per-call overhead: {@code downcall} is one
 * jextract-generated downcall ({@code cublasGetProperty(MAJOR_VERSION, &value)}, which needs no GPU), {@code java} the
 * same work as a plain Java call that is not inlined, and {@code panamax} the safe layer's {@link
 * Cublas#libraryVersion()} (three downcalls, a confined arena and status checks). Needs libcublas, no GPU.
 */
@OutputTimeUnit(TimeUnit.NANOSECONDS)
public class DowncallBench extends Microbenchmark {
    /** A non-inlined Java call per nanosecond, in millions of calls per second: the JVM's fastest calls. */
    private static final double MCALLS_PER_SECOND_CEILING = 1000;

    private Arena arena;
    private MemorySegment value;
    private int major;

    /**
     * One call per operation.
     *
     * @param params the benchmark's parameters (none)
     * @return the workload
     */
    public static Workload workload(Map<String, String> params) {
        return new Workload(
                1e-6,
                "Mcall",
                MCALLS_PER_SECOND_CEILING,
                "a non-inlined Java call a nanosecond: a round figure, not a measurement");
    }

    @Setup(Level.Trial)
    public void setUp() {
        major = Cublas.libraryVersion().major();
        arena = Arena.ofConfined();
        value = arena.allocate(ValueLayout.JAVA_INT);
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        arena.close();
    }

    @Benchmark
    public int downcall() {
        CudaFfi.cublasGetProperty(CudaFfi.MAJOR_VERSION(), value);
        return value.get(ValueLayout.JAVA_INT, 0);
    }

    @Benchmark
    public int java() {
        property(value, major);
        return value.get(ValueLayout.JAVA_INT, 0);
    }

    @Benchmark
    public Version panamax() {
        return Cublas.libraryVersion();
    }

    @CompilerControl(CompilerControl.Mode.DONT_INLINE)
    private static int property(MemorySegment out, int major) {
        out.set(ValueLayout.JAVA_INT, 0, major);
        return 0;
    }
}
