package dev.panamax.model.io;

import dev.panamax.model.json.Json;
import dev.panamax.model.json.JsonException;
import dev.panamax.model.json.JsonFields;
import dev.panamax.model.json.JsonValue;
import dev.panamax.model.json.JsonValue.JsonArray;
import dev.panamax.model.json.JsonValue.JsonNumber;
import dev.panamax.model.json.JsonValue.JsonObject;
import dev.panamax.model.json.JsonValue.JsonString;
import dev.panamax.model.nn.Gpt2Weights;
import dev.panamax.model.nn.ModelConfig;
import dev.panamax.model.nn.ModelConfig.Architecture;
import dev.panamax.model.nn.Parameters;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.regex.Pattern;

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

    private final SafeTensors file;
    private final ModelConfig config;
    private final Gpt2Weights<MemorySegment> weights;

    private Gpt2Checkpoint(SafeTensors file, ModelConfig config, Gpt2Weights<MemorySegment> weights) {
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
            requireContents(tensors, config, configFile);
            String prefix = tensors.tensors().containsKey(PREFIX + "wte.weight") ? PREFIX : "";
            Map<String, MemorySegment> named = new LinkedHashMap<>();
            for (Parameters.Spec spec : Parameters.of(config)) {
                named.put(spec.name(), load(tensors, prefix + spec.name(), spec.shape()));
            }
            requireNoOthers(tensors, prefix, named.keySet(), config, configFile);
            Gpt2Weights<MemorySegment> weights = Gpt2Weights.fromNames(config.layers(), named);
            return new Gpt2Checkpoint(tensors, config, weights);
        } catch (IOException | RuntimeException e) {
            tensors.close();
            throw e;
        }
    }

    /**
     * Checks that the configuration's list of tensors is not out of all proportion to the file, before it is built: a
     * small file cannot make the loader list billions of layers. Within a layer's worth, the tensors are compared one
     * by one, which names the first missing one.
     */
    private static void requireContents(SafeTensors tensors, ModelConfig config, Path configFile)
            throws ModelFormatException {
        long expected = (long) Parameters.GPT2_LAYER.size() * config.layers() + 4;
        if (expected > tensors.tensors().size() + Parameters.GPT2_LAYER.size()) {
            throw new ModelFormatException(
                    tensors.file(),
                    "holds " + tensors.tensors().size() + " tensors, but " + configFile + " (n_layer " + config.layers()
                            + ") implies " + expected + ": the weights are not of this model");
        }
    }

    /**
     * Checks that the file holds no tensor the model would not use, which would mean weights of another model (more
     * layers than {@code n_layer}, say) running without a word; Hugging Face's attention mask buffers and a tied
     * {@code lm_head.weight} are not parameters and may be there.
     */
    private static void requireNoOthers(
            SafeTensors tensors, String prefix, Set<String> used, ModelConfig config, Path configFile)
            throws ModelFormatException {
        for (String name : tensors.tensors().keySet()) {
            boolean parameter = name.startsWith(prefix) && used.contains(name.substring(prefix.length()));
            if (!parameter && !NOT_PARAMETERS.matcher(name).matches()) {
                throw new ModelFormatException(
                        tensors.file(),
                        "tensor \"" + ModelFormatException.excerpt(name) + "\" is not part of GPT-2 as " + configFile
                                + " describes it (n_layer " + config.layers() + "): the weights are of another model");
            }
        }
    }

    /** Tensors a Hugging Face GPT-2 file may hold besides the parameters: attention mask buffers, a tied head. */
    private static final Pattern NOT_PARAMETERS =
            Pattern.compile("(transformer\\.)?h\\.[0-9]+\\.attn\\.(masked_)?bias|lm_head\\.weight");

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
     * approximation. {@code tie_word_embeddings}, {@code scale_attn_weights} and {@code
     * scale_attn_by_inverse_layer_idx}, where present, must keep GPT-2's values (true, true, false).
     *
     * @param file the file
     * @return the configuration
     * @throws ModelFormatException if a value is missing, of the wrong type, out of range or inconsistent
     * @throws IOException if the file cannot be read
     */
    public static ModelConfig readConfig(Path file) throws IOException {
        return BoundedFiles.readJson(file, text -> {
            JsonFields fields = JsonFields.of(file, Json.parse(text, file, Json.Limits.DEFAULT));
            if (fields.has("model_type") && !fields.string("model_type").equals("gpt2")) {
                throw fields.error(
                        "model_type",
                        "\"" + ModelFormatException.excerpt(fields.string("model_type")) + "\" is not \"gpt2\"");
            }
            if (fields.has("activation_function") && !GELU_TANH.contains(fields.string("activation_function"))) {
                throw fields.error(
                        "activation_function",
                        "\"" + ModelFormatException.excerpt(fields.string("activation_function")) + "\" is not one of "
                                + GELU_TANH + " (GELU's tanh approximation, which GPT-2 uses)");
            }
            // Each of these, at its other value, changes the model's arithmetic, which Panamax's GPT-2 does not do.
            requireDefault(fields, "tie_word_embeddings", true, "a classifier of its own (lm_head.weight)");
            requireDefault(fields, "scale_attn_weights", true, "attention scores not divided by √head size");
            requireDefault(
                    fields, "scale_attn_by_inverse_layer_idx", false, "attention scores divided by the layer's number");
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
        });
    }

    private static void requireDefault(JsonFields fields, String name, boolean expected, String otherwise)
            throws JsonException {
        if (fields.bool(name, expected) != expected) {
            throw fields.error(name, !expected + " means " + otherwise + ", which Panamax does not support");
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
    public Gpt2Weights<MemorySegment> weights() {
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
    public static void write(Path directory, ModelConfig config, Gpt2Weights<MemorySegment> weights, DType dtype)
            throws IOException {
        if (config.architecture() != Architecture.GPT2) {
            throw new IllegalArgumentException("not a GPT-2 configuration: " + config.architecture());
        }
        if (weights.layers().size() != config.layers()) {
            throw new IllegalArgumentException(
                    "weights have " + weights.layers().size() + " layers, the configuration " + config.layers());
        }
        Map<String, MemorySegment> named = weights.byName();
        Map<String, SafeTensors.Tensor> tensors = new LinkedHashMap<>();
        for (Parameters.Spec spec : Parameters.of(config)) {
            MemorySegment floats = named.get(spec.name());
            if (floats.byteSize() != spec.size() * Float.BYTES) {
                throw new IllegalArgumentException(spec.name() + " has " + floats.byteSize() + " bytes, expected "
                        + spec.size() * Float.BYTES + " for " + spec.shape());
            }
            tensors.put(spec.name(), SafeTensors.Tensor.convert(floats, dtype, spec.shape()));
        }
        SafeTensors.write(directory.resolve(WEIGHTS_FILE), tensors, Map.of("format", "pt"));
        writeConfig(directory, config);
    }

    /**
     * Writes a Hugging Face GPT-2 {@value #CONFIG_FILE} for a configuration.
     *
     * @param directory the directory, which must exist
     * @param config a GPT-2 configuration
     * @throws IllegalArgumentException if the configuration is not GPT-2's
     * @throws IOException if the file cannot be written
     */
    public static void writeConfig(Path directory, ModelConfig config) throws IOException {
        if (config.architecture() != Architecture.GPT2) {
            throw new IllegalArgumentException("not a GPT-2 configuration: " + config.architecture());
        }
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
        AtomicFiles.replace(directory.resolve(CONFIG_FILE), Json.write(new JsonObject(json)) + "\n");
    }
}
