package dev.panamax.model.io;

import dev.panamax.model.json.JsonException;
import java.io.IOException;

/**
 * A model, configuration or tokenizer file that is malformed: truncated, inconsistent, of an unsupported variant, or
 * not the format it claims to be. Every loader in this module reports a bad file with exactly this exception, whose
 * message names the file (when there is one) and what is wrong, so that callers need one {@code catch} and users get
 * one readable line.
 */
public class ModelFormatException extends IOException {
    private static final long serialVersionUID = 1L;

    /** How many characters of a long value {@link #excerpt(String)} keeps. */
    public static final int EXCERPT_CHARS = JsonException.EXCERPT_CHARS;

    /**
     * Makes a value read from a file safe to quote in a one-line message: {@link JsonException#excerpt(String)}, which
     * shortens a long value and escapes control characters.
     *
     * @param value the value
     * @return the value or its excerpt, without control characters
     */
    public static String excerpt(String value) {
        return JsonException.excerpt(value);
    }

    /**
     * Creates an exception for a file.
     *
     * @param source the file or other source the problem was found in, e.g. a path; {@code null} when there is none
     * @param problem what is wrong, as a sentence fragment without the source
     */
    public ModelFormatException(Object source, String problem) {
        super(source == null ? problem : source + ": " + problem);
    }

    /**
     * Creates an exception for a file, keeping the lower-level cause.
     *
     * @param source the file or other source the problem was found in; {@code null} when there is none
     * @param problem what is wrong, as a sentence fragment without the source
     * @param cause the exception that revealed the problem
     */
    public ModelFormatException(Object source, String problem, Throwable cause) {
        super(source == null ? problem : source + ": " + problem, cause);
    }

    /**
     * Reports malformed JSON in a model, configuration or tokenizer file: the same message, the JSON error as cause.
     *
     * @param cause what the JSON parser or reader found, its message naming the file
     */
    ModelFormatException(JsonException cause) {
        super(cause.getMessage(), cause);
    }
}
