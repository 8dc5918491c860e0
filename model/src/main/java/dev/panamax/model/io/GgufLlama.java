package dev.panamax.model.io;

import dev.panamax.kernels.Quantization;
import dev.panamax.kernels.WeightFormat;
import dev.panamax.model.nn.LlamaWeights;
import dev.panamax.model.nn.ModelConfig;
import dev.panamax.model.nn.ModelConfig.Architecture;
import dev.panamax.model.nn.Network;
import dev.panamax.model.nn.Parameters;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.EnumSet;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * A Llama-family model in a GGUF file ({@code general.architecture = llama}: Llama 2 and 3, TinyLlama, SmolLM and
 * other Llama-shaped models): the configuration from the {@code llama.*} metadata and the weights by llama.cpp's tensor
 * names ({@code token_embd}, {@code blk.N.attn_q/k/v/output}, {@code blk.N.ffn_gate/up/down}, {@code
 * blk.N.attn_norm/ffn_norm}, {@code output_norm}, {@code output} unless tied), used in place from the mapping.
 *
 * <p>GGUF Llama weights are in Meta's layout (llama.cpp's converters undo Hugging Face's permutation of the query and
 * key rows), so RoPE rotates adjacent pairs, llama.cpp's "normal" rotation and llama2.c's: the weights need no change.
 */
public final class GgufLlama implements AutoCloseable {
    /** The tensor types a model can compute with: norms must be F32, matrices any of these. */
    public static final Set<GgmlType> COMPUTE_TYPES =
            EnumSet.of(GgmlType.F32, GgmlType.F16, GgmlType.BF16, GgmlType.Q8_0, GgmlType.Q4_0);

    private static final float DEFAULT_NORM_EPSILON = 1e-5f;
    private static final float DEFAULT_ROPE_THETA = 10000f;
    private static final int MAX_WIDTH = 1 << 20;

    /**
     * A weight matrix as stored: its type, its bytes (a read-only slice of the mapping) and its shape as rows of
     * {@code columns} elements (GGUF's first dimension).
     *
     * @param type the type
     * @param data the bytes
     * @param rows the rows
     * @param columns the row length
     */
    public record Weight(GgmlType type, MemorySegment data, int rows, int columns) {}

    private final GgufFile gguf;
    private final ModelConfig config;
    private final LlamaWeights<Weight> weights;

    private GgufLlama(GgufFile gguf, ModelConfig config, LlamaWeights<Weight> weights) {
        this.gguf = gguf;
        this.config = config;
        this.weights = weights;
    }

    /**
     * Opens a GGUF file of a Llama-family model.
     *
     * @param file the file
     * @return the model; close it to unmap the file
     * @throws ModelFormatException if the file is malformed, not a Llama model, needs what Panamax does not implement
     *     (RoPE scaling, a partial rotary dimension), or a tensor is missing, misshapen or of a type Panamax does not
     *     compute with
     * @throws IOException if the file cannot be read
     */
    public static GgufLlama open(Path file) throws IOException {
        GgufFile gguf = GgufFile.open(file);
        try {
            ModelConfig config = config(gguf);
            return new GgufLlama(gguf, config, weights(gguf, config));
        } catch (IOException | RuntimeException e) {
            gguf.close();
            throw e;
        }
    }

