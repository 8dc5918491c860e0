package dev.panamax.model.nn;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;

import dev.panamax.model.nn.ModelConfig.Architecture;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** The weights records keep every tensor under its checkpoint name, through {@code fromNames}, {@code map} and back. */
class WeightsTest {
    private static final ModelConfig LLAMA =
            new ModelConfig(Architecture.LLAMA, 8, 16, 2, 2, 1, 11, 6, 1e-5f, 10000, false);
    private static final ModelConfig GPT2 = new ModelConfig(Architecture.GPT2, 8, 32, 2, 2, 2, 11, 6, 1e-5f, 0, true);

    /** Every parameter's name, standing for its tensor: a component wired to another name shows as a wrong value. */
    private static Map<String, String> names(ModelConfig config) {
        Map<String, String> named = new LinkedHashMap<>();
        for (Parameters.Spec spec : Parameters.of(config)) {
            named.put(spec.name(), spec.name());
        }
        return named;
    }

    @Test
    void llamaComponentsAreTheirNamesAndMapKeepsThem() {
        Map<String, String> named = names(LLAMA);
        LlamaWeights<String> weights = LlamaWeights.fromNames(LLAMA.layers(), named);
        assertEquals("layers.1.attention.wk.weight", weights.layers().get(1).wk());
        assertEquals("layers.0.feed_forward.w1.weight", weights.layers().get(0).w1());
        assertEquals("output.weight", weights.classifier());
        assertEquals(named, weights.byName(false));
        assertEquals(
                List.copyOf(named.keySet()), List.copyOf(weights.byName(false).keySet()), "the parameters' order");

        LlamaWeights<String> mapped = weights.map(false, (name, value) -> name + "=" + value);
        mapped.byName(false).forEach((name, value) -> assertEquals(name + "=" + name, value));
    }

    @Test
    void aSharedLlamaClassifierIsTheTokenEmbeddingThroughMap() {
        Map<String, String> named = names(LLAMA);
        named.remove("output.weight");
        LlamaWeights<String> weights = LlamaWeights.fromNames(LLAMA.layers(), named);
        assertSame(weights.tokenEmbedding(), weights.classifier());
        LlamaWeights<Object> mapped = weights.map(true, (name, value) -> new Object());
        assertSame(mapped.tokenEmbedding(), mapped.classifier());
        assertEquals(named.keySet(), mapped.byName(true).keySet());
    }

    @Test
    void gpt2ComponentsAreTheirNamesAndMapKeepsThem() {
        Map<String, String> named = names(GPT2);
        Gpt2Weights<String> weights = Gpt2Weights.fromNames(GPT2.layers(), named);
        assertEquals("h.1.attn.c_attn.bias", weights.layers().get(1).attentionBias());
        assertEquals("h.0.mlp.c_proj.weight", weights.layers().get(0).mlpProjectionWeight());
        assertEquals("wpe.weight", weights.positionEmbedding());
        assertEquals(named, weights.byName());

        Gpt2Weights<String> mapped = weights.map((name, value) -> name + "=" + value);
        mapped.byName().forEach((name, value) -> assertEquals(name + "=" + name, value));
    }
}
