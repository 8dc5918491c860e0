package dev.panamax.cuda;

import static org.junit.jupiter.api.Assertions.fail;

import java.util.concurrent.atomic.AtomicBoolean;
import org.junit.jupiter.api.Assumptions;

/**
 * The emulated device's tests need its kernel library, which the build makes with g++: where it could not, they are
 * skipped with the reason, unless {@code -Dpanamax.cuda.requireEmulator=true} (set by CI) makes that a failure.
 */
final class Emulator {
    /** The test kernels' library (src/test/cuda), built next to the test classes. */
    static final String TEST_LIBRARY = "dev/panamax/cuda/emulator/libpanamax_emulator_test.so";

    /** Whether the reason for skipping has been printed: once per run is enough. */
    private static final AtomicBoolean PRINTED = new AtomicBoolean();

    private Emulator() {}

    /** Call before each test, so that each is reported as skipped (with the reason) where the device is missing. */
    static void require() {
        Cuda.emulatedDeviceUnavailableReason().ifPresent(reason -> {
            String message = "the emulated device is not available: " + reason;
            if (Boolean.getBoolean("panamax.cuda.requireEmulator")) {
                fail(message + " (-Dpanamax.cuda.requireEmulator=true makes this a failure)");
            }
            if (PRINTED.compareAndSet(false, true)) {
                System.err.println("Skipping the emulated device's tests: " + message);
            }
            Assumptions.abort(message);
        });
    }
}
