package dev.panamax.model.json;

import dev.panamax.model.io.BoundedFiles;
import dev.panamax.model.io.ModelFormatException;
import dev.panamax.model.json.JsonValue.JsonArray;
import dev.panamax.model.json.JsonValue.JsonBoolean;
import dev.panamax.model.json.JsonValue.JsonNull;
import dev.panamax.model.json.JsonValue.JsonNumber;
import dev.panamax.model.json.JsonValue.JsonObject;
import dev.panamax.model.json.JsonValue.JsonString;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A strict JSON parser and writer (RFC 8259). The parser accepts exactly the grammar of the RFC, in UTF-8, and rejects
 * everything else with a {@link ModelFormatException} naming the source, line, column and problem: trailing commas,
 * comments, leading zeros, unescaped control characters, unpaired surrogates, a byte order mark, trailing garbage,
 * and duplicate member names in any object (a file whose meaning depends on which duplicate wins is not trusted).
 * Nesting depth and input size are bounded so that a hostile file cannot exhaust the stack or the heap.
 */
public final class Json {
    /** The default bound on nesting depth. */
    public static final int DEFAULT_MAX_DEPTH = 256;

    /** The default bound on the size of a JSON file, in bytes: large enough for any tokenizer vocabulary. */
    public static final long DEFAULT_MAX_BYTES = 100L << 20;

    private Json() {}

    /**
     * Parses JSON text.
     *
     * @param text the text
     * @return the value
     * @throws ModelFormatException if the text is not valid JSON or nests deeper than {@link #DEFAULT_MAX_DEPTH}
     */
    public static JsonValue parse(String text) throws ModelFormatException {
        return new Parser(text, null, DEFAULT_MAX_DEPTH).document();
    }

    /**
     * Reads and parses a JSON file.
     *
     * @param file the file, in UTF-8
     * @return the value
     * @throws ModelFormatException if the file is larger than {@link #DEFAULT_MAX_BYTES}, not UTF-8 or not valid JSON
     * @throws IOException if the file cannot be read
     */
    public static JsonValue parse(Path file) throws IOException {
        return parse(BoundedFiles.read(file, DEFAULT_MAX_BYTES), file, DEFAULT_MAX_DEPTH);
    }

    /**
     * Parses JSON from UTF-8 bytes.
     *
     * @param utf8 the bytes
     * @param source what to name in error messages, e.g. the file they came from; may be {@code null}
     * @param maxDepth the deepest nesting of arrays and objects allowed; 1 allows one level of brackets
     * @return the value
     * @throws ModelFormatException if the bytes are not UTF-8 or not valid JSON, or nest too deep
     */
    public static JsonValue parse(byte[] utf8, Object source, int maxDepth) throws ModelFormatException {
        String text = BoundedFiles.decodeUtf8(utf8, source);
        return new Parser(text, source, maxDepth).document();
    }

    /**
     * Writes a value as compact JSON: no whitespace between tokens, members in the object's order, non-ASCII
     * characters as themselves (the caller encodes the result as UTF-8), control characters escaped.
     *
     * @param value the value
     * @return the JSON text
     * @throws IllegalArgumentException if a string contains an unpaired surrogate, which UTF-8 cannot encode
     */
    public static String write(JsonValue value) {
        StringBuilder out = new StringBuilder();
        write(value, out);
        return out.toString();
    }

    private static void write(JsonValue value, StringBuilder out) {
        switch (value) {
            case JsonObject object -> {
                out.append('{');
                boolean first = true;
                for (Map.Entry<String, JsonValue> member : object.members().entrySet()) {
                    if (!first) {
                        out.append(',');
                    }
                    first = false;
                    writeString(member.getKey(), out);
                    out.append(':');
                    write(member.getValue(), out);
                }
                out.append('}');
            }
            case JsonArray array -> {
                out.append('[');
                for (int i = 0; i < array.elements().size(); i++) {
                    if (i > 0) {
                        out.append(',');
                    }
                    write(array.elements().get(i), out);
                }
                out.append(']');
            }
            case JsonString string -> writeString(string.value(), out);
            case JsonNumber number -> out.append(number.text());
            case JsonBoolean bool -> out.append(bool.value());
            case JsonNull ignored -> out.append("null");
        }
    }

