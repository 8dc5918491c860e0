package dev.panamax.model.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeFalse;

import dev.panamax.cuda.Cuda;
import dev.panamax.model.backend.EmulatedBackends;
import dev.panamax.model.train.Trainer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** {@code panamax generate --backend}: which backend runs, what it says about why, and the errors. */
class BackendOptionTest {
    private final CapturedCli cli = new CapturedCli(false);

    @TempDir
    Path dir;

    /** Runs the CLI on a thread of its own: choosing the emulated device is per thread and must not leak. */
    private int run(String... args) throws InterruptedException, ExecutionException {
        ExecutorService thread = Executors.newSingleThreadExecutor();
        try {
            return thread.submit(() -> cli.run(args)).get();
        } finally {
            thread.shutdownNow();
        }
    }

    @Test
    void theEmulatedDeviceGeneratesRunCsIdsAndSaysItRuns() throws Exception {
        EmulatedBackends.require();
        assertEquals(0, run(CliFixtures.greedy("--backend", "emulated")), cli.err());
        assertEquals(CliFixtures.greedyIds(40), cli.out().strip());
        assertTrue(
                cli.err()
                        .startsWith(
                                "backend: CUDA on the emulated device (chosen with --backend emulated; a test device,"
                                        + " slow)\n"),
                cli.err());
    }

    @Test
    void autoWithoutCudaRunsOnTheCpuAndSaysWhy() throws Exception {
        assumeFalse(Cuda.isAvailable(), "CUDA is available here: auto picks it");
        assertEquals(0, run(CliFixtures.greedy("--backend", "AUTO")), cli.err());
        assertEquals(CliFixtures.greedyIds(40), cli.out().strip());
        assertTrue(
                cli.err()
                        .startsWith("backend: cpu (auto: CUDA is not available: "
                                + Cuda.unavailableReason().orElseThrow() + ")\n"),
                cli.err());
    }

    @Test
    void cudaWhereItCannotRunIsAUsageErrorWithTheReason() throws Exception {
        assumeFalse(Cuda.isAvailable(), "CUDA is available here");
        assertEquals(2, run(CliFixtures.greedy("--backend", "cuda")));
        assertTrue(
                cli.err()
                        .startsWith("panamax: --backend cuda: CUDA cannot run here: "
                                + Cuda.unavailableReason().orElseThrow()),
                cli.err());
        assertEquals("", cli.out());
    }

    /** A run resumed on another backend than it was trained on says so; one saved before backends were recorded not. */
    @Test
    void aRunResumedOnAnotherBackendIsWarnedAbout() throws Exception {
        EmulatedBackends.require();
        Path data = CliFixtures.trainingText(dir);
        Path recorded = dir.resolve("recorded");
        Path old = dir.resolve("old");
        for (Path run : new Path[] {recorded, old}) {
            assertEquals(0, run(CliFixtures.train(data, 1, 8, run)), cli.err());
            CliFixtures.stopMidway(run, 2);
        }
        Path state = old.resolve(Trainer.STATE_FILE);
        String json = Files.readString(state);
        String without = json.replaceFirst(",\\s*\"backend\":\\s*\"cpu\"", "");
        assertNotEquals(json, without);
        Files.writeString(state, without);
        String[] resume = {"train", "--data", data.toString(), "--backend", "emulated", "--resume"};
        cli.resetErr();
        assertEquals(0, run(CliFixtures.with(resume, recorded.toString())), cli.err());
        assertTrue(
                cli.err()
                        .contains("panamax: warning: " + recorded + " was trained on cpu, resumed on emulated: it"
                                + " continues, but not bit for bit as it would have on cpu\n"),
                cli.err());
        cli.resetErr();
        assertEquals(0, run(CliFixtures.with(resume, old.toString())), cli.err());
        assertFalse(cli.err().contains("warning"), cli.err());
    }

