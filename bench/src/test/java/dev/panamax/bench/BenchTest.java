package dev.panamax.bench;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.openjdk.jmh.runner.options.Options;

class BenchTest {
    private static final List<String> MODULE_FLAGS = List.of(
            "--add-modules=jdk.incubator.vector",
            "--enable-native-access=ALL-UNNAMED",
            "--sun-misc-unsafe-memory-access=allow",
            "-Djava.awt.headless=true");

    private static Options options(String... jmhArgs) throws Exception {
        return Bench.options("train", ".*", Path.of("train.json"), jmhArgs);
    }

    @Test
    void forkArgumentsFromTheCommandLineReachTheFork() throws Exception {
        Options options = options("-jvmArgsAppend", "-Dfoo=1 -Dbar=2", "-jvmArgsPrepend", "-Dpre=1");
        List<String> prepended = new ArrayList<>(MODULE_FLAGS);
        prepended.add("-Dpre=1");
        assertEquals(prepended, List.copyOf(options.getJvmArgsPrepend().get()));
        assertEquals(
                List.of("-Dfoo=1", "-Dbar=2"),
                List.copyOf(options.getJvmArgsAppend().get()));
    }

    @Test
    void aSuiteRunTwiceInOneSecondKeepsBothResults(@TempDir Path results) throws Exception {
        Path first = Bench.resultFile(results, "gemm", "20260101-120000");
        assertEquals(results.resolve("gemm-20260101-120000.json"), first);
        Files.writeString(first, "[]");
        Path second = Bench.resultFile(results, "gemm", "20260101-120000");
        assertEquals(results.resolve("gemm-20260101-120000-2.json"), second);
        Files.writeString(second, "[]");
        assertEquals(
                results.resolve("gemm-20260101-120000-3.json"), Bench.resultFile(results, "gemm", "20260101-120000"));
    }

    @Test
    void withoutAppendedArgumentsTheSuitesOwnStayInForce() throws Exception {
        Options options = options();
        assertEquals(MODULE_FLAGS, List.copyOf(options.getJvmArgsPrepend().get()));
        // Unset here, so JMH takes the benchmark's @Fork(jvmArgsAppend), such as TrainBench's heap size.
        assertFalse(options.getJvmArgsAppend().hasValue());
        assertEquals(List.of("^dev\\.panamax\\.bench\\.TrainBench\\.(.*)$"), options.getIncludes());
    }
}
