package dev.panamax.model.io;

import dev.panamax.model.io.ModelConfig.Architecture;
import dev.panamax.model.json.Json;
import dev.panamax.model.json.JsonFields;
import dev.panamax.model.json.JsonValue;
import dev.panamax.model.json.JsonValue.JsonArray;
import dev.panamax.model.json.JsonValue.JsonNumber;
import dev.panamax.model.json.JsonValue.JsonObject;
import dev.panamax.model.json.JsonValue.JsonString;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * A GPT-2 model in Hugging Face's layout: a {@code config.json} and a {@code model.safetensors} whose tensors are
 * named {@code wte.weight}, {@code wpe.weight}, {@code h.N.ln_1.weight}, {@code h.N.attn.c_attn.weight}, … (with or
 * without the {@code transformer.} prefix that {@code GPT2LMHeadModel} adds). Opening checks the configuration and
 * that every tensor is present with the shape the configuration implies; other tensors (the attention-mask buffers
 * {@code attn.bias}, a tied {@code lm_head.weight}) are ignored.
 */
public final class Gpt2Checkpoint implements AutoCloseable {
    /** The configuration file's name in a model directory. */
    public static final String CONFIG_FILE = "config.json";

    /** The weights file's name in a model directory. */
    public static final String WEIGHTS_FILE = "model.safetensors";

    private static final Set<String> GELU_TANH = Set.of("gelu_new", "gelu_pytorch_tanh");
    private static final String PREFIX = "transformer.";
    private static final String[] LAYER_TENSORS = {
        "ln_1.weight", "ln_1.bias", "attn.c_attn.weight", "attn.c_attn.bias", "attn.c_proj.weight", "attn.c_proj.bias",
        "ln_2.weight", "ln_2.bias", "mlp.c_fc.weight", "mlp.c_fc.bias", "mlp.c_proj.weight", "mlp.c_proj.bias"
    };

    private final SafeTensors file;
    private final ModelConfig config;
    private final Gpt2Weights weights;

    private Gpt2Checkpoint(SafeTensors file, ModelConfig config, Gpt2Weights weights) {
        this.file = file;
        this.config = config;
        this.weights = weights;
    }

    /**
     * Opens a model directory holding {@value #CONFIG_FILE} and {@value #WEIGHTS_FILE}.
     *
     * @param directory the directory
     * @return the open checkpoint; close it to unmap the weights
     * @throws ModelFormatException if either file is invalid or a tensor is missing or misshaped
     * @throws IOException if a file cannot be read
     */
    public static Gpt2Checkpoint open(Path directory) throws IOException {
        return open(directory.resolve(CONFIG_FILE), directory.resolve(WEIGHTS_FILE));
    }

    /**
     * Opens a GPT-2 configuration and safetensors file.
     *
     * @param configFile the {@code config.json}
     * @param weightsFile the {@code .safetensors}
     * @return the open checkpoint; close it to unmap the weights
     * @throws ModelFormatException if either file is invalid or a tensor is missing or misshaped
     * @throws IOException if a file cannot be read
     */
    public static Gpt2Checkpoint open(Path configFile, Path weightsFile) throws IOException {
        ModelConfig config = readConfig(configFile);
        SafeTensors tensors = SafeTensors.open(weightsFile);
        try {
            String prefix = tensors.tensors().containsKey(PREFIX + "wte.weight") ? PREFIX : "";
            List<MemorySegment> layerTensors = new ArrayList<>();
            List<Gpt2Weights.Layer> layers = new ArrayList<>();
            for (int l = 0; l < config.layers(); l++) {
                layerTensors.clear();
                for (String name : LAYER_TENSORS) {
                    String full = "h." + l + "." + name;
                    layerTensors.add(load(tensors, prefix + full, shape(config, full)));
                }
                layers.add(new Gpt2Weights.Layer(
                        layerTensors.get(0),
                        layerTensors.get(1),
                        layerTensors.get(2),
                        layerTensors.get(3),
                        layerTensors.get(4),
                        layerTensors.get(5),
                        layerTensors.get(6),
                        layerTensors.get(7),
                        layerTensors.get(8),
                        layerTensors.get(9),
                        layerTensors.get(10),
                        layerTensors.get(11)));
            }
            Gpt2Weights weights = new Gpt2Weights(
                    load(tensors, prefix + "wte.weight", shape(config, "wte.weight")),
                    load(tensors, prefix + "wpe.weight", shape(config, "wpe.weight")),
                    layers,
                    load(tensors, prefix + "ln_f.weight", shape(config, "ln_f.weight")),
                    load(tensors, prefix + "ln_f.bias", shape(config, "ln_f.bias")));
            return new Gpt2Checkpoint(tensors, config, weights);
        } catch (IOException | RuntimeException e) {
            tensors.close();
            throw e;
        }
    }