    /** A model trained on either backend generates the same greedy ids on both. */
    @ParameterizedTest
    @ValueSource(strings = {"emulated", "cpu"})
    void aRunTrainedOnOneBackendGeneratesTheSameOnBoth(String trainedOn) throws Exception {
        EmulatedBackends.require();
        Path data = CliFixtures.trainingText(dir);
        Path run = dir.resolve("run-" + trainedOn);
        String[] train = CliFixtures.train(data, 4, 16, run, "--backend", trainedOn);
        assertEquals(0, run(train), cli.err());
        if (trainedOn.equals("emulated")) {
            assertTrue(cli.err().startsWith("backend: CUDA on the emulated device"), cli.err());
        }
        String[] ids = new String[2];
        String[] backends = {"cpu", "emulated"};
        for (int i = 0; i < 2; i++) {
            cli.resetOut();
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
                    cli.err());
            ids[i] = cli.out().strip();
        }
        assertEquals(ids[0], ids[1], "greedy ids on the CPU and on the emulated device");
        assertEquals(12, ids[0].split(" ").length, ids[0]);
    }

    @Test
    void aLowerPrecisionRunsOnTheEmulatedDeviceAndSaysSo() throws Exception {
        EmulatedBackends.require();
        assertEquals(0, run(CliFixtures.greedy("--backend", "emulated", "--precision", "TF32")), cli.err());
        assertEquals(40, cli.out().strip().split(" ").length, cli.out());
        assertTrue(
                cli.err().startsWith("backend: CUDA on the emulated device, TF32 products (chosen with --backend"),
                cli.err());
    }

    @Test
    void aLowerPrecisionOnTheCpuOrAnUnknownOneIsRefusedInOneLine() throws Exception {
        assertEquals(2, run(CliFixtures.greedy("--backend", "cpu", "--precision", "bf16")));
        assertTrue(
                cli.err()
                        .startsWith("panamax: --precision bf16: the cpu backend computes products in fp32 only; bf16"
                                + " needs a CUDA backend (backend: cpu, chosen with --backend cpu)\n"),
                cli.err());
        assertEquals("", cli.out());
        cli.resetErr();
        assertEquals(2, run(CliFixtures.greedy("--precision", "fp16")));
        assertTrue(cli.err().startsWith("panamax: --precision (fp16) must be one of fp32, tf32, bf16"), cli.err());
        cli.resetErr();
        assertEquals(
                2,
                run(
                        "train",
                        "--data",
                        CliFixtures.trainingText(dir).toString(),
                        "--resume",
                        dir.toString(),
                        "--precision",
                        "bf16"));
        assertTrue(cli.err().startsWith("panamax: --precision cannot change a resumed run"), cli.err());
    }

    /** {@code demo --backend}: the Backend operations on the emulated device, checked and timed next to the CPU's. */
    @Test
    void theDemoRunsTheBackendOperationsOnTheChosenBackend() throws Exception {
        EmulatedBackends.require();
        assertEquals(0, run("demo", "--backend", "emulated"), cli.out() + cli.err());
        assertTrue(cli.err().startsWith("backend: CUDA on the emulated device"), cli.err());
        assertTrue(
                cli.out().startsWith("The Backend operations on CUDA backend on the emulated device, next to the CPU"),
                cli.out());
        for (String operation : new String[] {"matmul", "softmax", "attention"}) {
            assertTrue(cli.out().matches("(?s).*\\n" + operation + " +\\S+ +[0-9.]+ +ok .*"), cli.out());
        }
        assertTrue(cli.out().contains("All operations match the reference."), cli.out());
    }

    @Test
    void anUnknownBackendIsAUsageError() throws Exception {
        assertEquals(2, run(CliFixtures.greedy("--backend", "gpu")));
        assertTrue(
                cli.err().startsWith("panamax: --backend (gpu) must be one of auto, cpu, cuda, emulated"), cli.err());
    }
}
