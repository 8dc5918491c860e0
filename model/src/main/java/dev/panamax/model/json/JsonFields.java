package dev.panamax.model.json;

import dev.panamax.model.json.JsonValue.JsonArray;
import dev.panamax.model.json.JsonValue.JsonNull;
import dev.panamax.model.json.JsonValue.JsonNumber;
import dev.panamax.model.json.JsonValue.JsonObject;
import dev.panamax.model.json.JsonValue.JsonString;
import java.util.List;

/**
 * Typed reading of a JSON object's members, for loaders that must check what a file says before they use it. Each
 * accessor either returns a value of the expected type and range or throws a {@link JsonException} naming
 * the source, the member's path and what was found instead, e.g. {@code config.json: n_head: expected an integer,
 * found a string}.
 *
 * @param source what to name in error messages, typically the file
 * @param path where the object is in the document, e.g. {@code h.0.attn}; empty for the top level
 * @param object the object
 */
public record JsonFields(Object source, String path, JsonObject object) {
    /**
     * Reads a document whose top level must be an object.
     *
     * @param source what to name in error messages
     * @param document the parsed document
     * @return the fields of the top-level object
     * @throws JsonException if the document is not an object
     */
    public static JsonFields of(Object source, JsonValue document) throws JsonException {
        if (!(document instanceof JsonObject object)) {
            throw new JsonException(source, "expected a JSON object at the top level, found " + document.kind());
        }
        return new JsonFields(source, "", object);
    }

    /**
     * Returns whether the object has a member, even one whose value is null.
     *
     * @param name the member's name
     * @return whether it is present
     */
    public boolean has(String name) {
        return object.members().containsKey(name);
    }

    /**
     * Returns a member that must be an object.
     *
     * @param name the member's name
     * @return its fields
     * @throws JsonException if it is absent or not an object
     */
    public JsonFields object(String name) throws JsonException {
        if (!(require(name) instanceof JsonObject nested)) {
            throw wrongType(name, "an object");
        }
        return new JsonFields(source, pathOf(name), nested);
    }

    /**
     * Returns a member that must be a string.
     *
     * @param name the member's name
     * @return the string
     * @throws JsonException if it is absent or not a string
     */
    public String string(String name) throws JsonException {
        if (!(require(name) instanceof JsonString string)) {
            throw wrongType(name, "a string");
        }
        return string.value();
    }

    /**
     * Returns a member that must be a boolean, or a default when it is absent.
     *
     * @param name the member's name
     * @param otherwise the value when the member is absent
     * @return the value
     * @throws JsonException if it is present and not a boolean
     */
    public boolean bool(String name, boolean otherwise) throws JsonException {
        if (!has(name)) {
            return otherwise;
        }
        if (!(require(name) instanceof JsonValue.JsonBoolean bool)) {
            throw wrongType(name, "a boolean");
        }
        return bool.value();
    }

    /**
     * Returns a member that must be an integer within a range.
     *
     * @param name the member's name
     * @param min the smallest value allowed
     * @param max the largest value allowed
     * @return the value
     * @throws JsonException if it is absent, not an integer, or out of range
     */
    public long integer(String name, long min, long max) throws JsonException {
        return integer(name, require(name), min, max);
    }

    /**
     * Returns a member that must be an integer within a range, or a default when it is absent or null (as Hugging
     * Face configurations write optional values).
     *
     * @param name the member's name
     * @param min the smallest value allowed
     * @param max the largest value allowed
     * @param otherwise the value when the member is absent or null, held to the same range: a default computed from
     *     other members (a multiple of one, say) can be out of range where they are not
     * @return the value
     * @throws JsonException if it is present but not an integer, or out of range, or absent and {@code otherwise} is
     *     out of range
     */
    public long integer(String name, long min, long max, long otherwise) throws JsonException {
        JsonValue value = object.get(name);
        if (value != null && !(value instanceof JsonNull)) {
            return integer(name, value, min, max);
        }
        if (otherwise < min || otherwise > max) {
            throw error(name, "absent, and its default " + otherwise + " is outside [" + min + ", " + max + "]");
        }
        return otherwise;
    }

    /**
     * Returns a member that must be a finite number, or a default when it is absent or null.
     *
     * @param name the member's name
     * @param otherwise the value when the member is absent or null
     * @return the value
     * @throws JsonException if it is present but not a finite number
     */
    public double number(String name, double otherwise) throws JsonException {
        JsonValue value = object.get(name);
        if (value == null || value instanceof JsonNull) {
            return otherwise;
        }
        if (!(value instanceof JsonNumber number)) {
            throw wrongType(name, "a number");
        }
        double result = number.doubleValue();
        if (!Double.isFinite(result)) {
            throw error(name, "number " + JsonException.excerpt(number.text()) + " is out of range");
        }
        return result;
    }

    /**
     * Returns a member that must be an array of integers within a range.
     *
     * @param name the member's name
     * @param min the smallest value allowed for each element
     * @param max the largest value allowed for each element
     * @return the values
     * @throws JsonException if it is absent, not an array, or an element is not an integer in range
     */
    public long[] integers(String name, long min, long max) throws JsonException {
        if (!(require(name) instanceof JsonArray array)) {
            throw wrongType(name, "an array");
        }
        List<JsonValue> elements = array.elements();
        long[] values = new long[elements.size()];
        for (int i = 0; i < values.length; i++) {
            values[i] = integer(name + "[" + i + "]", elements.get(i), min, max);
        }
        return values;
    }

    /**
     * Creates an exception about a member, naming the source and the member's path.
     *
     * @param name the member's name
     * @param problem what is wrong with it
     * @return the exception, for the caller to throw
     */
    public JsonException error(String name, String problem) {
        return new JsonException(source, pathOf(name) + ": " + problem);
    }

    private long integer(String name, JsonValue value, long min, long max) throws JsonException {
        if (!(value instanceof JsonNumber number)) {
            throw error(name, "expected an integer, found " + value.kind());
        }
        long result;
        try {
            result = number.longValueExact();
        } catch (ArithmeticException e) {
            throw error(name, "expected an integer, found " + JsonException.excerpt(number.text()));
        }
        if (result < min || result > max) {
            throw error(name, "value " + result + " is outside [" + min + ", " + max + "]");
        }
        return result;
    }

    private JsonValue require(String name) throws JsonException {
        JsonValue value = object.get(name);
        if (value == null) {
            throw error(name, "missing");
        }
        return value;
    }

    private JsonException wrongType(String name, String expected) {
        return error(
                name, "expected " + expected + ", found " + object.get(name).kind());
    }

    /** The member's path for messages; a long name (a tensor's, say) is cut, so the path is short too. */
    private String pathOf(String name) {
        String shown = JsonException.excerpt(name);
        return path.isEmpty() ? shown : path + "." + shown;
    }
}
