package dev.panamax.model.cli;

import dev.panamax.model.backend.Backend;
import dev.panamax.model.generate.Transformer;
import dev.panamax.model.io.GgufLlama;
import dev.panamax.model.io.Gpt2Checkpoint;
import dev.panamax.model.io.Llama2cCheckpoint;
import dev.panamax.model.io.ModelFormatException;
import dev.panamax.model.nn.ModelConfig;
import dev.panamax.model.nn.ModelConfig.Architecture;
import dev.panamax.model.tokenizer.CharVocabulary;
import dev.panamax.model.tokenizer.GgufTokenizer;
import dev.panamax.model.tokenizer.Gpt2Tokenizer;
import dev.panamax.model.tokenizer.Llama2cTokenizer;
import dev.panamax.model.train.Trainer;
import java.io.IOException;
import java.io.InputStream;
import java.lang.foreign.MemorySegment;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.function.BiFunction;
import java.util.function.ToLongFunction;

/**
 * The files the CLI reads: a model is a llama2.c checkpoint ({@code .bin}), a GGUF file of a Llama-family model
 * (with the tokenizer its metadata holds), or GPT-2 as a directory with {@code
 * config.json} and {@code model.safetensors} (or a {@code .safetensors} file with {@code config.json} beside it). A
 * missing file is reported with the option that named it and what was expected there.
 */
final class ModelFiles {
    /** The first bytes of a GGUF file, llama.cpp's format. */
    private static final byte[] GGUF_MAGIC = "GGUF".getBytes(StandardCharsets.US_ASCII);

    private ModelFiles() {}

    /**
     * An open checkpoint of either family; closing it unmaps the weights.
     *
     * @param config the configuration
     * @param transformer builds the model on a backend with a key/value cache of the given number of positions
     * @param bos the token that starts a text and ends a generation without a tokenizer (BOS for llama2.c, as run.c
     *     does), if any
     * @param codec the tokenizer the model file carries (GGUF), if any
     * @param closer closes the checkpoint
     */
    record Model(
            ModelConfig config,
            BiFunction<Backend, Integer, Transformer> transformer,
            Optional<Integer> bos,
            Optional<Codec> codec,
            Runnable closer)
            implements AutoCloseable {
        @Override
        public void close() {
            closer.run();
        }
    }

    /**
     * Text to token ids and back, for every kind of tokenizer.
     *
     * @param encoder text to ids, with the BOS the vocabulary prepends
     * @param bound a lower bound on the number of tokens a text encodes to, found without encoding it
     * @param decoder the bytes of a token as it follows the previous one
     * @param startToken the token a generation without a prompt starts from, if the vocabulary has one
     * @param addedBos the token the encoder puts before a text, if it adds one (perplexity's windows start with it)
     * @param stopTokens the tokens that end a generation: the vocabulary's end of text, and for a GGUF vocabulary
     *     every end-of-generation token llama.cpp stops at
     */
    record Codec(
            Encoder encoder,
            ToLongFunction<String> bound,
            PieceDecoder decoder,
            Optional<Integer> startToken,
            Optional<Integer> addedBos,
            Set<Integer> stopTokens) {
        /** A prompt's tokens: special tokens written in it stand for themselves, as llama.cpp's tools read a prompt. */
        int[] encode(String text) {
            return encoder.encode(text, true);
        }

        /**
         * A data file's tokens: its text is only text, as llama.cpp's perplexity reads it, so that a {@code <s>} or
         * {@code <unk>} written in the data is not taken for BOS or the unknown token.
         */
        int[] encodeText(String text) {
            return encoder.encode(text, false);
        }

        /**
         * A lower bound on the number of tokens {@code text} encodes to, found without encoding it: each token stands
         * for at most as many bytes as the vocabulary's longest piece.
         */
        long fewestTokens(String text) {
            return bound.applyAsLong(text);
        }

        /** The bytes of {@code token} as it follows {@code previous}. */
        byte[] decode(int previous, int token) {
            return decoder.decode(previous, token);
        }
    }

