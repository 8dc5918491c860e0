package dev.panamax.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.panamax.cuda.ffi.CudaDriverFfi;
import dev.panamax.cuda.ffi.CudaFfi;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.TreeSet;
import java.util.function.Consumer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The discovery order and its messages, on fake library files and a recording loader. */
class LibrariesTest {
    /** A toolkit library with no symbols to check, so that the recording loader's fake files count as found. */
    private static final Libraries.Library PMXTEST = Libraries.Library.toolkit("pmxtest", List.of());

    @TempDir
    Path dir;

    @Test
    void cuda11sRuntimeIsTriedByItsOwnSoname() {
        // The runtime of CUDA 11 is libcudart.so.11.0; its cuBLAS, like every 12 and 13 library, has no minor.
        assertEquals(
                List.of("libcudart.so.13", "libcudart.so.12", "libcudart.so.11.0"),
                Libraries.Library.toolkit("cudart", List.of()).fileNames());
        assertEquals(
                List.of("libcublas.so.13", "libcublas.so.12", "libcublas.so.11"),
                Libraries.Library.toolkit("cublas", List.of()).fileNames());
    }

    private final List<Path> attempts = new ArrayList<>();

    /** Loads only files whose name ends with one of {@code loadable}; records every attempt. */
    private Consumer<Path> loader(String... loadable) {
        return file -> {
            attempts.add(file);
            for (String suffix : loadable) {
                if (file.toString().endsWith(suffix)) {
                    return;
                }
            }
            throw new UnsatisfiedLinkError("cannot open " + file.getFileName());
        };
    }

    private Path touch(String relative) throws IOException {
        Path file = dir.resolve(relative);
        Files.createDirectories(file.getParent());
        return Files.createFile(file);
    }

    @Test
    void explicitSettingWinsAndIsTheOnlyPlaceTried() throws IOException {
        Path file = touch("custom/libpmxtest.so.12");
        touch("home/lib64/libpmxtest.so.13");
        Libraries.Found found = Libraries.find(
                PMXTEST,
                file.toString(),
                Map.of("CUDA_HOME", dir.resolve("home").toString()),
                loader(".12"));
        assertEquals(Optional.of(file), found.path());
        assertEquals(List.of(file), attempts);

        Libraries.Found missing = Libraries.find(PMXTEST, "/nowhere/libpmxtest.so", Map.of(), loader());
        assertEquals(Optional.empty(), missing.path());
        assertEquals(
                "libpmxtest could not be loaded from panamax.cuda.pmxtest=/nowhere/libpmxtest.so: cannot open "
                        + "libpmxtest.so",
                missing.reason());
    }

    @Test
    void cudaHomeComesFirstAndNewerSonamesBeforeOlder() throws IOException {
        touch("home/lib64/libpmxtest.so.11");
        Path twelve = touch("home/lib64/libpmxtest.so.12");
        touch("path/lib64/libpmxtest.so.13");
        Map<String, String> environment = Map.of(
                "CUDA_HOME", dir.resolve("home").toString(),
                "CUDA_PATH", dir.resolve("path").toString());
        Libraries.Found found = Libraries.find(PMXTEST, null, environment, loader(".so.12", ".so.13"));
        assertEquals(Optional.of(twelve), found.path());
        assertEquals(List.of(twelve), attempts);
    }

    @Test
    void aFileThatFailsToLoadIsSkippedAndReported() throws IOException {
        Path broken = touch("home/lib/libpmxtest.so.13");
        Path good = touch("ld/libpmxtest.so.11");
        Map<String, String> environment =
                Map.of("CUDA_HOME", dir.resolve("home").toString(), "LD_LIBRARY_PATH", dir.resolve("ld") + ":");
        assertEquals(
                Optional.of(good),
                Libraries.find(PMXTEST, null, environment, loader(".so.11")).path());
        assertEquals(List.of(broken, good), attempts);

        Libraries.Found none = Libraries.find(PMXTEST, null, environment, loader());
        assertTrue(
                none.reason()
                        .startsWith("libpmxtest not found (found but could not load: " + broken
                                + ": cannot open libpmxtest.so.13; " + good
                                + ": cannot open libpmxtest.so.11), looked for "
                                + "libpmxtest.so.13 libpmxtest.so.12 libpmxtest.so.11 in: "
                                + dir.resolve("home/lib64") + ", " + dir.resolve("home/lib") + ", " + dir.resolve("ld")
                                + ", "),
                none.reason());
    }

