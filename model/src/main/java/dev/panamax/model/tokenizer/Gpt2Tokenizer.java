package dev.panamax.model.tokenizer;

import dev.panamax.model.io.BoundedFiles;
import dev.panamax.model.io.ModelFormatException;
import dev.panamax.model.json.Json;
import dev.panamax.model.json.JsonFields;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.IntFunction;
import java.util.function.IntPredicate;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.IntStream;

/**
 * GPT-2's byte-level BPE, read from OpenAI's {@code encoder.json} and {@code vocab.bpe} (Hugging Face names them
 * {@code vocab.json} and {@code merges.txt}). Text is split by GPT-2's pre-tokenizer pattern; each piece's UTF-8 bytes
 * are mapped to printable characters (GPT-2's byte↔unicode table) and merged pairwise, lowest merge rank first, as
 * OpenAI's {@code encoder.py} does; then each merged symbol is looked up in the vocabulary. Results per piece are
 * cached. Instances are thread-safe.
 */
public final class Gpt2Tokenizer {
    /** GPT-2's pre-tokenizer: contractions, letters, digits, other symbols, each optionally after one space; spaces. */
    private static final Pattern PRE_TOKENIZER = Pattern.compile(
            "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+",
            Pattern.UNICODE_CHARACTER_CLASS); // Python's \s is Unicode whitespace; Java's is ASCII unless asked

    private static final long MAX_FILE_BYTES = 100L << 20;
    /**
     * Heap per UTF-8 byte of text that encoding takes: the pre-tokenized pieces and their ids, held together (for a
     * piece of one character, a string and an array of some 50 bytes), and each piece's merges, with room to spare
     * over what was measured.
     */
    static final long HEAP_PER_BYTE = 96;

    private static final int CACHE_LIMIT = 100_000;
    /** Pieces longer than this many chars are not cached, so that the cache's memory stays bounded too. */
    private static final int CACHED_PIECE_LIMIT = 256;

    private static final char[] BYTE_TO_CHAR = new char[256];
    private static final int[] CHAR_TO_BYTE = new int[256 + 68];

    static {
        // encoder.py's bytes_to_unicode: printable Latin-1 bytes stand for themselves, the other 68 for 256, 257, …
        Arrays.fill(CHAR_TO_BYTE, -1);
        int next = 256;
        for (int b = 0; b < 256; b++) {
            boolean printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
            BYTE_TO_CHAR[b] = (char) (printable ? b : next++);
            CHAR_TO_BYTE[BYTE_TO_CHAR[b]] = b;
        }
    }

    private final String[] tokens;
    private final Map<String, Integer> encoder;
    /** (first id, second id), packed in a long → {@link TokenMerges#merge} of their merge at priority −rank. */
    private final Map<Long, Long> merges;

    private final Map<String, int[]> cache = new ConcurrentHashMap<>();
    /** The tokens that stand for their text as written (UTF-8), not for bytes through the byte alphabet. */
    private final IntPredicate plainText;

    /**
     * Creates a tokenizer from a vocabulary and merges.
     *
     * @param encoder token (in GPT-2's byte alphabet) → id; the ids must be exactly 0 to size − 1
     * @param merges the merges, highest priority first, each the two symbols it joins
     * @throws IllegalArgumentException if an id is missing or repeated, a token has a character outside the byte
     *     alphabet, or a merge is repeated or joins or makes a symbol that is not in the vocabulary
     */
    public Gpt2Tokenizer(Map<String, Integer> encoder, List<String[]> merges) {
        this(encoder, merges, id -> false);
    }

    /**
     * A tokenizer some of whose tokens are plain text, not in the byte alphabet: a GGUF file's user-defined tokens,
     * which llama.cpp matches and prints as they are written.
     */
    Gpt2Tokenizer(Map<String, Integer> encoder, List<String[]> merges, IntPredicate plainText) {
        this(encoder, tokensById(encoder, plainText), merges(encoder, merges, rank -> "merge " + rank), plainText);
    }

