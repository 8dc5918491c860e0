package dev.panamax.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The committed PTX is what cuda/regenerate-ptx.sh makes of the committed .cu sources: every source has a PTX file
 * whose header records the SHA-256 of each input as it is now, and where nvcc of the recorded version is installed,
 * regenerating gives the same bytes. Runs in the module's folder, as Maven runs tests.
 */
class PtxResourcesTest {
    private static final Pattern HASH = Pattern.compile("^// sha256 ([0-9a-f]{64}) (\\S+)$", Pattern.MULTILINE);
    private static final Pattern NVCC = Pattern.compile("^// nvcc: (.+)$", Pattern.MULTILINE);
    private static final List<Path> PTX_FOLDERS = List.of(
            Path.of("src/main/resources/dev/panamax/cuda/ptx"), Path.of("src/test/resources/dev/panamax/cuda/ptx"));
    private static final List<Path> SOURCE_FOLDERS = List.of(Path.of("src/main/cuda"), Path.of("src/test/cuda"));

    @Test
    void everyPtxFileRecordsTheSourcesItWasMadeFrom() throws IOException {
        List<String> problems = new ArrayList<>();
        for (Path ptx : committedPtx()) {
            problems.addAll(staleInputs(Path.of(""), ptx));
        }
        assertEquals(List.of(), problems);
    }

    @Test
    void everyKernelSourceHasAPtxFile() throws IOException {
        List<String> recorded = new ArrayList<>();
        for (Path ptx : committedPtx()) {
            Matcher hash = HASH.matcher(Files.readString(ptx));
            while (hash.find()) {
                recorded.add(hash.group(2));
            }
        }
        for (Path folder : SOURCE_FOLDERS) {
            try (Stream<Path> sources = Files.list(folder)) {
                for (Path source :
                        sources.filter(p -> p.toString().endsWith(".cu")).toList()) {
                    assertTrue(
                            recorded.contains(source.toString()),
                            source + " has no PTX: run cuda/regenerate-ptx.sh " + "(and list it there)");
                }
            }
        }
    }

    @Test
    void aSourceChangedAfterItsPtxIsReported(@TempDir Path module) throws IOException {
        Path source = module.resolve("src/main/cuda/k.cu");
        Files.createDirectories(source.getParent());
        Files.writeString(source, "extern \"C\" __global__ void k() {}\n");
        Path ptx = module.resolve("k.ptx");
        Files.writeString(ptx, "// sha256 " + sha256(source) + " src/main/cuda/k.cu\n.version 9.0\n");
        assertEquals(List.of(), staleInputs(module, ptx));
        Files.writeString(source, "extern \"C\" __global__ void k() { }\n");
        List<String> problems = staleInputs(module, ptx);
        assertEquals(1, problems.size(), problems::toString);
        assertTrue(
                problems.get(0).startsWith("src/main/cuda/k.cu changed since k.ptx was generated"), problems::toString);
    }

    @Test
    void regeneratingWithTheRecordedNvccGivesTheSameBytes(@TempDir Path out) throws IOException, InterruptedException {
        String recorded = recordedNvcc();
        Optional<Path> nvcc = nvcc();
        Assumptions.assumeTrue(
                nvcc.isPresent(), "no nvcc on PATH or in /usr/local/cuda/bin: only the hashes are checked");
        String installed = run(List.of(nvcc.get().toString(), "--version"))
                .lines()
                .filter(line -> line.startsWith("Cuda compilation tools"))
                .findFirst()
                .orElse("");
        Assumptions.assumeTrue(
                installed.equals(recorded),
                () -> "nvcc here is " + installed + ", the PTX was made with " + recorded
                        + ": only the hashes are checked");
        run(List.of("bash", "cuda/regenerate-ptx.sh", out.toAbsolutePath().toString()));
        for (Path ptx : committedPtx()) {
            Path regenerated = out.resolve(ptx.getFileName());
            assertArrayEquals(
                    Files.readAllBytes(ptx),
                    Files.readAllBytes(regenerated),
                    ptx + " differs from what cuda/regenerate-ptx.sh makes now: regenerate it, never edit it");
        }
    }

    /** What is wrong with one PTX file's recorded inputs, relative to {@code module}: nothing when up to date. */
    static List<String> staleInputs(Path module, Path ptx) throws IOException {
        List<String> problems = new ArrayList<>();
        Matcher hash = HASH.matcher(Files.readString(ptx));
        boolean any = false;
        while (hash.find()) {
            any = true;
            Path input = module.resolve(hash.group(2));
            if (!Files.exists(input)) {
                problems.add(hash.group(2) + ", an input of " + ptx.getFileName() + ", does not exist");
            } else if (!sha256(input).equals(hash.group(1))) {
                problems.add(hash.group(2) + " changed since " + ptx.getFileName() + " was generated (recorded "
                        + hash.group(1) + ", now " + sha256(input) + "): run cuda-bindings/cuda/regenerate-ptx.sh");
            }
        }
        if (!any) {
            problems.add(ptx.getFileName() + " records no input: it was not made by cuda/regenerate-ptx.sh");
        }
        return problems;
    }

    private static List<Path> committedPtx() throws IOException {
        List<Path> files = new ArrayList<>();
        for (Path folder : PTX_FOLDERS) {
            try (Stream<Path> ptx = Files.list(folder)) {
                files.addAll(
                        ptx.filter(p -> p.toString().endsWith(".ptx")).sorted().toList());
            }
        }
        assertTrue(files.size() >= 2, "the samples' and the faults' PTX: " + files);
        return files;
    }

    private static String recordedNvcc() throws IOException {
        Matcher version = NVCC.matcher(Files.readString(committedPtx().get(0)));
        assertTrue(version.find(), "the PTX header names the nvcc that made it");
        return version.group(1);
    }

    private static Optional<Path> nvcc() {
        Stream<Path> onPath = Stream.of(System.getenv().getOrDefault("PATH", "").split(":"))
                .filter(folder -> !folder.isEmpty())
                .map(folder -> Path.of(folder, "nvcc"));
        return Stream.concat(onPath, Stream.of(Path.of("/usr/local/cuda/bin/nvcc")))
                .filter(Files::isExecutable)
                .findFirst();
    }

    private static String run(List<String> command) throws IOException, InterruptedException {
        Process process = new ProcessBuilder(command).redirectErrorStream(true).start();
        byte[] output = process.getInputStream().readAllBytes();
        assertTrue(process.waitFor(5, TimeUnit.MINUTES), command + " did not finish");
        String text = new String(output, StandardCharsets.UTF_8);
        assertEquals(0, process.exitValue(), () -> command + " failed:\n" + text);
        return text;
    }

    private static String sha256(Path file) throws IOException {
        try {
            return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(Files.readAllBytes(file)));
        } catch (NoSuchAlgorithmException e) {
            throw new AssertionError(e);
        }
    }
}
