package dev.panamax.model.io;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.panamax.model.json.Json;
import dev.panamax.model.tokenizer.Gpt2Tokenizer;
import dev.panamax.model.tokenizer.Llama2cTokenizer;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.time.Duration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class BoundedFilesTest {
    @TempDir
    Path dir;

    @Test
    void readsARegularFileWhole() throws IOException {
        Path file = Files.write(dir.resolve("a.txt"), new byte[] {1, 2, 3});
        assertArrayEquals(new byte[] {1, 2, 3}, BoundedFiles.read(file, "text", 3));
        assertEquals(
                file + ": text of 3 bytes is larger than the limit of 2 bytes",
                assertThrows(ModelFormatException.class, () -> BoundedFiles.read(file, "text", 2))
                        .getMessage());
    }

    @Test
    void aMissingFileIsNamedWithItsKind() {
        Path missing = dir.resolve("nowhere/tokenizer.bin");
        assertEquals(
                missing + ": llama2.c tokenizer not found",
                assertThrows(NoSuchFileException.class, () -> Llama2cTokenizer.read(missing, 512))
                        .getMessage());
        assertEquals(
                dir.resolve("config.json") + ": JSON file not found",
                assertThrows(
                                NoSuchFileException.class,
                                () -> BoundedFiles.readJson(dir.resolve("config.json"), Json::parse))
                        .getMessage());
    }

    @Test
    void aDirectoryOrDeviceIsRejectedBeforeItIsOpened() {
        assertEquals(
                dir + ": the JSON file is a directory, not a regular file",
                assertThrows(ModelFormatException.class, () -> BoundedFiles.readJson(dir, Json::parse))
                        .getMessage());
        Path device = Path.of("/dev/null");
        assumeTrue(Files.exists(device), "a Unix device to try");
        assertEquals(
                "/dev/null: the llama2.c tokenizer is a character device, not a regular file",
                assertThrows(ModelFormatException.class, () -> Llama2cTokenizer.read(device, 512))
                        .getMessage());
    }

    @Test
    void aFifoIsRejectedInsteadOfWaitedOnForever() throws IOException, InterruptedException {
        Path fifo = dir.resolve("config.json");
        Process mkfifo;
        try {
            mkfifo = new ProcessBuilder("mkfifo", fifo.toString()).start();
        } catch (IOException e) {
            assumeTrue(false, "no mkfifo here: " + e.getMessage());
            return;
        }
        assumeTrue(mkfifo.waitFor() == 0 && Files.exists(fifo), "mkfifo failed");
        // Opened for reading, a FIFO with no writer blocks: without the check these would never return.
        assertTimeoutPreemptively(Duration.ofSeconds(10), () -> {
            assertEquals(
                    fifo + ": the JSON file is a FIFO (named pipe), not a regular file",
                    assertThrows(ModelFormatException.class, () -> BoundedFiles.readJson(fifo, Json::parse))
                            .getMessage());
            assertEquals(
                    fifo + ": the GPT-2 merges file is a FIFO (named pipe), not a regular file",
                    assertThrows(ModelFormatException.class, () -> Gpt2Tokenizer.read(fifoVocabulary(), fifo))
                            .getMessage());
            assertEquals(
                    fifo + ": the safetensors file is a FIFO (named pipe), not a regular file",
                    assertThrows(ModelFormatException.class, () -> SafeTensors.open(fifo))
                            .getMessage());
        });
    }

    /** A valid vocabulary, so that reading the merges is reached. */
    private Path fifoVocabulary() throws IOException {
        return Files.writeString(dir.resolve("vocab.json"), "{\"a\": 0}");
    }
}
