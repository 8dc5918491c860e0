package dev.panamax.cuda;

import static org.junit.jupiter.api.Assertions.fail;

import java.io.PrintStream;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import org.junit.jupiter.api.Assumptions;

/**
 * The tests that call into libcudart and libcublas need them. Where one is missing they are skipped, and the build
 * output says once per library which tests were skipped and why, so that {@code ./mvnw verify} passes on a machine
 * without CUDA. CI installs the libraries and sets {@code -Dpanamax.cuda.requireLibraries=true}, which turns a
 * missing library into a failure with the same reason, so the tests cannot be skipped there unnoticed.
 */
final class NativeLibraries {
    /** The system property that makes a missing library a test failure instead of a skip. */
    static final String REQUIRE_PROPERTY = "panamax.cuda.requireLibraries";

    /** The libraries whose skip has been reported: one line per library, not one per test. */
    private static final Set<String> REPORTED = ConcurrentHashMap.newKeySet();

    private NativeLibraries() {}

    static void requireCudart() {
        require(
                Libraries.Cudart.FOUND,
                "the CUDA runtime (libcudart, from a CUDA 11-13 toolkit)",
                Boolean.getBoolean(REQUIRE_PROPERTY),
                System.out);
    }

    static void requireCublas() {
        require(
                Libraries.Cublas.FOUND,
                "cuBLAS (libcublas; on Debian: apt-get install libcublas11, non-free)",
                Boolean.getBoolean(REQUIRE_PROPERTY),
                System.out);
    }

    /**
     * Returns when {@code found} has a path; otherwise fails the calling test when {@code required}, or skips it
     * after printing the reason to {@code log} (once per {@code what}).
     */
    static void require(Libraries.Found found, String what, boolean required, PrintStream log) {
        if (found.path().isPresent()) {
            return;
        }
        String message = "these tests need " + what + ": " + found.reason();
        if (required) {
            fail(message + " (" + REQUIRE_PROPERTY + " is true; leave it unset to skip them instead)");
        }
        if (REPORTED.add(what)) {
            log.println("Skipping the tests that need " + what + ": " + found.reason() + " (-D" + REQUIRE_PROPERTY
                    + "=true makes this a failure)");
        }
        Assumptions.abort(message);
    }

    /** The soname major of a loaded library file, e.g. 11 for {@code libcublas.so.11}. */
    static int sonameMajor(Libraries.Found found) {
        String name = found.path().orElseThrow().getFileName().toString();
        return Integer.parseInt(name.substring(name.lastIndexOf('.') + 1));
    }
}
