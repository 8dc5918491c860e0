package dev.panamax.cuda;

import dev.panamax.cuda.ffi.CudaDriverFfi;
import dev.panamax.cuda.ffi.CudaFfi;
import java.io.IOException;
import java.lang.foreign.SymbolLookup;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.InvalidPathException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.function.Consumer;
import java.util.function.Predicate;
import java.util.stream.Stream;

/**
 * Finds and loads libcudart, libcublas and libcuda, in the order of design.md: the explicit system property ({@code
 * panamax.cuda.cudart}, {@code panamax.cuda.cublas}, {@code panamax.cuda.cuda}: a library file), then {@code
 * CUDA_HOME} and {@code CUDA_PATH}, the dynamic loader's path ({@code LD_LIBRARY_PATH}, the folders of {@code
 * /etc/ld.so.conf}, the system library folders) and the usual install locations. In each folder the toolkit's
 * libraries are tried with the sonames 13, 12 and 11, newest first; libcuda, which comes with the NVIDIA driver rather
 * than the toolkit, as {@code libcuda.so.1} and then {@code libcuda.so}. Folders named {@code stubs} are skipped: the
 * toolkit's stub libcuda links but cannot run anything. A library is loaded with {@link System#load}, which
 * associates it with this module's class loader, where the generated bindings look their symbols up.
 */
final class Libraries {
    /** The suffix of the generated accessors that return a bound function's address. */
    private static final String ADDRESS = "$address";

    /** The soname majors of the toolkit's libraries tried in each folder, newest first. */
    static final List<Integer> MAJORS = List.of(13, 12, 11);

    /** The folder name of the toolkit's link-only stub libraries, which are never loaded. */
    private static final Path STUBS = Path.of("stubs");

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
     * One library to look for.
     *
     * @param name the library's name without {@code lib} and suffix, e.g. {@code cublas}; also names its system
     *     property, {@code panamax.cuda.<name>}
     * @param fileNames the file names tried in each folder, in order
     * @param hint what the reason adds after "set panamax.cuda.&lt;name&gt; to the library file" when nothing is found
     * @param symbols the functions a loaded file must export to count as found: the generated bindings look them up
     *     only when first called, where a missing one would fail the binding's class initialization for good
     */
    record Library(String name, List<String> fileNames, String hint, List<String> symbols) {
        /**
         * A toolkit library, tried with the sonames {@link #MAJORS}; CUDA 11's runtime alone is {@code
         * libcudart.so.11.0}.
         */
        static Library toolkit(String name, List<String> symbols) {
            return new Library(
                    name,
                    MAJORS.stream()
                            .map(major ->
                                    "lib" + name + ".so." + major + (name.equals("cudart") && major == 11 ? ".0" : ""))
                            .toList(),
                    ", or CUDA_HOME",
                    symbols);
        }

        /** libcuda, the driver's library. */
        static Library driver(List<String> symbols) {
            return new Library(
                    "cuda",
                    List.of("libcuda.so.1", "libcuda.so"),
                    "; libcuda.so.1 is installed with the NVIDIA driver, not with the CUDA toolkit",
                    symbols);
        }
    }

    /**
     * The outcome of looking for one library: where it was loaded from, or why it was not.
     *
     * @param path the file loaded, if any
     * @param reason empty when loaded; else what was tried, for {@link Cuda#unavailableReason()} and exceptions
     */
    record Found(Optional<Path> path, String reason) {
        /** Throws {@link CudaUnavailableException} with the reason when the library was not loaded. */
        void require() {
            if (path.isEmpty()) {
                throw new CudaUnavailableException(reason);
            }
        }
    }

    /** libcudart, looked for once. */
    static final class Cudart {
        static final Found FOUND =
                load(Library.toolkit("cudart", boundFunctions(CudaFfi.class, name -> !name.startsWith("cublas"))));

        private Cudart() {}
    }

