package dev.panamax.model.nn;

import dev.panamax.model.nn.ModelConfig.Architecture;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.BiFunction;

/**
 * The weights of a Llama-family model under their names, from the file to the network: {@code T} is a segment of the
 * file as a checkpoint slices it ({@code MemorySegment}), then the backend's {@code Tensor} of it, which the {@link
 * Network} runs on. Shapes are llama2.c's: a matrix that maps a vector of width {@code in} to width {@code out} is
 * stored {@code [out, in]}. {@link #byName} and {@link #fromNames} are the one place where Meta's tensor names meet
 * the components.
 *
 * @param tokenEmbedding {@code tok_embeddings.weight}, {@code [vocabSize, dim]}
 * @param layers the Transformer blocks, first to last
 * @param finalNorm {@code norm.weight}, the RMSNorm weight before the classifier, {@code [dim]}
 * @param classifier {@code output.weight}, {@code [vocabSize, dim]}; the token embedding itself when the classifier is
 *     shared
 * @param <T> what holds a tensor
 */
public record LlamaWeights<T>(T tokenEmbedding, List<Layer<T>> layers, T finalNorm, T classifier) {

    /** Copies the list of layers. */
    public LlamaWeights {
        layers = List.copyOf(layers);
    }

    /**
     * The weights under Meta's names ({@code tok_embeddings.weight}, {@code layers.N.attention.wq.weight}, …), the
     * names {@link Parameters} lists; the classifier as {@code output.weight} unless shared.
     *
     * @param sharedClassifier whether the classifier is the token embedding
     * @return name → tensor, in the parameters' order
     */
    public Map<String, T> byName(boolean sharedClassifier) {
        Map<String, T> named = new LinkedHashMap<>();
        named.put("tok_embeddings.weight", tokenEmbedding);
        for (int l = 0; l < layers.size(); l++) {
            List<T> components = layers.get(l).components();
            for (int i = 0; i < components.size(); i++) {
                named.put(Parameters.inBlock(Architecture.LLAMA, l, Parameters.LLAMA_LAYER.get(i)), components.get(i));
            }
        }
        named.put("norm.weight", finalNorm);
        if (!sharedClassifier) {
            named.put("output.weight", classifier);
        }
        return named;
    }

    /**
     * The weights from tensors under Meta's names, as {@link #byName} gives them.
     *
     * @param layers the number of blocks
     * @param named name → tensor
     * @param <T> what holds a tensor
     * @return the weights; the classifier is the token embedding when {@code output.weight} is absent
     */
    public static <T> LlamaWeights<T> fromNames(int layers, Map<String, T> named) {
        List<Layer<T>> blocks = new ArrayList<>();
        for (int l = 0; l < layers; l++) {
            List<T> s = Parameters.block(named, Architecture.LLAMA, l, Parameters.LLAMA_LAYER);
            blocks.add(new Layer<>(
                    s.get(0), s.get(1), s.get(2), s.get(3), s.get(4), s.get(5), s.get(6), s.get(7), s.get(8)));
        }
        T embedding = named.get("tok_embeddings.weight");
        return new LlamaWeights<>(
                embedding, blocks, named.get("norm.weight"), named.getOrDefault("output.weight", embedding));
    }

    /**
     * The same weights, each turned into something else under its name, e.g. a segment into the backend's tensor of
     * the shape {@link Parameters} gives that name. A shared classifier stays the token embedding's.
     *
     * @param sharedClassifier whether the classifier is the token embedding
     * @param convert name, tensor → the new tensor
     * @param <R> what holds the new tensors
     * @return the converted weights
     */
    public <R> LlamaWeights<R> map(boolean sharedClassifier, BiFunction<String, T, R> convert) {
        Map<String, R> converted = new LinkedHashMap<>();
        byName(sharedClassifier).forEach((name, tensor) -> converted.put(name, convert.apply(name, tensor)));
        return fromNames(layers.size(), converted);
    }

    /**
     * One Transformer block, {@code layers.N}.
     *
     * @param attentionNorm {@code attention_norm.weight}, RMSNorm weight before attention, {@code [dim]}
     * @param wq {@code attention.wq.weight}, query projection, {@code [dim, dim]}
     * @param wk {@code attention.wk.weight}, key projection, {@code [kvDim, dim]}
     * @param wv {@code attention.wv.weight}, value projection, {@code [kvDim, dim]}
     * @param wo {@code attention.wo.weight}, output projection, {@code [dim, dim]}
     * @param ffnNorm {@code ffn_norm.weight}, RMSNorm weight before the feed-forward network, {@code [dim]}
     * @param w1 {@code feed_forward.w1.weight}, gate projection, {@code [hiddenDim, dim]}
     * @param w2 {@code feed_forward.w2.weight}, down projection, {@code [dim, hiddenDim]}
     * @param w3 {@code feed_forward.w3.weight}, up projection, {@code [hiddenDim, dim]}
     * @param <T> what holds a tensor
     */
    public record Layer<T>(T attentionNorm, T wq, T wk, T wv, T wo, T ffnNorm, T w1, T w2, T w3) {

        /** The components in the order of {@link Parameters#LLAMA_LAYER}. */
        private List<T> components() {
            return Arrays.asList(attentionNorm, wq, wk, wv, wo, ffnNorm, w1, w2, w3);
        }
    }
}