    /** Text to tokens; {@code parseSpecial}: whether special tokens' text stands for them (GGUF vocabularies only). */
    interface Encoder {
        int[] encode(String text, boolean parseSpecial);
    }

    /** A token's bytes, which may depend on the token before it (SentencePiece drops a leading space after BOS). */
    interface PieceDecoder {
        byte[] decode(int previous, int token);
    }

    /** The bound of a byte-level vocabulary: {@code fixed} tokens plus the UTF-8 bytes over the longest piece. */
    private static ToLongFunction<String> byLongestPiece(int fixed, int longestPiece) {
        return text -> fixed + Math.ceilDiv(text.getBytes(StandardCharsets.UTF_8).length, longestPiece);
    }

    /**
     * Opens a model.
     *
     * @param path a llama2.c file, a GPT-2 directory or {@code .safetensors} file, or a directory {@code panamax train}
     *     wrote
     * @param source what named the path, for messages: the option as typed, e.g. {@code -m}
     * @return the open model
     * @throws NoSuchFileException naming {@code source}, if the path or a file the model needs beside it is missing
     * @throws ModelFormatException if a file is malformed
     * @throws IOException if a file cannot be read
     */
    static Model open(Path path, String source) throws IOException {
        Located located = locate(path, source);
        if (located.gguf() != null) {
            return gguf(located.gguf());
        }
        if (located.llama2c() != null) {
            Llama2cCheckpoint checkpoint = Llama2cCheckpoint.open(located.llama2c());
            return new Model(
                    checkpoint.config(),
                    (backend, context) -> Transformer.llama(
                            backend, checkpoint.config(), checkpoint.weights(), Transformer.DEFAULT_MAX_BATCH, context),
                    Optional.of(Llama2cTokenizer.BOS),
                    Optional.empty(),
                    checkpoint::close);
        }
        Gpt2Checkpoint checkpoint = Gpt2Checkpoint.open(located.config(), located.weights());
        return new Model(
                checkpoint.config(),
                (backend, context) -> Transformer.gpt2(
                        backend, checkpoint.config(), checkpoint.weights(), Transformer.DEFAULT_MAX_BATCH, context),
                Optional.empty(),
                Optional.empty(),
                checkpoint::close);
    }

    /**
     * Pretrained weights to fine-tune, as float32 segments under the names {@code Parameters} lists; closing unmaps
     * them.
     *
     * @param config the configuration
     * @param weights the weights by name
     * @param directory the directory the model's files are in, where its tokenizer files may be too
     * @param closer closes the checkpoint
     */
    record Pretrained(ModelConfig config, Map<String, MemorySegment> weights, Path directory, Runnable closer)
            implements AutoCloseable {
        @Override
        public void close() {
            closer.run();
        }
    }

    /**
     * Opens a model's weights for fine-tuning: any model {@link #open} takes (a llama2.c file, a GPT-2 directory, a
     * directory {@code panamax train} wrote).
     *
     * @param path the model
     * @param source what named the path, for messages: the option as typed
     * @return the weights; close them when they have been copied
     * @throws NoSuchFileException naming {@code source}, if the path or a file the model needs is missing
     * @throws ModelFormatException if a file is malformed, or is a GGUF file (quantized weights are not trained)
     * @throws IOException if a file cannot be read
     */
    static Pretrained pretrained(Path path, String source) throws IOException {
        Located located = locate(path, source);
        if (located.gguf() != null) {
            throw new ModelFormatException(
                    located.gguf(),
                    "a GGUF file: fine-tuning starts from float32 weights; give a llama2.c checkpoint (.bin), a GPT-2"
                            + " directory or a directory panamax train wrote");
        }
        if (located.llama2c() != null) {
            Llama2cCheckpoint checkpoint = Llama2cCheckpoint.open(located.llama2c());
            ModelConfig config = checkpoint.config();
            return new Pretrained(
                    config,
                    checkpoint.weights().byName(config.sharedClassifier()),
                    located.llama2c().toAbsolutePath().getParent(),
                    checkpoint::close);
        }
        Gpt2Checkpoint checkpoint = Gpt2Checkpoint.open(located.config(), located.weights());
        return new Pretrained(
                checkpoint.config(),
                checkpoint.weights().byName(),
                located.config().toAbsolutePath().getParent(),
                checkpoint::close);
    }

