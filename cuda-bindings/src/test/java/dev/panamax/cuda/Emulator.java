package dev.panamax.cuda;

import static org.junit.jupiter.api.Assertions.fail;

import org.junit.jupiter.api.Assumptions;

/**
 * The emulated device's tests need its kernel library, which the build makes with g++: where it could not, they are
 * skipped with the reason, unless {@code -Dpanamax.cuda.requireEmulator=true} (set by CI) makes that a failure.
 */
final class Emulator {
    /** The test kernels' library (src/test/cuda), built next to the test classes. */
    static final String TEST_LIBRARY = "dev/panamax/cuda/emulator/libpanamax_emulator_test.so";

    private Emulator() {}

    static void require() {
        Cuda.emulatedDeviceUnavailableReason().ifPresent(reason -> {
            String message = "the emulated device is not available: " + reason;
            if (Boolean.getBoolean("panamax.cuda.requireEmulator")) {
                fail(message + " (-Dpanamax.cuda.requireEmulator=true makes this a failure)");
            }
            Assumptions.abort(message);
        });
    }
}
