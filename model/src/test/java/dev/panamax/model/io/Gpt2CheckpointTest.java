package dev.panamax.model.io;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.panamax.model.io.SafeTensors.Tensor;
import dev.panamax.model.nn.Gpt2Weights;
import dev.panamax.model.nn.ModelConfig;
import dev.panamax.model.nn.ModelConfig.Architecture;
import dev.panamax.model.testing.RandomWeights;
import dev.panamax.model.testing.Segments;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Consumer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class Gpt2CheckpointTest {
    private static final ModelConfig CONFIG = new ModelConfig(Architecture.GPT2, 8, 32, 2, 2, 2, 11, 6, 1e-5f, 0, true);

    @TempDir
    Path dir;

    @Test
    void roundTripsThroughHuggingFaceNames() throws IOException {
        Gpt2Weights<MemorySegment> weights = RandomWeights.gpt2(CONFIG, 5);
        Gpt2Checkpoint.write(dir, CONFIG, weights, DType.F32);
        try (SafeTensors file = SafeTensors.open(dir.resolve("model.safetensors"))) {
            assertEquals(
                    List.of(8L, 24L),
                    file.tensors().get("h.1.attn.c_attn.weight").shape(),
                    "Conv1D: [in, out]");
            assertEquals(
                    List.of(32L, 8L),
                    file.tensors().get("h.0.mlp.c_proj.weight").shape());
            assertEquals(4 + 2 * 12, file.tensors().size());
        }
        try (Gpt2Checkpoint checkpoint = Gpt2Checkpoint.open(dir)) {
            assertEquals(CONFIG, checkpoint.config());
            assertSame(weights, checkpoint.weights());
        }
    }

    @Test
    void convertsHalfPrecisionOnLoad() throws IOException {
        Gpt2Weights<MemorySegment> weights = RandomWeights.gpt2(CONFIG, 6);
        Gpt2Checkpoint.write(dir, CONFIG, weights, DType.BF16);
        try (Gpt2Checkpoint checkpoint = Gpt2Checkpoint.open(dir)) {
            float[] original = Segments.toFloats(weights.layers().get(1).mlpWeight());
            float[] loaded =
                    Segments.toFloats(checkpoint.weights().layers().get(1).mlpWeight());
            for (int i = 0; i < original.length; i++) {
                assertEquals(DType.BF16.toFloat(DType.BF16.fromFloat(original[i])), loaded[i]);
                assertEquals(original[i], loaded[i], Math.abs(original[i]) * 0x1p-8);
            }
        }
    }

    @Test
    void acceptsTheTransformerPrefixAndIgnoresBuffers() throws IOException {
        Gpt2Weights<MemorySegment> weights = RandomWeights.gpt2(CONFIG, 7);
        Gpt2Checkpoint.write(dir, CONFIG, weights, DType.F32);
        rewrite(tensors -> {
            Map<String, Tensor> prefixed = new LinkedHashMap<>();
            tensors.forEach((name, tensor) -> prefixed.put("transformer." + name, tensor));
            prefixed.put("transformer.h.0.attn.bias", Tensor.of(DType.F32, new float[36], 1, 1, 6, 6));
            prefixed.put("lm_head.weight", tensors.get("wte.weight"));
            tensors.clear();
            tensors.putAll(prefixed);
        });
        try (Gpt2Checkpoint checkpoint = Gpt2Checkpoint.open(dir)) {
            assertSame(weights, checkpoint.weights());
        }
    }

    @Test
    void refusesTensorsOfAnotherModel() throws IOException {
        // The first layers of a deeper model under a configuration of fewer layers: every shape matches.
        ModelConfig deeper = new ModelConfig(Architecture.GPT2, 8, 32, 3, 2, 2, 11, 6, 1e-5f, 0, true);
        Gpt2Checkpoint.write(dir, deeper, RandomWeights.gpt2(deeper, 9), DType.F32);
        Path weights = dir.resolve("model.safetensors");
        Path config = dir.resolve("config.json");
        Gpt2Checkpoint.writeConfig(dir, CONFIG);
        assertEquals(
                weights + ": tensor \"h.2.ln_1.weight\" is not part of GPT-2 as " + config
                        + " describes it (n_layer 2): the weights are of another model",
                assertThrows(ModelFormatException.class, () -> Gpt2Checkpoint.open(dir))
                        .getMessage());
    }

    @Test
    void namesAMissingOrMisshapedTensor() throws IOException {
        Gpt2Checkpoint.write(dir, CONFIG, RandomWeights.gpt2(CONFIG, 8), DType.F32);
        Path file = dir.resolve("model.safetensors");
        rewrite(tensors -> tensors.remove("h.1.mlp.c_fc.bias"));
        assertEquals(
                file + ": missing tensor \"h.1.mlp.c_fc.bias\" of shape [32] for GPT-2",
                assertThrows(ModelFormatException.class, () -> Gpt2Checkpoint.open(dir))
                        .getMessage());

        Gpt2Checkpoint.write(dir, CONFIG, RandomWeights.gpt2(CONFIG, 8), DType.F32);
        rewrite(tensors -> {
            Tensor attention = tensors.get("h.0.attn.c_attn.weight");
            tensors.put("h.0.attn.c_attn.weight", new Tensor(DType.F32, List.of(24L, 8L), attention.data()));
        });
        assertEquals(
                file + ": tensor \"h.0.attn.c_attn.weight\" has shape [24, 8], expected [8, 24] for the configuration",
                assertThrows(ModelFormatException.class, () -> Gpt2Checkpoint.open(dir))
                        .getMessage());
    }

    @Test
    void readsAndChecksConfigJson() throws IOException {
        Path config = dir.resolve("config.json");
        // GPT-2 small's configuration as published, abridged.
        Files.writeString(config, """
                {
                  "activation_function": "gelu_new",
                  "architectures": ["GPT2LMHeadModel"],
                  "layer_norm_epsilon": 1e-05,
                  "model_type": "gpt2",
                  "n_ctx": 1024,
                  "n_embd": 768,
                  "n_head": 12,
                  "n_inner": null,
                  "n_layer": 12,
                  "n_positions": 1024,
                  "vocab_size": 50257
                }
                """);
        assertEquals(
                new ModelConfig(Architecture.GPT2, 768, 3072, 12, 12, 12, 50257, 1024, 1e-5f, 0, true),
                Gpt2Checkpoint.readConfig(config));

        assertConfigRejected(config, "{\"n_embd\": 768, \"n_layer\": 1, \"n_head\": 12}", "n_positions: missing");
        assertConfigRejected(
                config,
                "{\"n_embd\": 10, \"n_layer\": 1, \"n_head\": 4, \"vocab_size\": 5, \"n_positions\": 8}",
                "dim 10 is not divisible by heads 4");
        assertConfigRejected(
                config,
                "{\"n_embd\": \"768\", \"n_layer\": 1, \"n_head\": 12}",
                "n_embd: expected an integer, found a string");
        assertConfigRejected(
                config,
                "{\"n_embd\": 8, \"n_layer\": -1, \"n_head\": 2, \"vocab_size\": 5, \"n_ctx\": 8}",
                "n_layer: value -1 is outside [1, 2147483647]");
        assertConfigRejected(config, "{\"activation_function\": \"relu\"}", "activation_function: \"relu\"");
        // Without n_inner, its default 4·n_embd is held to n_inner's range: not cut to int (which gave 4 here).
        assertConfigRejected(
                config,
                "{\"n_embd\": 1073741825, \"n_layer\": 1, \"n_head\": 1, \"vocab_size\": 5, \"n_ctx\": 8}",
                "n_inner: absent, and its default 4294967300 is outside [1, 2147483647]");
        assertConfigRejected(config, "{\"model_type\": \"llama\"}", "model_type: \"llama\" is not \"gpt2\"");
        // A hostile value is shortened, and its terminal escapes written as escapes.
        String hostile = "\\u001b]52;c;" + "A".repeat(100) + "\\u0007";
        String shown = "\"\\u001B]52;c;" + "A".repeat(33) + "... (108 chars)\" is not";
        assertConfigRejected(config, "{\"model_type\": \"" + hostile + "\"}", "model_type: " + shown);
        assertConfigRejected(config, "{\"activation_function\": \"" + hostile + "\"}", "activation_function: " + shown);
        assertConfigRejected(config, "{\"n_embd\": 8,}", "trailing comma");
        // Settings that change the arithmetic are refused rather than ignored; GPT-2's own values are accepted.
        assertConfigRejected(
                config, "{\"tie_word_embeddings\": false}", "tie_word_embeddings: false means a classifier of its own");
        assertConfigRejected(config, "{\"scale_attn_weights\": false}", "scale_attn_weights: false means");
        assertConfigRejected(
                config, "{\"scale_attn_by_inverse_layer_idx\": true}", "scale_attn_by_inverse_layer_idx: true means");
        assertConfigRejected(config, "{\"tie_word_embeddings\": 0}", "tie_word_embeddings: expected a boolean");
        Files.writeString(
                config,
                "{\"n_embd\": 8, \"n_layer\": 1, \"n_head\": 2, \"vocab_size\": 5, \"n_ctx\": 8,"
                        + " \"tie_word_embeddings\": true, \"scale_attn_weights\": true,"
                        + " \"scale_attn_by_inverse_layer_idx\": false}");
        assertEquals(8, Gpt2Checkpoint.readConfig(config).dim());
    }

    private static void assertConfigRejected(Path config, String json, String problem) throws IOException {
        Files.writeString(config, json);
        String message = assertThrows(ModelFormatException.class, () -> Gpt2Checkpoint.readConfig(config))
                .getMessage();
        assertTrue(message.startsWith(config + ": ") && message.contains(problem), message);
    }

    /** Rewrites the model's safetensors file after changing its tensors. */
    private void rewrite(Consumer<Map<String, Tensor>> change) throws IOException {
        Path file = dir.resolve("model.safetensors");
        Map<String, Tensor> tensors = new LinkedHashMap<>();
        try (SafeTensors read = SafeTensors.open(file)) {
            for (TensorInfo info : read.tensors().values()) {
                byte[] copy = read.bytes(info.name()).toArray(java.lang.foreign.ValueLayout.JAVA_BYTE);
                tensors.put(info.name(), new Tensor(info.dtype(), info.shape(), MemorySegment.ofArray(copy)));
            }
        }
        change.accept(tensors);
        SafeTensors.write(file, tensors, Map.of());
    }

    private static void assertSame(Gpt2Weights<MemorySegment> expected, Gpt2Weights<MemorySegment> actual) {
        assertArrayEquals(flatten(expected), flatten(actual));
    }

    private static float[][] flatten(Gpt2Weights<MemorySegment> w) {
        List<MemorySegment> all = new ArrayList<>(List.of(w.tokenEmbedding(), w.positionEmbedding()));
        for (Gpt2Weights.Layer<MemorySegment> l : w.layers()) {
            all.addAll(List.of(
                    l.norm1Weight(),
                    l.norm1Bias(),
                    l.attentionWeight(),
                    l.attentionBias(),
                    l.attentionProjectionWeight(),
                    l.attentionProjectionBias(),
                    l.norm2Weight(),
                    l.norm2Bias(),
                    l.mlpWeight(),
                    l.mlpBias(),
                    l.mlpProjectionWeight(),
                    l.mlpProjectionBias()));
        }
        all.add(w.finalNormWeight());
        all.add(w.finalNormBias());
        return all.stream().map(Segments::toFloats).toArray(float[][]::new);
    }
}
