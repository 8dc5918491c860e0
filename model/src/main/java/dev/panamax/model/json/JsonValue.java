package dev.panamax.model.json;

import java.math.BigDecimal;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

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
    String kind();

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

        @Override
        public String kind() {
            return "an object";
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

        @Override
        public String kind() {
            return "an array";
        }
    }

    /**
     * A JSON string.
     *
     * @param value the decoded string; it must not contain unpaired surrogates, which UTF-8 cannot encode
     */
    record JsonString(String value) implements JsonValue {
        @Override
        public String kind() {
            return "a string";
        }
    }

    /**
     * A JSON number, kept as its literal text so that no precision is lost before the reader says what it expects.
     *
     * @param text the number as written in JSON, e.g. {@code -1.5e3}
     */
    record JsonNumber(String text) implements JsonValue {
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
            return new BigDecimal(text).longValueExact();
        }

        /**
         * Returns the value as the nearest double.
         *
         * @return the value; infinite if its magnitude is beyond double's range
         */
        public double doubleValue() {
            return Double.parseDouble(text);
        }

        @Override
        public String kind() {
            return "a number";
        }
    }

    /**
     * A JSON boolean.
     *
     * @param value the value
     */
    record JsonBoolean(boolean value) implements JsonValue {
        @Override
        public String kind() {
            return "a boolean";
        }
    }

    /** The JSON null; use {@link JsonValue#NULL}. */
    record JsonNull() implements JsonValue {
        @Override
        public String kind() {
            return "null";
        }
    }
}