    /** Where a model's files are: a llama2.c file, a GGUF file, or GPT-2's configuration and weights (the others null). */
    private record Located(Path llama2c, Path gguf, Path config, Path weights) {}

    private static Located locate(Path path, String source) throws IOException {
        if (Files.isDirectory(path)) {
            Path config = path.resolve(Gpt2Checkpoint.CONFIG_FILE);
            Path llama = path.resolve(Trainer.LLAMA2C_FILE);
            if (!Files.exists(config) && Files.isRegularFile(llama)) {
                return locate(llama, source);
            }
            if (!Files.exists(config)) {
                throw missing(
                        source,
                        path,
                        "holds neither " + Gpt2Checkpoint.CONFIG_FILE + " and " + Gpt2Checkpoint.WEIGHTS_FILE
                                + " (GPT-2) nor " + Trainer.LLAMA2C_FILE + " (llama2.c)");
            }
            return gpt2(config, path.resolve(Gpt2Checkpoint.WEIGHTS_FILE), source, path);
        }
        if (!Files.exists(path)) {
            throw missing(source, path, "no such file or directory");
        }
        if (!Files.isRegularFile(path)) {
            throw new ModelFormatException(path, "not a regular file or directory");
        }
        if (path.getFileName().toString().endsWith(".safetensors")) {
            Path parent = path.toAbsolutePath().getParent();
            return gpt2(parent.resolve(Gpt2Checkpoint.CONFIG_FILE), path, source, path);
        }
        if (isGguf(path)) {
            return new Located(null, path, null, null);
        }
        return new Located(path, null, null, null);
    }

    /** A GGUF Llama model with the tokenizer its metadata holds, if it holds one. */
    private static Model gguf(Path path) throws IOException {
        GgufLlama model = GgufLlama.open(path);
        try {
            Optional<Codec> codec = Optional.empty();
            if (model.gguf().metadata().containsKey("tokenizer.ggml.model")) {
                GgufTokenizer tokenizer = GgufTokenizer.read(model.gguf());
                if (tokenizer.vocabSize() != model.config().vocabSize()) {
                    throw new ModelFormatException(
                            path,
                            "the tokenizer has " + tokenizer.vocabSize() + " tokens but token_embd.weight "
                                    + model.config().vocabSize());
                }
                codec = Optional.of(gguf(tokenizer));
            }
            return new Model(
                    model.config(),
                    (backend, context) -> Transformer.llama(backend, model, Transformer.DEFAULT_MAX_BATCH, context),
                    codec.flatMap(Codec::startToken),
                    codec,
                    model::close);
        } catch (IOException | RuntimeException e) {
            model.close();
            throw e;
        }
    }

    /**
     * Whether a file starts with GGUF's magic (it would otherwise be misread as a llama2.c header); false for anything
     * but a regular file, which is not opened (a FIFO would block), so that the reader's own check names it.
     */
    static boolean isGguf(Path file) throws IOException {
        if (!Files.isRegularFile(file)) {
            return false;
        }
        byte[] start;
        try (InputStream in = Files.newInputStream(file)) {
            start = in.readNBytes(GGUF_MAGIC.length);
        }
        return Arrays.equals(start, GGUF_MAGIC);
    }

    static Codec gguf(GgufTokenizer tokenizer) {
        int longestPiece = tokenizer.longestPiece();
        return new Codec(
                (text, parseSpecial) -> tokenizer.encode(text, true, parseSpecial),
                byLongestPiece(0, longestPiece),
                tokenizer::decode,
                tokenizer.bos(),
                tokenizer.addedBos(),
                tokenizer.endOfGeneration());
    }