    @Test
    void nothingFoundListsWhereItLooked() {
        Libraries.Found found = Libraries.find(
                Libraries.Library.toolkit("pmxnothing", List.of()), null, Map.of("CUDA_PATH", "/opt/pmx"), loader());
        assertEquals(Optional.empty(), found.path());
        String reason = found.reason();
        assertTrue(
                reason.startsWith("libpmxnothing not found, looked for libpmxnothing.so.13 libpmxnothing.so.12 "
                        + "libpmxnothing.so.11 in: /opt/pmx/lib64, /opt/pmx/lib, "),
                reason);
        assertTrue(reason.contains(", /usr/local/cuda/lib64, "), reason);
        assertTrue(reason.endsWith(" (set panamax.cuda.pmxnothing to the library file, or CUDA_HOME)"), reason);
        assertTrue(attempts.isEmpty());
    }

    @Test
    void libcudaIsTheDriversSonameThenTheLinkNameAndNeverAToolkitStub() throws IOException {
        Path stub = touch("toolkit/lib64/stubs/libcuda.so");
        Path link = touch("driver/libcuda.so");
        Path soname = touch("driver/libcuda.so.1");
        Libraries.Library driver = Libraries.Library.driver(List.of());
        Map<String, String> environment = Map.of(
                "CUDA_HOME",
                dir.resolve("toolkit").toString(),
                "LD_LIBRARY_PATH",
                stub.getParent() + ":" + soname.getParent());
        assertEquals(
                Optional.of(soname),
                Libraries.find(driver, null, environment, loader(".so.1", ".so"))
                        .path());
        assertEquals(List.of(soname), attempts);

        attempts.clear();
        assertEquals(
                Optional.of(link),
                Libraries.find(driver, null, environment, loader(".so")).path());
        assertEquals(List.of(soname, link), attempts, "the stub is never tried");

        Libraries.Found none = Libraries.find(
                driver, null, Map.of("LD_LIBRARY_PATH", stub.getParent().toString()), loader());
        assertTrue(
                none.reason().startsWith("libcuda not found, looked for libcuda.so.1 libcuda.so in: "), none.reason());
        assertFalse(none.reason().contains("stubs"), none.reason());
        assertTrue(
                none.reason()
                        .endsWith(
                                " (set panamax.cuda.cuda to the library file; libcuda.so.1 is installed with the NVIDIA"
                                        + " driver, not with the CUDA toolkit)"),
                none.reason());
    }

    @Test
    void aFileThatLoadsButLacksTheBoundFunctionsIsNotTheLibrary() throws IOException {
        Path impostor = touch("home/lib64/libpmxtest.so.13");
        Libraries.Library needsSymbols =
                Libraries.Library.toolkit("pmxtest", List.of("pmxAbsentFunctionOne", "pmxAbsentFunctionTwo"));
        Libraries.Found found = Libraries.find(
                needsSymbols, null, Map.of("CUDA_HOME", dir.resolve("home").toString()), loader(".so.13"));
        assertEquals(Optional.empty(), found.path());
        assertTrue(
                found.reason()
                        .startsWith("libpmxtest not found (found but could not load: " + impostor
                                + ": it loads but does not export pmxAbsentFunctionOne, pmxAbsentFunctionTwo, so it is"
                                + " not a usable libpmxtest), "),
                found.reason());

        Libraries.Found explicit = Libraries.find(needsSymbols, impostor.toString(), Map.of(), loader(".so.13"));
        assertEquals(
                "libpmxtest could not be loaded from panamax.cuda.pmxtest=" + impostor
                        + ": it loads but does not export"
                        + " pmxAbsentFunctionOne, pmxAbsentFunctionTwo, so it is not a usable libpmxtest",
                explicit.reason());
        CudaUnavailableException e = assertThrows(CudaUnavailableException.class, explicit::require);
        assertEquals(explicit.reason(), e.reason());
        assertEquals("CUDA cannot run here: " + explicit.reason(), e.getMessage());
    }

