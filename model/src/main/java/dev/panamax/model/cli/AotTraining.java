package dev.panamax.model.cli;

import java.io.IOException;
import java.io.OutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * The training run behind the distribution's ahead-of-time cache ({@code lib/panamax.aot}, JDK 25's JEPs 483 and
 * 515): the build runs it once with {@code -XX:AOTCacheOutput}, and the classes it loads and links and the method
 * profiles it gathers are what later runs of {@code bin/panamax} start with. One JVM can record one run, so this
 * runs in one what users run most: a few training steps of a tiny Llama on a scrap of text, greedy decoding from the
 * llama2.c checkpoint they write, and sampling from the built-in GPT-2 model; the commands' output is discarded.
 */
public final class AotTraining {
    private AotTraining() {}

    /**
     * Runs the workload in a scratch directory.
     *
     * @param args the scratch directory, which must be empty or absent; it is left for the build to delete
     * @throws IOException if the scratch files cannot be written
     * @throws IllegalStateException if a command fails, naming it and its status
     */
    public static void main(String[] args) throws IOException {
        if (args.length != 1) {
            throw new IllegalArgumentException("usage: AotTraining SCRATCH_DIRECTORY");
        }
        Path scratch = Files.createDirectories(Path.of(args[0]));
        Path text = scratch.resolve("text.txt");
        StringBuilder lines = new StringBuilder();
        for (int i = 0; i < 64; i++) {
            lines.append("line ").append(i).append(": the quick brown fox jumps over the lazy dog.\n");
        }
        Files.writeString(text, lines, StandardCharsets.UTF_8);
        Path llama = scratch.resolve("llama");
        run(
                "train",
                "--data",
                text.toString(),
                "--arch",
                "llama",
                "--config",
                "tiny",
                "--steps",
                "3",
                "--batch",
                "2",
                "--seq",
                "32",
                "--warmup",
                "1",
                "--out",
                llama.toString());
        run("generate", "-m", llama.resolve("model.bin").toString(), "-n", "24", "--temperature", "0");
        run("generate", "-n", "100", "--temperature", "0.8", "-s", "1");
    }

    private static void run(String... command) {
        PrintStream discard = new PrintStream(OutputStream.nullOutputStream(), false, StandardCharsets.UTF_8);
        int status = Panamax.run(command, discard, discard);
        if (status != 0) {
            throw new IllegalStateException("panamax " + String.join(" ", command) + " exited with " + status);
        }
    }
}