    /** The shape of a tensor, by its name without the prefix. */
    private static List<Long> shape(ModelConfig c, String name) {
        long dim = c.dim();
        String local = name.startsWith("h.") ? name.substring(name.indexOf('.', 2) + 1) : name;
        return switch (local) {
            case "wte.weight" -> List.of((long) c.vocabSize(), dim);
            case "wpe.weight" -> List.of((long) c.seqLen(), dim);
            case "attn.c_attn.weight" -> List.of(dim, 3 * dim);
            case "attn.c_attn.bias" -> List.of(3 * dim);
            case "attn.c_proj.weight" -> List.of(dim, dim);
            case "mlp.c_fc.weight" -> List.of(dim, (long) c.hiddenDim());
            case "mlp.c_fc.bias" -> List.of((long) c.hiddenDim());
            case "mlp.c_proj.weight" -> List.of((long) c.hiddenDim(), dim);
            default -> List.of(dim); // the norms' weights and biases, and the projections' biases
        };
    }

    private static MemorySegment load(SafeTensors tensors, String name, List<Long> shape) throws IOException {
        TensorInfo info = tensors.tensors().get(name);
        if (info == null) {
            throw new ModelFormatException(
                    tensors.file(), "missing tensor \"" + name + "\" of shape " + shape + " for GPT-2");
        }
        if (!info.shape().equals(shape)) {
            throw new ModelFormatException(
                    tensors.file(),
                    "tensor \"" + name + "\" has shape " + info.shape() + ", expected " + shape
                            + " for the configuration");
        }
        return tensors.floats(name);
    }

    /**
     * Reads a GPT-2 {@code config.json}: {@code n_embd}, {@code n_layer}, {@code n_head}, {@code vocab_size},
     * {@code n_positions} (or the older {@code n_ctx}), and optionally {@code n_inner} (default 4·n_embd),
     * {@code layer_norm_epsilon} (default 1e-5) and {@code activation_function}, which must be GELU's tanh
     * approximation.
     *
     * @param file the file
     * @return the configuration
     * @throws ModelFormatException if a value is missing, of the wrong type, out of range or inconsistent
     * @throws IOException if the file cannot be read
     */
    public static ModelConfig readConfig(Path file) throws IOException {
        JsonFields fields = JsonFields.of(file, Json.parse(file));
        if (fields.has("model_type") && !fields.string("model_type").equals("gpt2")) {
            throw fields.error("model_type", "\"" + fields.string("model_type") + "\" is not \"gpt2\"");
        }
        if (fields.has("activation_function") && !GELU_TANH.contains(fields.string("activation_function"))) {
            throw fields.error(
                    "activation_function",
                    "\"" + fields.string("activation_function") + "\" is not one of " + GELU_TANH
                            + " (GELU's tanh approximation, which GPT-2 uses)");
        }
        int dim = (int) fields.integer("n_embd", 1, Integer.MAX_VALUE);
        int heads = (int) fields.integer("n_head", 1, Integer.MAX_VALUE);
        int positions = fields.has("n_ctx") && !fields.has("n_positions")
                ? (int) fields.integer("n_ctx", 1, Integer.MAX_VALUE)
                : (int) fields.integer("n_positions", 1, Integer.MAX_VALUE);
        try {
            return new ModelConfig(
                    Architecture.GPT2,
                    dim,
                    (int) fields.integer("n_inner", 1, Integer.MAX_VALUE, 4L * dim),
                    (int) fields.integer("n_layer", 1, Integer.MAX_VALUE),
                    heads,
                    heads,
                    (int) fields.integer("vocab_size", 1, Integer.MAX_VALUE),
                    positions,
                    (float) fields.number("layer_norm_epsilon", 1e-5),
                    0,
                    true);
        } catch (IllegalArgumentException e) {
            throw new ModelFormatException(file, e.getMessage(), e);
        }
    }

    /**
     * Returns the configuration.
     *
     * @return the configuration from {@code config.json}
     */
    public ModelConfig config() {
        return config;
    }

