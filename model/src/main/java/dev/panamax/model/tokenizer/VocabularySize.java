package dev.panamax.model.tokenizer;

import dev.panamax.model.io.ModelFormatException;
import java.nio.file.Path;

/** The check, shared by the tokenizers whose size a file gives, that a tokenizer's vocabulary is its model's. */
final class VocabularySize {
    private VocabularySize() {}

    /**
     * Throws unless the sizes are equal: a larger tokenizer encodes ids the model has no embedding for, a smaller one
     * cannot decode every id the model may choose.
     */
    static void require(String kind, int size, int modelVocabSize, Path tokenizer, Path model)
            throws ModelFormatException {
        if (size != modelVocabSize) {
            throw new ModelFormatException(
                    tokenizer,
                    kind + " has " + size + " tokens, but the model " + model + " has a vocabulary of " + modelVocabSize
                            + "; they must be equal (is this the model's tokenizer?)");
        }
    }
}