    private Gpt2Tokenizer(
            Map<String, Integer> encoder, String[] tokens, Map<Long, Long> merges, IntPredicate plainText) {
        // A HashMap, not Map.copyOf: the immutable map's linear probing clusters the close hash codes of a large
        // vocabulary's short tokens, and took most of a second to build for a Llama 3 vocabulary.
        this.encoder = new HashMap<>(encoder);
        this.tokens = tokens;
        this.merges = merges;
        this.plainText = plainText;
    }

    private static String[] tokensById(Map<String, Integer> encoder, IntPredicate plainText) {
        String[] tokens = new String[encoder.size()];
        for (Map.Entry<String, Integer> entry : encoder.entrySet()) {
            String token = entry.getKey();
            int id = entry.getValue();
            if (id < 0 || id >= tokens.length) {
                throw new IllegalArgumentException("token \"" + ModelFormatException.excerpt(token) + "\" has id " + id
                        + ", outside [0, " + tokens.length + ") for " + tokens.length + " tokens");
            }
            if (tokens[id] != null) {
                throw new IllegalArgumentException(
                        "id " + id + " is given to both \"" + ModelFormatException.excerpt(tokens[id]) + "\" and \""
                                + ModelFormatException.excerpt(token) + "\"");
            }
            if (token.isEmpty()) {
                throw new IllegalArgumentException("token " + id + " is empty");
            }
            for (int i = 0; i < token.length() && !plainText.test(id); i++) {
                char c = token.charAt(i);
                if (c >= CHAR_TO_BYTE.length || CHAR_TO_BYTE[c] < 0) {
                    throw new IllegalArgumentException(
                            "token %d \"%s\" has U+%04X, which is not in GPT-2's byte alphabet"
                                    .formatted(id, ModelFormatException.excerpt(token), (int) c));
                }
            }
            tokens[id] = token;
        }
        return tokens;
    }

    /**
     * Checks the merges against the vocabulary and returns them by the ids they join; {@code where} names a merge by
     * its rank in error messages.
     */
    private static Map<Long, Long> merges(
            Map<String, Integer> encoder, List<String[]> merges, IntFunction<String> where) {
        Map<String, Integer> ranks = new HashMap<>();
        Map<Long, Long> byIds = new HashMap<>();
        for (int rank = 0; rank < merges.size(); rank++) {
            String[] pair = merges.get(rank);
            String problem = pair.length != 2
                    ? "has " + pair.length + " symbols, not 2"
                    : !encoder.containsKey(pair[0])
                            ? "joins \"" + ModelFormatException.excerpt(pair[0]) + "\", which is not in the vocabulary"
                            : !encoder.containsKey(pair[1])
                                    ? "joins \"" + ModelFormatException.excerpt(pair[1])
                                            + "\", which is not in the vocabulary"
                                    : !encoder.containsKey(pair[0] + pair[1])
                                            ? "makes \"" + ModelFormatException.excerpt(pair[0] + pair[1])
                                                    + "\", which is not in the vocabulary"
                                            : ranks.putIfAbsent(pair[0] + " " + pair[1], rank) != null
                                                    ? "repeats the merge of rank " + ranks.get(pair[0] + " " + pair[1])
                                                    : null;
            if (problem != null) {
                throw new IllegalArgumentException(where.apply(rank) + ": merge \""
                        + ModelFormatException.excerpt(String.join(" ", pair)) + "\" " + problem);
            }
            byIds.put(
                    pair(encoder.get(pair[0]), encoder.get(pair[1])),
                    TokenMerges.merge(-rank, encoder.get(pair[0] + pair[1])));
        }
        return byIds;
    }

    private static long pair(int first, int second) {
        return (long) first << 32 | second;
    }

