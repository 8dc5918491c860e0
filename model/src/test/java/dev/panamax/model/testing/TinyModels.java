package dev.panamax.model.testing;

import dev.panamax.model.nn.ModelConfig;
import dev.panamax.model.nn.ModelConfig.Architecture;

/**
 * The two-layer models and the prompt that the Transformer tests of both backends run, so that they check the same
 * shapes: small enough for a float64 reference, with every feature of each family switched on once.
 */
public final class TinyModels {
    private TinyModels() {}

    /** A prompt of twelve tokens, BOS first, with a repeat; below every tiny model's vocabulary. */
    public static int[] tokens() {
        return new int[] {1, 17, 5, 42, 42, 8, 0, 33, 21, 60, 2, 9};
    }

    /** Llama with grouped-query attention (4 query heads on 2 key/value heads) and a classifier of its own. */
    public static final ModelConfig LLAMA =
            new ModelConfig(Architecture.LLAMA, 32, 48, 2, 4, 2, 61, 16, 1e-5f, 10000f, false);

    /** GPT-2 with its classifier tied to the embedding. */
    public static final ModelConfig GPT2 = new ModelConfig(Architecture.GPT2, 32, 128, 2, 4, 4, 61, 16, 1e-5f, 0, true);
}
