package dev.panamax.model.io;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.panamax.model.backend.InsufficientMemoryException;
import dev.panamax.model.testing.TokenFiles;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class TokenFileTest {
    @TempDir
    Path dir;

    @Test
    void readsTheIdsAfterTheHeader() throws IOException {
        int[] ids = TokenFiles.walk(70_000, 65_536, 3); // more than one read chunk, ids up to uint16's top
        ids[5] = 65_535;
        Path file = TokenFiles.write(dir.resolve("data.bin"), ids);
        assertTrue(TokenFile.hasMagic(file));
        assertArrayEquals(ids, TokenFile.read(file, 65_536, 1 << 20));
        assertArrayEquals(new int[0], TokenFile.read(TokenFiles.write(dir.resolve("empty.bin")), 1, 10));
    }

    @Test
    void idsTheHeapCannotHoldAreRefusedBeforeTheyAreAllocated() throws IOException {
        // A well-formed (sparse) file of a third of the heap in tokens, whose ids as ints would take 1.3 heaps.
        int count = (int) Math.min(Runtime.getRuntime().maxMemory() / 3, Integer.MAX_VALUE - 8);
        Path file = TokenFiles.withHeader(dir.resolve("large.bin"), TokenFile.MAGIC, TokenFile.VERSION, count);
        try (RandomAccessFile sparse = new RandomAccessFile(file.toFile(), "rw")) {
            sparse.setLength(TokenFile.HEADER_BYTES + 2L * count);
        }
        InsufficientMemoryException e =
                assertThrows(InsufficientMemoryException.class, () -> TokenFile.read(file, 1, Integer.MAX_VALUE));
        assertTrue(
                e.getMessage().startsWith("reading the " + count + " token ids of " + file + " needs "),
                e.getMessage());
    }

    @Test
    void textIsNotATokenFile() throws IOException {
        Path text = Files.writeString(dir.resolve("a.txt"), "hello");
        assertFalse(TokenFile.hasMagic(text));
        assertFalse(TokenFile.hasMagic(dir));
        assertFalse(TokenFile.hasMagic(Files.write(dir.resolve("short"), new byte[] {0x58, (byte) 0xAD})));
    }

    @Test
    void aMalformedHeaderIsRejectedNamingTheFieldAndTheFile() throws IOException {
        assertRejected(
                TokenFiles.withHeader(dir.resolve("magic.bin"), 20240326, 1, 2, 1, 2),
                "header[0] (magic) is 20240326, expected 20240520");
        assertRejected(
                TokenFiles.withHeader(dir.resolve("version.bin"), TokenFile.MAGIC, 2, 2, 1, 2),
                "version 2 is not supported (header[1] must be 1)");
        assertRejected(
                TokenFiles.withHeader(dir.resolve("negative.bin"), TokenFile.MAGIC, 1, -1),
                "header[2] (token count) is -1, must be in [0, 100]");
        assertRejected(
                TokenFiles.withHeader(dir.resolve("many.bin"), TokenFile.MAGIC, 1, 101),
                "header[2] (token count) is 101, must be in [0, 100]");
        assertRejected(
                Files.write(dir.resolve("short.bin"), new byte[1000]), "of 1000 bytes is shorter than its 1024-byte");
    }

    @Test
    void aCountThatIsNotTheFilesLengthIsRejected() throws IOException {
        assertRejected(
                TokenFiles.withHeader(dir.resolve("truncated.bin"), TokenFile.MAGIC, 1, 4, 1, 2, 3),
                "is 1030 bytes but its header's count of 4 tokens implies 1032 (1024 header bytes + 2 per token):"
                        + " the file is truncated");
        assertRejected(
                TokenFiles.withHeader(dir.resolve("longer.bin"), TokenFile.MAGIC, 1, 2, 1, 2, 3),
                "implies 1028 (1024 header bytes + 2 per token): the file is longer than its count");
    }

    @Test
    void anIdOutsideTheVocabularyIsRejectedWithItsPositionAndTheBound() throws IOException {
        Path file = TokenFiles.write(dir.resolve("ids.bin"), 1, 2, 49, 50, 3);
        ModelFormatException e = assertThrows(ModelFormatException.class, () -> TokenFile.read(file, 50, 100));
        assertTrue(e.getMessage().startsWith(file.toString()), e.getMessage());
        assertTrue(e.getMessage().contains("token 3 is 50, not below the model's vocabulary size 50"), e.getMessage());
        assertEquals(5, TokenFile.read(file, 51, 100).length);
    }

    @Test
    void aMissingFileOrADirectoryIsNamed() {
        assertThrows(NoSuchFileException.class, () -> TokenFile.read(dir.resolve("none.bin"), 10, 10));
        ModelFormatException e = assertThrows(ModelFormatException.class, () -> TokenFile.read(dir, 10, 10));
        assertTrue(e.getMessage().contains("is a directory"), e.getMessage());
    }

    private static void assertRejected(Path file, String expected) {
        ModelFormatException e = assertThrows(ModelFormatException.class, () -> TokenFile.read(file, 50_000, 100));
        assertTrue(e.getMessage().startsWith(file.toString()), e.getMessage());
        assertTrue(e.getMessage().contains(expected), e.getMessage());
    }
}