    /**
     * Reads the configuration from the {@code llama.*} metadata and the token embedding's shape.
     *
     * @param gguf the open file
     * @return the configuration
     * @throws ModelFormatException if a key is missing or out of range, or the model needs what Panamax lacks
     */
    public static ModelConfig config(GgufFile gguf) throws ModelFormatException {
        Path file = gguf.file();
        String architecture = gguf.string("general.architecture");
        if (!architecture.equals("llama")) {
            throw new ModelFormatException(
                    file,
                    "general.architecture is \"" + ModelFormatException.excerpt(architecture)
                            + "\"; Panamax runs GGUF models of the \"llama\" architecture");
        }
        int dim = (int) gguf.integer("llama.embedding_length", 1, MAX_WIDTH);
        int layers = (int) gguf.integer("llama.block_count", 1, 1 << 16);
        int hidden = (int) gguf.integer("llama.feed_forward_length", 1, MAX_WIDTH);
        int heads = (int) gguf.integer("llama.attention.head_count", 1, dim);
        int kvHeads = gguf.metadata().containsKey("llama.attention.head_count_kv")
                ? (int) gguf.integer("llama.attention.head_count_kv", 1, heads)
                : heads;
        int context = (int) gguf.integer("llama.context_length", 1, Integer.MAX_VALUE);
        float epsilon = gguf.metadata().containsKey("llama.attention.layer_norm_rms_epsilon")
                ? (float) gguf.number("llama.attention.layer_norm_rms_epsilon")
                : DEFAULT_NORM_EPSILON;
        float theta = gguf.metadata().containsKey("llama.rope.freq_base")
                ? (float) gguf.number("llama.rope.freq_base")
                : DEFAULT_ROPE_THETA;
        if (dim % heads == 0) {
            int headSize = dim / heads;
            for (String key : List.of("llama.rope.dimension_count", "llama.attention.key_length")) {
                if (gguf.metadata().containsKey(key)) {
                    gguf.integer(key, headSize, headSize); // a partial rotation or a wider head is another model
                }
            }
        }
        if (gguf.metadata().containsKey("llama.rope.scaling.type")
                && !gguf.string("llama.rope.scaling.type").equals("none")) {
            throw new ModelFormatException(
                    file,
                    "llama.rope.scaling.type \""
                            + ModelFormatException.excerpt(gguf.string("llama.rope.scaling.type"))
                            + "\": RoPE scaling is not supported");
        }
        // llama.cpp reads a factor without a type as linear scaling, and the older key for the same factor.
        for (String key : List.of("llama.rope.scaling.factor", "llama.rope.scale_linear")) {
            if (gguf.metadata().containsKey(key) && gguf.number(key) != 1) {
                throw new ModelFormatException(
                        file, key + " " + gguf.number(key) + ": RoPE scaling is not supported (only a factor of 1)");
            }
        }
        if (gguf.tensors().containsKey("rope_freqs.weight")) {
            throw new ModelFormatException(
                    file, "tensor rope_freqs.weight (Llama 3.1's RoPE frequency scaling) is not supported");
        }
        GgufFile.Tensor embedding = tensor(gguf, "token_embd.weight");
        long[] dims = embedding.dimensions();
        if (dims.length != 2 || dims[1] > Integer.MAX_VALUE) {
            throw new ModelFormatException(
                    file, "token_embd.weight has shape " + embedding.shape() + ", not [embedding_length, vocabulary]");
        }
        int vocab = (int) dims[1];
        if (gguf.metadata().containsKey("llama.vocab_size")) {
            gguf.integer("llama.vocab_size", vocab, vocab);
        }
        try {
            return new ModelConfig(
                    Architecture.LLAMA,
                    dim,
                    hidden,
                    layers,
                    heads,
                    kvHeads,
                    vocab,
                    context,
                    epsilon,
                    theta,
                    !gguf.tensors().containsKey("output.weight"));
        } catch (IllegalArgumentException e) {
            throw new ModelFormatException(file, e.getMessage(), e);
        }
    }

    private static GgufFile.Tensor tensor(GgufFile gguf, String name) throws ModelFormatException {
        GgufFile.Tensor t = gguf.tensors().get(name);
        if (t == null) {
            throw new ModelFormatException(gguf.file(), "tensor " + name + " is missing");
        }
        return t;
    }

    /** A tensor of shape {@code [columns]} or {@code [columns, rows]} in GGUF's order, of a type Panamax computes with. */
    private static Weight weight(GgufFile gguf, String name, long rows, long columns) throws ModelFormatException {
        GgufFile.Tensor t = tensor(gguf, name);
        long[] expected = rows == 1 ? new long[] {columns} : new long[] {columns, rows};
        if (!java.util.Arrays.equals(t.dimensions(), expected)) {
            throw new ModelFormatException(
                    gguf.file(),
                    "tensor " + name + " has shape " + t.shape() + ", expected " + java.util.Arrays.toString(expected));
        }
        if (!COMPUTE_TYPES.contains(t.type()) || (rows == 1 && t.type() != GgmlType.F32)) {
            throw new ModelFormatException(
                    gguf.file(),
                    "tensor " + name + " is " + t.type() + "; Panamax computes with"
                            + (rows == 1 ? " F32 norm weights" : " F32, F16, BF16, Q8_0 and Q4_0 matrices"));
        }
        return new Weight(t.type(), gguf.data(t), (int) rows, (int) columns);
    }

