package dev.panamax.model.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.panamax.model.testing.TokenizerFixtures;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Inputs within the commands' size limits that the heap cannot hold: refused in one line, never a stack trace. */
class HeapLimitsTest {
    private final CapturedCli cli = new CapturedCli(true);

    @TempDir
    Path dir;

    @Test
    void trainingTextTheHeapCannotHoldIsRefusedBeforeItIsRead() throws IOException {
        // A quarter of the heap in (sparse) text, within train's 1 GiB: its copies while read would take two heaps.
        long size = Runtime.getRuntime().maxMemory() / 4;
        Path text = dir.resolve("large.txt");
        try (RandomAccessFile sparse = new RandomAccessFile(text.toFile(), "rw")) {
            sparse.setLength(size);
        }
        assertEquals(1, cli.run(CliFixtures.train(text, 1, 8, dir.resolve("run"))));
        assertTrue(
                cli.err().startsWith("panamax: reading the " + size + " bytes of text of --data " + text + " needs "),
                cli.err());
        assertEquals(1, cli.err().lines().count(), cli.err());
    }

    /** Memory that more heap would not give (native memory, threads) is named as the JVM names it, without -Xmx advice. */
    @Test
    void runningOutOfOtherMemoryIsNotBlamedOnTheHeap() {
        assertEquals(
                "panamax: generate ran out of memory: Unable to allocate 4096 bytes",
                Panamax.outOfMemory("generate", new OutOfMemoryError("Unable to allocate 4096 bytes")));
        assertTrue(Panamax.outOfMemory("generate", new OutOfMemoryError("Java heap space"))
                .contains("ran out of Java heap (-Xmx, about "));
    }

    @Test
    void aCommandThatRunsOutOfHeapSaysSoInOneLine() throws Exception {
        // 16 MiB of text, within tokenize's 64 MiB, read (as bytes, then as text) in a heap of 24 MiB.
        Path model = dir.resolve("spm.gguf");
        TokenizerFixtures.writeLlama(model);
        Path text = Files.writeString(dir.resolve("text.txt"), "hello ".repeat((16 << 20) / 6));
        Path log = dir.resolve("child.log");
        Process child = new ProcessBuilder(
                        ProcessHandle.current().info().command().orElseThrow(),
                        "--add-modules=jdk.incubator.vector",
                        "--enable-native-access=ALL-UNNAMED",
                        "-Xmx24m",
                        "-cp",
                        System.getProperty("java.class.path"),
                        Panamax.class.getName(),
                        "tokenize",
                        "-m",
                        model.toString(),
                        "--file",
                        text.toString())
                .redirectErrorStream(true)
                .redirectOutput(log.toFile())
                .start();
        assertTrue(child.waitFor(60, TimeUnit.SECONDS), "the child did not finish");
        String printed = Files.readString(log, StandardCharsets.UTF_8)
                .replace("WARNING: Using incubator modules: jdk.incubator.vector\n", "");
        assertEquals(1, child.exitValue(), printed);
        assertTrue(
                printed.matches("panamax: tokenize ran out of Java heap \\(-Xmx, about \\d+ MiB here\\): run it with"
                        + " more, e\\.g\\. JDK_JAVA_OPTIONS=-Xmx\\d+m\n"),
                printed);
    }
}