    /**
     * Reads a vocabulary ({@code encoder.json} or {@code vocab.json}: a JSON object from token to id) and its merges
     * ({@code vocab.bpe} or {@code merges.txt}: an optional {@code #version} line, then one merge per line, the two
     * symbols separated by a space).
     *
     * @param vocabulary the JSON vocabulary
     * @param merges the merges
     * @return the tokenizer
     * @throws ModelFormatException if either file is malformed or they do not agree, naming the file and line
     * @throws IOException if a file cannot be read
     */
    public static Gpt2Tokenizer read(Path vocabulary, Path merges) throws IOException {
        Map<String, Integer> encoder = BoundedFiles.readJson(vocabulary, text -> {
            JsonFields fields = JsonFields.of(vocabulary, Json.parse(text, vocabulary, Json.Limits.DEFAULT));
            Map<String, Integer> ids = new HashMap<>();
            for (String token : fields.object().members().keySet()) {
                ids.put(token, (int) fields.integer(token, 0, Integer.MAX_VALUE));
            }
            return ids;
        });
        String[] tokens;
        try {
            tokens = tokensById(encoder, id -> false);
        } catch (IllegalArgumentException e) {
            throw new ModelFormatException(vocabulary, e.getMessage(), e);
        }
        List<String[]> pairs = new ArrayList<>();
        List<String> lines = readLines(merges);
        int first = !lines.isEmpty() && lines.getFirst().startsWith("#version") ? 1 : 0;
        int last = lines.size();
        while (last > first && lines.get(last - 1).isEmpty()) {
            last--; // the file ends with a newline
        }
        for (int i = first; i < last; i++) {
            String line = lines.get(i);
            String[] pair = line.split(" ", -1);
            if (pair.length != 2 || pair[0].isEmpty() || pair[1].isEmpty()) {
                throw new ModelFormatException(
                        merges,
                        "line " + (i + 1) + ": \"" + ModelFormatException.excerpt(line)
                                + "\" is not two symbols separated by one space");
            }
            pairs.add(pair);
        }
        try {
            return new Gpt2Tokenizer(
                    encoder, tokens, merges(encoder, pairs, rank -> "line " + (rank + first + 1)), id -> false);
        } catch (IllegalArgumentException e) {
            throw new ModelFormatException(merges, e.getMessage() + " (" + vocabulary.getFileName() + ")", e);
        }
    }

    private static List<String> readLines(Path file) throws IOException {
        return List.of(
                BoundedFiles.readUtf8(file, "GPT-2 merges file", MAX_FILE_BYTES).split("\r?\n", -1));
    }

    /**
     * Returns the number of tokens.
     *
     * @return the vocabulary size
     */
    public int vocabSize() {
        return tokens.length;
    }

    /**
     * Checks that this tokenizer is the right size for a model, as a loader should before generating: a larger
     * vocabulary encodes ids the model has no embedding for, a smaller one cannot decode every id the model may
     * choose.
     *
     * @param modelVocabSize the model's vocabulary size
     * @param tokenizer the tokenizer's vocabulary file or directory, for the message
     * @param model the model's file, for the message
     * @throws ModelFormatException if the sizes differ, naming both and both files
     */
    public void requireVocabularySize(int modelVocabSize, Path tokenizer, Path model) throws ModelFormatException {
        VocabularySize.require("GPT-2 tokenizer", tokens.length, modelVocabSize, tokenizer, model);
    }

    /**
     * Returns a token's id.
     *
     * @param token the token as the vocabulary spells it, e.g. {@code <|endoftext|>} or {@code Ġthe}
     * @return its id, or -1 if it is not in the vocabulary
     */
    public int id(String token) {
        return encoder.getOrDefault(token, -1);
    }

    /**
     * Encodes text. Special tokens such as {@code <|endoftext|>} are not recognized in the text: they are encoded as
     * the characters they are made of, as tiktoken's {@code encode_ordinary} does.
     *
     * @param text the text; unpaired surrogates are encoded as {@code ?}, as Java's UTF-8 encoder does
     * @return the token ids
     * @throws IllegalArgumentException if the text has a byte the vocabulary has no token for
     * @throws dev.panamax.model.backend.InsufficientMemoryException if the heap has no room to encode the text
     */
    public int[] encode(String text) {
        long length = EncodingHeap.utf8Bytes(text, 0, text.length(), 1);
        EncodingHeap.require("GPT-2's tokenizer", length, length * HEAP_PER_BYTE);
        List<int[]> pieces = new ArrayList<>();
        Matcher matcher = PRE_TOKENIZER.matcher(text);
        while (matcher.find()) {
            pieces.add(encodePiece(matcher.group(), false));
        }
        return pieces.stream().flatMapToInt(IntStream::of).toArray();
    }

