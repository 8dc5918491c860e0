package dev.panamax.model.tokenizer;

import dev.panamax.model.io.AtomicFiles;
import dev.panamax.model.io.BoundedFiles;
import dev.panamax.model.io.ModelFormatException;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.BufferUnderflowException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * llama2.c's tokenizer ({@code tokenizer.bin}): a SentencePiece-style vocabulary of byte strings with scores, encoded
 * by scored BPE with byte fallback exactly as llama2.c's {@code run.c} does. The file holds an int32
 * {@code max_token_length} and then, for each token, a float32 score, an int32 length and that many bytes, all
 * little-endian; the number of tokens is not stored and comes from the model's vocabulary size. Ids 0, 1 and 2 are
 * {@code <unk>}, BOS and EOS; ids 3 to 258 are the byte-fallback tokens {@code <0x00>} to {@code <0xFF>}.
 */
public final class Llama2cTokenizer {
    /** The beginning-of-sequence token. */
    public static final int BOS = 1;

    /** The end-of-sequence token. */
    public static final int EOS = 2;

    private static final int BYTE_FALLBACK = 3; // id of <0x00>
    private static final int MAX_TOKEN_LENGTH = 1 << 16;
    private static final long MAX_FILE_BYTES = 1L << 30;
    private static final String HEX = "0123456789ABCDEF";
    private static final float MERGE_SCORE_FLOOR = -1e10f; // run.c's: pieces scored at or below it never merge
    /**
     * Heap per UTF-8 byte of the text that encoding takes: its bytes, the symbols, {@link TokenMerges}' arrays and
     * queued merges (up to three a symbol, about 40 bytes each) and the ids, with room to spare over what was measured.
     */
    private static final long HEAP_PER_BYTE = 80;

    private final byte[][] pieces;
    private final float[] scores;
    /** Piece bytes as ISO-8859-1 strings (one char per byte) → first id with those bytes, as run.c's lookup. */
    private final Map<String, Integer> ids;

    /**
     * Creates a tokenizer from its vocabulary.
     *
     * @param pieces each token's bytes, by id
     * @param scores each token's merge score, by id: the higher, the earlier BPE merges into it
     * @throws IllegalArgumentException if the lists differ in length, a score is not finite, or the vocabulary lacks
     *     the byte-fallback tokens at ids 3 to 258 or the single space that run.c prepends to the text
     */
    public Llama2cTokenizer(List<byte[]> pieces, float[] scores) {
        this(copies(pieces), scores.clone());
    }

    private static byte[][] copies(List<byte[]> pieces) {
        byte[][] copies = new byte[pieces.size()][];
        for (int id = 0; id < copies.length; id++) {
            copies[id] = pieces.get(id).clone();
        }
        return copies;
    }

    /** A tokenizer of these arrays, which it keeps: {@link #read} hands over the ones it has just filled. */
    private Llama2cTokenizer(byte[][] pieces, float[] scores) {
        if (pieces.length != scores.length) {
            throw new IllegalArgumentException(pieces.length + " pieces but " + scores.length + " scores");
        }
        this.pieces = pieces;
        this.scores = scores;
        this.ids = HashMap.newHashMap(pieces.length);
        for (int id = 0; id < this.pieces.length; id++) {
            if (!Float.isFinite(scores[id])) {
                throw new IllegalArgumentException("token " + id + " has score " + scores[id]);
            }
            if (this.pieces[id].length > MAX_TOKEN_LENGTH) {
                throw new IllegalArgumentException(
                        "token " + id + " is " + this.pieces[id].length + " bytes long, over " + MAX_TOKEN_LENGTH);
            }
            ids.putIfAbsent(key(this.pieces[id]), id);
        }
        if (this.pieces.length < BYTE_FALLBACK + 256) {
            throw new IllegalArgumentException("vocabulary of " + this.pieces.length
                    + " tokens is too small for the byte-fallback tokens at ids 3 to 258");
        }
        for (int b = 0; b < 256; b++) {
            // Built by hand: String.format, run cold 256 times, was a good part of the CLI's start-up.
            String expected = "<0x" + HEX.charAt(b >> 4) + HEX.charAt(b & 15) + ">";
            if (!key(this.pieces[BYTE_FALLBACK + b]).equals(expected)) {
                throw new IllegalArgumentException("token " + (BYTE_FALLBACK + b) + " is \""
                        + ModelFormatException.excerpt(
                                new String(this.pieces[BYTE_FALLBACK + b], StandardCharsets.UTF_8))
                        + "\", expected the byte-fallback token "
                        + expected);
            }
        }
        if (!ids.containsKey(" ")) {
            throw new IllegalArgumentException("vocabulary has no \" \" token for the dummy prefix");
        }
    }

