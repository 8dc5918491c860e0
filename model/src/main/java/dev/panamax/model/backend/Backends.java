package dev.panamax.model.backend;

import dev.panamax.cuda.Cuda;
import dev.panamax.cuda.CudaUnavailableException;
import java.util.List;
import java.util.Locale;
import java.util.Optional;
import java.util.function.Supplier;

/** Creates a {@link Backend} by name, the choice the command line's {@code --backend} offers. */
public final class Backends {
    private Backends() {}

    /** The names {@link #create} accepts. */
    public static final List<String> NAMES = List.of("auto", "cpu", "cuda", "emulated");

    private static final String CHOSEN_CPU = "chosen with --backend cpu";

    /**
     * A backend and why it was chosen.
     *
     * @param backend the backend; the caller closes it
     * @param description which backend runs and why, one line for the user
     */
    public record Selection(Backend backend, String description) {}

    /**
     * Creates a backend: {@code cpu} (Panamax's Vector API kernels), {@code cuda} (the calling thread's current GPU),
     * {@code emulated} (the CUDA backend on the emulated device, which runs the CUDA kernels on the CPU: a test
     * device, slow), or {@code auto}, which picks CUDA when {@link Cuda#isAvailable()} and the GPU backend opens, and
     * the CPU otherwise, saying why.
     *
     * @param name one of {@link #NAMES}, in any case
     * @return the backend and a line saying which runs and why
     * @throws IllegalArgumentException for any other name
     * @throws dev.panamax.cuda.CudaUnavailableException for {@code cuda} or {@code emulated} when that device cannot
     *     run here, with the reason
     */
    public static Selection create(String name) {
        return create(name, MatmulPrecision.FP32);
    }

    /**
     * {@link #create(String)} with the products' precision: the CUDA backends take any {@link MatmulPrecision}; the CPU
     * backend computes in FP32 only, so asking it (or {@code auto} where CUDA is not available) for another precision
     * is refused rather than silently ignored.
     *
     * @param name one of {@link #NAMES}, in any case
     * @param precision the products' precision
     * @return the backend and a line saying which runs, at which precision, and why
     * @throws IllegalArgumentException for any other name, or a precision other than FP32 on the CPU
     * @throws dev.panamax.cuda.CudaUnavailableException for {@code cuda} or {@code emulated} when that device cannot
     *     run here, with the reason
     */
    public static Selection create(String name, MatmulPrecision precision) {
        String chosen = name == null ? "" : name.toLowerCase(Locale.ROOT);
        return switch (chosen) {
            case "cpu" -> cpu(precision, CHOSEN_CPU);
            case "cuda" -> gpu(precision, "chosen with --backend cuda");
            case "emulated" -> {
                CudaBackend backend = CudaBackend.emulated(0, Long.MAX_VALUE, precision);
                yield new Selection(
                        backend,
                        "backend: CUDA on the emulated device"
                                + (precision == MatmulPrecision.FP32 ? "" : ", " + precision + " products")
                                + " (chosen with --backend emulated; a test device, slow)");
            }
            case "auto" ->
                auto(
                        precision,
                        Cuda.isAvailable()
                                ? Optional.empty()
                                : Optional.of(Cuda.unavailableReason().orElse("unknown reason")),
                        () -> CudaBackend.onGpu(precision));
            default ->
                throw new IllegalArgumentException("backend (" + name + ") must be one of " + String.join(", ", NAMES));
        };
    }

    /**
     * Checks, before anything is opened, that the named backend computes products at this precision: {@code cpu}
     * computes in FP32 only, the CUDA backends at any precision, and {@code auto} is checked by {@link #create} once it
     * has chosen.
     *
     * @param name one of {@link #NAMES}, in any case
     * @param precision the products' precision
     * @throws IllegalArgumentException if {@code name} is {@code cpu} and the precision is not FP32
     */
    public static void checkPrecision(String name, MatmulPrecision precision) {
        if ("cpu".equalsIgnoreCase(name)) {
            requireFp32(precision, CHOSEN_CPU);
        }
    }

    private static void requireFp32(MatmulPrecision precision, String why) {
        if (precision != MatmulPrecision.FP32) {
            throw new IllegalArgumentException("the cpu backend computes products in fp32 only; " + precision.spelling()
                    + " needs a CUDA backend (backend: cpu, " + why + ")");
        }
    }

    /**
     * The {@code auto} choice: the GPU where CUDA is available and the GPU backend opens, else the CPU with the reason
     * (a driver too old for the kernels' PTX, say, passes {@link Cuda#isAvailable()} but cannot open the backend).
     *
     * @param precision the products' precision
     * @param unavailable why CUDA is not available, or empty when it is
     * @param gpu opens the GPU backend; may throw {@link CudaUnavailableException}
     * @return the selection
     */
    static Selection auto(MatmulPrecision precision, Optional<String> unavailable, Supplier<CudaBackend> gpu) {
        if (unavailable.isPresent()) {
            return cpu(precision, "auto: CUDA is not available: " + unavailable.get());
        }
        CudaBackend backend;
        try {
            backend = gpu.get();
        } catch (CudaUnavailableException e) {
            return cpu(precision, "auto: the CUDA backend cannot run here: " + e.reason());
        }
        return new Selection(backend, "backend: " + backend + " (auto: CUDA is available)");
    }

    private static Selection cpu(MatmulPrecision precision, String why) {
        requireFp32(precision, why);
        return new Selection(new CpuBackend(), "backend: cpu (" + why + ")");
    }

    private static Selection gpu(MatmulPrecision precision, String why) {
        CudaBackend backend = CudaBackend.onGpu(precision);
        return new Selection(backend, "backend: " + backend + " (" + why + ")");
    }
}
