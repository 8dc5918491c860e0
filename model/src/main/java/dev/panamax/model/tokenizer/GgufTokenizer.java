package dev.panamax.model.tokenizer;

import dev.panamax.model.io.BoundedFiles;
import dev.panamax.model.io.GgufFile;
import dev.panamax.model.io.GgufValue;
import dev.panamax.model.io.ModelFormatException;
import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.BitSet;
import java.util.Collections;
import java.util.Comparator;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.IntStream;

/**
 * The tokenizer a GGUF file carries in its metadata ({@code tokenizer.ggml.*}), encoding as llama.cpp does:
 *
 * <ul>
 *   <li>{@code llama}: a SentencePiece-style vocabulary of pieces with scores, spaces written as {@code ▁}: a space is
 *       prepended to text that starts the input or follows a special token ({@code add_space_prefix}, on by
 *       default), each character is a symbol, adjacent symbols whose concatenation is a piece merge best score first
 *       (the leftmost among equals), and a symbol that is not a piece becomes its bytes' {@code <0xXX>} tokens.
 *   <li>{@code gpt2}: byte-level BPE with the file's merges, after the pre-tokenizer {@code tokenizer.ggml.pre}
 *       names ({@code default}, {@code gpt-2} and the same {@code phi-2} and {@code olmo}, {@code
 *       llama-bpe} for Llama 3, {@code smollm}, {@code starcoder}, {@code refact}), each a list of regular
 *       expressions applied in turn as llama.cpp lists them.
 * </ul>
 *
 * Before either, the text is split at special tokens (control, user-defined and unknown tokens, longest first) when
 * asked to parse them; BOS is prepended where the file says ({@code add_bos_token}; by default for {@code llama} and
 * {@code llama-bpe}, as llama.cpp has it) and EOS appended where it says ({@code add_eos_token}). A {@code llama}
 * vocabulary may repeat a piece, which then encodes to its last id (every id still decodes to its own text); a {@code
 * gpt2} one may not.
 */
public final class GgufTokenizer {
    private static final int NORMAL = 1;
    private static final int UNKNOWN = 2;
    private static final int CONTROL = 3;
    private static final int USER_DEFINED = 4;
    private static final int BYTE = 6;
    private static final String SPACE = "▁";
    private static final int MAX_VOCABULARY = 1 << 22;
    /**
     * Heap per UTF-8 byte of the text that encoding takes beside the working arrays of the merges: the fragments
     * between special tokens (UTF-16, up to 2 bytes a byte), one of them with {@code ▁} for spaces (as many again),
     * and the ids (up to one a byte, in an array that grows by doubling: 12 bytes a byte).
     */
    private static final long TEXT_HEAP_PER_BYTE = 16;
    /**
     * Heap per UTF-8 byte of one SentencePiece run: its bytes, symbols and spans, and {@link TokenMerges}' arrays
     * and queued merges (up to three a symbol, about 40 bytes each), with room to spare over what a run was measured
     * to take.
     */
    private static final long SENTENCE_PIECE_HEAP_PER_BYTE = 96;
    /** The chat formats' end-of-turn tokens llama.cpp stops at by their spelling. */
    private static final List<String> END_OF_TURN = List.of(
            "<|eot_id|>",
            "<|im_end|>",
            "<|end|>",
            "<end_of_turn>",
            "<|endoftext|>",
            "<|eom_id|>",
            "<EOT>",
            "_<EOT>",
            "<|end_of_text|>");

    private static final Pattern GPT2 =
            pattern("'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)");
    private static final Pattern LLAMA3 = pattern(
            "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])"
                    + "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+");
    private static final Pattern DIGIT = pattern("\\p{N}");
    private static final Pattern PUNCTUATION = pattern("[\\p{P}\\$\\+<=>\\^~\\|]+");
    private static final Pattern NUMBERS = pattern("\\p{N}+");
    private static final Pattern THREE_DIGITS = pattern("[0-9][0-9][0-9]");