    /**
     * Reads a {@code tokenizer.bin}.
     *
     * @param file the file
     * @param vocabSize the number of tokens, the model's vocabulary size (the file does not store it)
     * @return the tokenizer
     * @throws ModelFormatException if the file is truncated or longer than {@code vocabSize} tokens, a length is
     *     negative or over {@code max_token_length}, a score is not finite, or the byte-fallback tokens are missing
     * @throws IOException if the file cannot be read
     */
    public static Llama2cTokenizer read(Path file, int vocabSize) throws IOException {
        if (vocabSize <= 0) {
            throw new IllegalArgumentException("vocabSize " + vocabSize + " is not positive");
        }
        byte[] bytes = BoundedFiles.read(file, "llama2.c tokenizer", MAX_FILE_BYTES);
        long size = bytes.length;
        if ((size - Integer.BYTES) / 8 < vocabSize) { // each token takes at least its score and length
            throw new ModelFormatException(
                    file,
                    "truncated: " + size + " bytes cannot hold " + vocabSize
                            + " tokens, the model's vocabulary (is it this model's tokenizer?)");
        }
        ByteBuffer in = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN);
        byte[][] pieces = new byte[vocabSize][];
        float[] scores = new float[vocabSize];
        int id = 0;
        try {
            int maxLength = in.getInt();
            if (maxLength < 0 || maxLength > MAX_TOKEN_LENGTH) {
                throw new ModelFormatException(
                        file, "max_token_length " + maxLength + " is outside [0, " + MAX_TOKEN_LENGTH + "]");
            }
            for (; id < vocabSize; id++) {
                scores[id] = in.getFloat();
                int length = in.getInt();
                if (length < 0 || length > maxLength) {
                    throw new ModelFormatException(
                            file,
                            "token " + id + " has length " + length + ", outside [0, max_token_length " + maxLength
                                    + "]");
                }
                pieces[id] = new byte[length];
                in.get(pieces[id]);
            }
        } catch (BufferUnderflowException e) {
            throw new ModelFormatException(
                    file,
                    "truncated: " + size + " bytes end inside token " + id + " of " + vocabSize
                            + " (is it this model's tokenizer?)");
        }
        if (in.hasRemaining()) {
            throw new ModelFormatException(
                    file,
                    in.remaining() + " bytes after the " + vocabSize + " tokens of the model's vocabulary: a larger"
                            + " vocabulary than the model's (is it this model's tokenizer?)");
        }
        try {
            return new Llama2cTokenizer(pieces, scores);
        } catch (IllegalArgumentException e) {
            throw new ModelFormatException(file, e.getMessage(), e);
        }
    }

    /**
     * Writes this tokenizer as a {@code tokenizer.bin}, with {@code max_token_length} the longest piece's length.
     *
     * @param file the file to create or replace, atomically ({@link AtomicFiles})
     * @throws IOException if it cannot be written
     */
    public void write(Path file) throws IOException {
        int maxLength = Arrays.stream(pieces).mapToInt(p -> p.length).max().orElse(0);
        long bytes = Integer.BYTES
                + Arrays.stream(pieces).mapToLong(p -> 8L + p.length).sum();
        ByteBuffer out = ByteBuffer.allocate(Math.toIntExact(bytes)).order(ByteOrder.LITTLE_ENDIAN);
        out.putInt(maxLength);
        for (int id = 0; id < pieces.length; id++) {
            out.putFloat(scores[id]).putInt(pieces[id].length).put(pieces[id]);
        }
        AtomicFiles.replace(file, temporary -> Files.write(temporary, out.array()));
    }

    /**
     * Returns the number of tokens.
     *
     * @return the vocabulary size
     */
    public int vocabSize() {
        return pieces.length;
    }

    /**
     * Returns a token's bytes as stored, e.g. {@code " the"} or {@code "<0x0A>"}.
     *
     * @param token the id
     * @return a copy of its bytes
     * @throws IllegalArgumentException if the id is out of range
     */
    public byte[] piece(int token) {
        return pieces[check(token)].clone();
    }

    /**
     * Returns a token's merge score.
     *
     * @param token the id
     * @return its score
     * @throws IllegalArgumentException if the id is out of range
     */
    public float score(int token) {
        return scores[check(token)];
    }

    /**
     * Encodes text as run.c does: optionally BOS; a space token before non-empty text (SentencePiece's dummy
     * prefix); each UTF-8 character as its token, or its bytes as byte-fallback tokens if the vocabulary lacks it;
     * then repeatedly merges the adjacent pair whose concatenation is the best-scoring token (the leftmost among
     * equals) until no pair is a token; optionally EOS.
     *
     * @param text the text; unpaired surrogates are encoded as {@code ?}, as Java's UTF-8 encoder does
     * @param bos whether to start with BOS
     * @param eos whether to end with EOS
     * @return the token ids
     * @throws dev.panamax.model.backend.InsufficientMemoryException if the heap has no room to encode the text
     */
    public int[] encode(String text, boolean bos, boolean eos) {
        long length = EncodingHeap.utf8Bytes(text, 0, text.length(), 1);
        EncodingHeap.require("the llama2.c tokenizer", length, length * HEAP_PER_BYTE);
        byte[] bytes = text.getBytes(StandardCharsets.UTF_8);
        // The symbols form a linked list by index; a merge keeps the left one and unlinks the right (token -1).
        int[] token = new int[bytes.length + 1];
        int n = 0;
        if (!text.isEmpty()) {
            token[n++] = ids.get(" ");
        }
        for (int start = 0; start < bytes.length; ) {
            // A UTF-8 character: a lead byte and up to three continuation bytes, cut at four as run.c does.
            int end = start + 1;
            while (end < bytes.length && (bytes[end] & 0xC0) == 0x80 && end - start < 4) {
                end++;
            }
            Integer id = ids.get(new String(bytes, start, end - start, StandardCharsets.ISO_8859_1));
            if (id != null) {
                token[n++] = id;
            } else {
                for (int i = start; i < end; i++) {
                    token[n++] = BYTE_FALLBACK + (bytes[i] & 0xFF);
                }
            }
            start = end;
        }
        // run.c rescans every pair for each merge; TokenMerges gives the same result: best score first, leftmost among
        // equals.
        int count = TokenMerges.apply(token, n, this::merge);
        int[] result = new int[count + (bos ? 1 : 0) + (eos ? 1 : 0)];
        int r = 0;
        if (bos) {
            result[r++] = BOS;
        }
        System.arraycopy(token, 0, result, r, count);
        if (eos) {
            result[r + count] = EOS;
        }
        return result;
    }

    /** Two adjacent tokens' merge, if their concatenation is a token scored above run.c's floor; by score. */
    private long merge(int left, int right) {
        Integer merged = ids.get(key(pieces[left]) + key(pieces[right]));
        return merged != null && scores[merged] > MERGE_SCORE_FLOOR
                ? TokenMerges.merge(scores[merged], merged)
                : TokenMerges.NONE;
    }

    /**
     * Returns the bytes a token stands for when it follows another, as run.c decodes: a byte-fallback token
     * {@code <0xXX>} is that byte, and a leading space is dropped right after BOS (it is the dummy prefix).
     *
     * @param previous the token before, or -1 if none
     * @param token the token
     * @return its bytes, possibly part of a UTF-8 character that continues in the next token
     * @throws IllegalArgumentException if the token is out of range
     */
    public byte[] decode(int previous, int token) {
        byte[] piece = pieces[check(token)];
        if (token >= BYTE_FALLBACK && token < BYTE_FALLBACK + 256) {
            return new byte[] {(byte) (token - BYTE_FALLBACK)};
        }
        if (previous == BOS && piece.length > 0 && piece[0] == ' ') {
            return Arrays.copyOfRange(piece, 1, piece.length);
        }
        return piece.clone();
    }

    /**
     * Decodes tokens to text: their bytes as {@link #decode(int, int)} gives them, read as UTF-8 (malformed bytes
     * become U+FFFD). BOS and EOS mark the sequence's ends and stand for no text.
     *
     * @param tokens the token ids
     * @return the text
     * @throws IllegalArgumentException if a token is out of range
     */
    public String decode(int... tokens) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        for (int i = 0; i < tokens.length; i++) {
            if (tokens[i] != BOS && tokens[i] != EOS) {
                out.writeBytes(decode(i == 0 ? -1 : tokens[i - 1], tokens[i]));
            }
        }
        return out.toString(StandardCharsets.UTF_8);
    }

    private int check(int token) {
        if (token < 0 || token >= pieces.length) {
            throw new IllegalArgumentException("token id " + token + " is outside [0, " + pieces.length + ")");
        }
        return token;
    }

    private static String key(byte[] piece) {
        return new String(piece, StandardCharsets.ISO_8859_1);
    }
}
