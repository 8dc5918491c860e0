package dev.panamax.model.testing;

import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Files that live next to the project in {@code ../shared/data} (relative to the project root) and are never copied
 * into the repository: tests that need one skip, saying why, where it is absent.
 */
public final class SharedData {
    private SharedData() {}

    /**
     * Returns a shared data file, or skips the calling test if it is absent.
     *
     * @param name the file's name in {@code ../shared/data}
     * @return its path
     */
    public static Path require(String name) {
        Path root = projectRoot();
        Path file = root.resolve("../shared/data").resolve(name).normalize();
        assumeTrue(
                Files.isRegularFile(file),
                () -> "skipped: " + file + " (../shared/data/" + name + " relative to the project root " + root
                        + ") is absent on this machine");
        return file;
    }

    /**
     * Returns the project root: the nearest directory at or above the working directory that holds {@code mvnw}.
     *
     * @return the root
     */
    public static Path projectRoot() {
        Path start = Path.of("").toAbsolutePath();
        for (Path dir = start; dir != null; dir = dir.getParent()) {
            if (Files.isRegularFile(dir.resolve("mvnw")) && Files.isDirectory(dir.resolve("model"))) {
                return dir;
            }
        }
        return start;
    }
}
