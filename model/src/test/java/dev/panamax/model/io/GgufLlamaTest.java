package dev.panamax.model.io;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.panamax.model.nn.ModelConfig;
import dev.panamax.model.nn.ModelConfig.Architecture;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Consumer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** What {@link GgufLlama#open} refuses, each time naming the file, the key or tensor and what is wrong. */
class GgufLlamaTest {
    private static final ModelConfig CONFIG =
            new ModelConfig(Architecture.LLAMA, 64, 96, 1, 4, 2, 40, 32, 1e-5f, 10000f, true);

    @TempDir
    Path dir;

    /** A valid file's metadata and tensors (zeros), which each test edits before writing. */
    private Path write(Consumer<Map<String, GgufValue>> metadata, Consumer<List<GgufWriter.TensorData>> tensors)
            throws IOException {
        Path reference = dir.resolve("reference.bin");
        Llama2cCheckpoint.writeRandom(reference, CONFIG, 1);
        Path valid = dir.resolve("valid.gguf");
        try (Llama2cCheckpoint checkpoint = Llama2cCheckpoint.open(reference)) {
            GgufLlama.write(valid, CONFIG, checkpoint.weights(), "test", Map.of(), GgmlType.Q8_0);
        }
        Map<String, GgufValue> m;
        List<GgufWriter.TensorData> t = new ArrayList<>();
        try (GgufFile gguf = GgufFile.open(valid)) {
            m = new LinkedHashMap<>(gguf.metadata());
            for (GgufFile.Tensor info : gguf.tensors().values()) {
                t.add(new GgufWriter.TensorData(info.name(), info.type(), info.dimensions(), target -> {}));
            }
        }
        metadata.accept(m);
        tensors.accept(t);
        Path file = dir.resolve("edited.gguf");
        GgufWriter.write(file, m, t);
        return file;
    }

    private void assertRejected(Path file, String fragment) {
        ModelFormatException e = assertThrows(
                ModelFormatException.class, () -> GgufLlama.open(file).close());
        assertTrue(e.getMessage().startsWith(file.toString()), e.getMessage());
        assertTrue(e.getMessage().contains(fragment), e.getMessage());
    }

    @Test
    void aValidFileOpens() throws IOException {
        try (GgufLlama model = GgufLlama.open(write(m -> {}, t -> {}))) {
            assertEquals(CONFIG, model.config());
        }
    }

    @Test
    void refusesOtherArchitecturesAndWhatPanamaxDoesNotImplement() throws IOException {
        assertRejected(
                write(m -> m.put("general.architecture", GgufValue.of("qwen2")), t -> {}),
                "general.architecture is \"qwen2\"; Panamax runs GGUF models of the \"llama\" architecture");
        assertRejected(
                write(m -> m.put("llama.rope.scaling.type", GgufValue.of("yarn")), t -> {}),
                "RoPE scaling is not supported");
        // A factor without a type is linear scaling to llama.cpp, under either key; a factor of 1 changes nothing.
        assertRejected(
                write(m -> m.put("llama.rope.scaling.factor", GgufValue.of(4f)), t -> {}),
                "llama.rope.scaling.factor 4.0: RoPE scaling is not supported (only a factor of 1)");
        assertRejected(
                write(m -> m.put("llama.rope.scale_linear", GgufValue.of(2f)), t -> {}),
                "llama.rope.scale_linear 2.0: RoPE scaling is not supported");
        try (GgufLlama model =
                GgufLlama.open(write(m -> m.put("llama.rope.scaling.factor", GgufValue.of(1f)), t -> {}))) {
            assertEquals(CONFIG, model.config());
        }
        assertRejected(
                write(m -> m.put("llama.rope.dimension_count", GgufValue.uint32(8)), t -> {}),
                "\"llama.rope.dimension_count\" is 8, not in [16, 16]");
        assertRejected(
                write(m -> m.put("llama.attention.head_count_kv", GgufValue.uint32(3)), t -> {}),
                "kvHeads 3 does not divide heads 4");
        assertRejected(write(m -> m.remove("llama.block_count"), t -> {}), "\"llama.block_count\" is missing");
        assertRejected(
                write(m -> m.put("llama.embedding_length", GgufValue.of("64")), t -> {}),
                "\"llama.embedding_length\" is a STRING, not an integer");
    }

    @Test
    void aWeightThatCannotBeQuantizedIsNamedByItsTensor() throws IOException {
        Path reference = dir.resolve("nan.bin");
        Llama2cCheckpoint.writeRandom(reference, CONFIG, 1);
        // llama2.c's layout: a 7-int header, the token embedding, the attention norms, then wq.
        long wq = 7L * Integer.BYTES
                + ((long) CONFIG.vocabSize() * CONFIG.dim() + (long) CONFIG.layers() * CONFIG.dim()) * Float.BYTES;
        try (var channel = java.nio.channels.FileChannel.open(reference, java.nio.file.StandardOpenOption.WRITE)) {
            channel.write(
                    java.nio.ByteBuffer.allocate(Float.BYTES)
                            .order(java.nio.ByteOrder.LITTLE_ENDIAN)
                            .putFloat(0, Float.NaN),
                    wq + 5L * Float.BYTES);
        }
        try (Llama2cCheckpoint checkpoint = Llama2cCheckpoint.open(reference)) {
            IllegalArgumentException e = assertThrows(
                    IllegalArgumentException.class,
                    () -> GgufLlama.write(
                            dir.resolve("nan.gguf"), CONFIG, checkpoint.weights(), "nan", Map.of(), GgmlType.Q8_0));
            assertTrue(e.getMessage().startsWith("tensor blk.0.attn_q.weight ("), e.getMessage());
            assertTrue(e.getMessage().contains("NaN"), e.getMessage());
        }
        assertTrue(!java.nio.file.Files.exists(dir.resolve("nan.gguf")), "nothing is left where the file would be");
    }

    /** A valid file but for one tensor, given another type and dimensions (null keeps the tensor's own). */
    private Path retyped(String name, GgmlType type, long[] dimensions) throws IOException {
        return write(
                m -> {},
                t -> t.replaceAll(x -> x.name().equals(name)
                        ? new GgufWriter.TensorData(
                                x.name(),
                                type == null ? x.type() : type,
                                dimensions == null ? x.dimensions() : dimensions,
                                x.content())
                        : x));
    }

    @Test
    void refusesMissingMisshapenAndUncomputableTensors() throws IOException {
        assertRejected(
                write(m -> {}, t -> t.removeIf(x -> x.name().equals("blk.0.ffn_up.weight"))),
                "tensor blk.0.ffn_up.weight is missing");
        assertRejected(
                retyped("blk.0.attn_k.weight", null, new long[] {64, 64}),
                "tensor blk.0.attn_k.weight has shape [64, 64], expected [64, 32]");
        assertRejected(
                retyped("blk.0.attn_q.weight", GgmlType.Q4_K, new long[] {256, 16}),
                "has shape [256, 16], expected [64, 64]");
        assertRejected(
                retyped("blk.0.attn_q.weight", GgmlType.Q5_0, null),
                "tensor blk.0.attn_q.weight is Q5_0; Panamax computes with F32, F16, BF16, Q8_0 and Q4_0 matrices");
        assertRejected(
                retyped("output_norm.weight", GgmlType.F16, null),
                "tensor output_norm.weight is F16; Panamax computes with F32 norm weights");
        assertRejected(
                write(
                        m -> {},
                        t -> t.add(
                                new GgufWriter.TensorData("rope_freqs.weight", GgmlType.F32, new long[] {8}, x -> {}))),
                "rope_freqs.weight (Llama 3.1's RoPE frequency scaling) is not supported");
        // A layer beyond llama.block_count, or a bias Panamax's Llama has no place for, would be dropped without a
        // word.
        for (String extra : new String[] {"blk.1.attn_norm.weight", "blk.0.attn_q.bias"}) {
            assertRejected(
                    write(
                            m -> {},
                            t -> t.add(new GgufWriter.TensorData(extra, GgmlType.F32, new long[] {64}, x -> {}))),
                    "tensor " + extra + " is not part of the Llama model the metadata describes (llama.block_count 1)");
        }
    }
}
