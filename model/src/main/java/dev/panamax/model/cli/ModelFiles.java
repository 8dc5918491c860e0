package dev.panamax.model.cli;

import dev.panamax.model.backend.Backend;
import dev.panamax.model.generate.Transformer;
import dev.panamax.model.io.Gpt2Checkpoint;
import dev.panamax.model.io.Llama2cCheckpoint;
import dev.panamax.model.io.ModelConfig;
import dev.panamax.model.io.ModelConfig.Architecture;
import dev.panamax.model.tokenizer.Gpt2Tokenizer;
import dev.panamax.model.tokenizer.Llama2cTokenizer;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.Optional;

/**
 * The files the CLI reads: a model is a llama2.c checkpoint ({@code .bin}), or GPT-2 as a directory with {@code
 * config.json} and {@code model.safetensors} (or a {@code .safetensors} file with {@code config.json} beside it).
 */
final class ModelFiles {
    private ModelFiles() {}

    /** An open checkpoint of either family; closing it unmaps the weights. */
    sealed interface Model extends AutoCloseable {
        ModelConfig config();

        Transformer transformer(Backend backend);

        /** The token that ends a generation, as run.c and Hugging Face do: BOS for llama2.c, none here for GPT-2. */
        Optional<Integer> stopToken();

        @Override
        void close();
    }

    private record Llama(Llama2cCheckpoint checkpoint) implements Model {
        @Override
        public ModelConfig config() {
            return checkpoint.config();
        }

        @Override
        public Transformer transformer(Backend backend) {
            return Transformer.llama(backend, config(), checkpoint.weights(), Transformer.DEFAULT_MAX_BATCH);
        }

        @Override
        public Optional<Integer> stopToken() {
            return Optional.of(Llama2cTokenizer.BOS);
        }

        @Override
        public void close() {
            checkpoint.close();
        }
    }

    private record Gpt2(Gpt2Checkpoint checkpoint) implements Model {
        @Override
        public ModelConfig config() {
            return checkpoint.config();
        }

        @Override
        public Transformer transformer(Backend backend) {
            return Transformer.gpt2(backend, config(), checkpoint.weights(), Transformer.DEFAULT_MAX_BATCH);
        }

        @Override
        public Optional<Integer> stopToken() {
            return Optional.empty();
        }

        @Override
        public void close() {
            checkpoint.close();
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
            return new Gpt2(Gpt2Checkpoint.open(path));
        }
        if (!Files.isRegularFile(path)) {
            throw new NoSuchFileException(path.toString(), null, "no such model file or directory");
        }
        if (path.getFileName().toString().endsWith(".safetensors")) {
            Path parent = path.toAbsolutePath().getParent();
            return new Gpt2(Gpt2Checkpoint.open(parent.resolve(Gpt2Checkpoint.CONFIG_FILE), path));
        }
        return new Llama(Llama2cCheckpoint.open(path));
    }

    /**
     * Reads a tokenizer for a model: llama2.c's {@code tokenizer.bin}, or for GPT-2 a directory with {@code
     * encoder.json}/{@code vocab.json} and {@code vocab.bpe}/{@code merges.txt}.
     */
    static Codec tokenizer(Path path, ModelConfig config) throws IOException {
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
