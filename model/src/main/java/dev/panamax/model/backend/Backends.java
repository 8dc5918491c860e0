package dev.panamax.model.backend;

import dev.panamax.cuda.Cuda;
import java.util.List;
import java.util.Locale;

/** Creates a {@link Backend} by name, the choice the command line's {@code --backend} offers. */
public final class Backends {
    private Backends() {}

    /** The names {@link #create} accepts. */
    public static final List<String> NAMES = List.of("auto", "cpu", "cuda", "emulated");

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
     * device, slow), or {@code auto}, which picks CUDA when {@link Cuda#isAvailable()} and the CPU otherwise.
     *
     * @param name one of {@link #NAMES}, in any case
     * @return the backend and a line saying which runs and why
     * @throws IllegalArgumentException for any other name
     * @throws dev.panamax.cuda.CudaUnavailableException for {@code cuda} or {@code emulated} when that device cannot
     *     run here, with the reason
     */
    public static Selection create(String name) {
        String chosen = name == null ? "" : name.toLowerCase(Locale.ROOT);
        return switch (chosen) {
            case "cpu" -> new Selection(new CpuBackend(), "backend: cpu (chosen with --backend cpu)");
            case "cuda" -> gpu("chosen with --backend cuda");
            case "emulated" ->
                new Selection(
                        CudaBackend.emulated(),
                        "backend: CUDA on the emulated device (chosen with --backend emulated; a test device, slow)");
            case "auto" ->
                Cuda.isAvailable()
                        ? gpu("auto: CUDA is available")
                        : new Selection(
                                new CpuBackend(),
                                "backend: cpu (auto: CUDA is not available: "
                                        + Cuda.unavailableReason().orElse("unknown reason") + ")");
            default ->
                throw new IllegalArgumentException("backend (" + name + ") must be one of " + String.join(", ", NAMES));
        };
    }

    private static Selection gpu(String why) {
        CudaBackend backend = CudaBackend.onGpu();
        return new Selection(backend, "backend: " + backend + " (" + why + ")");
    }
}