    private static LlamaWeights<Weight> weights(GgufFile gguf, ModelConfig c) throws ModelFormatException {
        Map<String, String> ggufNames = ggufNames(c);
        Map<String, Weight> named = new LinkedHashMap<>();
        for (Parameters.Spec spec : Parameters.of(c)) {
            int[] shape = matrixShape(spec);
            named.put(spec.name(), weight(gguf, ggufNames.get(spec.name()), shape[0], shape[1]));
        }
        // A tensor left over is of a model with more layers or parts (biases, say) than the metadata describes, which
        // would run without them and give other logits than llama.cpp, which refuses such a file too.
        Set<String> used = new HashSet<>(ggufNames.values());
        for (String name : gguf.tensors().keySet()) {
            if (!used.contains(name)) {
                throw new ModelFormatException(
                        gguf.file(),
                        "tensor " + ModelFormatException.excerpt(name)
                                + " is not part of the Llama model the metadata describes (llama.block_count "
                                + c.layers() + "), as Panamax runs it: the file holds "
                                + gguf.tensors().size()
                                + " tensors, the model " + named.size());
            }
        }
        return LlamaWeights.fromNames(c.layers(), named);
    }

    /** A parameter's shape as GGUF stores it: {@code {rows, columns}}, a vector as one row. */
    private static int[] matrixShape(Parameters.Spec spec) {
        boolean vector = spec.rows() == 1 || spec.cols() == 1;
        return vector ? new int[] {1, spec.rows() * spec.cols()} : new int[] {spec.rows(), spec.cols()};
    }

    /**
     * The {@code general.file_type} llama.cpp records for a file whose matrices are mostly of a type.
     *
     * @param type F32, F16, BF16, Q8_0 or Q4_0
     * @return llama.cpp's {@code llama_ftype} number
     */
    private static int fileType(GgmlType type) {
        return switch (type) {
            case F32 -> 0;
            case F16 -> 1;
            case Q4_0 -> 2;
            case Q8_0 -> 7;
            case BF16 -> 32;
            default ->
                throw new IllegalArgumentException("type (" + type + ") must be one of F32, F16, BF16, Q8_0 and Q4_0");
        };
    }

    /**
     * The type a tensor gets in a file of {@code type}: norms stay F32, and a matrix whose rows are not whole blocks of
     * a block format falls back to F16, as llama.cpp's quantizer does for such shapes.
     */
    static GgmlType tensorType(GgmlType type, int rows, int columns) {
        if (rows == 1) {
            return GgmlType.F32;
        }
        return columns % type.blockLength() == 0 ? type : GgmlType.F16;
    }

