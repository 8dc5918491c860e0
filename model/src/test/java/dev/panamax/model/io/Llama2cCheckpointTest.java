package dev.panamax.model.io;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.panamax.model.nn.LlamaWeights;
import dev.panamax.model.nn.ModelConfig;
import dev.panamax.model.nn.ModelConfig.Architecture;
import dev.panamax.model.testing.Segments;
import dev.panamax.model.testing.SharedData;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class Llama2cCheckpointTest {

    @TempDir
    Path dir;

    static ModelConfig llama(int dim, int hidden, int layers, int heads, int kvHeads, int vocab, boolean shared) {
        return new ModelConfig(Architecture.LLAMA, dim, hidden, layers, heads, kvHeads, vocab, 32, 1e-5f, 1e4f, shared);
    }

    @Test
    void loadsTheRealStories260K() throws IOException {
        Path file = SharedData.require("stories260K.bin");
        try (Llama2cCheckpoint checkpoint = Llama2cCheckpoint.open(file)) {
            ModelConfig c = checkpoint.config();
            assertEquals(new ModelConfig(Architecture.LLAMA, 64, 172, 5, 8, 4, 512, 512, 1e-5f, 1e4f, true), c);
            assertEquals(Files.size(file), Llama2cCheckpoint.fileSize(c));
            LlamaWeights<MemorySegment> w = checkpoint.weights();
            assertSame(w.tokenEmbedding(), w.classifier());
            assertEquals(5, w.layers().size());
            assertEquals(32L * 64 * 4, w.layers().get(4).wk().byteSize());
            assertEquals(172L * 64 * 4, w.layers().get(0).w2().byteSize());
            // Spot-check offsets against the file read independently: first embedding value, last rms_final value.
            ByteBuffer bytes = ByteBuffer.wrap(Files.readAllBytes(file)).order(ByteOrder.LITTLE_ENDIAN);
            assertEquals(bytes.getFloat(28), w.tokenEmbedding().getAtIndex(Segments.FLOAT, 0));
            long rmsFinal = 28 + 4L * (512 * 64 + 5 * (64 + 64 * 64 + 2 * 32 * 64 + 64 * 64 + 64 + 3 * 172 * 64));
            assertEquals(bytes.getFloat((int) rmsFinal + 63 * 4), w.finalNorm().getAtIndex(Segments.FLOAT, 63));
            assertEquals(rmsFinal + 64 * 4, Files.size(file) - 2L * 512 * 4 * 4, "then the two RoPE tables");
            // Trained RMSNorm weights are positive and near 1; a misaligned slice would not look like that.
            for (int i = 0; i < 64; i++) {
                float g = w.layers().get(2).attentionNorm().getAtIndex(Segments.FLOAT, i);
                assertTrue(g > 0 && g < 10, "rms_att[2][" + i + "] = " + g);
            }
        }
    }

    @Test
    void writesWhatItReadsByteForByte() throws IOException {
        for (boolean shared : new boolean[] {true, false}) {
            ModelConfig config = llama(16, 40, 2, 4, 2, 300, shared);
            Path random = dir.resolve("random-" + shared + ".bin");
            Llama2cCheckpoint.writeRandom(random, config, 7);
            assertEquals(Llama2cCheckpoint.fileSize(config), Files.size(random));
            Path copy = dir.resolve("copy-" + shared + ".bin");
            try (Llama2cCheckpoint checkpoint = Llama2cCheckpoint.open(random)) {
                assertEquals(config, checkpoint.config());
                assertEquals(
                        shared,
                        checkpoint
                                .weights()
                                .classifier()
                                .equals(checkpoint.weights().tokenEmbedding()));
                assertEquals(1f, checkpoint.weights().layers().get(1).ffnNorm().getAtIndex(Segments.FLOAT, 3));
                Llama2cCheckpoint.write(copy, config, checkpoint.weights());
            }
            assertArrayEquals(Files.readAllBytes(random), Files.readAllBytes(copy));
        }
        Path again = dir.resolve("again.bin");
        Llama2cCheckpoint.writeRandom(again, llama(16, 40, 2, 4, 2, 300, true), 7);
        assertArrayEquals(Files.readAllBytes(dir.resolve("random-true.bin")), Files.readAllBytes(again));
    }

    @Test
    void writesWeightsFromMemory() throws IOException {
        ModelConfig config = llama(8, 12, 1, 2, 1, 10, false);
        long[] seed = {1};
        LlamaWeights.Layer<MemorySegment> layer = new LlamaWeights.Layer<>(
                floats(seed, 8),
                floats(seed, 64),
                floats(seed, 32),
                floats(seed, 32),
                floats(seed, 64),
                floats(seed, 8),
                floats(seed, 96),
                floats(seed, 96),
                floats(seed, 96));
        LlamaWeights<MemorySegment> weights =
                new LlamaWeights<>(floats(seed, 80), List.of(layer), floats(seed, 8), floats(seed, 80));
        Path file = dir.resolve("m.bin");
        Llama2cCheckpoint.write(file, config, weights);
        MemorySegment mapped;
        try (Llama2cCheckpoint checkpoint = Llama2cCheckpoint.open(file)) {
            assertEquals(
                    -1,
                    weights.layers()
                            .get(0)
                            .w2()
                            .mismatch(checkpoint.weights().layers().get(0).w2()));
            assertEquals(-1, weights.classifier().mismatch(checkpoint.weights().classifier()));
            // The weights are a plain native view of the mapping (see Channels.mapWeights): read-only ...
            mapped = checkpoint.weights().classifier();
            assertTrue(mapped.isReadOnly());
            assertThrows(IllegalArgumentException.class, () -> mapped.setAtIndex(Segments.FLOAT, 0, 1f));
        }
        // ... and unusable, not dangling, once the checkpoint is closed.
        assertThrows(IllegalStateException.class, () -> mapped.getAtIndex(Segments.FLOAT, 0));
        LlamaWeights<MemorySegment> wrong =
                new LlamaWeights<>(floats(seed, 81), List.of(layer), floats(seed, 8), floats(seed, 80));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> Llama2cCheckpoint.write(file, config, wrong))
                .getMessage()
                .contains("TOKEN_EMBEDDING has 324 bytes, expected 320"));
    }

    private static MemorySegment floats(long[] seed, int n) {
        return Segments.uniform(seed[0]++, n);
    }

    @Test
    void rejectsTruncatedAndOversizedFilesNamingBothSizes() throws IOException {
        Path file = dir.resolve("model.bin");
        ModelConfig config = llama(16, 40, 2, 4, 2, 300, true);
        Llama2cCheckpoint.writeRandom(file, config, 1);
        long size = Files.size(file);
        try (RandomAccessFile raf = new RandomAccessFile(file.toFile(), "rw")) {
            raf.setLength(size - 1);
        }
        String message = assertThrows(ModelFormatException.class, () -> Llama2cCheckpoint.open(file))
                .getMessage();
        assertTrue(message.startsWith(file.toString()), message);
        assertTrue(message.contains((size - 1) + " bytes") && message.contains("implies " + size), message);
        assertTrue(message.contains("truncated"), message);
        try (RandomAccessFile raf = new RandomAccessFile(file.toFile(), "rw")) {
            raf.setLength(size + 4);
        }
        message = assertThrows(ModelFormatException.class, () -> Llama2cCheckpoint.open(file))
                .getMessage();
        assertTrue(message.contains("oversized"), message);
    }

    @Test
    void rejectsInvalidHeaders() throws IOException {
        assertHeaderRejected("shorter than its 28-byte header", 64, 172);
        assertHeaderRejected("dim 64 is not divisible by heads 7", 64, 172, 5, 7, 7, 512, 512);
        assertHeaderRejected("kvHeads 3 does not divide heads 8", 64, 172, 5, 8, 3, 512, 512);
        assertHeaderRejected("layers -5 is not positive", 64, 172, -5, 8, 4, 512, 512);
        assertHeaderRejected("seqLen 0 is not positive", 64, 172, 5, 8, 4, 512, 0);
        assertHeaderRejected("vocab_size -2147483648", 64, 172, 5, 8, 4, Integer.MIN_VALUE, 512);
        assertHeaderRejected("ak42", 0x616b3432, 2, 64, 172, 5, 8, 4);
        // Huge but consistent sizes must fail on the length check, without allocating anything.
        assertHeaderRejected("implies", 1 << 16, 1 << 16, 1 << 10, 1 << 4, 1 << 4, 1 << 20, 1 << 10);
        assertHeaderRejected("more than", 1 << 30, 2, 1, 1, 1, 1, Integer.MAX_VALUE);
        assertHeaderRejected("overflows", Integer.MAX_VALUE - 1, Integer.MAX_VALUE, 1 << 16, 1, 1, 1 << 30, 2);
    }

    @Test
    void rejectsMoreLayersThanGgufAllowsBeforeSlicingThem() throws IOException {
        // A consistent (sparse) file of 70000 layers of dim 2, hidden_dim 1: 26 floats a layer, 6 beside them.
        Path file = dir.resolve("deep.bin");
        ByteBuffer header = ByteBuffer.allocate(28).order(ByteOrder.LITTLE_ENDIAN);
        for (int value : new int[] {2, 1, 70_000, 1, 1, 1, 1}) {
            header.putInt(value);
        }
        Files.write(file, header.array());
        try (RandomAccessFile raf = new RandomAccessFile(file.toFile(), "rw")) {
            raf.setLength(28 + 4L * (70_000 * 26 + 6));
        }
        String message = assertThrows(ModelFormatException.class, () -> Llama2cCheckpoint.open(file))
                .getMessage();
        assertTrue(message.endsWith("invalid llama2.c header: n_layers 70000 is over 65536, the most read"), message);
    }

    private void assertHeaderRejected(String problem, int... header) throws IOException {
        ByteBuffer bytes = ByteBuffer.allocate(header.length * 4 + (header.length == 7 ? 64 : 0))
                .order(ByteOrder.LITTLE_ENDIAN);
        for (int value : header) {
            bytes.putInt(value);
        }
        Path file = dir.resolve("bad.bin");
        Files.write(file, bytes.array());
        String message = assertThrows(ModelFormatException.class, () -> Llama2cCheckpoint.open(file))
                .getMessage();
        assertTrue(message.startsWith(file + ": ") && message.contains(problem), message);
    }

    @Test
    void configReportsEveryProblemAtOnce() {
        String message = assertThrows(
                        IllegalArgumentException.class,
                        () -> new ModelConfig(Architecture.LLAMA, 30, 0, 1, 4, 3, 10, 8, 0f, 1e4f, true))
                .getMessage();
        List<String> expected = new ArrayList<>(List.of(
                "hiddenDim 0 is not positive",
                "dim 30 is not divisible by heads 4",
                "kvHeads 3 does not divide heads 4",
                "normEpsilon 0.0"));
        expected.forEach(part -> assertTrue(message.contains(part), message));
        assertTrue(assertThrows(
                        IllegalArgumentException.class,
                        () -> new ModelConfig(Architecture.LLAMA, 12, 4, 1, 4, 4, 10, 8, 1e-5f, 1e4f, true))
                .getMessage()
                .contains("head size 3 is odd"));
        ModelConfig gpt2 = new ModelConfig(Architecture.GPT2, 768, 3072, 12, 12, 12, 50257, 1024, 1e-5f, 0, true);
        assertEquals(124_439_808L, gpt2.parameterCount(), "GPT-2 small");
        assertEquals(8, llama(64, 172, 5, 8, 4, 512, true).headSize());
        assertEquals(32, llama(64, 172, 5, 8, 4, 512, true).kvDim());
    }
}