    private final boolean sentencePiece;
    private final String[] tokens;
    private final float[] scores;
    private final int[] types;
    private final Map<String, Integer> ids = new HashMap<>();
    private final int[] byteTokens = new int[256];
    /** The special tokens in the order they split text: longest (in UTF-8 bytes) first, then by id. */
    private final List<Integer> specials;
    /**
     * The ranks in {@link #specials} of the special tokens that encoding with special tokens parsed matches, and of
     * the user-defined ones it always matches, sorted by their text, so that narrowing a range of them by binary
     * search character by character finds every one that starts at a position of a text.
     */
    private final int[] specialsByText;

    private final int[] userDefinedByText;
    private final Optional<Integer> bos;
    private final Optional<Integer> eos;
    private final Set<Integer> endOfGeneration;
    private final int unknown;
    private final boolean addBos;
    private final boolean addEos;
    private final boolean addSpacePrefix;
    private final Gpt2Tokenizer bpe;
    private final List<Pattern> preTokenizer;
    private final boolean ignoreMerges;
    /** For SentencePiece: the characters some piece of two or more characters holds; the others never merge. */
    private final BitSet joined = new BitSet();

    private GgufTokenizer(GgufFile gguf) throws ModelFormatException {
        String model = gguf.string("tokenizer.ggml.model");
        sentencePiece = model.equals("llama");
        if (!sentencePiece && !model.equals("gpt2")) {
            throw new ModelFormatException(
                    gguf.file(),
                    "tokenizer.ggml.model \"" + ModelFormatException.excerpt(model)
                            + "\" is not supported; only \"llama\" and \"gpt2\" are");
        }
        tokens = (String[]) gguf.array("tokenizer.ggml.tokens", GgufValue.Type.STRING);
        int n = tokens.length;
        if (n < 1 || n > MAX_VOCABULARY) {
            throw new ModelFormatException(
                    gguf.file(), "tokenizer.ggml.tokens has " + n + " tokens, not 1 to " + MAX_VOCABULARY);
        }
        scores = gguf.metadata().containsKey("tokenizer.ggml.scores")
                ? (float[]) gguf.array("tokenizer.ggml.scores", GgufValue.Type.FLOAT32)
                : new float[n];
        types = new int[n];
        Arrays.fill(types, NORMAL);
        if (gguf.metadata().containsKey("tokenizer.ggml.token_type")) {
            long[] t = (long[]) gguf.array("tokenizer.ggml.token_type", GgufValue.Type.INT32);
            sameLength(gguf, "tokenizer.ggml.token_type", t.length, n);
            for (int i = 0; i < n; i++) {
                types[i] = (int) t[i];
            }
        }
        sameLength(gguf, "tokenizer.ggml.scores", scores.length, n);
        for (int id = 0; id < n && sentencePiece; id++) {
            if (Float.isNaN(scores[id])) {
                // NaN would order SentencePiece's merges by the queue's accident, not by score.
                throw new ModelFormatException(gguf.file(), "tokenizer.ggml.scores[" + id + "] is NaN");
            }
        }
        for (int id = 0; id < n; id++) {
            if (types[id] == BYTE && !tokens[id].matches("<0x[0-9A-Fa-f]{2}>")) {
                throw new ModelFormatException(
                        gguf.file(),
                        "token " + id + " \"" + ModelFormatException.excerpt(tokens[id])
                                + "\" has the byte type but is not <0xXX>");
            }
        }
        for (int id = 0; id < n; id++) {
            ids.put(tokens[id], id); // llama.cpp's map: a repeated piece resolves to its last id
        }
        bos = tokenId(gguf, "tokenizer.ggml.bos_token_id", n);
        eos = tokenId(gguf, "tokenizer.ggml.eos_token_id", n);
        unknown = tokenId(gguf, "tokenizer.ggml.unknown_token_id", n).orElse(-1);
        Set<Integer> endings = new TreeSet<>();
        eos.ifPresent(endings::add);
        tokenId(gguf, "tokenizer.ggml.eot_token_id", n).ifPresent(endings::add);
        tokenId(gguf, "tokenizer.ggml.eom_token_id", n).ifPresent(endings::add);
        for (String ending : END_OF_TURN) {
            Integer id = ids.get(ending);
            if (id != null) {
                endings.add(id);
            }
        }
        endOfGeneration = Collections.unmodifiableSet(endings);
        addEos = flag(gguf, "tokenizer.ggml.add_eos_token", false) && eos.isPresent();
        addSpacePrefix = flag(gguf, "tokenizer.ggml.add_space_prefix", sentencePiece);
        List<Integer> special = new ArrayList<>();
        for (int id = 0; id < n; id++) {
            if ((types[id] == CONTROL || types[id] == USER_DEFINED || types[id] == UNKNOWN) && !tokens[id].isEmpty()) {
                special.add(id);
            }
        }
        special.sort(Comparator.comparingInt((Integer id) -> tokens[id].getBytes(StandardCharsets.UTF_8).length)
                .reversed());
        specials = List.copyOf(special);
        specialsByText = byText(IntStream.range(0, specials.size()));
        userDefinedByText =
                byText(IntStream.range(0, specials.size()).filter(rank -> types[specials.get(rank)] == USER_DEFINED));
        if (sentencePiece) {
            for (int b = 0; b < 256; b++) {
                byteTokens[b] = ids.getOrDefault("<0x%02X>".formatted(b), unknown);
            }
            for (String token : tokens) {
                if (token.codePointCount(0, token.length()) > 1) {
                    token.codePoints().forEach(joined::set);
                }
            }
            bpe = null;
            preTokenizer = List.of();
            ignoreMerges = false;
        } else {
            String[] merges = (String[]) gguf.array("tokenizer.ggml.merges", GgufValue.Type.STRING);
            List<String[]> pairs = new ArrayList<>(merges.length);
            for (int i = 0; i < merges.length; i++) {
                int space = merges[i].indexOf(' ', 1);
                if (space < 0) {
                    throw new ModelFormatException(
                            gguf.file(),
                            "tokenizer.ggml.merges[" + i + "] \"" + ModelFormatException.excerpt(merges[i])
                                    + "\" is not two symbols separated by a space");
                }
                pairs.add(new String[] {merges[i].substring(0, space), merges[i].substring(space + 1)});
            }
            if (ids.size() < n) {
                throw new ModelFormatException(
                        gguf.file(),
                        "tokenizer.ggml.tokens" + firstRepeat() + ": a byte-level"
                                + " vocabulary maps each piece to one id");
            }
            Map<String, Integer> encoder = new HashMap<>(ids);
            try {
                // llama.cpp matches and prints every token but the normal ones (control, user-defined, unknown,
                // unused) as written, outside GPT-2's byte alphabet, which has no space and few letters beyond Latin-1.
                int[] tokenTypes = types;
                bpe = new Gpt2Tokenizer(encoder, pairs, id -> tokenTypes[id] != NORMAL);
            } catch (IllegalArgumentException e) {
                throw new ModelFormatException(gguf.file(), "the gpt2 vocabulary: " + e.getMessage(), e);
            }
            String pre =
                    gguf.metadata().containsKey("tokenizer.ggml.pre") ? gguf.string("tokenizer.ggml.pre") : "default";
            preTokenizer = switch (pre) {
                case "default" -> List.of(PUNCTUATION, GPT2, NUMBERS, THREE_DIGITS);
                case "gpt-2", "phi-2", "olmo" -> List.of(GPT2);
                case "llama-bpe", "llama3", "llama-v3" -> List.of(LLAMA3);
                case "smollm", "starcoder", "refact" -> List.of(DIGIT, GPT2);
                default ->
                    throw new ModelFormatException(
                            gguf.file(),
                            "tokenizer.ggml.pre \"" + ModelFormatException.excerpt(pre) + "\" is not supported; only"
                                    + " default, gpt-2, phi-2, olmo, llama-bpe (llama3), smollm, starcoder and"
                                    + " refact are");
            };
            ignoreMerges = preTokenizer.contains(LLAMA3);
        }
        // llama.cpp adds BOS by default for SentencePiece and for Llama 3's pre-tokenizer, before reading the key.
        addBos = flag(gguf, "tokenizer.ggml.add_bos_token", sentencePiece || preTokenizer.contains(LLAMA3))
                && bos.isPresent();
    }

