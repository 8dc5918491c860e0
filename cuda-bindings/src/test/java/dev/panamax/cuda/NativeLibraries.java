package dev.panamax.cuda;

import static org.junit.jupiter.api.Assertions.fail;

import org.junit.jupiter.api.Assumptions;

/**
 * The tests that call into libcudart and libcublas need them: without them they fail with the discovery's reason
 * rather than pass silently (.ci/run installs libcublas11; libcudart comes with the CUDA 13 toolkit), unless {@code
 * -Dpanamax.cuda.requireLibraries=false} turns the failure into a skip with the same reason.
 */
final class NativeLibraries {
    private NativeLibraries() {}

    static void requireCudart() {
        require(Libraries.Cudart.FOUND, "the CUDA runtime (libcudart, from a CUDA 11-13 toolkit)");
    }

    static void requireCublas() {
        require(Libraries.Cublas.FOUND, "cuBLAS (libcublas; on Debian: apt-get install libcublas11, non-free)");
    }

    private static void require(Libraries.Found found, String what) {
        if (found.path().isEmpty()) {
            String message = "these tests need " + what + ": " + found.reason();
            if (Boolean.parseBoolean(System.getProperty("panamax.cuda.requireLibraries", "true"))) {
                fail(message + " (or run with -Dpanamax.cuda.requireLibraries=false to skip them)");
            }
            Assumptions.abort(message);
        }
    }

    /** The soname major of a loaded library file, e.g. 11 for {@code libcublas.so.11}. */
    static int sonameMajor(Libraries.Found found) {
        String name = found.path().orElseThrow().getFileName().toString();
        return Integer.parseInt(name.substring(name.lastIndexOf('.') + 1));
    }
}