    private static void writeString(String s, StringBuilder out) {
        out.append('"');
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '"' -> out.append("\\\"");
                case '\\' -> out.append("\\\\");
                case '\n' -> out.append("\\n");
                case '\r' -> out.append("\\r");
                case '\t' -> out.append("\\t");
                case '\b' -> out.append("\\b");
                case '\f' -> out.append("\\f");
                default -> {
                    if (c < 0x20) {
                        out.append(String.format("\\u%04x", (int) c));
                    } else if (Character.isSurrogate(c)) {
                        if (!Character.isHighSurrogate(c)
                                || i + 1 == s.length()
                                || !Character.isLowSurrogate(s.charAt(i + 1))) {
                            throw new IllegalArgumentException(
                                    "string has an unpaired surrogate at index " + i + ", which UTF-8 cannot encode");
                        }
                        out.append(c).append(s.charAt(++i));
                    } else {
                        out.append(c);
                    }
                }
            }
        }
        out.append('"');
    }

    /** A recursive-descent parser over decoded text; positions are reported as line and column when it fails. */
    private static final class Parser {
        private final String text;
        private final Object source;
        private final int maxDepth;
        private int pos;
        private int depth;

        Parser(String text, Object source, int maxDepth) {
            this.text = text;
            this.source = source;
            this.maxDepth = maxDepth;
        }

        JsonValue document() throws ModelFormatException {
            if (!text.isEmpty() && text.charAt(0) == '\uFEFF') {
                throw error("byte order mark at the start; JSON text must not begin with one");
            }
            skipWhitespace();
            if (pos == text.length()) {
                throw error("empty input; expected a JSON value");
            }
            JsonValue value = value();
            skipWhitespace();
            if (pos < text.length()) {
                throw error("unexpected " + describe(pos) + " after the JSON value");
            }
            return value;
        }

        private JsonValue value() throws ModelFormatException {
            if (pos == text.length()) {
                throw error("unexpected end of input; expected a value");
            }
            char c = text.charAt(pos);
            return switch (c) {
                case '{' -> object();
                case '[' -> array();
                case '"' -> new JsonString(string());
                case 't' -> literal("true", JsonValue.TRUE);
                case 'f' -> literal("false", JsonValue.FALSE);
                case 'n' -> literal("null", JsonValue.NULL);
                default -> {
                    if (c == '-' || (c >= '0' && c <= '9')) {
                        yield number();
                    }
                    throw error("unexpected " + describe(pos) + "; expected a value");
                }
            };
        }

        private JsonObject object() throws ModelFormatException {
            enter();
            pos++;
            Map<String, JsonValue> members = new LinkedHashMap<>();
            skipWhitespace();
            if (peek() == '}') {
                pos++;
                depth--;
                return new JsonObject(members);
            }
            while (true) {
                skipWhitespace();
                if (peek() != '"') {
                    throw error(
                            peek() == '}'
                                    ? "trailing comma before '}'"
                                    : "unexpected " + describe(pos) + "; expected a member name in double quotes");
                }
                int keyStart = pos;
                String key = string();
                if (members.containsKey(key)) {
                    throw error(keyStart, "duplicate member name \"" + key + "\" in an object");
                }
                skipWhitespace();
                expect(':', "after a member name");
                skipWhitespace();
                members.put(key, value());
                skipWhitespace();
                if (peek() == ',') {
                    pos++;
                } else if (peek() == '}') {
                    pos++;
                    depth--;
                    return new JsonObject(members);
                } else {
                    throw error("unexpected " + describe(pos) + "; expected ',' or '}' in an object");
                }
            }
        }

        private JsonArray array() throws ModelFormatException {
            enter();
            pos++;
            List<JsonValue> elements = new ArrayList<>();
            skipWhitespace();
            if (peek() == ']') {
                pos++;
                depth--;
                return new JsonArray(elements);
            }
            while (true) {
                skipWhitespace();
                if (peek() == ']') {
                    throw error("trailing comma before ']'");
                }
                elements.add(value());
                skipWhitespace();
                if (peek() == ',') {
                    pos++;
                } else if (peek() == ']') {
                    pos++;
                    depth--;
                    return new JsonArray(elements);
                } else {
                    throw error("unexpected " + describe(pos) + "; expected ',' or ']' in an array");
                }
            }
        }

        private void enter() throws ModelFormatException {
            if (++depth > maxDepth) {
                throw error("nesting deeper than the limit of " + maxDepth);
            }
        }

        private String string() throws ModelFormatException {
            int start = pos++;
            StringBuilder out = new StringBuilder();
            while (true) {
                if (pos == text.length()) {
                    throw error(start, "unterminated string");
                }
                char c = text.charAt(pos);
                if (c == '"') {
                    pos++;
                    return out.toString();
                }
                if (c < 0x20) {
                    throw error("unescaped control character U+%04X in a string".formatted((int) c));
                }
                if (c != '\\') {
                    out.append(c);
                    pos++;
                    continue;
                }
                int escape = pos++;
                char e = peek();
                pos++;
                switch (e) {
                    case '"' -> out.append('"');
                    case '\\' -> out.append('\\');
                    case '/' -> out.append('/');
                    case 'b' -> out.append('\b');
                    case 'f' -> out.append('\f');
                    case 'n' -> out.append('\n');
                    case 'r' -> out.append('\r');
                    case 't' -> out.append('\t');
                    case 'u' -> {
                        char unit = hex4(escape);
                        if (Character.isHighSurrogate(unit)) {
                            int low = pos;
                            if (!text.startsWith("\\u", pos)) {
                                throw error(escape, "high surrogate escape not followed by a low surrogate escape");
                            }
                            pos += 2;
                            char second = hex4(low);
                            if (!Character.isLowSurrogate(second)) {
                                throw error(escape, "high surrogate escape not followed by a low surrogate escape");
                            }
                            out.append(unit).append(second);
                        } else if (Character.isLowSurrogate(unit)) {
                            throw error(escape, "low surrogate escape without a preceding high surrogate");
                        } else {
                            out.append(unit);
                        }
                    }
                    default -> throw error(escape, "invalid escape sequence \\" + (e == 0 ? "" : e) + " in a string");
                }
            }
        }

        private char hex4(int escape) throws ModelFormatException {
            if (pos + 4 > text.length()) {
                throw error(escape, "truncated \\u escape");
            }
            int value = 0;
            for (int i = 0; i < 4; i++) {
                char c = text.charAt(pos + i);
                // Only ASCII hex digits: Character.digit would also accept full-width ones.
                int digit = c <= 'f' ? Character.digit(c, 16) : -1;
                if (digit < 0) {
                    throw error(escape, "\\u escape needs four hexadecimal digits");
                }
                value = value * 16 + digit;
            }
            pos += 4;
            return (char) value;
        }

        private JsonNumber number() throws ModelFormatException {
            int start = pos;
            if (peek() == '-') {
                pos++;
            }
            if (peek() == '0') {
                pos++;
                if (isDigit(peek())) {
                    throw error(start, "number with a leading zero");
                }
            } else if (isDigit(peek())) {
                skipDigits();
            } else {
                throw error("expected a digit in a number");
            }
            if (peek() == '.') {
                pos++;
                if (!isDigit(peek())) {
                    throw error("expected a digit after the decimal point");
                }
                skipDigits();
            }
            if (peek() == 'e' || peek() == 'E') {
                pos++;
                if (peek() == '+' || peek() == '-') {
                    pos++;
                }
                if (!isDigit(peek())) {
                    throw error("expected a digit in the exponent");
                }
                skipDigits();
            }
            return new JsonNumber(text.substring(start, pos));
        }

        private void skipDigits() {
            while (isDigit(peek())) {
                pos++;
            }
        }

        private static boolean isDigit(char c) {
            return c >= '0' && c <= '9';
        }

        private JsonValue literal(String word, JsonValue value) throws ModelFormatException {
            if (!text.startsWith(word, pos)) {
                throw error("unexpected " + describe(pos) + "; expected a value");
            }
            pos += word.length();
            return value;
        }

        private void expect(char c, String where) throws ModelFormatException {
            if (peek() != c) {
                throw error("unexpected " + describe(pos) + "; expected '" + c + "' " + where);
            }
            pos++;
        }

        /** Returns the character at the position, or 0 at the end (0 never starts a valid token). */
        private char peek() {
            return pos < text.length() ? text.charAt(pos) : 0;
        }

        private void skipWhitespace() {
            while (pos < text.length()) {
                char c = text.charAt(pos);
                if (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
                    return;
                }
                pos++;
            }
        }

        private String describe(int at) {
            if (at >= text.length()) {
                return "end of input";
            }
            if (text.startsWith("//", at) || text.startsWith("/*", at)) {
                return "comment (JSON has none)";
            }
            int c = text.codePointAt(at);
            return c < 0x20 || c == 0x7f ? "character U+%04X".formatted(c) : "'" + Character.toString(c) + "'";
        }

        private ModelFormatException error(String problem) {
            return error(pos, problem);
        }

        private ModelFormatException error(int at, String problem) {
            int line = 1;
            int lineStart = 0;
            for (int i = 0; i < at && i < text.length(); i++) {
                if (text.charAt(i) == '\n') {
                    line++;
                    lineStart = i + 1;
                }
            }
            return new ModelFormatException(
                    source, "line " + line + ", column " + (at - lineStart + 1) + ": " + problem);
        }
    }
}
