package dev.panamax.model.io;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.panamax.model.nn.ModelConfig;
import dev.panamax.model.nn.ModelConfig.Architecture;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermission;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@link AtomicFiles} and the writers that go through it. */
class AtomicFilesTest {
    private static final ModelConfig CONFIG =
            new ModelConfig(Architecture.LLAMA, 64, 96, 1, 4, 2, 40, 32, 1e-5f, 10000f, true);

    @TempDir
    Path dir;

    private List<Path> files() throws IOException {
        try (Stream<Path> list = Files.list(dir)) {
            return list.sorted().toList();
        }
    }

    @Test
    void aFailedWriteLeavesTheTargetAndNoTemporary() throws IOException {
        Path target = Files.writeString(dir.resolve("a.txt"), "old");
        IOException e = assertThrows(
                IOException.class,
                () -> AtomicFiles.replace(target, file -> {
                    Files.writeString(file, "half of the new");
                    throw new IOException("disk full");
                }));
        assertEquals("disk full", e.getMessage());
        assertEquals("old", Files.readString(target));
        assertEquals(List.of(target), files());
        AtomicFiles.replace(target, "new");
        assertEquals("new", Files.readString(target));
        assertEquals(List.of(target), files());
    }

    @Test
    void deleteTakesTheNamedFilesAndTheirTemporariesOnly() throws IOException {
        Path outside = Files.writeString(
                Files.createDirectories(dir.resolve("outside")).resolve("kept"), "target");
        Files.writeString(dir.resolve("loss.csv"), "ours");
        Files.writeString(dir.resolve(".loss.csv.1234567890.tmp"), "a killed write's");
        Files.createSymbolicLink(dir.resolve("link"), outside);
        Path users = Files.writeString(dir.resolve(".loss.csv.mine.tmp"), "not a temporary of ours");
        Path folder = Files.createDirectories(dir.resolve("chars.json"));
        Path other = Files.writeString(dir.resolve("notes.txt"), "not named");
        AtomicFiles.delete(dir, List.of("loss.csv", "link", "chars.json", "absent"));
        assertEquals(List.of(users, folder, other, outside.getParent()), files());
        assertEquals("target", Files.readString(outside));
    }

    @Test
    void theTemporaryNeverTakesAnExistingFilesName() throws IOException {
        // A file of the user's with the name a fixed temporary would take is neither truncated nor deleted.
        Path target = dir.resolve("model.gguf");
        Path users = Files.writeString(dir.resolve("model.gguf.tmp"), "mine");
        AtomicFiles.replace(target, "written");
        assertEquals("mine", Files.readString(users));
        assertEquals("written", Files.readString(target));
        assertEquals(List.of(target, users), files());
    }

    @Test
    void quantizingAFileOverItsOwnTemporaryNameKeepsTheInput() throws IOException {
        // An input named as the output plus .tmp, the name a fixed temporary would take, is read, never truncated.
        Path input = dir.resolve("tiny.bin.tmp");
        Llama2cCheckpoint.writeRandom(input, CONFIG, 1);
        byte[] before = Files.readAllBytes(input);
        Path output = dir.resolve("tiny.bin");
        try (Llama2cCheckpoint checkpoint = Llama2cCheckpoint.open(input)) {
            GgufLlama.write(output, CONFIG, checkpoint.weights(), "tiny", Map.of(), GgmlType.F32);
        }
        assertArrayEquals(before, Files.readAllBytes(input));
        try (GgufLlama model = GgufLlama.open(output);
                Llama2cCheckpoint checkpoint = Llama2cCheckpoint.open(input)) {
            assertEquals(CONFIG, model.config());
            assertEquals(
                    -1L,
                    checkpoint
                            .weights()
                            .tokenEmbedding()
                            .mismatch(model.weights().tokenEmbedding().data()),
                    "the F32 file holds the input's weights");
        }
    }

    @Test
    void aNewFileIsReadableAsAnyFileTheJvmCreates() throws IOException {
        Path plain = Files.writeString(dir.resolve("plain.txt"), "x");
        Path atomic = dir.resolve("atomic.txt");
        AtomicFiles.replace(atomic, "x");
        if (Files.getFileStore(dir).supportsFileAttributeView("posix")) {
            Set<PosixFilePermission> expected = Files.getPosixFilePermissions(plain);
            assertEquals(expected, Files.getPosixFilePermissions(atomic), "not the temporary's 0600");
        }
        assertTrue(Files.isReadable(atomic));
    }
}
