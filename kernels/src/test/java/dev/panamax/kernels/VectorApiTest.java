package dev.panamax.kernels;

import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.lang.reflect.Modifier;
import java.net.URISyntaxException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;

/** A JVM started without the Vector API gets a message naming the flag from the first kernel class it uses. */
class VectorApiTest {
    private static final String ERROR = "java.lang.NoClassDefFoundError: Panamax's kernels need the Vector API, which"
            + " this JVM was started without: add --add-modules jdk.incubator.vector to the java command line (in"
            + " Maven, to Surefire's argLine and to the arguments of exec:exec)";

    /** What a program prints when its first kernel call finds the Vector API missing. */
    private static final String MESSAGE = "Exception in thread \"main\" " + ERROR;

    /** The public types that hold no kernel code, only what kernels are given: they load without the Vector API. */
    private static final Set<Class<?>> ARGUMENT_TYPES = Set.of(
            Activation.class,
            Transpose.class,
            TensorView.class,
            Attention.Shape.class,
            Rope.Pairing.class,
            WeightFormat.class,
            QuantizedMatrix.class);

    private static final String LOADED = "loaded";

    @Test
    void passesInThisJvm() {
        assertDoesNotThrow(VectorApi::require);
    }

    @Test
    void gemmNamesTheMissingFlag() throws Exception {
        assertEquals(MESSAGE, firstLine(run(List.of(), "gemm")));
    }

    @Test
    void parallelismNamesTheMissingFlag() throws Exception {
        assertEquals(MESSAGE, firstLine(run(List.of(), "threads")));
    }

    @Test
    void withTheFlagTheChildRuns() throws Exception {
        assertEquals("ok", firstLine(run(List.of("--add-modules", "jdk.incubator.vector"), "gemm")));
    }

    /**
     * Initialises every public class of the package, as found in the compiled classes, in one child JVM without the
     * flag: each kernel class names the flag (none fails to link first with the bare error), and the argument types
     * load.
     */
    @Test
    void everyPublicClassNamesTheMissingFlag() throws Exception {
        List<String> classes = publicClasses();
        assertTrue(
                classes.containsAll(List.of("dev.panamax.kernels.Softmax", "dev.panamax.kernels.Attention$Shape")),
                "the public classes were not found: " + classes);
        List<String> arguments = new ArrayList<>(List.of("classes"));
        arguments.addAll(classes);
        String output = run(List.of(), arguments.toArray(String[]::new));
        String expected = classes.stream()
                .map(name -> name + " " + (isArgumentType(name) ? LOADED : ERROR))
                .collect(Collectors.joining("\n"));
        String actual = output.lines().filter(line -> !isIncubatorWarning(line)).collect(Collectors.joining("\n"));
        assertEquals(expected, actual);
    }

    private static boolean isArgumentType(String name) {
        return ARGUMENT_TYPES.stream().anyMatch(type -> type.getName().equals(name));
    }

    /** The binary names of the package's public classes (nested ones included), from its class files. */
    private static List<String> publicClasses() throws IOException, URISyntaxException, ClassNotFoundException {
        Path root = Path.of(VectorApi.class
                .getProtectionDomain()
                .getCodeSource()
                .getLocation()
                .toURI());
        Path packageDirectory = root.resolve(VectorApi.class.getPackageName().replace('.', '/'));
        assertTrue(Files.isDirectory(packageDirectory), packageDirectory + " is not the compiled classes' directory");
        List<String> names = new ArrayList<>();
        try (Stream<Path> files = Files.list(packageDirectory)) {
            for (Path file : files.sorted().toList()) {
                String fileName = file.getFileName().toString();
                if (!fileName.endsWith(".class") || fileName.equals("package-info.class")) {
                    continue;
                }
                String name = VectorApi.class.getPackageName() + "."
                        + fileName.substring(0, fileName.length() - ".class".length());
                if (isPublic(Class.forName(name, false, VectorApi.class.getClassLoader()))) {
                    names.add(name);
                }
            }
        }
        return names;
    }

    /** Whether code outside the package can name the class: it and every class around it are public. */
    private static boolean isPublic(Class<?> type) {
        for (Class<?> c = type; c != null; c = c.getEnclosingClass()) {
            if (!Modifier.isPublic(c.getModifiers())) {
                return false;
            }
        }
        return true;
    }

    private static boolean isIncubatorWarning(String line) {
        return line.startsWith("WARNING: Using incubator modules");
    }

    private static String firstLine(String output) {
        return output.lines()
                .filter(line -> !isIncubatorWarning(line))
                .findFirst()
                .orElse("");
    }

    /** Runs {@link WithoutFlag} in a new JVM on this test's class path and returns what it printed. */
    private static String run(List<String> jvmOptions, String... arguments) throws IOException, InterruptedException {
        List<String> command = new ArrayList<>();
        command.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
        command.addAll(jvmOptions);
        command.addAll(List.of("-cp", System.getProperty("java.class.path"), WithoutFlag.class.getName()));
        command.addAll(List.of(arguments));
        Process process = new ProcessBuilder(command).redirectErrorStream(true).start();
        String output = new String(process.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(process.waitFor(60, TimeUnit.SECONDS), "the child JVM did not finish");
        return output;
    }

    /** The child program: the first kernel call of a class-path program, or the first use of each class named. */
    static final class WithoutFlag {
        private WithoutFlag() {}

        public static void main(String[] args) {
            switch (args[0]) {
                case "gemm" -> {
                    float[] a = new float[4];
                    float[] c = new float[4];
                    Gemm.sgemm(
                            Transpose.NO_TRANSPOSE, Transpose.NO_TRANSPOSE, 2, 2, 2, 1f, a, 0, 2, a, 0, 2, 0f, c, 0, 2);
                }
                case "threads" -> Parallelism.threads();
                case "classes" -> {
                    for (int i = 1; i < args.length; i++) {
                        System.out.println(args[i] + " " + firstUse(args[i]));
                    }
                    return;
                }
                default -> throw new IllegalArgumentException(args[0]);
            }
            System.out.println("ok");
        }

        /**
         * Initialises the class, as its first static call or construction would ({@link VectorApi}'s entry point is
         * its one method), and says how that ended.
         */
        private static String firstUse(String name) {
            try {
                if (name.equals(VectorApi.class.getName())) {
                    VectorApi.require();
                } else {
                    Class.forName(name, true, WithoutFlag.class.getClassLoader());
                }
                return LOADED;
            } catch (Throwable t) {
                return t.toString();
            }
        }
    }
}