    /** {@code [i] repeats [j] "piece"} for the first token whose piece an earlier one has. */
    private String firstRepeat() {
        Map<String, Integer> first = new HashMap<>();
        for (int id = 0; id < tokens.length; id++) {
            Integer earlier = first.putIfAbsent(tokens[id], id);
            if (earlier != null) {
                return "[" + id + "] repeats [" + earlier + "] \"" + ModelFormatException.excerpt(tokens[id]) + "\"";
            }
        }
        throw new IllegalStateException("no repeated token");
    }

    private static Pattern pattern(String regex) {
        return Pattern.compile(regex, Pattern.UNICODE_CHARACTER_CLASS);
    }

    private static void sameLength(GgufFile gguf, String key, int length, int tokens) throws ModelFormatException {
        if (length != tokens) {
            throw new ModelFormatException(
                    gguf.file(),
                    key + " has " + length + " entries for " + tokens + " tokens in tokenizer.ggml.tokens");
        }
    }

    private static Optional<Integer> tokenId(GgufFile gguf, String key, int n) throws ModelFormatException {
        return gguf.metadata().containsKey(key) ? Optional.of((int) gguf.integer(key, 0, n - 1)) : Optional.empty();
    }

    private static boolean flag(GgufFile gguf, String key, boolean otherwise) throws ModelFormatException {
        GgufValue value = gguf.metadata().get(key);
        if (value == null) {
            return otherwise;
        }
        if (!(value.value() instanceof Boolean b)) {
            throw new ModelFormatException(
                    gguf.file(), "metadata \"" + key + "\" is a " + value.type() + ", not a bool");
        }
        return b;
    }

