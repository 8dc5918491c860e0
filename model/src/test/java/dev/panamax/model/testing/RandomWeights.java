package dev.panamax.model.testing;

import dev.panamax.kernels.testing.Inputs;
import dev.panamax.model.nn.Gpt2Weights;
import dev.panamax.model.nn.ModelConfig;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;

/** Random weights shaped and scaled like trained ones, so that a forward pass through them stays well conditioned. */
public final class RandomWeights {
    private RandomWeights() {}

    /**
     * GPT-2 weights scaled as trained ones are: matrices by 1/√fan-in, norm weights near 1, small biases.
     *
     * @param c a GPT-2 configuration
     * @param seed the seed
     * @return heap segments of little-endian floats
     */
    public static Gpt2Weights<MemorySegment> gpt2(ModelConfig c, long seed) {
        int d = c.dim();
        int h = c.hiddenDim();
        long[] s = {seed};
        List<Gpt2Weights.Layer<MemorySegment>> layers = new ArrayList<>();
        for (int l = 0; l < c.layers(); l++) {
            layers.add(new Gpt2Weights.Layer<>(
                    around(s[0]++, d, 1),
                    around(s[0]++, d, 0),
                    scaled(s[0]++, d * 3 * d, d),
                    around(s[0]++, 3 * d, 0),
                    scaled(s[0]++, d * d, d),
                    around(s[0]++, d, 0),
                    around(s[0]++, d, 1),
                    around(s[0]++, d, 0),
                    scaled(s[0]++, d * h, d),
                    around(s[0]++, h, 0),
                    scaled(s[0]++, h * d, h),
                    around(s[0]++, d, 0)));
        }
        return new Gpt2Weights<>(
                scaled(s[0]++, c.vocabSize() * d, 1),
                scaled(s[0]++, c.seqLen() * d, 4),
                layers,
                around(s[0]++, d, 1),
                around(s[0]++, d, 0));
    }

    private static MemorySegment scaled(long seed, int count, int fanIn) {
        float bound = (float) (1 / Math.sqrt(fanIn));
        return Segments.of(Inputs.uniform(seed, count, -bound, bound));
    }

    private static MemorySegment around(long seed, int count, float center) {
        return Segments.of(Inputs.uniform(seed, count, center - 0.1f, center + 0.1f));
    }
}
