package dev.panamax.model.io;

import java.lang.foreign.MemorySegment;
import java.util.List;

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
