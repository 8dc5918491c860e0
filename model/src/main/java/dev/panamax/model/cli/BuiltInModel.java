package dev.panamax.model.cli;

import dev.panamax.model.io.Gpt2Checkpoint;
import dev.panamax.model.tokenizer.CharVocabulary;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;

/**
 * Panamax's own small model, shipped inside the jar so that {@code panamax generate} works on a fresh machine: a
 * character-level GPT-2 trained by {@code panamax train} on Debian's {@code fortunes} (the README gives its size, the
 * command that reproduces it and the validation loss it reached). The weights must be files to be memory-mapped, so
 * the first use copies them to a temporary directory, deleted when the JVM exits.
 */
final class BuiltInModel {
    private static final String RESOURCES = "/dev/panamax/model/builtin/";
    private static final String[] FILES = {Gpt2Checkpoint.CONFIG_FILE, Gpt2Checkpoint.WEIGHTS_FILE, CharVocabulary.FILE
    };

    private static Path directory;

    private BuiltInModel() {}

    /**
     * Returns a directory holding the built-in model and its vocabulary.
     *
     * @return the directory
     * @throws IllegalStateException if this build carries no built-in model
     * @throws IOException if the files cannot be copied out
     */
    static synchronized Path directory() throws IOException {
        if (directory != null) {
            return directory;
        }
        Path dir = Files.createTempDirectory("panamax-model");
        dir.toFile().deleteOnExit();
        for (String name : FILES) {
            try (InputStream in = BuiltInModel.class.getResourceAsStream(RESOURCES + name)) {
                if (in == null) {
                    throw new IllegalStateException(
                            "this build carries no built-in model (" + RESOURCES + name + " is missing); pass --model");
                }
                Path file = dir.resolve(name);
                Files.copy(in, file, StandardCopyOption.REPLACE_EXISTING);
                file.toFile().deleteOnExit();
            }
        }
        directory = dir;
        return dir;
    }
}
