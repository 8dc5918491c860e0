package dev.panamax.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.File;
import java.net.URISyntaxException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * Misconfigured library settings, each in a JVM of its own (the libraries are looked for once per JVM): every call
 * throws {@link CudaUnavailableException} with the same reason, never {@link ExceptionInInitializerError} or {@link
 * NoClassDefFoundError}.
 */
class CudaUnavailableTest {
    private static final String UNAVAILABLE = CudaUnavailableException.class.getName() + ": CUDA cannot run here: ";

    @Test
    void aCublasSettingThatDoesNotLoadIsUnavailableOnEveryCall() throws Exception {
        List<String> lines = probe("-Dpanamax.cuda.cublas=/nonexistent/libcublas.so.13");
        String cublas =
                UNAVAILABLE + "libcublas could not be loaded from panamax.cuda.cublas=/nonexistent/libcublas.so.13: ";
        for (String line : lines.subList(0, 3)) {
            assertTrue(line.startsWith(cublas), line);
            assertEquals(lines.getFirst(), line, "the same reason every time");
        }
    }

    @Test
    void aLibraryThatIsNotTheOneAskedForIsUnavailableNotAClassInitializationFailure() throws Exception {
        NativeLibraries.requireCudart();
        String cudart = Libraries.Cudart.FOUND.path().orElseThrow().toString();
        List<String> lines = probe("-Dpanamax.cuda.cublas=" + cudart, "-Dpanamax.cuda.cuda=" + cudart);
        String cublas = UNAVAILABLE + "libcublas could not be loaded from panamax.cuda.cublas=" + cudart
                + ": it loads but does not export cublasCreate_v2, ";
        for (String line : lines.subList(0, 3)) {
            assertTrue(line.startsWith(cublas), line);
            assertTrue(line.endsWith(", so it is not a usable libcublas"), line);
            assertEquals(lines.getFirst(), line, "the same reason every time");
        }
        String driver = UNAVAILABLE + "no CUDA driver: libcuda could not be loaded from panamax.cuda.cuda=" + cudart
                + ": it loads but does not export ";
        for (String line : lines.subList(3, 5)) {
            assertTrue(line.startsWith(driver), line);
            assertTrue(line.contains("cuInit") && line.endsWith(", so it is not a usable libcuda"), line);
        }
    }

    /** Runs {@link UnavailableProbe} in a new JVM with the given options; returns its five lines. */
    private static List<String> probe(String... options) throws Exception {
        // The folders or jars of the probe and of the module, not java.class.path: a test launcher may load both from
        // a class path of its own (bench/gpu/check.sh runs the JUnit console launcher with --class-path).
        String classPath = location(UnavailableProbe.class) + File.pathSeparator + location(Cublas.class);
        List<String> command = new ArrayList<>(List.of(
                Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "--enable-native-access=ALL-UNNAMED",
                "-cp",
                classPath));
        command.addAll(List.of(options));
        command.add(UnavailableProbe.class.getName());
        Process process = new ProcessBuilder(command)
                .redirectError(ProcessBuilder.Redirect.DISCARD)
                .start();
        String output = new String(process.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(process.waitFor(60, TimeUnit.SECONDS), "the probe JVM did not finish");
        assertEquals(0, process.exitValue(), output);
        List<String> lines = output.lines().toList();
        assertEquals(5, lines.size(), output);
        return lines;
    }

    private static Path location(Class<?> type) throws URISyntaxException {
        return Path.of(type.getProtectionDomain().getCodeSource().getLocation().toURI());
    }
}