    /**
     * Writes a Llama model as a GGUF file in llama.cpp's layout, atomically: the {@code llama.*} configuration, the
     * given tokenizer metadata, and every matrix encoded as {@code type} (norms in F32; rows that are not whole
     * blocks in F16).
     *
     * @param file the file to create or replace
     * @param config a Llama configuration
     * @param weights float32 weights of the shapes the configuration implies, llama2.c's layout
     * @param name the model's name for {@code general.name}
     * @param tokenizer {@code tokenizer.ggml.*} metadata to include (may be empty)
     * @param type F32, F16, BF16, Q8_0 or Q4_0
     * @throws IllegalArgumentException if the configuration is not Llama's, a weight's size is wrong, or the type is
     *     not one of those
     * @throws IOException if the file cannot be written
     */
    public static void write(
            Path file,
            ModelConfig config,
            LlamaWeights<MemorySegment> weights,
            String name,
            Map<String, GgufValue> tokenizer,
            GgmlType type)
            throws IOException {
        Network.requireFamily(config, Architecture.LLAMA, weights.layers().size());
        Map<String, GgufValue> metadata = new LinkedHashMap<>();
        metadata.put("general.architecture", GgufValue.of("llama"));
        metadata.put("general.name", GgufValue.of(name));
        metadata.put("general.file_type", GgufValue.uint32(fileType(type)));
        metadata.put("llama.context_length", GgufValue.uint32(config.seqLen()));
        metadata.put("llama.embedding_length", GgufValue.uint32(config.dim()));
        metadata.put("llama.block_count", GgufValue.uint32(config.layers()));
        metadata.put("llama.feed_forward_length", GgufValue.uint32(config.hiddenDim()));
        metadata.put("llama.rope.dimension_count", GgufValue.uint32(config.headSize()));
        metadata.put("llama.attention.head_count", GgufValue.uint32(config.heads()));
        metadata.put("llama.attention.head_count_kv", GgufValue.uint32(config.kvHeads()));
        metadata.put("llama.attention.layer_norm_rms_epsilon", GgufValue.of(config.normEpsilon()));
        metadata.put("llama.rope.freq_base", GgufValue.of(config.ropeTheta()));
        metadata.putAll(tokenizer);
        Map<String, Parameters.Spec> specs = new LinkedHashMap<>();
        for (Parameters.Spec spec : Parameters.of(config)) {
            specs.put(spec.name(), spec);
        }
        List<GgufWriter.TensorData> tensors = new ArrayList<>();
        Map<String, String> ggufNames = ggufNames(config);
        weights.byName(config.sharedClassifier()).forEach((meta, segment) -> {
            int[] shape = matrixShape(specs.get(meta));
            int rows = shape[0];
            int columns = shape[1];
            if (segment.byteSize() != (long) rows * columns * Float.BYTES) {
                throw new IllegalArgumentException(meta + " has " + segment.byteSize() + " bytes, expected "
                        + (long) rows * columns * Float.BYTES);
            }
            GgmlType t = tensorType(type, rows, columns);
            long[] dims = rows == 1 ? new long[] {columns} : new long[] {columns, rows};
            tensors.add(new GgufWriter.TensorData(ggufNames.get(meta), t, dims, target -> {
                if (t == GgmlType.F32) {
                    MemorySegment.copy(segment, 0, target, 0, target.byteSize());
                } else {
                    try {
                        Quantization.quantize(
                                WeightFormat.valueOf(t.name()), segment, 0, rows, columns, columns, target, 0);
                    } catch (IllegalArgumentException e) {
                        throw new IllegalArgumentException(
                                "tensor " + ggufNames.get(meta) + " (" + meta + "): " + e.getMessage(), e);
                    }
                }
            }));
        });
        GgufWriter.write(file, metadata, tensors);
    }

    /** Meta's names ({@link LlamaWeights#byName}) → llama.cpp's. */
    private static Map<String, String> ggufNames(ModelConfig config) {
        Map<String, String> names = new LinkedHashMap<>();
        names.put("tok_embeddings.weight", "token_embd.weight");
        names.put("norm.weight", "output_norm.weight");
        names.put("output.weight", "output.weight");
        String[][] layer = {
            {"attention_norm", "attn_norm"},
            {"attention.wq", "attn_q"},
            {"attention.wk", "attn_k"},
            {"attention.wv", "attn_v"},
            {"attention.wo", "attn_output"},
            {"ffn_norm", "ffn_norm"},
            {"feed_forward.w1", "ffn_gate"},
            {"feed_forward.w2", "ffn_down"},
            {"feed_forward.w3", "ffn_up"}
        };
        for (int l = 0; l < config.layers(); l++) {
            for (String[] pair : layer) {
                names.put("layers." + l + "." + pair[0] + ".weight", "blk." + l + "." + pair[1] + ".weight");
            }
        }
        return names;
    }

    /**
     * Returns the configuration.
     *
     * @return the configuration
     */
    public ModelConfig config() {
        return config;
    }

    /**
     * Returns the weights, valid until {@link #close()}.
     *
     * @return the weights
     */
    public LlamaWeights<Weight> weights() {
        return weights;
    }

    /**
     * Returns the open file, for its metadata (the tokenizer's among them).
     *
     * @return the file
     */
    public GgufFile gguf() {
        return gguf;
    }

    /** Unmaps the file. */
    @Override
    public void close() {
        gguf.close();
    }
}
