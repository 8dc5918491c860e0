package dev.panamax.model.json;

import java.math.BigDecimal;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Pattern;

/**
 * A JSON value (RFC 8259) as parsed by {@link Json}: an object, array, string, number, boolean or null. Values are
 * immutable; objects keep their members in document order.
 */
public sealed interface JsonValue {
    /** The JSON {@code null}. */
    JsonValue NULL = new JsonNull();

    /** The JSON {@code true}. */
    JsonValue TRUE = new JsonBoolean(true);

    /** The JSON {@code false}. */
    JsonValue FALSE = new JsonBoolean(false);

    /**
     * Names this value's kind for error messages.
     *
     * @return "an object", "an array", "a string", "a number", "a boolean" or "null"
     */
    default String kind() {
        return switch (this) {
            case JsonObject o -> "an object";
            case JsonArray a -> "an array";
            case JsonString t -> "a string";
            case JsonNumber n -> "a number";
            case JsonBoolean b -> "a boolean";
            case JsonNull n -> "null";
        };
    }

    /**
     * A JSON object.
     *
     * @param members the members in document order; copied into an unmodifiable map that keeps that order
     */
    record JsonObject(Map<String, JsonValue> members) implements JsonValue {
        /** Copies the members, keeping their order. */
        public JsonObject {
            members = Collections.unmodifiableMap(new LinkedHashMap<>(members));
        }

        /**
         * Returns a member.
         *
         * @param name the member's name
         * @return its value, or {@code null} if the object has no such member
         */
        public JsonValue get(String name) {
            return members.get(name);
        }
    }

    /**
     * A JSON array.
     *
     * @param elements the elements; copied into an unmodifiable list
     */
    record JsonArray(List<JsonValue> elements) implements JsonValue {
        /** Copies the elements. */
        public JsonArray {
            elements = List.copyOf(elements);
        }
    }

    /**
     * A JSON string.
     *
     * @param value the decoded string; it must not contain unpaired surrogates, which UTF-8 cannot encode
     */
    record JsonString(String value) implements JsonValue {}

    /**
     * A JSON number, kept as its literal text so that no precision is lost before the reader says what it expects.
     * The text is at most {@link #MAX_CHARS} characters, so that converting it takes little time whatever it says.
     *
     * @param text the number as written in JSON, e.g. {@code -1.5e3}
     */
    record JsonNumber(String text) implements JsonValue {
        /**
         * The longest number literal accepted: far more than the 17 significant digits of a double or the 19 of a
         * long, or a double written out in full without an exponent.
         */
        public static final int MAX_CHARS = 1000;

        private static final Pattern LITERAL = Pattern.compile("-?(0|[1-9][0-9]*)(\\.[0-9]+)?([eE][+-]?[0-9]+)?");

        /** Beyond this exponent, a non-zero literal of at most {@link #MAX_CHARS} characters cannot be a long. */
        private static final int LARGEST_USEFUL_EXPONENT = MAX_CHARS + 20;

        /**
         * Checks the literal.
         *
         * @throws IllegalArgumentException if it is longer than {@link #MAX_CHARS} or not a JSON number
         */
        public JsonNumber {
            if (text.length() > MAX_CHARS || !LITERAL.matcher(text).matches()) {
                throw new IllegalArgumentException("\"" + JsonException.excerpt(text)
                        + "\" is not a JSON number of at most " + MAX_CHARS + " characters");
            }
        }
        /**
         * Creates a number from a long.
         *
         * @param value the value
         * @return the number
         */
        public static JsonNumber of(long value) {
            return new JsonNumber(Long.toString(value));
        }

        /**
         * Creates a number from a double.
         *
         * @param value the value; must be finite, as JSON has no NaN or infinity
         * @return the number, written with the fewest digits that read back as the same double
         * @throws IllegalArgumentException if the value is NaN or infinite
         */
        public static JsonNumber of(double value) {
            if (!Double.isFinite(value)) {
                throw new IllegalArgumentException("JSON has no representation for " + value);
            }
            return new JsonNumber(Double.toString(value));
        }

        /**
         * Returns the value as a long if it is an integer that fits: {@code 3}, {@code 3.0} and {@code 3e2} do,
         * {@code 3.5} and {@code 1e30} do not.
         *
         * @return the value
         * @throws ArithmeticException if the value is not an integer or does not fit in a long
         */
        public long longValueExact() {
            int e = Math.max(text.indexOf('e'), text.indexOf('E'));
            BigDecimal significand = new BigDecimal(e < 0 ? text : text.substring(0, e));
            if (significand.signum() == 0) {
                return 0;
            }
            // An exponent of any length is clamped: far outside ±LARGEST_USEFUL_EXPONENT the answer is the same.
            long exponent = 0;
            if (e >= 0) {
                int i = e + 1 + (text.charAt(e + 1) == '+' || text.charAt(e + 1) == '-' ? 1 : 0);
                for (; i < text.length(); i++) {
                    exponent = Math.min(exponent * 10 + (text.charAt(i) - '0'), 2L * LARGEST_USEFUL_EXPONENT);
                }
                exponent = text.charAt(e + 1) == '-' ? -exponent : exponent;
            }
            if (exponent > LARGEST_USEFUL_EXPONENT) {
                throw new ArithmeticException(JsonException.excerpt(text) + " is too large for a long");
            }
            if (exponent < -LARGEST_USEFUL_EXPONENT) {
                throw new ArithmeticException(JsonException.excerpt(text) + " is not an integer");
            }
            return significand.scaleByPowerOfTen((int) exponent).longValueExact();
        }

        /**
         * Returns the value as the nearest double.
         *
         * @return the value; infinite if its magnitude is beyond double's range
         */
        public double doubleValue() {
            return Double.parseDouble(text);
        }
    }

    /**
     * A JSON boolean.
     *
     * @param value the value
     */
    record JsonBoolean(boolean value) implements JsonValue {}

    /** The JSON null; use {@link JsonValue#NULL}. */
    record JsonNull() implements JsonValue {}
}
