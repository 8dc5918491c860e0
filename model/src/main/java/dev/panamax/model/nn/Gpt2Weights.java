package dev.panamax.model.nn;

import dev.panamax.model.nn.ModelConfig.Architecture;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.BiFunction;

/**
 * The weights of a GPT-2 model under their names, from the file to the network: {@code T} is a segment of the file
 * ({@code MemorySegment}), then the backend's {@code Tensor} of it, which the {@link Network} runs on. The four
 * projection matrices keep the layout of Hugging Face's {@code Conv1D}, {@code [in, out]}: the transpose of a
 * {@code Linear}'s {@code [out, in]}, so {@code y = x · W + b}. {@link #byName} and {@link #fromNames} are the one
 * place where Hugging Face's tensor names meet the components.
 *
 * @param tokenEmbedding {@code wte.weight}, {@code [vocabSize, dim]}; also the classifier (tied)
 * @param positionEmbedding {@code wpe.weight}, {@code [seqLen, dim]}
 * @param layers the blocks {@code h.0}, {@code h.1}, …
 * @param finalNormWeight {@code ln_f.weight}, {@code [dim]}
 * @param finalNormBias {@code ln_f.bias}, {@code [dim]}
 * @param <T> what holds a tensor
 */
public record Gpt2Weights<T>(
        T tokenEmbedding, T positionEmbedding, List<Layer<T>> layers, T finalNormWeight, T finalNormBias) {

    /** Copies the list of layers. */
    public Gpt2Weights {
        layers = List.copyOf(layers);
    }

    /**
     * The weights under Hugging Face's GPT-2 names ({@code wte.weight}, {@code h.N.attn.c_attn.weight}, …), the names
     * {@link Parameters} lists.
     *
     * @return name → tensor, in the parameters' order
     */
    public Map<String, T> byName() {
        Map<String, T> named = new LinkedHashMap<>();
        named.put("wte.weight", tokenEmbedding);
        named.put("wpe.weight", positionEmbedding);
        for (int l = 0; l < layers.size(); l++) {
            List<T> components = layers.get(l).components();
            for (int i = 0; i < components.size(); i++) {
                named.put(Parameters.inBlock(Architecture.GPT2, l, Parameters.GPT2_LAYER.get(i)), components.get(i));
            }
        }
        named.put("ln_f.weight", finalNormWeight);
        named.put("ln_f.bias", finalNormBias);
        return named;
    }

    /**
     * The weights from tensors under Hugging Face's names, as {@link #byName} gives them.
     *
     * @param layers the number of blocks
     * @param named name → tensor
     * @param <T> what holds a tensor
     * @return the weights
     */
    public static <T> Gpt2Weights<T> fromNames(int layers, Map<String, T> named) {
        List<Layer<T>> blocks = new ArrayList<>();
        for (int l = 0; l < layers; l++) {
            List<T> s = Parameters.block(named, Architecture.GPT2, l, Parameters.GPT2_LAYER);
            blocks.add(new Layer<>(
                    s.get(0), s.get(1), s.get(2), s.get(3), s.get(4), s.get(5), s.get(6), s.get(7), s.get(8), s.get(9),
                    s.get(10), s.get(11)));
        }
        return new Gpt2Weights<>(
                named.get("wte.weight"),
                named.get("wpe.weight"),
                blocks,
                named.get("ln_f.weight"),
                named.get("ln_f.bias"));
    }

    /**
     * The same weights, each turned into something else under its name, e.g. a segment into the backend's tensor of
     * the shape {@link Parameters} gives that name.
     *
     * @param convert name, tensor → the new tensor
     * @param <R> what holds the new tensors
     * @return the converted weights
     */
    public <R> Gpt2Weights<R> map(BiFunction<String, T, R> convert) {
        Map<String, R> converted = new LinkedHashMap<>();
        byName().forEach((name, tensor) -> converted.put(name, convert.apply(name, tensor)));
        return fromNames(layers.size(), converted);
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
     * @param <T> what holds a tensor
     */
    public record Layer<T>(
            T norm1Weight,
            T norm1Bias,
            T attentionWeight,
            T attentionBias,
            T attentionProjectionWeight,
            T attentionProjectionBias,
            T norm2Weight,
            T norm2Bias,
            T mlpWeight,
            T mlpBias,
            T mlpProjectionWeight,
            T mlpProjectionBias) {

        /** The components in the order of {@link Parameters#GPT2_LAYER}. */
        private List<T> components() {
            return Arrays.asList(
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
                    mlpProjectionBias);
        }
    }
}