    /**
     * Returns the weights, valid until {@link #close()}.
     *
     * @return the weights as float32
     */
    public Gpt2Weights weights() {
        return weights;
    }

    /** Unmaps the weights file and frees converted tensors. */
    @Override
    public void close() {
        file.close();
    }

    /**
     * Writes a model directory that Hugging Face {@code transformers} loads as {@code GPT2LMHeadModel}: a
     * {@value #CONFIG_FILE} and a {@value #WEIGHTS_FILE} with the tensors under their GPT-2 names.
     *
     * @param directory the directory, which must exist
     * @param config a GPT-2 configuration
     * @param weights weights of the shapes the configuration implies
     * @param dtype how to store the weights: F32, F16 or BF16
     * @throws IllegalArgumentException if the configuration is not GPT-2's, or a weight has the wrong size
     * @throws IOException if the files cannot be written
     */
    public static void write(Path directory, ModelConfig config, Gpt2Weights weights, DType dtype) throws IOException {
        if (config.architecture() != Architecture.GPT2) {
            throw new IllegalArgumentException("not a GPT-2 configuration: " + config.architecture());
        }
        if (weights.layers().size() != config.layers()) {
            throw new IllegalArgumentException(
                    "weights have " + weights.layers().size() + " layers, the configuration " + config.layers());
        }
        Map<String, SafeTensors.Tensor> tensors = new LinkedHashMap<>();
        put(tensors, config, "wte.weight", weights.tokenEmbedding(), dtype);
        put(tensors, config, "wpe.weight", weights.positionEmbedding(), dtype);
        for (int l = 0; l < config.layers(); l++) {
            Gpt2Weights.Layer layer = weights.layers().get(l);
            MemorySegment[] segments = {
                layer.norm1Weight(),
                layer.norm1Bias(),
                layer.attentionWeight(),
                layer.attentionBias(),
                layer.attentionProjectionWeight(),
                layer.attentionProjectionBias(),
                layer.norm2Weight(),
                layer.norm2Bias(),
                layer.mlpWeight(),
                layer.mlpBias(),
                layer.mlpProjectionWeight(),
                layer.mlpProjectionBias()
            };
            for (int i = 0; i < LAYER_TENSORS.length; i++) {
                put(tensors, config, "h." + l + "." + LAYER_TENSORS[i], segments[i], dtype);
            }
        }
        put(tensors, config, "ln_f.weight", weights.finalNormWeight(), dtype);
        put(tensors, config, "ln_f.bias", weights.finalNormBias(), dtype);
        SafeTensors.write(directory.resolve(WEIGHTS_FILE), tensors, Map.of("format", "pt"));

        Map<String, JsonValue> json = new LinkedHashMap<>();
        json.put("model_type", new JsonString("gpt2"));
        json.put("architectures", new JsonArray(List.of(new JsonString("GPT2LMHeadModel"))));
        json.put("activation_function", new JsonString("gelu_new"));
        json.put("n_embd", JsonNumber.of(config.dim()));
        json.put("n_inner", JsonNumber.of(config.hiddenDim()));
        json.put("n_layer", JsonNumber.of(config.layers()));
        json.put("n_head", JsonNumber.of(config.heads()));
        json.put("n_positions", JsonNumber.of(config.seqLen()));
        json.put("n_ctx", JsonNumber.of(config.seqLen()));
        json.put("vocab_size", JsonNumber.of(config.vocabSize()));
        json.put("layer_norm_epsilon", new JsonNumber(Float.toString(config.normEpsilon())));
        json.put("tie_word_embeddings", JsonValue.TRUE);
        Files.writeString(
                directory.resolve(CONFIG_FILE), Json.write(new JsonObject(json)) + "\n", StandardCharsets.UTF_8);
    }

    private static void put(
            Map<String, SafeTensors.Tensor> tensors,
            ModelConfig config,
            String name,
            MemorySegment floats,
            DType dtype) {
        List<Long> shape = shape(config, name);
        long count = shape.stream().reduce(1L, Math::multiplyExact);
        if (floats.byteSize() != count * Float.BYTES) {
            throw new IllegalArgumentException(
                    name + " has " + floats.byteSize() + " bytes, expected " + count * Float.BYTES + " for " + shape);
        }
        tensors.put(name, SafeTensors.Tensor.convert(floats, dtype, shape));
    }
}
