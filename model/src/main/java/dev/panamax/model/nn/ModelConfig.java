package dev.panamax.model.nn;

import java.util.ArrayList;
import java.util.List;

/**
 * The shape of a Transformer: everything a loader must know to size its weights and the forward pass to run them.
 * The constructor checks every value and their consistency, and reports all problems in one message.
 *
 * @param architecture which family: Llama (RMSNorm, RoPE, SwiGLU, grouped-query attention) or GPT-2 (LayerNorm,
 *     GELU, learned positions)
 * @param dim the model (embedding) width
 * @param hiddenDim the feed-forward network's inner width
 * @param layers the number of Transformer blocks
 * @param heads the number of query heads
 * @param kvHeads the number of key/value heads; divides {@code heads} (equal for GPT-2)
 * @param vocabSize the number of tokens
 * @param seqLen the context length: the most positions the model has been trained for (GPT-2's {@code n_positions})
 * @param normEpsilon the epsilon added to the variance in RMSNorm or LayerNorm
 * @param ropeTheta the RoPE base frequency for Llama (10000 in llama2.c); ignored for GPT-2
 * @param sharedClassifier whether the output classifier is the token embedding (tied weights) rather than a matrix
 *     of its own; always true for GPT-2
 */
public record ModelConfig(
        Architecture architecture,
        int dim,
        int hiddenDim,
        int layers,
        int heads,
        int kvHeads,
        int vocabSize,
        int seqLen,
        float normEpsilon,
        float ropeTheta,
        boolean sharedClassifier) {

    /** The Transformer families Panamax runs. */
    public enum Architecture {
        /** RMSNorm, rotary position embeddings, SwiGLU feed-forward, grouped-query attention. */
        LLAMA,
        /** LayerNorm with bias, learned position embeddings, GELU (tanh) feed-forward, tied embeddings. */
        GPT2
    }

    /**
     * Checks the configuration.
     *
     * @throws IllegalArgumentException listing every problem, if any value is out of range or inconsistent
     */
    public ModelConfig {
        List<String> problems = new ArrayList<>();
        if (architecture == null) {
            problems.add("architecture is null");
        }
        positive(problems, "dim", dim);
        positive(problems, "hiddenDim", hiddenDim);
        positive(problems, "layers", layers);
        positive(problems, "heads", heads);
        positive(problems, "kvHeads", kvHeads);
        positive(problems, "vocabSize", vocabSize);
        positive(problems, "seqLen", seqLen);
        if (heads > 0 && dim > 0 && dim % heads != 0) {
            problems.add("dim " + dim + " is not divisible by heads " + heads);
        }
        if (heads > 0 && kvHeads > 0 && heads % kvHeads != 0) {
            problems.add("kvHeads " + kvHeads + " does not divide heads " + heads);
        }
        if (!(normEpsilon > 0) || !Float.isFinite(normEpsilon)) {
            problems.add("normEpsilon " + normEpsilon + " is not a positive finite number");
        }
        if (architecture == Architecture.LLAMA) {
            if (!(ropeTheta > 0) || !Float.isFinite(ropeTheta)) {
                problems.add("ropeTheta " + ropeTheta + " is not a positive finite number");
            }
            if (heads > 0 && dim > 0 && dim % heads == 0 && (dim / heads) % 2 != 0) {
                problems.add("head size " + dim / heads + " is odd; RoPE rotates pairs of dimensions");
            }
        }
        if (architecture == Architecture.GPT2) {
            if (kvHeads != heads) {
                problems.add("GPT-2 has as many key/value heads as heads, not " + kvHeads + " and " + heads);
            }
            if (!sharedClassifier) {
                problems.add("GPT-2 ties its classifier to the token embedding");
            }
        }
        if (problems.isEmpty()) {
            try {
                // Every tensor is smaller than the total, so a total that fits in a long keeps all offsets exact.
                count(
                        architecture,
                        dim,
                        hiddenDim,
                        layers,
                        kvHeads * (dim / heads),
                        vocabSize,
                        seqLen,
                        sharedClassifier);
            } catch (ArithmeticException e) {
                problems.add("the weights' size overflows a 64-bit count");
            }
        }
        if (!problems.isEmpty()) {
            throw new IllegalArgumentException("invalid model configuration: " + String.join("; ", problems));
        }
    }

    private static void positive(List<String> problems, String name, int value) {
        if (value <= 0) {
            problems.add(name + " " + value + " is not positive");
        }
    }

    /**
     * Returns the width of one attention head.
     *
     * @return {@code dim / heads}
     */
    public int headSize() {
        return dim / heads;
    }

    /**
     * Returns the width of the key and value projections.
     *
     * @return {@code kvHeads · headSize()}
     */
    public int kvDim() {
        return kvHeads * headSize();
    }

    /**
     * Returns the number of trainable parameters, counting a shared classifier once.
     *
     * @return the count
     */
    public long parameterCount() {
        return count(architecture, dim, hiddenDim, layers, kvDim(), vocabSize, seqLen, sharedClassifier);
    }

    // Static because the compact constructor checks the count before the fields are assigned.
    private static long count(
            Architecture architecture,
            long d,
            long h,
            int layers,
            int kvDim,
            int vocabSize,
            int seqLen,
            boolean sharedClassifier) {
        long embedding = Math.multiplyExact(vocabSize, d);
        long perLayer;
        long rest;
        if (architecture == Architecture.LLAMA) {
            long attention = Math.multiplyExact(d, Math.addExact(Math.multiplyExact(2, d), 2L * kvDim));
            perLayer = Math.addExact(Math.addExact(attention, Math.multiplyExact(3 * d, h)), 2 * d);
            rest = Math.addExact(d, sharedClassifier ? 0 : embedding);
        } else {
            long attention = Math.addExact(Math.multiplyExact(d, 4 * d), 4 * d);
            long mlp = Math.addExact(Math.multiplyExact(2 * d, h), h + d);
            perLayer = Math.addExact(Math.addExact(attention, mlp), 4 * d);
            rest = Math.addExact(Math.multiplyExact(seqLen, d), 2 * d);
        }
        return Math.addExact(Math.addExact(embedding, Math.multiplyExact(layers, perLayer)), rest);
    }
}