    /**
     * Reads the tokenizer from a GGUF file's metadata.
     *
     * @param gguf the open file
     * @return the tokenizer
     * @throws ModelFormatException if the tokenizer metadata is missing, of an unsupported kind, or inconsistent
     */
    public static GgufTokenizer read(GgufFile gguf) throws ModelFormatException {
        return new GgufTokenizer(gguf);
    }

    /**
     * The {@code tokenizer.ggml.*} metadata of a llama2.c vocabulary, as llama.cpp's llama2.c converter writes it: a
     * {@code llama} vocabulary whose pieces have {@code ▁} for space, id 0 the unknown token {@code <unk>}, 1 and 2 the
     * control tokens {@code <s>} and {@code </s>} (BOS and EOS), the {@code <0xXX>} pieces byte tokens.
     *
     * @param tokenizer the vocabulary
     * @return the metadata, in the order to write it
     * @throws IllegalArgumentException if a piece is not valid UTF-8
     */
    public static Map<String, GgufValue> metadata(Llama2cTokenizer tokenizer) {
        int n = tokenizer.vocabSize();
        String[] pieces = new String[n];
        float[] scores = new float[n];
        int[] types = new int[n];
        for (int id = 0; id < n; id++) {
            String piece;
            try {
                piece = BoundedFiles.decodeUtf8(tokenizer.piece(id), "llama2.c token " + id);
            } catch (ModelFormatException e) {
                throw new IllegalArgumentException(e.getMessage(), e);
            }
            types[id] = id == 0 ? UNKNOWN : id <= 2 ? CONTROL : piece.matches("<0x[0-9A-F]{2}>") ? BYTE : NORMAL;
            pieces[id] = id == 0 ? "<unk>" : id == 1 ? "<s>" : id == 2 ? "</s>" : piece.replace(" ", SPACE);
            scores[id] = tokenizer.score(id);
        }
        Map<String, GgufValue> m = new LinkedHashMap<>();
        m.put("tokenizer.ggml.model", GgufValue.of("llama"));
        m.put("tokenizer.ggml.tokens", GgufValue.of(pieces));
        m.put("tokenizer.ggml.scores", GgufValue.of(scores));
        m.put("tokenizer.ggml.token_type", GgufValue.of(types));
        m.put("tokenizer.ggml.unknown_token_id", GgufValue.uint32(0));
        m.put("tokenizer.ggml.bos_token_id", GgufValue.uint32(Llama2cTokenizer.BOS));
        m.put("tokenizer.ggml.eos_token_id", GgufValue.uint32(Llama2cTokenizer.EOS));
        return m;
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
     * Returns the beginning-of-sequence token, if the file names one.
     *
     * @return its id
     */
    public Optional<Integer> bos() {
        return bos;
    }

    /**
     * Returns the token {@link #encode} puts before a text when it adds special tokens: BOS where the file says to add
     * it ({@code tokenizer.ggml.add_bos_token}, or llama.cpp's default for the vocabulary), as llama.cpp's perplexity
     * starts each window with it.
     *
     * @return BOS, or empty where none is added
     */
    public Optional<Integer> addedBos() {
        return addBos ? bos : Optional.empty();
    }

    /**
     * Returns the tokens that end a generation, as llama.cpp stops at them: the end-of-sequence, end-of-turn and
     * end-of-message tokens the file names ({@code eos_token_id}, {@code eot_token_id}, {@code eom_token_id}) and any
     * token spelled as a chat format's end of turn ({@code <|eot_id|>}, {@code <|im_end|>}, {@code <end_of_turn>}, …),
     * which an instruct model's file may not name: a Llama 3 Instruct file's EOS is {@code <|end_of_text|>}, while
     * its turns end with {@code <|eot_id|>}.
     *
     * @return the token ids, possibly none
     */
    public Set<Integer> endOfGeneration() {
        return endOfGeneration;
    }

    /**
     * Returns the end-of-sequence token, if the file names one.
     *
     * @return its id
     */
    public Optional<Integer> eos() {
        return eos;
    }

    /**
     * Returns the most bytes one token stands for.
     *
     * @return the length of the longest piece in bytes, at least 1
     */
    public int longestPiece() {
        int longest = 1;
        for (String token : tokens) {
            longest = Math.max(longest, token.getBytes(StandardCharsets.UTF_8).length);
        }
        return longest;
    }

    /**
     * Encodes text as llama.cpp's {@code llama_tokenize} does.
     *
     * @param text the text
     * @param addSpecial whether to prepend BOS and append EOS where the file asks for them ({@code
     *     tokenizer.ggml.add_bos_token}, by default for SentencePiece and Llama 3's pre-tokenizer; {@code add_eos_token})
     * @param parseSpecial whether special tokens written in the text ({@code <s>}, {@code <|endoftext|>}, …) become
     *     their ids; user-defined tokens always do
     * @return the token ids
     * @throws dev.panamax.model.backend.InsufficientMemoryException if the heap has no room to encode the text
     */
    public int[] encode(String text, boolean addSpecial, boolean parseSpecial) {
        List<Object> fragments = splitAtSpecials(text, parseSpecial);
        requireHeap(fragments);
        IdList out = new IdList();
        if (addSpecial && addBos) {
            out.add(bos.get());
        }
        boolean previousSpecial = true;
        for (Object fragment : fragments) {
            if (fragment instanceof Integer id) {
                out.add(id);
                previousSpecial = true;
            } else if (sentencePiece) {
                String raw = ((addSpacePrefix && previousSpecial ? " " : "") + fragment).replace(" ", SPACE);
                // A character that never merges ends what merges can reach: the text either side of it encodes alone,
                // to the same ids, in working arrays the size of a segment rather than of the whole text.
                for (int from = 0, to; from < raw.length(); from = to) {
                    to = segmentEnd(raw, from);
                    sentencePiece(raw.substring(from, to), out);
                }
                previousSpecial = false;
            } else {
                for (String piece : preTokenize((String) fragment)) {
                    for (int id : bpe.encodePiece(piece, ignoreMerges)) {
                        out.add(id);
                    }
                }
            }
        }
        if (addSpecial && addEos) {
            out.add(eos.get());
        }
        return out.toArray();
    }

    private int[] byText(IntStream ranks) {
        return ranks.boxed()
                .sorted(Comparator.comparing(rank -> tokens[specials.get(rank)]))
                .mapToInt(Integer::intValue)
                .toArray();
    }

    /**
     * Splits text at special tokens as llama.cpp does: each special token in turn ({@link #specials}' order) takes
     * its leftmost occurrences in the text that those before it left. Done in one pass over the text, not one a
     * special token: every occurrence of every special token is found, then they are taken in that order, each unless
     * one taken before overlaps it.
     *
     * @return the text between special tokens (Strings, none empty) and the special tokens' ids (Integers), in order
     */
    List<Object> splitAtSpecials(String text, boolean parseSpecial) {
        int[] byText = parseSpecial ? specialsByText : userDefinedByText;
        long[] count = {0};
        forEachSpecial(text, byText, (rank, start) -> count[0]++);
        // Counted first so that a text full of special tokens is refused, not an OutOfMemoryError, and sized exactly.
        EncodingHeap.require(
                "the GGUF file's special tokens",
                EncodingHeap.utf8Bytes(text, 0, text.length(), 1),
                count[0] > Integer.MAX_VALUE - 8 ? Long.MAX_VALUE : Long.BYTES * count[0]);
        long[] found = new long[(int) count[0]];
        int[] size = {0};
        forEachSpecial(text, byText, (rank, start) -> found[size[0]++] = (long) rank << 32 | start);
        Arrays.sort(found); // by rank, then by start: the order the special tokens take their occurrences in
        BitSet taken = new BitSet(text.length());
        int kept = 0;
        for (long occurrence : found) {
            int rank = (int) (occurrence >>> 32);
            int start = (int) occurrence;
            int end = start + tokens[specials.get(rank)].length();
            int overlap = start;
            while (overlap < end && !taken.get(overlap)) {
                overlap++;
            }
            if (overlap == end) {
                taken.set(start, end);
                found[kept++] = (long) start << 32 | rank;
            }
        }
        Arrays.sort(found, 0, kept); // the kept occurrences, by start
        List<Object> fragments = new ArrayList<>();
        int from = 0;
        for (int k = 0; k < kept; k++) {
            int start = (int) (found[k] >>> 32);
            int special = specials.get((int) found[k]);
            if (start > from) {
                fragments.add(text.substring(from, start));
            }
            fragments.add(special);
            from = start + tokens[special].length();
        }
        if (from < text.length()) {
            fragments.add(text.substring(from));
        }
        return fragments;
    }

    /** Where a special token occurs in a text: its rank in {@link #specials} and its first char. */
    private interface Occurrence {
        void at(int rank, int start);
    }

    /**
     * Hands every occurrence in {@code text} of the special tokens {@code byText} lists to {@code occurrence}: at each
     * position, the range of those that match the text so far narrows one character at a time, and those that end
     * there, the first of the range, occur.
     */
    private void forEachSpecial(String text, int[] byText, Occurrence occurrence) {
        for (int at = 0; at < text.length() && byText.length > 0; at++) {
            int lo = 0;
            int hi = byText.length;
            for (int depth = 0; lo < hi; depth++) {
                while (lo < hi && tokens[specials.get(byText[lo])].length() == depth) {
                    occurrence.at(byText[lo++], at);
                }
                if (lo == hi || at + depth == text.length()) {
                    break;
                }
                char c = text.charAt(at + depth);
                lo = firstFrom(byText, lo, hi, depth, c);
                hi = firstFrom(byText, lo, hi, depth, c + 1);
            }
        }
    }

    /** The first in {@code byText[lo, hi)}, all longer than {@code depth}, whose char at {@code depth} is >= c. */
    private int firstFrom(int[] byText, int lo, int hi, int depth, int c) {
        while (lo < hi) {
            int mid = (lo + hi) >>> 1;
            if (tokens[specials.get(byText[mid])].charAt(depth) < c) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        return lo;
    }

    /**
     * Refuses a text whose encoding the heap has no room for, before any of it is encoded: the text's own copies and
     * ids, and the merges' working arrays, which for SentencePiece are those of its largest segment.
     */
    private void requireHeap(List<Object> fragments) {
        int spaceBytes = sentencePiece ? SPACE.getBytes(StandardCharsets.UTF_8).length : 1;
        long total = 0;
        long largest = 0;
        for (Object fragment : fragments) {
            if (fragment instanceof String raw) {
                total += EncodingHeap.utf8Bytes(raw, 0, raw.length(), spaceBytes);
                for (int from = 0, to; sentencePiece && from < raw.length(); from = to) {
                    to = segmentEnd(raw, from);
                    largest = Math.max(largest, spaceBytes + EncodingHeap.utf8Bytes(raw, from, to, spaceBytes));
                }
            }
        }
        long merges = sentencePiece ? largest * SENTENCE_PIECE_HEAP_PER_BYTE : total * Gpt2Tokenizer.HEAP_PER_BYTE;
        EncodingHeap.require(
                "the GGUF file's " + (sentencePiece ? "llama" : "gpt2") + " tokenizer",
                total,
                total * TEXT_HEAP_PER_BYTE + merges);
    }

    /**
     * Where the SentencePiece segment that starts at {@code from} ends: right after a character that never merges,
     * else before the next such character.
     */
    private int segmentEnd(String text, int from) {
        int c = text.codePointAt(from);
        int at = from + Character.charCount(c);
        if (neverMerges(c)) {
            return at;
        }
        while (at < text.length() && !neverMerges(c = text.codePointAt(at))) {
            at += Character.charCount(c);
        }
        return at;
    }

    /**
     * Whether no piece of two or more characters holds {@code c} (a space as {@code ▁}), so that it merges with
     * nothing; a lone surrogate, which UTF-8 writes as {@code ?}, is not taken for one.
     */
    private boolean neverMerges(int c) {
        return !joined.get(c == ' ' ? SPACE.codePointAt(0) : c)
                && !(c >= Character.MIN_SURROGATE && c <= Character.MAX_SURROGATE);
    }

    /** Splits text by each regex in turn, as llama.cpp's {@code unicode_regex_split}: matches and the gaps between. */
    private List<String> preTokenize(String text) {
        List<String> pieces = List.of(text);
        for (Pattern pattern : preTokenizer) {
            List<String> split = new ArrayList<>();
            for (String piece : pieces) {
                Matcher m = pattern.matcher(piece);
                int from = 0;
                while (m.find()) {
                    if (m.start() > from) {
                        split.add(piece.substring(from, m.start()));
                    }
                    if (m.end() > m.start()) {
                        split.add(m.group());
                    }
                    from = m.end();
                }
                if (from < piece.length()) {
                    split.add(piece.substring(from));
                }
            }
            pieces = split;
        }
        return pieces;
    }

    /**
     * llama.cpp's SentencePiece session: characters, best-scoring merges (the leftmost among equals), then pieces or
     * byte tokens. The symbols {@link TokenMerges} merges are spans of the text's bytes, numbered as they are made,
     * since a character need not be a token although a merge of characters must be.
     */
    private void sentencePiece(String text, IdList out) {
        byte[] bytes = text.getBytes(StandardCharsets.UTF_8);
        Spans spans = new Spans();
        int[] symbols = new int[bytes.length];
        int n = 0;
        for (int at = 0; at < bytes.length; ) {
            int lead = (bytes[at] & 0xFF) >>> 4;
            int length = Math.min(bytes.length - at, lead < 12 ? 1 : lead < 14 ? 2 : lead == 14 ? 3 : 4);
            symbols[n++] = spans.add(at, length);
            at += length;
        }
        n = TokenMerges.apply(symbols, n, (left, right) -> {
            int start = spans.start(left);
            int length = spans.length(left) + spans.length(right);
            Integer id = ids.get(new String(bytes, start, length, StandardCharsets.UTF_8));
            return id == null ? TokenMerges.NONE : TokenMerges.merge(scores[id], spans.add(start, length));
        });
        for (int i = 0; i < n; i++) {
            int start = spans.start(symbols[i]);
            int length = spans.length(symbols[i]);
            Integer id = ids.get(new String(bytes, start, length, StandardCharsets.UTF_8));
            if (id != null) {
                out.add(id);
            } else {
                for (int j = start; j < start + length; j++) {
                    int b = byteTokens[bytes[j] & 0xFF];
                    if (b < 0) {
                        throw new IllegalArgumentException(
                                "the text has the byte 0x%02X, which the vocabulary has no".formatted(bytes[j] & 0xFF)
                                        + " token for (no <0xXX> token and no unknown token)");
                    }
                    out.add(b);
                }
            }
        }
    }

    /** Spans of a text's bytes, numbered from 0 in the order they are added. */
    private static final class Spans {
        private final IdList starts = new IdList();
        private final IdList lengths = new IdList();

        int add(int start, int length) {
            starts.add(start);
            lengths.add(length);
            return starts.size - 1;
        }

        int start(int span) {
            return starts.ids[span];
        }

        int length(int span) {
            return lengths.ids[span];
        }
    }

    /**
     * Returns the bytes a token stands for when it follows another, as llama.cpp prints a generation (special tokens
     * not rendered): a normal {@code llama} piece with {@code ▁} as space (a leading space dropped right after BOS, as
     * llama2.c prints), a byte token as its byte, a normal gpt2 token through the byte alphabet, a user-defined token
     * as written; control, unknown and unused tokens (and types the format does not define) stand for nothing.
     *
     * @param previous the token before, or -1
     * @param token the token
     * @return its bytes, possibly part of a UTF-8 character
     * @throws IllegalArgumentException if the token is out of range
     */
    public byte[] decode(int previous, int token) {
        if (token < 0 || token >= tokens.length) {
            throw new IllegalArgumentException("token id " + token + " is outside [0, " + tokens.length + ")");
        }
        int type = types[token];
        if (type != NORMAL && type != USER_DEFINED && type != BYTE) {
            return new byte[0];
        }
        if (!sentencePiece) {
            return bpe.decodeBytes(token);
        }
        if (type == USER_DEFINED) {
            return tokens[token].getBytes(StandardCharsets.UTF_8);
        }
        if (type == BYTE) {
            return new byte[] {(byte) Integer.parseInt(tokens[token].substring(3, 5), 16)};
        }
        String text = tokens[token].replace(SPACE, " ");
        if (bos.isPresent() && previous == bos.get() && text.startsWith(" ")) {
            text = text.substring(1);
        }
        return text.getBytes(StandardCharsets.UTF_8);
    }

    /**
     * Decodes tokens to text (malformed UTF-8 becomes U+FFFD).
     *
     * @param ids the tokens
     * @return the text
     */
    public String decode(int... ids) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        for (int i = 0; i < ids.length; i++) {
            out.writeBytes(decode(i == 0 ? -1 : ids[i - 1], ids[i]));
        }
        return out.toString(StandardCharsets.UTF_8);
    }

    /** A growing list of ids. */
    private static final class IdList {
        private int[] ids = new int[16];
        private int size;

        void add(int id) {
            if (size == ids.length) {
                ids = Arrays.copyOf(ids, 2 * size);
            }
            ids[size++] = id;
        }

        int[] toArray() {
            return Arrays.copyOf(ids, size);
        }
    }
}
