package dev.panamax.model.io;

import dev.panamax.model.nn.ModelConfig.Architecture;
import dev.panamax.model.nn.Parameters;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

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
     * The weights under Hugging Face's GPT-2 names ({@code wte.weight}, {@code h.N.attn.c_attn.weight}, …), the names
     * {@code dev.panamax.model.nn.Parameters} lists.
     *
     * @return name → segment, in the parameters' order
     */
    public Map<String, MemorySegment> byName() {
        Map<String, MemorySegment> named = new LinkedHashMap<>();
        named.put("wte.weight", tokenEmbedding);
        named.put("wpe.weight", positionEmbedding);
        for (int l = 0; l < layers.size(); l++) {
            MemorySegment[] segments = layers.get(l).segments();
            for (int i = 0; i < segments.length; i++) {
                named.put(Parameters.inBlock(Architecture.GPT2, l, Parameters.GPT2_LAYER.get(i)), segments[i]);
            }
        }
        named.put("ln_f.weight", finalNormWeight);
        named.put("ln_f.bias", finalNormBias);
        return named;
    }

    /**
     * The weights from segments under Hugging Face's names, as {@link #byName} gives them.
     *
     * @param layers the number of blocks
     * @param named name → segment
     * @return the weights
     */
    public static Gpt2Weights fromNames(int layers, Map<String, MemorySegment> named) {
        List<Layer> blocks = new ArrayList<>();
        for (int l = 0; l < layers; l++) {
            List<MemorySegment> s = Parameters.block(named, Architecture.GPT2, l, Parameters.GPT2_LAYER);
            blocks.add(new Layer(
                    s.get(0), s.get(1), s.get(2), s.get(3), s.get(4), s.get(5), s.get(6), s.get(7), s.get(8), s.get(9),
                    s.get(10), s.get(11)));
        }
        return new Gpt2Weights(
                named.get("wte.weight"),
                named.get("wpe.weight"),
                blocks,
                named.get("ln_f.weight"),
                named.get("ln_f.bias"));
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
            MemorySegment mlpProjectionBias) {

        private MemorySegment[] segments() {
            return new MemorySegment[] {
                norm1Weight,
                norm1Bias,
                attentionWeight,
                attentionBias,
                attentionProjectionWeight,
                attentionProjectionBias,
                norm2Weight,
                norm2Bias,
                mlpWeight,
                mlpBias,
                mlpProjectionWeight,
                mlpProjectionBias
            };
        }
    }
}