    private static Located gpt2(Path config, Path weights, String source, Path given) throws IOException {
        for (Path file : new Path[] {config, weights}) {
            if (!Files.exists(file)) {
                throw missing(source, given, "GPT-2's " + file.getFileName() + " is missing (looked for " + file + ")");
            }
            if (!Files.isRegularFile(file)) {
                // A FIFO or a device would block the reader forever or feed it without end.
                throw new ModelFormatException(file, "not a regular file");
            }
        }
        return new Located(null, null, config, weights);
    }

    /** A missing file, reported as {@code <option> <path>: <what is missing>}. */
    static NoSuchFileException missing(String source, Path path, String problem) {
        return new NoSuchFileException(source + " " + path, null, problem);
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
     * The tokenizer a command uses for a model: the one given, else the model file's own (a GGUF file's), else the
     * character vocabulary beside the model (as {@code panamax train} leaves it); empty when there is none. A file's own
     * tokenizer comes before one that merely lies in the same directory, which may belong to another model.
     *
     * @param given the tokenizer the user named, or null
     * @param source the option that named it, as typed, for messages
     * @param modelPath the model's file or directory
     * @param model the opened model
     * @throws NoSuchFileException naming {@code source}, if the given tokenizer or a file it needs is missing
     * @throws ModelFormatException if a file is malformed or its vocabulary is not the model's
     * @throws IOException if a file cannot be read
     */
    static Optional<Codec> codec(Path given, String source, Path modelPath, Model model) throws IOException {
        if (given != null) {
            return Optional.of(tokenizer(given, source, model.config(), modelPath));
        }
        if (model.codec().isPresent()) {
            return model.codec();
        }
        Optional<Path> beside = vocabularyBeside(modelPath);
        if (beside.isPresent()) {
            return Optional.of(tokenizer(beside.get(), "the vocabulary beside the model", model.config(), modelPath));
        }
        return Optional.empty();
    }

    /**
     * Reads a tokenizer for a model: a character vocabulary ({@value CharVocabulary#FILE}, or a directory holding
     * one), llama2.c's {@code tokenizer.bin}, or for GPT-2 a directory with {@code encoder.json}/{@code vocab.json}
     * and {@code vocab.bpe}/{@code merges.txt}.
     *
     * @param path the tokenizer
     * @param source what named the path, for messages: the option as typed
     * @param config the model's configuration, whose vocabulary the tokenizer must match
     * @param model the model's file or directory, named when the vocabularies differ
     * @throws NoSuchFileException naming {@code source}, if the tokenizer or a file it needs is missing
     * @throws ModelFormatException if a file is malformed or its vocabulary is not the model's
     * @throws IOException if a file cannot be read
     */
    static Codec tokenizer(Path path, String source, ModelConfig config, Path model) throws IOException {
        if (!Files.exists(path)) {
            throw missing(source, path, "no such file or directory");
        }
        boolean directory = Files.isDirectory(path);
        if (!directory && !Files.isRegularFile(path)) {
            throw new ModelFormatException(path, "not a regular file or directory");
        }
        Path chars = directory ? path.resolve(CharVocabulary.FILE) : path;
        if (chars.getFileName().toString().equals(CharVocabulary.FILE) && Files.isRegularFile(chars)) {
            CharVocabulary vocabulary = CharVocabulary.read(chars);
            vocabulary.requireVocabularySize(config.vocabSize(), chars, model);
            return characters(vocabulary);
        }
        if (config.architecture() == Architecture.LLAMA) {
            if (directory) {
                throw missing(
                        source,
                        path,
                        "is a directory; a llama2.c model takes its tokenizer.bin file (or a " + CharVocabulary.FILE
                                + ")");
            }
            return llama2c(Llama2cTokenizer.read(path, config.vocabSize()));
        }
        if (!directory) {
            throw missing(
                    source,
                    path,
                    "is a file; a GPT-2 tokenizer is a directory holding encoder.json (or"
                            + " vocab.json) and vocab.bpe (or merges.txt)");
        }
        Gpt2Tokenizer gpt2 = gpt2Tokenizer(path, source);
        gpt2.requireVocabularySize(config.vocabSize(), path, model);
        return gpt2(gpt2);
    }

