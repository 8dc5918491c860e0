package dev.panamax.model.json;

import java.io.IOException;
import java.util.Locale;

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
     * Makes a value read from a file safe to quote in a one-line message, so that a hostile file can neither make the
     * message as large as itself nor write to the terminal: values up to {@code 2 × }{@value #EXCERPT_CHARS} characters
     * are kept whole, longer ones as their first {@value #EXCERPT_CHARS} characters, {@code "..."} and their length,
     * e.g. {@code 1234... (1000000 chars)}; in what is kept, each control character (below U+0020, U+007F and U+0080 to
     * U+009F: line breaks, ESC, BEL, CSI), each format character (the bidirectional overrides and isolates that can
     * make a terminal show text in another order than it is, zero-width characters) and the line and paragraph
     * separators U+2028 and U+2029 is written as its Java escape, ESC as <code>&#92;u001B</code>.
     *
     * @param value the value
     * @return the value or its excerpt, without control characters
     */
    public static String excerpt(String value) {
        if (value.length() <= 2 * EXCERPT_CHARS) {
            return escapeControls(value);
        }
        int end = Character.isHighSurrogate(value.charAt(EXCERPT_CHARS - 1)) ? EXCERPT_CHARS - 1 : EXCERPT_CHARS;
        return escapeControls(value.substring(0, end)) + "... (" + value.length() + " chars)";
    }

    private static String escapeControls(String text) {
        StringBuilder escaped = new StringBuilder(text.length());
        for (int i = 0; i < text.length(); i++) {
            char c = text.charAt(i);
            int type = Character.getType(c);
            if (Character.isISOControl(c) // exactly U+0000 to U+001F and U+007F to U+009F
                    || type == Character.FORMAT
                    || type == Character.LINE_SEPARATOR
                    || type == Character.PARAGRAPH_SEPARATOR) {
                escaped.append(String.format(Locale.ROOT, "\\u%04X", (int) c));
            } else {
                escaped.append(c);
            }
        }
        return escaped.toString();
    }
}