    /**
     * Encodes one piece that a pre-tokenizer split off, through the same cache as {@link #encode}.
     *
     * @param piece the piece
     * @param wholeFirst whether a piece that is itself a token becomes that token without merging (Llama 3's
     *     {@code ignore_merges})
     * @return its token ids
     */
    int[] encodePiece(String piece, boolean wholeFirst) {
        if (wholeFirst) {
            StringBuilder symbols = new StringBuilder();
            for (byte b : piece.getBytes(StandardCharsets.UTF_8)) {
                symbols.append(BYTE_TO_CHAR[b & 0xFF]);
            }
            Integer id = encoder.get(symbols.toString());
            if (id != null) {
                return new int[] {id};
            }
        }
        if (piece.length() > CACHED_PIECE_LIMIT) {
            return bpe(piece); // a long piece (a run of letters without a space) seldom comes back whole
        }
        int[] ids = cache.get(piece);
        if (ids == null) {
            ids = bpe(piece);
            if (cache.size() >= CACHE_LIMIT) {
                cache.clear(); // a crude bound: the common pieces come back quickly
            }
            cache.put(piece, ids);
        }
        return ids;
    }

    /**
     * Merges one pre-tokenized piece, lowest rank first, one pair at a time, the leftmost among equals, as llama.cpp
     * and Hugging Face's tokenizers do. encoder.py merges every occurrence of that pair at once, left to right, which
     * gives the same result where every merge that uses a symbol ranks after the merge that made it, as in merge
     * lists learned by BPE (GPT-2's, and jtokkit agrees on it).
     */
    private int[] bpe(String piece) {
        byte[] bytes = piece.getBytes(StandardCharsets.UTF_8);
        int[] ids = new int[bytes.length];
        for (int i = 0; i < bytes.length; i++) {
            // A byte this vocabulary has no token for (GPT-2's own has all 256, a GGUF file's need not) is kept as
            // −1 − byte, which no merge joins.
            ids[i] = encoder.getOrDefault(String.valueOf(BYTE_TO_CHAR[bytes[i] & 0xFF]), -1 - (bytes[i] & 0xFF));
        }
        int count = TokenMerges.apply(
                ids,
                ids.length,
                (left, right) -> left < 0 || right < 0
                        ? TokenMerges.NONE
                        : merges.getOrDefault(pair(left, right), TokenMerges.NONE));
        for (int i = 0; i < count; i++) {
            if (ids[i] < 0) {
                throw new IllegalArgumentException(
                        "the text has the byte 0x%02X, which this vocabulary has no token for".formatted(-1 - ids[i]));
            }
        }
        return Arrays.copyOf(ids, count);
    }

    /**
     * Returns the bytes tokens stand for, which may end inside a UTF-8 character (for streaming output).
     *
     * @param ids the token ids
     * @return their bytes
     * @throws IllegalArgumentException if an id is out of range
     */
    public byte[] decodeBytes(int... ids) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        for (int id : ids) {
            if (id < 0 || id >= tokens.length) {
                throw new IllegalArgumentException("token id " + id + " is outside [0, " + tokens.length + ")");
            }
            String token = tokens[id];
            if (plainText.test(id)) {
                out.writeBytes(token.getBytes(StandardCharsets.UTF_8));
                continue;
            }
            for (int i = 0; i < token.length(); i++) {
                out.write(CHAR_TO_BYTE[token.charAt(i)]);
            }
        }
        return out.toByteArray();
    }

    /**
     * Decodes tokens to text; bytes that are not valid UTF-8 become U+FFFD, as {@code errors="replace"} does.
     *
     * @param ids the token ids
     * @return the text
     * @throws IllegalArgumentException if an id is out of range
     */
    public String decode(int... ids) {
        return new String(decodeBytes(ids), StandardCharsets.UTF_8);
    }
}
