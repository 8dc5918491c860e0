package dev.panamax.model.cli;

import dev.panamax.model.backend.Backend;
import dev.panamax.model.generate.Transformer;
import dev.panamax.model.io.Gpt2Checkpoint;
import dev.panamax.model.io.Llama2cCheckpoint;
import dev.panamax.model.io.ModelConfig;
import dev.panamax.model.io.ModelConfig.Architecture;
import dev.panamax.model.tokenizer.CharVocabulary;
import dev.panamax.model.tokenizer.Gpt2Tokenizer;
import dev.panamax.model.tokenizer.Llama2cTokenizer;
import dev.panamax.model.train.Trainer;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.Optional;
import java.util.function.Function;

/**
 * The files the CLI reads: a model is a llama2.c checkpoint ({@code .bin}), or GPT-2 as a directory with {@code
 * config.json} and {@code model.safetensors} (or a {@code .safetensors} file with {@code config.json} beside it).
 */
final class ModelFiles {
    private ModelFiles() {}

    /**
     * An open checkpoint of either family; closing it unmaps the weights.
     *
     * @param config the configuration
     * @param transformer builds the model on a backend
     * @param stopToken the token that ends a generation, as run.c does (BOS for llama2.c), if any
     * @param closer closes the checkpoint
     */
    record Model(
            ModelConfig config,
            Function<Backend, Transformer> transformer,
            Optional<Integer> stopToken,
            Runnable closer)
            implements AutoCloseable {
        @Override
        public void close() {
            closer.run();
        }
    }

    /** Text to token ids and back, for either tokenizer. */
    interface Codec {
        int[] encode(String text);

        /** The bytes of {@code token} as it follows {@code previous}. */
        byte[] decode(int previous, int token);

        /** The token that ends a text, if the vocabulary has one. */
        Optional<Integer> endOfText();
    }

    static Model open(Path path) throws IOException {
        if (Files.isDirectory(path)) {
            Path llama = path.resolve(Trainer.LLAMA2C_FILE);
            if (!Files.exists(path.resolve(Gpt2Checkpoint.CONFIG_FILE)) && Files.isRegularFile(llama)) {
                return open(llama);
            }
            return gpt2(Gpt2Checkpoint.open(path));
        }
        if (!Files.isRegularFile(path)) {
            throw new NoSuchFileException(path.toString(), null, "no such model file or directory");
        }
        if (path.getFileName().toString().endsWith(".safetensors")) {
            Path parent = path.toAbsolutePath().getParent();
            return gpt2(Gpt2Checkpoint.open(parent.resolve(Gpt2Checkpoint.CONFIG_FILE), path));
        }
        Llama2cCheckpoint checkpoint = Llama2cCheckpoint.open(path);
        return new Model(
                checkpoint.config(),
                backend -> Transformer.llama(
                        backend, checkpoint.config(), checkpoint.weights(), Transformer.DEFAULT_MAX_BATCH),
                Optional.of(Llama2cTokenizer.BOS),
                checkpoint::close);
    }

    private static Model gpt2(Gpt2Checkpoint checkpoint) {
        return new Model(
                checkpoint.config(),
                backend -> Transformer.gpt2(
                        backend, checkpoint.config(), checkpoint.weights(), Transformer.DEFAULT_MAX_BATCH),
                Optional.empty(),
                checkpoint::close);
    }

    /**
     * The character vocabulary stored with a model trained by {@code panamax train}: {@value CharVocabulary#FILE} in
     * the model's directory, or beside the model file.
     */
    static Optional<Path> vocabularyBeside(Path model) {
        Path dir = Files.isDirectory(model) ? model : model.toAbsolutePath().getParent();
        Path file = dir == null ? null : dir.resolve(CharVocabulary.FILE);
        return file != null && Files.isRegularFile(file) ? Optional.of(file) : Optional.empty();
    }

    /**
     * Reads a tokenizer for a model: a character vocabulary ({@value CharVocabulary#FILE}, or a directory holding
     * one), llama2.c's {@code tokenizer.bin}, or for GPT-2 a directory with {@code encoder.json}/{@code vocab.json}
     * and {@code vocab.bpe}/{@code merges.txt}.
     */
    static Codec tokenizer(Path path, ModelConfig config) throws IOException {
        Path chars = Files.isDirectory(path) ? path.resolve(CharVocabulary.FILE) : path;
        if (chars.getFileName().toString().equals(CharVocabulary.FILE) && Files.isRegularFile(chars)) {
            CharVocabulary vocabulary = CharVocabulary.read(chars);
            if (vocabulary.size() != config.vocabSize()) {
                throw new IllegalArgumentException("tokenizer " + chars + " has " + vocabulary.size()
                        + " characters, the model's vocabulary " + config.vocabSize());
            }
            return new Codec() {
                @Override
                public int[] encode(String text) {
                    return vocabulary.encode(text);
                }

                @Override
                public byte[] decode(int previous, int token) {
                    return vocabulary.decode(token).getBytes(StandardCharsets.UTF_8);
                }

                @Override
                public Optional<Integer> endOfText() {
                    return Optional.empty();
                }
            };
        }
        if (config.architecture() == Architecture.LLAMA) {
            Llama2cTokenizer tokenizer = Llama2cTokenizer.read(path, config.vocabSize());
            return new Codec() {
                @Override
                public int[] encode(String text) {
                    return tokenizer.encode(text, true, false);
                }

                @Override
                public byte[] decode(int previous, int token) {
                    return tokenizer.decode(previous, token);
                }

                @Override
                public Optional<Integer> endOfText() {
                    return Optional.empty();
                }
            };
        }
        Gpt2Tokenizer tokenizer =
                Gpt2Tokenizer.read(either(path, "encoder.json", "vocab.json"), either(path, "vocab.bpe", "merges.txt"));
        return new Codec() {
            @Override
            public int[] encode(String text) {
                return tokenizer.encode(text);
            }

            @Override
            public byte[] decode(int previous, int token) {
                return tokenizer.decodeBytes(token);
            }

            @Override
            public Optional<Integer> endOfText() {
                int id = tokenizer.id("<|endoftext|>");
                return id < 0 ? Optional.empty() : Optional.of(id);
            }
        };
    }

    private static Path either(Path directory, String first, String second) throws NoSuchFileException {
        for (String name : new String[] {first, second}) {
            if (Files.isRegularFile(directory.resolve(name))) {
                return directory.resolve(name);
            }
        }
        throw new NoSuchFileException(
                directory.toString(), null, "a GPT-2 tokenizer directory must hold " + first + " or " + second);
    }
}
