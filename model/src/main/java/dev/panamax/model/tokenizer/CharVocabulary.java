package dev.panamax.model.tokenizer;

import dev.panamax.model.io.AtomicFiles;
import dev.panamax.model.io.BoundedFiles;
import dev.panamax.model.io.ModelFormatException;
import dev.panamax.model.json.Json;
import dev.panamax.model.json.JsonFields;
import dev.panamax.model.json.JsonValue;
import dev.panamax.model.json.JsonValue.JsonArray;
import dev.panamax.model.json.JsonValue.JsonNumber;
import dev.panamax.model.json.JsonValue.JsonObject;
import dev.panamax.model.json.JsonValue.JsonString;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A character-level vocabulary: token {@code i} is the {@code i}-th distinct Unicode code point of a corpus in
 * ascending order. Built from the training text, stored beside the model as {@value #FILE}.
 */
public final class CharVocabulary {
    /** The file name a model directory stores the vocabulary under. */
    public static final String FILE = "chars.json";

    /** Code points, ascending; the token id is the index. */
    private final int[] codePoints;

    private CharVocabulary(int[] codePoints) {
        this.codePoints = codePoints;
    }

    /**
     * The vocabulary of a text: every code point it uses.
     *
     * @param text the corpus
     * @return the vocabulary
     * @throws IllegalArgumentException if the text is empty or holds a lone UTF-16 surrogate, which {@link #read} would
     *     refuse in the written file
     */
    public static CharVocabulary of(String text) {
        if (text.isEmpty()) {
            throw new IllegalArgumentException("text is empty: a character vocabulary needs at least one character");
        }
        int[] codePoints = text.codePoints().distinct().sorted().toArray();
        for (int c : codePoints) {
            if (Character.getType(c) == Character.SURROGATE) {
                throw new IllegalArgumentException(
                        "text holds the lone UTF-16 surrogate U+%04X, not a character (at index %d)"
                                .formatted(c, text.indexOf(c)));
            }
        }
        return new CharVocabulary(codePoints);
    }

    /**
     * Reads a vocabulary written by {@link #write}.
     *
     * @param file the file
     * @return the vocabulary
     * @throws ModelFormatException if the file is not a list of distinct ascending code points
     * @throws IOException if it cannot be read
     */
    public static CharVocabulary read(Path file) throws IOException {
        return BoundedFiles.readJson(file, text -> {
            JsonFields fields = JsonFields.of(file, Json.parse(text, file, Json.Limits.DEFAULT));
            if (!fields.string("type").equals("chars")) {
                throw fields.error(
                        "type", "\"" + ModelFormatException.excerpt(fields.string("type")) + "\" is not \"chars\"");
            }
            long[] values = fields.integers("code_points", 0, Character.MAX_CODE_POINT);
            if (values.length == 0) {
                throw fields.error("code_points", "is empty");
            }
            int[] codePoints = new int[values.length];
            for (int i = 0; i < values.length; i++) {
                codePoints[i] = (int) values[i];
                if (i > 0 && codePoints[i] <= codePoints[i - 1]) {
                    throw fields.error(
                            "code_points", "element " + i + " (" + codePoints[i] + ") is not above the one before");
                }
                if (Character.getType(codePoints[i]) == Character.SURROGATE) {
                    // Text never holds a lone surrogate as a character: such a token could only decode to '?'.
                    throw fields.error(
                            "code_points",
                            "element " + i + " (" + codePoints[i] + ") is a UTF-16 surrogate, not a character");
                }
            }
            return new CharVocabulary(codePoints);
        });
    }

    /**
     * Checks that this vocabulary is the right size for a model, as a loader should before generating: a larger one
     * encodes ids the model has no embedding for, a smaller one cannot decode every id the model may choose.
     *
     * @param modelVocabSize the model's vocabulary size
     * @param file this vocabulary's file, for the message
     * @param model the model's file, for the message
     * @throws ModelFormatException if the sizes differ, naming both and both files
     */
    public void requireVocabularySize(int modelVocabSize, Path file, Path model) throws ModelFormatException {
        VocabularySize.require("character vocabulary", codePoints.length, modelVocabSize, file, model);
    }

    /**
     * Writes the vocabulary as JSON, replacing the file atomically ({@link AtomicFiles}).
     *
     * @param file the file
     * @throws IOException if it cannot be written
     */
    public void write(Path file) throws IOException {
        List<JsonValue> points = new ArrayList<>();
        for (int c : codePoints) {
            points.add(JsonNumber.of(c));
        }
        Map<String, JsonValue> members = new LinkedHashMap<>();
        members.put("type", new JsonString("chars"));
        members.put("code_points", new JsonArray(points));
        AtomicFiles.replace(file, Json.write(new JsonObject(members)) + "\n");
    }

    /**
     * Returns the number of tokens.
     *
     * @return the vocabulary size
     */
    public int size() {
        return codePoints.length;
    }

    /**
     * Encodes text, one token per code point.
     *
     * @param text the text
     * @return token ids
     * @throws IllegalArgumentException naming the first character (and its offset) not in the vocabulary
     * @throws dev.panamax.model.backend.InsufficientMemoryException if the heap has no room for the ids
     */
    public int[] encode(String text) {
        int count = text.codePointCount(0, text.length());
        EncodingHeap.require(
                "the character vocabulary",
                EncodingHeap.utf8Bytes(text, 0, text.length(), 1),
                (long) Integer.BYTES * count);
        int[] tokens = new int[count];
        int offset = 0;
        for (int i = 0; i < tokens.length; i++) {
            int c = text.codePointAt(offset);
            int id = Arrays.binarySearch(codePoints, c);
            if (id < 0) {
                throw new IllegalArgumentException("character " + describe(c) + " at offset " + offset
                        + " is not in the vocabulary of " + codePoints.length + " characters");
            }
            tokens[i] = id;
            offset += Character.charCount(c);
        }
        return tokens;
    }

    /**
     * Decodes one token.
     *
     * @param token a token id
     * @return its character as a string
     * @throws IllegalArgumentException if the id is out of range
     */
    public String decode(int token) {
        if (token < 0 || token >= codePoints.length) {
            throw new IllegalArgumentException(
                    "token (" + token + ") must be in [0, vocabulary size (" + codePoints.length + "))");
        }
        return Character.toString(codePoints[token]);
    }

    private static String describe(int c) {
        return (Character.isISOControl(c) || Character.isWhitespace(c) ? "" : "'" + Character.toString(c) + "' ")
                + String.format("U+%04X", c);
    }
}
