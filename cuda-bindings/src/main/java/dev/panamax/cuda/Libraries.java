package dev.panamax.cuda;

import java.io.IOException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.function.Consumer;
import java.util.stream.Stream;

/**
 * Finds and loads libcudart and libcublas, in the order of design.md: the explicit system property ({@code
 * panamax.cuda.cudart}, {@code panamax.cuda.cublas}: a library file), then {@code CUDA_HOME} and {@code CUDA_PATH},
 * the dynamic loader's path ({@code LD_LIBRARY_PATH}, the folders of {@code /etc/ld.so.conf}, the system library
 * folders) and the usual install locations; in each folder the sonames 13, 12 and 11, newest first. A library is
 * loaded with {@link System#load}, which associates it with this module's class loader, where the generated bindings
 * look their symbols up.
 */
final class Libraries {
    /** The soname majors tried in each folder, newest first. */
    static final List<Integer> MAJORS = List.of(13, 12, 11);

    private static final List<String> SYSTEM_FOLDERS = List.of(
            "/lib64",
            "/usr/lib64",
            "/lib/x86_64-linux-gnu",
            "/usr/lib/x86_64-linux-gnu",
            "/lib/aarch64-linux-gnu",
            "/usr/lib/aarch64-linux-gnu",
            "/lib",
            "/usr/lib");

    private static final List<String> INSTALL_FOLDERS =
            List.of("/usr/local/cuda/lib64", "/usr/local/cuda/lib", "/opt/cuda/lib64", "/opt/cuda/lib");

    private Libraries() {}

    /**
     * The outcome of looking for one library: where it was loaded from, or why it was not.
     *
     * @param path the file loaded, if any
     * @param reason empty when loaded; else what was tried, for {@link Cuda#unavailableReason()} and exceptions
     */
    record Found(Optional<Path> path, String reason) {
        /** Throws {@link IllegalStateException} with the reason when the library was not loaded. */
        void require() {
            if (path.isEmpty()) {
                throw new IllegalStateException(reason);
            }
        }
    }

    /** libcudart, looked for once. */
    static final class Cudart {
        static final Found FOUND = load("cudart");

        private Cudart() {}
    }

    /** libcublas, looked for once, on first use of cuBLAS. */
    static final class Cublas {
        static final Found FOUND = load("cublas");

        private Cublas() {}
    }

    private static Found load(String name) {
        return find(name, System.getProperty("panamax.cuda." + name), System.getenv(), Libraries::systemLoad);
    }

    @SuppressWarnings("restricted")
    private static void systemLoad(Path file) {
        System.load(file.toString());
    }

    /**
     * Looks for {@code lib<name>.so.<major>} and loads the first that loads.
     *
     * @param name the library's name without {@code lib} and suffix, e.g. {@code cublas}
     * @param explicit the explicit setting (a file), or null; when set, nothing else is tried
     * @param environment the environment variables
     * @param loader loads a library file; throws {@link UnsatisfiedLinkError} when it cannot
     * @return what was loaded, or the reason nothing was
     */
    static Found find(String name, String explicit, Map<String, String> environment, Consumer<Path> loader) {
        String lib = "lib" + name;
        if (explicit != null) {
            Path file = Path.of(explicit);
            String failure = tryLoad(file, loader);
            return failure == null
                    ? new Found(Optional.of(file), "")
                    : new Found(
                            Optional.empty(),
                            lib + " could not be loaded from panamax.cuda." + name + "=" + explicit + ": " + failure);
        }
        List<String> failures = new ArrayList<>();
        List<Path> folders = folders(environment);
        for (Path folder : folders) {
            for (int major : MAJORS) {
                Path file = folder.resolve(lib + ".so." + major);
                if (Files.exists(file)) {
                    String failure = tryLoad(file, loader);
                    if (failure == null) {
                        return new Found(Optional.of(file), "");
                    }
                    failures.add(file + ": " + failure);
                }
            }
        }
        StringBuilder reason = new StringBuilder(lib + " not found");
        if (!failures.isEmpty()) {
            reason.append(" (found but could not load: ")
                    .append(String.join("; ", failures))
                    .append(')');
        }
        reason.append(", looked for ");
        MAJORS.forEach(major -> reason.append(lib).append(".so.").append(major).append(' '));
        reason.append("in: ");
        reason.append(String.join(", ", folders.stream().map(Path::toString).toList()));
        reason.append(" (set panamax.cuda.").append(name).append(" to the library file, or CUDA_HOME)");
        return new Found(Optional.empty(), reason.toString());
    }

