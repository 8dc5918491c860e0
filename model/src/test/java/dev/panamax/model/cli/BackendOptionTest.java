package dev.panamax.model.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeFalse;

import dev.panamax.cuda.Cuda;
import dev.panamax.model.backend.EmulatedBackends;
import dev.panamax.model.testing.SharedData;
import java.io.BufferedReader;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Objects;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.stream.Collectors;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code panamax generate --backend}: which backend runs, what it says about why, and the errors. */
class BackendOptionTest {
    private final ByteArrayOutputStream out = new ByteArrayOutputStream();
    private final ByteArrayOutputStream err = new ByteArrayOutputStream();

    @TempDir
    Path dir;

    /** Runs the CLI on a thread of its own: choosing the emulated device is per thread and must not leak. */
    private int run(String... args) throws InterruptedException, ExecutionException {
        ExecutorService thread = Executors.newSingleThreadExecutor();
        try {
            return thread.submit(() -> Panamax.run(
                            args,
                            new PrintStream(out, true, StandardCharsets.UTF_8),
                            new PrintStream(err, true, StandardCharsets.UTF_8)))
                    .get();
        } finally {
            thread.shutdownNow();
        }
    }

    private String out() {
        return out.toString(StandardCharsets.UTF_8);
    }

    private String err() {
        return err.toString(StandardCharsets.UTF_8);
    }

    private static String expectedIds(int count) throws IOException {
        try (var in = Objects.requireNonNull(BackendOptionTest.class.getResourceAsStream(
                        "/dev/panamax/model/generate/stories260K-greedy.txt"));
                var reader = new BufferedReader(new InputStreamReader(in, StandardCharsets.UTF_8))) {
            return reader.lines().filter(l -> !l.startsWith("#")).limit(count).collect(Collectors.joining(" "));
        }
    }

    private static String[] greedy(String backend) {
        return new String[] {
            "generate",
            "--model",
            SharedData.require("stories260K.bin").toString(),
            "--prompt-ids",
            "1",
            "--temperature",
            "0",
            "--max-tokens",
            "40",
            "--backend",
            backend
        };
    }

    @Test
    void theEmulatedDeviceGeneratesRunCsIdsAndSaysItRuns() throws Exception {
        EmulatedBackends.require();
        assertEquals(0, run(greedy("emulated")), err());
        assertEquals(expectedIds(40), out().strip());
        assertTrue(
                err().startsWith("backend: CUDA on the emulated device (chosen with --backend emulated; a test device,"
                        + " slow)\n"),
                err());
    }

    @Test
    void autoWithoutCudaRunsOnTheCpuAndSaysWhy() throws Exception {
        assumeFalse(Cuda.isAvailable(), "CUDA is available here: auto picks it");
        assertEquals(0, run(greedy("AUTO")), err());
        assertEquals(expectedIds(40), out().strip());
        assertTrue(
                err().startsWith("backend: cpu (auto: CUDA is not available: "
                        + Cuda.unavailableReason().orElseThrow() + ")\n"),
                err());
    }

    @Test
    void cudaWhereItCannotRunIsAUsageErrorWithTheReason() throws Exception {
        assumeFalse(Cuda.isAvailable(), "CUDA is available here");
        assertEquals(2, run(greedy("cuda")));
        assertTrue(
                err().startsWith("panamax: --backend cuda: CUDA cannot run here: "
                        + Cuda.unavailableReason().orElseThrow()),
                err());
        assertEquals("", out());
    }

    /** A model trained on the emulated CUDA backend generates the same greedy ids on either backend. */
    @Test
    void aRunTrainedOnTheEmulatedDeviceGeneratesTheSameOnBoth() throws Exception {
        EmulatedBackends.require();
        Path data = dir.resolve("text.txt");
        Files.writeString(data, "the quick brown fox jumps over the lazy dog.\n".repeat(30), StandardCharsets.UTF_8);
        Path run = dir.resolve("run");
        String[] train = {
            "train",
            "--data",
            data.toString(),
            "--steps",
            "4",
            "--batch",
            "2",
            "--seq",
            "16",
            "--out",
            run.toString(),
            "--backend",
            "emulated"
        };
        assertEquals(0, run(train), err());
        assertTrue(err().startsWith("backend: CUDA on the emulated device"), err());
        String[] ids = new String[2];
        String[] backends = {"cpu", "emulated"};
        for (int i = 0; i < 2; i++) {
            out.reset();
            assertEquals(
                    0,
                    run(
                            "generate",
                            "--model",
                            run.toString(),
                            "--prompt",
                            "the ",
                            "--temperature",
                            "0",
                            "-n",
                            "12",
                            "--print-ids",
                            "--backend",
                            backends[i]),
                    err());
            ids[i] = out().strip();
        }
        assertEquals(ids[0], ids[1], "greedy ids on the CPU and on the emulated device");
        assertEquals(12, ids[0].split(" ").length, ids[0]);
    }

    @Test
    void anUnknownBackendIsAUsageError() throws Exception {
        assertEquals(2, run(greedy("gpu")));
        assertTrue(err().startsWith("panamax: --backend (gpu) must be one of auto, cpu, cuda, emulated"), err());
    }
}
