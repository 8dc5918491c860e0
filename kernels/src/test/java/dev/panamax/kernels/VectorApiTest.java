package dev.panamax.kernels;

import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/** A JVM started without the Vector API gets a message naming the flag from the first kernel class it uses. */
class VectorApiTest {
    private static final String MESSAGE =
            "Exception in thread \"main\" java.lang.NoClassDefFoundError: Panamax's kernels"
                    + " need the Vector API, which this JVM was started without: add --add-modules jdk.incubator.vector to the"
                    + " java command line (in Maven, to Surefire's argLine and to the arguments of exec:exec)";

    @Test
    void passesInThisJvm() {
        assertDoesNotThrow(VectorApi::require);
    }

    @Test
    void gemmNamesTheMissingFlag() throws Exception {
        assertFirstLine(MESSAGE, "gemm");
    }

    @Test
    void parallelismNamesTheMissingFlag() throws Exception {
        assertFirstLine(MESSAGE, "threads");
    }

    @Test
    void withTheFlagTheChildRuns() throws Exception {
        assertFirstLine("ok", "gemm", "--add-modules", "jdk.incubator.vector");
    }

    /** Runs {@link WithoutFlag} in a new JVM on this test's class path and checks the first line it prints. */
    private static void assertFirstLine(String expected, String kernel, String... jvmOptions)
            throws IOException, InterruptedException {
        List<String> command = new ArrayList<>();
        command.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
        command.addAll(List.of(jvmOptions));
        command.addAll(List.of("-cp", System.getProperty("java.class.path"), WithoutFlag.class.getName(), kernel));
        Process process = new ProcessBuilder(command).redirectErrorStream(true).start();
        String output = new String(process.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(process.waitFor(60, TimeUnit.SECONDS), "the child JVM did not finish");
        String firstLine = output.lines()
                .filter(line -> !line.startsWith("WARNING: Using incubator modules"))
                .findFirst()
                .orElse("");
        assertEquals(expected, firstLine, output);
    }

    /** The child program: the first kernel call of a class-path program. */
    static final class WithoutFlag {
        private WithoutFlag() {}

        public static void main(String[] args) {
            if (args[0].equals("gemm")) {
                float[] a = new float[4];
                float[] c = new float[4];
                Gemm.sgemm(Transpose.NO_TRANSPOSE, Transpose.NO_TRANSPOSE, 2, 2, 2, 1f, a, 0, 2, a, 0, 2, 0f, c, 0, 2);
            } else {
                Parallelism.threads();
            }
            System.out.println("ok");
        }
    }
}
