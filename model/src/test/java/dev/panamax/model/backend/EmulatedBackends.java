package dev.panamax.model.backend;

import dev.panamax.cuda.Cuda;
import dev.panamax.model.testing.Prerequisites;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.function.Function;

/**
 * Runs test code against a {@link CudaBackend} on the emulated device, each time on a thread of its own so the choice
 * of device never leaks into other tests' threads; skipped with the reason where the emulator was not built (failed
 * instead under {@code -Dpanamax.cuda.requireEmulator=true}, as CI runs).
 */
public final class EmulatedBackends {
    private EmulatedBackends() {}

    /** Skips (or fails, where required) the calling test when the emulated device cannot run here. */
    public static void require() {
        Cuda.emulatedDeviceUnavailableReason()
                .ifPresent(reason -> Prerequisites.missing(
                        "panamax.cuda.requireEmulator", "the emulated device cannot run here: " + reason));
    }

    /**
     * Applies {@code body} to a fresh emulated CudaBackend on a thread of its own and closes the backend.
     *
     * @param scheduleSeed the emulator's order of blocks and threads (0: index order)
     * @param capacityBytes the device memory the backend may use
     * @param body what to run
     * @param <T> the result type
     * @return what body returned
     */
    public static <T> T run(long scheduleSeed, long capacityBytes, Function<CudaBackend, T> body) {
        return run(scheduleSeed, capacityBytes, MatmulPrecision.FP32, body);
    }

    /**
     * {@link #run(long, long, Function)} on a backend whose products have the given precision.
     *
     * @param scheduleSeed the emulator's order of blocks and threads (0: index order)
     * @param capacityBytes the device memory the backend may use
     * @param precision the products' precision
     * @param body what to run
     * @param <T> the result type
     * @return what body returned
     */
    public static <T> T run(
            long scheduleSeed, long capacityBytes, MatmulPrecision precision, Function<CudaBackend, T> body) {
        require();
        ExecutorService thread = Executors.newSingleThreadExecutor();
        try {
            return thread.submit(() -> {
                        try (CudaBackend backend = CudaBackend.emulated(scheduleSeed, capacityBytes, precision)) {
                            return body.apply(backend);
                        }
                    })
                    .get();
        } catch (ExecutionException e) {
            if (e.getCause() instanceof RuntimeException r) {
                throw r;
            }
            if (e.getCause() instanceof Error error) {
                throw error;
            }
            throw new IllegalStateException(e.getCause());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException(e);
        } finally {
            thread.shutdownNow();
        }
    }

    /**
     * {@link #run(long, long, Function)} with no memory bound.
     *
     * @param scheduleSeed the emulator's order of blocks and threads
     * @param body what to run
     * @param <T> the result type
     * @return what body returned
     */
    public static <T> T run(long scheduleSeed, Function<CudaBackend, T> body) {
        return run(scheduleSeed, Long.MAX_VALUE, body);
    }
}
