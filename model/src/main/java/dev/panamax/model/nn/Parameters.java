package dev.panamax.model.nn;

import dev.panamax.model.io.ModelConfig;
import dev.panamax.model.io.ModelConfig.Architecture;
import java.util.ArrayList;
import java.util.List;

/**
 * The named parameter tensors of a configuration, in a fixed order. GPT-2 uses Hugging Face's names ({@code wte.weight},
 * {@code h.0.attn.c_attn.weight}, …, with {@code Conv1D} matrices stored {@code [in, out]}); Llama uses Meta's
 * ({@code tok_embeddings.weight}, {@code layers.0.attention.wq.weight}, …, matrices {@code [out, in]}). Vectors are
 * {@code [1, n]} matrices.
 */
public final class Parameters {
    private Parameters() {}

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
            for (int l = 0; l < c.layers(); l++) {
                String p = "h." + l + ".";
                specs.add(new Spec(p + "ln_1.weight", 1, d, Kind.NORM));
                specs.add(new Spec(p + "ln_1.bias", 1, d, Kind.BIAS));
                specs.add(new Spec(p + "attn.c_attn.weight", d, 3 * d, Kind.MATRIX));
                specs.add(new Spec(p + "attn.c_attn.bias", 1, 3 * d, Kind.BIAS));
                specs.add(new Spec(p + "attn.c_proj.weight", d, d, Kind.RESIDUAL_MATRIX));
                specs.add(new Spec(p + "attn.c_proj.bias", 1, d, Kind.BIAS));
                specs.add(new Spec(p + "ln_2.weight", 1, d, Kind.NORM));
                specs.add(new Spec(p + "ln_2.bias", 1, d, Kind.BIAS));
                specs.add(new Spec(p + "mlp.c_fc.weight", d, h, Kind.MATRIX));
                specs.add(new Spec(p + "mlp.c_fc.bias", 1, h, Kind.BIAS));
                specs.add(new Spec(p + "mlp.c_proj.weight", h, d, Kind.RESIDUAL_MATRIX));
                specs.add(new Spec(p + "mlp.c_proj.bias", 1, d, Kind.BIAS));
            }
            specs.add(new Spec("ln_f.weight", 1, d, Kind.NORM));
            specs.add(new Spec("ln_f.bias", 1, d, Kind.BIAS));
            return specs;
        }
        int kv = c.kvDim();
        specs.add(new Spec("tok_embeddings.weight", c.vocabSize(), d, Kind.EMBEDDING));
        for (int l = 0; l < c.layers(); l++) {
            String p = "layers." + l + ".";
            specs.add(new Spec(p + "attention_norm.weight", 1, d, Kind.NORM));
            specs.add(new Spec(p + "attention.wq.weight", d, d, Kind.MATRIX));
            specs.add(new Spec(p + "attention.wk.weight", kv, d, Kind.MATRIX));
            specs.add(new Spec(p + "attention.wv.weight", kv, d, Kind.MATRIX));
            specs.add(new Spec(p + "attention.wo.weight", d, d, Kind.RESIDUAL_MATRIX));
            specs.add(new Spec(p + "ffn_norm.weight", 1, d, Kind.NORM));
            specs.add(new Spec(p + "feed_forward.w1.weight", h, d, Kind.MATRIX));
            specs.add(new Spec(p + "feed_forward.w2.weight", d, h, Kind.RESIDUAL_MATRIX));
            specs.add(new Spec(p + "feed_forward.w3.weight", h, d, Kind.MATRIX));
        }
        specs.add(new Spec("norm.weight", 1, d, Kind.NORM));
        if (!c.sharedClassifier()) {
            specs.add(new Spec("output.weight", c.vocabSize(), d, Kind.MATRIX));
        }
        return specs;
    }
}
