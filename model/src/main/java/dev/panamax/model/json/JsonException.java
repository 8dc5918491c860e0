package dev.panamax.model.json;

import java.io.IOException;

/**
 * JSON text that is not valid, exceeds its {@link Json.Limits}, or lacks what a {@link JsonFields} reader expects. The
 * message names the source (when there is one) and the problem, e.g. {@code config.json: line 2, column 11: trailing
 * comma before ']'}; a value quoted in it is cut to an {@linkplain #excerpt(String) excerpt}.
 */
public class JsonException extends IOException {
    private static final long serialVersionUID = 1L;

    /** How many characters of a long value {@link #excerpt(String)} keeps. */
    public static final int EXCERPT_CHARS = 40;

    /**
     * Creates an exception.
     *
     * @param source what the text came from, e.g. a path; {@code null} when there is none
     * @param problem what is wrong, as a sentence fragment without the source
     */
    public JsonException(Object source, String problem) {
        super(source == null ? problem : source + ": " + problem);
    }

    /**
     * Shortens a value read from a file for quoting in a message, so that a hostile file cannot make the message as
     * large as itself: values up to {@code 2 × }{@value #EXCERPT_CHARS} characters are returned whole, longer ones as
     * their first {@value #EXCERPT_CHARS} characters, {@code "..."} and their length, e.g. {@code 1234... (1000000
     * chars)}.
     *
     * @param value the value
     * @return the value or its excerpt
     */
    public static String excerpt(String value) {
        if (value.length() <= 2 * EXCERPT_CHARS) {
            return value;
        }
        int end = Character.isHighSurrogate(value.charAt(EXCERPT_CHARS - 1)) ? EXCERPT_CHARS - 1 : EXCERPT_CHARS;
        return value.substring(0, end) + "... (" + value.length() + " chars)";
    }
}
