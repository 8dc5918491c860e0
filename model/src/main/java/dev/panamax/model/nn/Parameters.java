package dev.panamax.model.nn;

import dev.panamax.model.nn.ModelConfig.Architecture;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;

/**
 * The named parameter tensors of a configuration, in a fixed order. GPT-2 uses Hugging Face's names ({@code wte.weight},
 * {@code h.0.attn.c_attn.weight}, …, with {@code Conv1D} matrices stored {@code [in, out]}); Llama uses Meta's
 * ({@code tok_embeddings.weight}, {@code layers.0.attention.wq.weight}, …, matrices {@code [out, in]}). Vectors are
 * {@code [1, n]} matrices.
 */
public final class Parameters {
    /**
     * Tensor names inside a GPT-2 block {@code h.N.}, in the order of {@code Gpt2Weights.Layer}'s components: the one
     * list that loaders, writers and the network take them from.
     */
    public static final List<String> GPT2_LAYER = List.of(
            "ln_1.weight",
            "ln_1.bias",
            "attn.c_attn.weight",
            "attn.c_attn.bias",
            "attn.c_proj.weight",
            "attn.c_proj.bias",
            "ln_2.weight",
            "ln_2.bias",
            "mlp.c_fc.weight",
            "mlp.c_fc.bias",
            "mlp.c_proj.weight",
            "mlp.c_proj.bias");

    /** Tensor names inside a Llama block {@code layers.N.}, in the order of {@code LlamaWeights.Layer}'s components. */
    public static final List<String> LLAMA_LAYER = List.of(
            "attention_norm.weight",
            "attention.wq.weight",
            "attention.wk.weight",
            "attention.wv.weight",
            "attention.wo.weight",
            "ffn_norm.weight",
            "feed_forward.w1.weight",
            "feed_forward.w2.weight",
            "feed_forward.w3.weight");

    private Parameters() {}

    /**
     * The full name of a tensor of block {@code layer}.
     *
     * @param architecture the family
     * @param layer the block
     * @param local the name inside the block, from {@link #GPT2_LAYER} or {@link #LLAMA_LAYER}
     * @return e.g. {@code h.3.ln_1.weight} or {@code layers.3.attention.wq.weight}
     */
    public static String inBlock(Architecture architecture, int layer, String local) {
        return (architecture == Architecture.GPT2 ? "h." : "layers.") + layer + "." + local;
    }

    /**
     * Block {@code layer}'s entries of a map keyed by full tensor name, in the order of {@code names}.
     *
     * @param named tensors (or segments) by full name
     * @param architecture the family
     * @param layer the block
     * @param names {@link #GPT2_LAYER} or {@link #LLAMA_LAYER}
     * @param <T> what the map holds
     * @return the block's entries, null where the map has none
     */
    public static <T> List<T> block(Map<String, T> named, Architecture architecture, int layer, List<String> names) {
        List<T> entries = new ArrayList<>(names.size());
        for (String name : names) {
            entries.add(named.get(inBlock(architecture, layer, name)));
        }
        return entries;
    }

    /** What a parameter is, which decides its initialisation and whether weight decay applies to it. */
    public enum Kind {
        /** A token or position embedding table: decayed, initialised N(0, 0.02). */
        EMBEDDING,
        /** A projection matrix: decayed, initialised N(0, 0.02). */
        MATRIX,
        /**
         * A matrix whose output is added to the residual stream: decayed, initialised N(0, 0.02/√(2·layers)) so that
         * the stream's variance does not grow with depth (GPT-2's scheme).
         */
        RESIDUAL_MATRIX,
        /** A normalisation weight: not decayed, initialised to 1. */
        NORM,
        /** A bias: not decayed, initialised to 0. */
        BIAS;

        /**
         * Returns whether AdamW's weight decay applies: to matrices and embeddings, not to norms and biases.
         *
         * @return whether the parameter is decayed
         */
        public boolean decayed() {
            return this != NORM && this != BIAS;
        }
    }

    /**
     * One parameter tensor.
     *
     * @param name its name in a checkpoint
     * @param rows rows
     * @param cols columns
     * @param kind what it is
     */
    public record Spec(String name, int rows, int cols, Kind kind) {
        /**
         * Returns the number of elements.
         *
         * @return {@code rows · cols}
         */
        public long size() {
            return (long) rows * cols;
        }

        /**
         * Returns the shape a checkpoint stores: {@code [cols]} for norms and biases (vectors), {@code [rows, cols]}
         * otherwise.
         *
         * @return the dimensions, outermost first
         */
        public List<Long> shape() {
            return kind == Kind.NORM || kind == Kind.BIAS ? List.of((long) cols) : List.of((long) rows, (long) cols);
        }
    }

