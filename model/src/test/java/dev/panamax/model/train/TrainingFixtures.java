package dev.panamax.model.train;

import dev.panamax.model.nn.ModelConfig;
import dev.panamax.model.nn.ModelConfig.Architecture;
import dev.panamax.model.tokenizer.CharVocabulary;

/** The text and the models that the training tests of both backends learn on, so that they train the same thing. */
final class TrainingFixtures {
    private TrainingFixtures() {}

    /** A repetitive text a tiny model learns within tens of steps. */
    static final String TEXT = "panamax trains transformers on the jvm, one step at a time. ".repeat(12);

    static final CharVocabulary VOCABULARY = CharVocabulary.of(TEXT);

    /** A two-layer model of the family over {@link #VOCABULARY}; the Llama one has grouped-query attention. */
    static ModelConfig config(Architecture architecture) {
        return architecture == Architecture.GPT2
                ? new ModelConfig(Architecture.GPT2, 32, 64, 2, 2, 2, VOCABULARY.size(), 32, 1e-5f, 0, true)
                : new ModelConfig(Architecture.LLAMA, 32, 64, 2, 4, 2, VOCABULARY.size(), 32, 1e-5f, 10000, true);
    }
}
