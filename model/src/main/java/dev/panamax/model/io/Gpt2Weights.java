package dev.panamax.model.io;

import java.lang.foreign.MemorySegment;
import java.util.List;

/**
 * The weights of a GPT-2 model, each a segment of little-endian float32 values in row-major order. The four
 * projection matrices keep the layout of Hugging Face's {@code Conv1D}, {@code [in, out]}: the transpose of a
 * {@code Linear}'s {@code [out, in]}, so {@code y = x · W + b}.
 *
 * @param tokenEmbedding {@code wte}, {@code [vocabSize, dim]}; also the classifier (tied)
 * @param positionEmbedding {@code wpe}, {@code [seqLen, dim]}
 * @param layers the blocks {@code h.0}, {@code h.1}, …
 * @param finalNormWeight {@code ln_f.weight}, {@code [dim]}
 * @param finalNormBias {@code ln_f.bias}, {@code [dim]}
 */
public record Gpt2Weights(
        MemorySegment tokenEmbedding,
        MemorySegment positionEmbedding,
        List<Layer> layers,
        MemorySegment finalNormWeight,
        MemorySegment finalNormBias) {

    /** Copies the list of layers. */
    public Gpt2Weights {
        layers = List.copyOf(layers);
    }

    /**
     * One block, {@code h.N}.
     *
     * @param norm1Weight {@code ln_1.weight}, {@code [dim]}
     * @param norm1Bias {@code ln_1.bias}, {@code [dim]}
     * @param attentionWeight {@code attn.c_attn.weight}, {@code [dim, 3·dim]}: query, key and value side by side
     * @param attentionBias {@code attn.c_attn.bias}, {@code [3·dim]}
     * @param attentionProjectionWeight {@code attn.c_proj.weight}, {@code [dim, dim]}
     * @param attentionProjectionBias {@code attn.c_proj.bias}, {@code [dim]}
     * @param norm2Weight {@code ln_2.weight}, {@code [dim]}
     * @param norm2Bias {@code ln_2.bias}, {@code [dim]}
     * @param mlpWeight {@code mlp.c_fc.weight}, {@code [dim, hiddenDim]}
     * @param mlpBias {@code mlp.c_fc.bias}, {@code [hiddenDim]}
     * @param mlpProjectionWeight {@code mlp.c_proj.weight}, {@code [hiddenDim, dim]}
     * @param mlpProjectionBias {@code mlp.c_proj.bias}, {@code [dim]}
     */
    public record Layer(
            MemorySegment norm1Weight,
            MemorySegment norm1Bias,
            MemorySegment attentionWeight,
            MemorySegment attentionBias,
            MemorySegment attentionProjectionWeight,
            MemorySegment attentionProjectionBias,
            MemorySegment norm2Weight,
            MemorySegment norm2Bias,
            MemorySegment mlpWeight,
            MemorySegment mlpBias,
            MemorySegment mlpProjectionWeight,
            MemorySegment mlpProjectionBias) {}
}