    @Test
    void anExplicitSettingThatIsNoPathIsAReasonNotAnError() {
        Libraries.Found found = Libraries.find(PMXTEST, "lib\0pmx", Map.of(), loader());
        assertEquals(Optional.empty(), found.path());
        assertTrue(
                found.reason().startsWith("libpmxtest could not be loaded from panamax.cuda.pmxtest=lib\0pmx: "),
                found.reason());
        assertTrue(attempts.isEmpty());
    }

    @Test
    void eachLibraryMustExportTheFunctionsItsBindingsCall() {
        List<String> runtime = Libraries.boundFunctions(CudaFfi.class, name -> !name.startsWith("cublas"));
        List<String> cublas = Libraries.boundFunctions(CudaFfi.class, name -> name.startsWith("cublas"));
        List<String> driver = Libraries.boundFunctions(CudaDriverFfi.class, name -> true);
        assertTrue(
                runtime.contains("cudaGetDeviceCount") && runtime.stream().allMatch(f -> f.startsWith("cuda")),
                runtime::toString);
        assertTrue(cublas.contains("cublasCreate_v2") && cublas.contains("cublasGemmEx"), cublas::toString);
        assertTrue(driver.contains("cuInit") && driver.contains("cuLaunchKernel"), driver::toString);
        assertEquals(BindingsTest.boundFunctions("jextract.args"), new TreeSet<>(union(runtime, cublas)));
        assertEquals(BindingsTest.boundFunctions("jextract.driver.args"), new TreeSet<>(driver));
    }

    private static List<String> union(List<String> first, List<String> second) {
        List<String> all = new ArrayList<>(first);
        all.addAll(second);
        return all;
    }

    @Test
    void folderOrderIsCudaHomeCudaPathLoaderPathThenInstallLocations() {
        List<Path> folders =
                Libraries.folders(Map.of("CUDA_HOME", "/h", "CUDA_PATH", "/p", "LD_LIBRARY_PATH", "/l1:/l2"));
        assertEquals(
                List.of(
                        Path.of("/h/lib64"),
                        Path.of("/h/lib"),
                        Path.of("/p/lib64"),
                        Path.of("/p/lib"),
                        Path.of("/l1"),
                        Path.of("/l2")),
                folders.subList(0, 6));
        assertTrue(folders.indexOf(Path.of("/usr/lib/x86_64-linux-gnu"))
                < folders.indexOf(Path.of("/usr/local/cuda/lib64")));
        assertEquals(folders.size(), new LinkedHashSet<>(folders).size(), "no folder twice");
    }

    @Test
    void loaderConfigurationFollowsIncludes() throws IOException {
        Files.createDirectories(dir.resolve("conf.d"));
        Files.writeString(dir.resolve("ld.so.conf"), "# comment\ninclude conf.d/*.conf\n/first\n");
        Files.writeString(dir.resolve("conf.d/b.conf"), "/from-b\n");
        Files.writeString(dir.resolve("conf.d/a.conf"), "# cuda\n/from-a\n");
        Files.writeString(dir.resolve("conf.d/ignored.txt"), "/not-this\n");
        Set<Path> folders = new LinkedHashSet<>();
        Libraries.loaderConfiguration(dir.resolve("ld.so.conf"), folders);
        assertEquals(List.of(Path.of("/from-a"), Path.of("/from-b"), Path.of("/first")), List.copyOf(folders));
    }
}
