package dev.panamax.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.function.Consumer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The discovery order and its messages, on fake library files and a recording loader. */
class LibrariesTest {
    @TempDir
    Path dir;

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
                "pmxtest",
                file.toString(),
                Map.of("CUDA_HOME", dir.resolve("home").toString()),
                loader(".12"));
        assertEquals(Optional.of(file), found.path());
        assertEquals(List.of(file), attempts);

        Libraries.Found missing = Libraries.find("pmxtest", "/nowhere/libpmxtest.so", Map.of(), loader());
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
        Libraries.Found found = Libraries.find("pmxtest", null, environment, loader(".so.12", ".so.13"));
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
                Libraries.find("pmxtest", null, environment, loader(".so.11")).path());
        assertEquals(List.of(broken, good), attempts);

        Libraries.Found none = Libraries.find("pmxtest", null, environment, loader());
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
        Libraries.Found found = Libraries.find("pmxnothing", null, Map.of("CUDA_PATH", "/opt/pmx"), loader());
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