    private static String tryLoad(Path file, Consumer<Path> loader) {
        try {
            loader.accept(file.toAbsolutePath());
            return null;
        } catch (UnsatisfiedLinkError e) {
            return e.getMessage();
        }
    }

    /** The folders searched, in order, without repeats. */
    static List<Path> folders(Map<String, String> environment) {
        Set<Path> folders = new LinkedHashSet<>();
        for (String variable : List.of("CUDA_HOME", "CUDA_PATH")) {
            String home = environment.get(variable);
            if (home != null && !home.isBlank()) {
                folders.add(Path.of(home, "lib64"));
                folders.add(Path.of(home, "lib"));
            }
        }
        pathList(environment.get("LD_LIBRARY_PATH")).forEach(folders::add);
        loaderConfiguration(Path.of("/etc/ld.so.conf"), folders);
        SYSTEM_FOLDERS.forEach(folder -> folders.add(Path.of(folder)));
        INSTALL_FOLDERS.forEach(folder -> folders.add(Path.of(folder)));
        versionedInstalls(Path.of("/usr/local")).forEach(folders::add);
        return List.copyOf(folders);
    }

    private static Stream<Path> pathList(String value) {
        return value == null
                ? Stream.empty()
                : Stream.of(value.split(":")).filter(s -> !s.isBlank()).map(Path::of);
    }

    /** Adds the folders an ld.so.conf names, following its {@code include} lines (with globs) one level deep. */
    static void loaderConfiguration(Path file, Set<Path> folders) {
        for (String line : lines(file)) {
            String entry = line.strip();
            if (entry.startsWith("include ")) {
                Path pattern =
                        file.resolveSibling(entry.substring("include ".length()).strip());
                for (Path included : glob(pattern)) {
                    lines(included).stream()
                            .map(String::strip)
                            .filter(s -> s.startsWith("/"))
                            .forEach(s -> folders.add(Path.of(s)));
                }
            } else if (entry.startsWith("/")) {
                folders.add(Path.of(entry));
            }
        }
    }

    private static List<String> lines(Path file) {
        try {
            return Files.readAllLines(file);
        } catch (IOException e) {
            return List.of();
        }
    }

    private static List<Path> glob(Path pattern) {
        Path folder = pattern.getParent();
        if (folder == null || !Files.isDirectory(folder)) {
            return List.of();
        }
        List<Path> matches = new ArrayList<>();
        try (DirectoryStream<Path> stream =
                Files.newDirectoryStream(folder, pattern.getFileName().toString())) {
            stream.forEach(matches::add);
        } catch (IOException e) {
            return List.of();
        }
        matches.sort(Comparator.naturalOrder());
        return matches;
    }

    /**
     * {@code /usr/local/cuda-X.Y/lib64} (and {@code lib}) for each installed toolkit, newest first (name order is
     * version order for the two-digit majors 11 to 13 this looks for).
     */
    private static List<Path> versionedInstalls(Path root) {
        List<Path> folders = new ArrayList<>();
        for (Path toolkit : glob(root.resolve("cuda-*")).reversed()) {
            folders.add(toolkit.resolve("lib64"));
            folders.add(toolkit.resolve("lib"));
        }
        return folders;
    }
}
