package dev.panamax.model.json;

import dev.panamax.model.json.JsonValue.JsonArray;
import dev.panamax.model.json.JsonValue.JsonBoolean;
import dev.panamax.model.json.JsonValue.JsonNull;
import dev.panamax.model.json.JsonValue.JsonNumber;
import dev.panamax.model.json.JsonValue.JsonObject;
import dev.panamax.model.json.JsonValue.JsonString;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A strict JSON parser and writer (RFC 8259). The parser accepts exactly the grammar of the RFC and rejects
 * everything else with a {@link JsonException} naming the source, line, column and problem: trailing commas,
 * comments, leading zeros, unescaped control characters, unpaired surrogates, a byte order mark, trailing garbage,
 * and duplicate member names in any object (a file whose meaning depends on which duplicate wins is not trusted).
 *
 * <p>A hostile file cannot exhaust the stack or the heap, nor take long: its reader bounds its size (by
 * {@link #DEFAULT_MAX_BYTES}, say) and decodes it as strict UTF-8 before handing over the text; while parsing, {@link Limits} bound the nesting depth, the number of values built (each object, array, string,
 * number, boolean, null and member name counts one) and the characters of all strings together; a number literal may
 * have at most {@link JsonNumber#MAX_CHARS} characters. Parsing takes time linear in the input, and a value quoted in
 * an error message is cut to an {@linkplain JsonException#excerpt(String) excerpt}.
 */
public final class Json {
    /** The default bound on nesting depth. */
    public static final int DEFAULT_MAX_DEPTH = 256;

    /** The default bound on the size of a JSON file, in bytes: large enough for any tokenizer vocabulary. */
    public static final long DEFAULT_MAX_BYTES = 100L << 20;

    /**
     * The default bound on the number of values in a document: a GPT-2 vocabulary has about 100,000 (a name and an
     * id per token), a 256K-token one 512K. Each value costs at most about 110 bytes of heap besides its characters.
     */
    public static final int DEFAULT_MAX_VALUES = 1 << 20;

    /** The default bound on the characters of all strings and member names together: 32 MiB as UTF-16. */
    public static final long DEFAULT_MAX_STRING_CHARS = 1L << 24;

    /**
     * Bounds on what parsing may build.
     *
     * @param maxDepth the deepest nesting of arrays and objects allowed; 1 allows one level of brackets
     * @param maxValues the most values (including member names) a document may hold
     * @param maxStringChars the most characters all strings and member names together may hold
     */
    public record Limits(int maxDepth, int maxValues, long maxStringChars) {
        /** {@link #DEFAULT_MAX_DEPTH}, {@link #DEFAULT_MAX_VALUES} and {@link #DEFAULT_MAX_STRING_CHARS}. */
        public static final Limits DEFAULT =
                new Limits(DEFAULT_MAX_DEPTH, DEFAULT_MAX_VALUES, DEFAULT_MAX_STRING_CHARS);

        /**
         * Checks the bounds.
         *
         * @throws IllegalArgumentException if a bound is below 1
         */
        public Limits {
            if (maxDepth < 1 || maxValues < 1 || maxStringChars < 1) {
                throw new IllegalArgumentException("limits must be >= 1: maxDepth " + maxDepth + ", maxValues "
                        + maxValues + ", maxStringChars " + maxStringChars);
            }
        }

        /**
         * Returns these limits with another nesting depth.
         *
         * @param depth the deepest nesting allowed, at least 1
         * @return the limits
         */
        public Limits withMaxDepth(int depth) {
            return new Limits(depth, maxValues, maxStringChars);
        }
    }

    private Json() {}

    /**
     * Parses JSON text.
     *
     * @param text the text
     * @return the value
     * @throws JsonException if the text is not valid JSON or exceeds the {@linkplain Limits#DEFAULT default
     *     limits}
     */
    public static JsonValue parse(String text) throws JsonException {
        return new Parser(text, null, Limits.DEFAULT).document();
    }

    /**
     * Parses JSON text; the caller reads and decodes it (a file's size bounded, its bytes strict UTF-8), so that this
     * package never touches a file.
     *
     * @param text the text
     * @param source what to name in error messages, e.g. the file it came from; may be {@code null}
     * @param limits what the document may hold
     * @return the value
     * @throws JsonException if the text is not valid JSON or exceeds the limits
     */
    public static JsonValue parse(String text, Object source, Limits limits) throws JsonException {
        return new Parser(text, source, limits).document();
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
        /** Empty objects and arrays are shared: a file of many costs no more than its references. */
        private static final JsonObject EMPTY_OBJECT = new JsonObject(Map.of());

        private static final JsonArray EMPTY_ARRAY = new JsonArray(List.of());

        private final String text;
        private final Object source;
        private final Limits limits;
        private int pos;
        private int depth;
        private int values;
        private long stringChars;

        Parser(String text, Object source, Limits limits) {
            this.text = text;
            this.source = source;
            this.limits = limits;
        }

        JsonValue document() throws JsonException {
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

        private JsonValue value() throws JsonException {
            if (pos == text.length()) {
                throw error("unexpected end of input; expected a value");
            }
            count();
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

        private JsonObject object() throws JsonException {
            enter();
            pos++;
            Map<String, JsonValue> members = new LinkedHashMap<>();
            skipWhitespace();
            if (leaves('}')) {
                return EMPTY_OBJECT;
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
                count();
                String key = string();
                if (members.containsKey(key)) {
                    throw error(keyStart, "duplicate member name \"" + JsonException.excerpt(key) + "\" in an object");
                }
                skipWhitespace();
                expect(':', "after a member name");
                skipWhitespace();
                members.put(key, value());
                if (endsAfterItem('}', "an object")) {
                    return new JsonObject(members);
                }
            }
        }

        private JsonArray array() throws JsonException {
            enter();
            pos++;
            List<JsonValue> elements = new ArrayList<>();
            skipWhitespace();
            if (leaves(']')) {
                return EMPTY_ARRAY;
            }
            while (true) {
                skipWhitespace();
                if (peek() == ']') {
                    throw error("trailing comma before ']'");
                }
                elements.add(value());
                if (endsAfterItem(']', "an array")) {
                    return new JsonArray(elements);
                }
            }
        }

        /** Consumes {@code close} and leaves the nesting level if it is next; else stays put. */
        private boolean leaves(char close) {
            if (peek() != close) {
                return false;
            }
            pos++;
            depth--;
            return true;
        }

        /** After a member or element: true at the closing bracket (consumed), false after a comma, else an error. */
        private boolean endsAfterItem(char close, String in) throws JsonException {
            skipWhitespace();
            if (peek() == ',') {
                pos++;
                return false;
            }
            if (leaves(close)) {
                return true;
            }
            throw error("unexpected " + describe(pos) + "; expected ',' or '" + close + "' in " + in);
        }

        private void enter() throws JsonException {
            if (++depth > limits.maxDepth()) {
                throw error("nesting deeper than the limit of " + limits.maxDepth());
            }
        }

        /** Counts one more value (or member name) against the limit, before it is built. */
        private void count() throws JsonException {
            if (++values > limits.maxValues()) {
                throw error("more than " + limits.maxValues() + " values (counting member names), the limit");
            }
        }

        /** Counts a string's characters against the limit, before it is built. */
        private void countChars(int start, long chars) throws JsonException {
            stringChars += chars;
            if (stringChars > limits.maxStringChars()) {
                throw error(
                        start,
                        "strings of more than " + limits.maxStringChars()
                                + " characters in all (counting member names), the limit");
            }
        }

        private String string() throws JsonException {
            int start = pos++;
            // Most strings have no escape: they are cut from the text once their length is counted.
            int plain = pos;
            while (plain < text.length()
                    && text.charAt(plain) != '"'
                    && text.charAt(plain) != '\\'
                    && text.charAt(plain) >= 0x20) {
                plain++;
            }
            if (plain < text.length() && text.charAt(plain) == '"') {
                countChars(start, plain - pos);
                String value = text.substring(pos, plain);
                pos = plain + 1;
                return value;
            }
            // The characters before the first escape are counted now, each later one as it is appended.
            countChars(start, plain - pos);
            StringBuilder out = new StringBuilder(text.subSequence(pos, plain));
            pos = plain;
            while (true) {
                if (pos == text.length()) {
                    throw error(start, "unterminated string");
                }
                char c = text.charAt(pos);
                if (c == '"') {
                    pos++;
                    return out.toString();
                }
                countChars(start, 1);
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
                    default ->
                        throw error(
                                escape,
                                "invalid escape sequence \\" + (e == 0 ? "" : JsonException.excerpt(String.valueOf(e)))
                                        + " in a string");
                }
            }
        }

        private char hex4(int escape) throws JsonException {
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

        private JsonNumber number() throws JsonException {
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
            if (pos - start > JsonNumber.MAX_CHARS) {
                throw error(
                        start,
                        "number of " + (pos - start) + " characters is longer than the limit of " + JsonNumber.MAX_CHARS
                                + ": " + JsonException.excerpt(text.substring(start, pos)));
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

        private JsonValue literal(String word, JsonValue value) throws JsonException {
            if (!text.startsWith(word, pos)) {
                throw error("unexpected " + describe(pos) + "; expected a value");
            }
            pos += word.length();
            return value;
        }

        private void expect(char c, String where) throws JsonException {
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
            return Character.isISOControl(c) ? "character U+%04X".formatted(c) : "'" + Character.toString(c) + "'";
        }

        private JsonException error(String problem) {
            return error(pos, problem);
        }

        private JsonException error(int at, String problem) {
            int line = 1;
            int lineStart = 0;
            for (int i = 0; i < at && i < text.length(); i++) {
                if (text.charAt(i) == '\n') {
                    line++;
                    lineStart = i + 1;
                }
            }
            return new JsonException(source, "line " + line + ", column " + (at - lineStart + 1) + ": " + problem);
        }
    }
}