    /** libcublas, looked for once, on first use of cuBLAS. */
    static final class Cublas {
        static final Found FOUND =
                load(Library.toolkit("cublas", boundFunctions(CudaFfi.class, name -> name.startsWith("cublas"))));

        private Cublas() {}
    }

    /** libcuda, looked for once, on first use of the driver API. */
    static final class Driver {
        static final Found FOUND = load(Library.driver(boundFunctions(CudaDriverFfi.class, name -> true)));

        private Driver() {}
    }

    private static Found load(Library library) {
        return find(
                library, System.getProperty("panamax.cuda." + library.name()), System.getenv(), Libraries::systemLoad);
    }

    /**
     * The C functions a generated header class binds, from its {@code <function>$address()} accessors.
     *
     * @param bindings the generated class
     * @param which selects the functions of one library
     * @return their names, sorted
     */
    static List<String> boundFunctions(Class<?> bindings, Predicate<String> which) {
        return Stream.of(bindings.getMethods())
                .filter(method -> method.getName().endsWith(ADDRESS) && method.getParameterCount() == 0)
                .map(method -> method.getName().substring(0, method.getName().length() - ADDRESS.length()))
                .filter(which)
                .sorted()
                .toList();
    }

    @SuppressWarnings("restricted")
    private static void systemLoad(Path file) {
        System.load(file.toString());
    }

    /**
     * Looks for the library's file names in each folder and loads the first that loads.
     *
     * @param library the library
     * @param explicit the explicit setting (a file), or null; when set, nothing else is tried
     * @param environment the environment variables
     * @param loader loads a library file; throws {@link UnsatisfiedLinkError} when it cannot (or {@link
     *     IllegalCallerException} when this module may not load native code)
     * @return what was loaded, or the reason nothing was
     */
    static Found find(Library library, String explicit, Map<String, String> environment, Consumer<Path> loader) {
        String name = library.name();
        String lib = "lib" + name;
        if (explicit != null) {
            Path file;
            String failure;
            try {
                file = Path.of(explicit);
                failure = tryLoad(file, library, loader);
            } catch (InvalidPathException e) {
                file = null;
                failure = e.getMessage();
            }
            return failure == null
                    ? new Found(Optional.of(file), "")
                    : new Found(
                            Optional.empty(),
                            lib + " could not be loaded from panamax.cuda." + name + "=" + explicit + ": " + failure);
        }
        List<String> failures = new ArrayList<>();
        List<Path> folders = folders(environment).stream()
                .filter(folder -> !STUBS.equals(folder.getFileName()))
                .toList();
        for (Path folder : folders) {
            for (String fileName : library.fileNames()) {
                Path file = folder.resolve(fileName);
                if (Files.exists(file)) {
                    String failure = tryLoad(file, library, loader);
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
        reason.append(", looked for ")
                .append(String.join(" ", library.fileNames()))
                .append(" in: ")
                .append(String.join(", ", folders.stream().map(Path::toString).toList()))
                .append(" (set panamax.cuda.")
                .append(name)
                .append(" to the library file")
                .append(library.hint())
                .append(')');
        return new Found(Optional.empty(), reason.toString());
    }

    /** Loads a file and checks that it exports the library's symbols; returns null, or why it is not the library. */
    private static String tryLoad(Path file, Library library, Consumer<Path> loader) {
        try {
            loader.accept(file.toAbsolutePath());
        } catch (UnsatisfiedLinkError | IllegalCallerException e) {
            // IllegalCallerException: native access denied to this module (--illegal-native-access=deny).
            return e.getMessage();
        }
        SymbolLookup loaded = SymbolLookup.loaderLookup();
        List<String> missing = library.symbols().stream()
                .filter(symbol -> loaded.find(symbol).isEmpty())
                .toList();
        return missing.isEmpty()
                ? null
                : "it loads but does not export " + String.join(", ", missing) + ", so it is not a usable lib"
                        + library.name();
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
