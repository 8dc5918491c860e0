package dev.panamax.model.io;

import dev.panamax.model.nn.ModelConfig.Architecture;
import dev.panamax.model.nn.Parameters;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The weights of a Llama-family model, each a segment of little-endian float32 values in row-major order, with the
 * shapes llama2.c uses: a matrix that maps a vector of width {@code in} to width {@code out} is stored
 * {@code [out, in]}. Segments loaded from a file are read-only views of its memory mapping.
 *
 * @param tokenEmbedding {@code [vocabSize, dim]}
 * @param layers the Transformer blocks, first to last
 * @param finalNorm the RMSNorm weight before the classifier, {@code [dim]}
 * @param classifier {@code [vocabSize, dim]}; the token embedding itself when the classifier is shared
 */
public record LlamaWeights(
        MemorySegment tokenEmbedding, List<Layer> layers, MemorySegment finalNorm, MemorySegment classifier) {

    /** Copies the list of layers. */
    public LlamaWeights {
        layers = List.copyOf(layers);
    }

    /**
     * The weights under Meta's names ({@code tok_embeddings.weight}, {@code layers.N.attention.wq.weight}, …), the
     * names {@code dev.panamax.model.nn.Parameters} lists; the classifier as {@code output.weight} unless shared.
     *
     * @param sharedClassifier whether the classifier is the token embedding
     * @return name → segment, in the parameters' order
     */
    public Map<String, MemorySegment> byName(boolean sharedClassifier) {
        Map<String, MemorySegment> named = new LinkedHashMap<>();
        named.put("tok_embeddings.weight", tokenEmbedding);
        for (int l = 0; l < layers.size(); l++) {
            MemorySegment[] segments = layers.get(l).segments();
            for (int i = 0; i < segments.length; i++) {
                named.put(Parameters.inBlock(Architecture.LLAMA, l, Parameters.LLAMA_LAYER.get(i)), segments[i]);
            }
        }
        named.put("norm.weight", finalNorm);
        if (!sharedClassifier) {
            named.put("output.weight", classifier);
        }
        return named;
    }

    /**
     * The weights from segments under Meta's names, as {@link #byName} gives them.
     *
     * @param layers the number of blocks
     * @param named name → segment
     * @return the weights; the classifier is the token embedding when {@code output.weight} is absent
     */
    public static LlamaWeights fromNames(int layers, Map<String, MemorySegment> named) {
        List<Layer> blocks = new ArrayList<>();
        for (int l = 0; l < layers; l++) {
            List<MemorySegment> s = Parameters.block(named, Architecture.LLAMA, l, Parameters.LLAMA_LAYER);
            blocks.add(new Layer(
                    s.get(0), s.get(1), s.get(2), s.get(3), s.get(4), s.get(5), s.get(6), s.get(7), s.get(8)));
        }
        MemorySegment embedding = named.get("tok_embeddings.weight");
        return new LlamaWeights(
                embedding, blocks, named.get("norm.weight"), named.getOrDefault("output.weight", embedding));
    }

    /**
     * One Transformer block.
     *
     * @param attentionNorm RMSNorm weight before attention, {@code [dim]}
     * @param wq query projection, {@code [dim, dim]}
     * @param wk key projection, {@code [kvDim, dim]}
     * @param wv value projection, {@code [kvDim, dim]}
     * @param wo output projection, {@code [dim, dim]}
     * @param ffnNorm RMSNorm weight before the feed-forward network, {@code [dim]}
     * @param w1 gate projection, {@code [hiddenDim, dim]}
     * @param w2 down projection, {@code [dim, hiddenDim]}
     * @param w3 up projection, {@code [hiddenDim, dim]}
     */
    public record Layer(
            MemorySegment attentionNorm,
            MemorySegment wq,
            MemorySegment wk,
            MemorySegment wv,
            MemorySegment wo,
            MemorySegment ffnNorm,
            MemorySegment w1,
            MemorySegment w2,
            MemorySegment w3) {

        private MemorySegment[] segments() {
            return new MemorySegment[] {attentionNorm, wq, wk, wv, wo, ffnNorm, w1, w2, w3};
        }
    }
}