    /** GPT-2's tokenizer from a directory with {@code encoder.json}/{@code vocab.json} and {@code vocab.bpe}/{@code merges.txt}. */
    static Gpt2Tokenizer gpt2Tokenizer(Path directory, String source) throws IOException {
        return Gpt2Tokenizer.read(
                either(directory, source, "encoder.json", "vocab.json"),
                either(directory, source, "vocab.bpe", "merges.txt"));
    }

    private static Codec characters(CharVocabulary vocabulary) {
        Optional<Integer> lineBreak = Optional.empty();
        for (int token = 0; token < vocabulary.size(); token++) {
            if (vocabulary.decode(token).equals("\n")) {
                lineBreak = Optional.of(token);
            }
        }
        Optional<Integer> start = lineBreak;
        return new Codec(
                (text, parseSpecial) -> vocabulary.encode(text),
                text -> text.codePointCount(0, text.length()),
                (previous, token) -> vocabulary.decode(token).getBytes(StandardCharsets.UTF_8),
                start,
                Optional.empty(),
                Set.of());
    }

    private static Codec llama2c(Llama2cTokenizer tokenizer) {
        int longest = 1;
        for (int token = 0; token < tokenizer.vocabSize(); token++) {
            longest = Math.max(longest, tokenizer.piece(token).length);
        }
        int longestPiece = longest;
        return new Codec(
                (text, parseSpecial) -> tokenizer.encode(text, true, false),
                byLongestPiece(1, longestPiece),
                tokenizer::decode,
                Optional.of(Llama2cTokenizer.BOS),
                Optional.of(Llama2cTokenizer.BOS),
                Set.of(Llama2cTokenizer.BOS));
    }

    private static Codec gpt2(Gpt2Tokenizer tokenizer) {
        int longest = 1;
        for (int token = 0; token < tokenizer.vocabSize(); token++) {
            longest = Math.max(longest, tokenizer.decodeBytes(token).length);
        }
        int longestPiece = longest;
        int id = tokenizer.id("<|endoftext|>");
        Optional<Integer> endOfText = id < 0 ? Optional.empty() : Optional.of(id);
        return new Codec(
                (text, parseSpecial) -> tokenizer.encode(text),
                byLongestPiece(0, longestPiece),
                (previous, token) -> tokenizer.decodeBytes(token),
                endOfText,
                Optional.empty(),
                endOfText.map(Set::of).orElse(Set.of()));
    }

    private static Path either(Path directory, String source, String first, String second) throws NoSuchFileException {
        return either(directory, first, second)
                .orElseThrow(
                        () -> missing(source, directory, "GPT-2's " + first + " (or " + second + ") is missing there"));
    }

    private static Optional<Path> either(Path directory, String first, String second) {
        for (String name : new String[] {first, second}) {
            if (Files.isRegularFile(directory.resolve(name))) {
                return Optional.of(directory.resolve(name));
            }
        }
        return Optional.empty();
    }

    /** Every name GPT-2's tokenizer files go by, which {@link #gpt2TokenizerFiles} looks for. */
    static final List<String> GPT2_TOKENIZER_NAMES = List.of("encoder.json", "vocab.json", "vocab.bpe", "merges.txt");

    /**
     * GPT-2's tokenizer files in a directory, {@code encoder.json} (or {@code vocab.json}) and {@code vocab.bpe} (or
     * {@code merges.txt}), if both are there.
     */
    static Optional<List<Path>> gpt2TokenizerFiles(Path directory) {
        Optional<Path> vocabulary = either(directory, "encoder.json", "vocab.json");
        Optional<Path> merges = either(directory, "vocab.bpe", "merges.txt");
        return vocabulary.isPresent() && merges.isPresent()
                ? Optional.of(List.of(vocabulary.get(), merges.get()))
                : Optional.empty();
    }
}
