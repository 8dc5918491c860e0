package dev.panamax.model.io;

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
            Layer layer = layers.get(l);
            String p = "layers." + l + ".";
            named.put(p + "attention_norm.weight", layer.attentionNorm());
            named.put(p + "attention.wq.weight", layer.wq());
            named.put(p + "attention.wk.weight", layer.wk());
            named.put(p + "attention.wv.weight", layer.wv());
            named.put(p + "attention.wo.weight", layer.wo());
            named.put(p + "ffn_norm.weight", layer.ffnNorm());
            named.put(p + "feed_forward.w1.weight", layer.w1());
            named.put(p + "feed_forward.w2.weight", layer.w2());
            named.put(p + "feed_forward.w3.weight", layer.w3());
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
            String p = "layers." + l + ".";
            blocks.add(new Layer(
                    named.get(p + "attention_norm.weight"),
                    named.get(p + "attention.wq.weight"),
                    named.get(p + "attention.wk.weight"),
                    named.get(p + "attention.wv.weight"),
                    named.get(p + "attention.wo.weight"),
                    named.get(p + "ffn_norm.weight"),
                    named.get(p + "feed_forward.w1.weight"),
                    named.get(p + "feed_forward.w2.weight"),
                    named.get(p + "feed_forward.w3.weight")));
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
            MemorySegment w3) {}
}