    /**
     * Returns the most floats any operand of a product takes when {@code rows} tokens go through the model together:
     * the largest weight matrix, or an activation or its gradient of {@code rows} rows at the widest product width
     * (the vocabulary, the hidden width or GPT-2's fused query-key-value projection).
     *
     * @param config the configuration
     * @param rows tokens per forward (or forward and backward) pass
     * @return the floats, saturated at {@link Long#MAX_VALUE}
     */
    public static long largestProductOperand(ModelConfig config, long rows) {
        long widest = Math.max(Math.max(config.vocabSize(), config.hiddenDim()), 3L * config.dim());
        long largest = rows > Long.MAX_VALUE / widest ? Long.MAX_VALUE : rows * widest;
        for (Spec spec : of(config)) {
            largest = Math.max(largest, spec.size());
        }
        return largest;
    }

    /**
     * Fills {@code values} with a parameter's initial values, GPT-2 style: matrices and embeddings N(0, 0.02), the
     * projections into the residual stream N(0, 0.02/√(2·layers)), norm weights 1, biases 0. One Gaussian is drawn per
     * element of every kind but norm weights, in element order, so a seed gives the same weights.
     *
     * @param config the configuration the parameter belongs to
     * @param spec the parameter
     * @param random the source of the Gaussians, advanced
     * @param values where the values go, at least {@code spec.size()} of them
     */
    public static void initialise(ModelConfig config, Spec spec, SplittableRandom random, float[] values) {
        double std =
                switch (spec.kind()) {
                    case EMBEDDING, MATRIX -> 0.02;
                    case RESIDUAL_MATRIX -> 0.02 * (1 / Math.sqrt(2.0 * config.layers()));
                    case NORM, BIAS -> 0;
                };
        for (int i = 0; i < spec.size(); i++) {
            values[i] = spec.kind() == Kind.NORM ? 1f : (float) (std * random.nextGaussian());
        }
    }

    /**
     * Returns the floats a device backend allocates for a model's rotary tables (see {@code Backend.copiesWeights()}).
     *
     * @param config the configuration
     * @param positions the positions the tables cover
     * @return cosines and sines, {@code 2 · positions · headSize} for Llama, 0 for GPT-2 (which has none)
     */
    public static long rotaryFloats(ModelConfig config, int positions) {
        return config.architecture() == Architecture.LLAMA ? 2L * positions * config.headSize() : 0;
    }

    /**
     * Lists the parameters of a configuration; a shared classifier is the token embedding and not listed again.
     *
     * @param c the configuration
     * @return the parameters, embeddings first, then the blocks in order, then the final norm (and classifier)
     */
    public static List<Spec> of(ModelConfig c) {
        List<Spec> specs = new ArrayList<>();
        int d = c.dim();
        int h = c.hiddenDim();
        if (c.architecture() == Architecture.GPT2) {
            specs.add(new Spec("wte.weight", c.vocabSize(), d, Kind.EMBEDDING));
            specs.add(new Spec("wpe.weight", c.seqLen(), d, Kind.EMBEDDING));
            Local[] block = {
                norm(d), bias(d), matrix(d, 3 * d), bias(3 * d), residual(d, d), bias(d),
                norm(d), bias(d), matrix(d, h), bias(h), residual(h, d), bias(d)
            };
            addBlocks(specs, c, GPT2_LAYER, block);
            specs.add(new Spec("ln_f.weight", 1, d, Kind.NORM));
            specs.add(new Spec("ln_f.bias", 1, d, Kind.BIAS));
            return specs;
        }
        int kv = c.kvDim();
        specs.add(new Spec("tok_embeddings.weight", c.vocabSize(), d, Kind.EMBEDDING));
        Local[] block = {
            norm(d),
            matrix(d, d),
            matrix(kv, d),
            matrix(kv, d),
            residual(d, d),
            norm(d),
            matrix(h, d),
            residual(d, h),
            matrix(h, d)
        };
        addBlocks(specs, c, LLAMA_LAYER, block);
        specs.add(new Spec("norm.weight", 1, d, Kind.NORM));
        if (!c.sharedClassifier()) {
            specs.add(new Spec("output.weight", c.vocabSize(), d, Kind.MATRIX));
        }
        return specs;
    }

    private static void addBlocks(List<Spec> specs, ModelConfig c, List<String> names, Local[] block) {
        for (int l = 0; l < c.layers(); l++) {
            for (int i = 0; i < names.size(); i++) {
                String name = inBlock(c.architecture(), l, names.get(i));
                specs.add(new Spec(name, block[i].rows(), block[i].cols(), block[i].kind()));
            }
        }
    }

    /** A block tensor's kind and shape, listed in the order of its family's layer names. */
    private record Local(Kind kind, int rows, int cols) {}

    private static Local norm(int n) {
        return new Local(Kind.NORM, 1, n);
    }

    private static Local bias(int n) {
        return new Local(Kind.BIAS, 1, n);
    }

    private static Local matrix(int rows, int cols) {
        return new Local(Kind.MATRIX, rows, cols);
    }

    /** A matrix whose output is added to the residual stream, initialized smaller as GPT-2 does. */
    private static Local residual(int rows, int cols) {
        return new Local(Kind.RESIDUAL_MATRIX, rows, cols);
    }
}
