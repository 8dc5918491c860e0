package dev.panamax.model.json;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.panamax.model.io.BoundedFiles;
import dev.panamax.model.io.ModelFormatException;
import dev.panamax.model.json.JsonValue.JsonArray;
import dev.panamax.model.json.JsonValue.JsonNumber;
import dev.panamax.model.json.JsonValue.JsonObject;
import dev.panamax.model.json.JsonValue.JsonString;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

class JsonTest {
    @Test
    void anExcerptIsShortAndHasNoControlCharacters() {
        assertEquals("plain é 中", JsonException.excerpt("plain é 中"));
        // C0 (ESC, BEL, line breaks), DEL and C1 (CSI) controls become escapes; what is kept of a long value too.
        assertEquals(
                "\\u001B]52;c;x\\u0007\\u000D\\u000A\\u007F\\u009B2J",
                JsonException.excerpt("\u001b]52;c;x\u0007\r\n\u007f\u009b2J"));
        assertEquals("\\u0007".repeat(40) + "... (100 chars)", JsonException.excerpt("\u0007".repeat(100)));
        assertEquals(JsonException.excerpt("\u001b"), ModelFormatException.excerpt("\u001b"));
        // A right-to-left override (a terminal shows the text after it reversed), an isolate, a zero-width space and
        // the
        // Unicode line separator: each shows as its escape, the text in the order it is stored.
        assertEquals("a\\u202Eb\\u2066c\\u200Bd\\u2028e", JsonException.excerpt("a\u202Eb\u2066c\u200Bd\u2028e"));
    }

    @TempDir
    Path dir;

    @Test
    void parsesEveryKindOfValue() throws IOException {
        JsonValue value = Json.parse(" {\"a\": [1, -2.5e3, true, false, null], \"b\": {}, \"c\": [], \"d\": \"x\"}\n");
        JsonObject object = (JsonObject) value;
        assertEquals(List.of("a", "b", "c", "d"), List.copyOf(object.members().keySet()));
        List<JsonValue> a = ((JsonArray) object.get("a")).elements();
        assertEquals(1, ((JsonNumber) a.get(0)).longValueExact());
        assertEquals(-2500.0, ((JsonNumber) a.get(1)).doubleValue());
        assertEquals(List.of(JsonValue.TRUE, JsonValue.FALSE, JsonValue.NULL), a.subList(2, 5));
        assertEquals(new JsonString("x"), object.get("d"));
        assertEquals(JsonValue.NULL, Json.parse("null"));
        assertEquals(new JsonNumber("0"), Json.parse("0"));
    }

    @Test
    void decodesEveryEscapeIncludingSurrogatePairs() throws IOException {
        String json = "\"\\\" \\\\ \\/ \\b \\f \\n \\r \\t \\u00e9 \\u4E2D \\ud83d\\ude00 é 😀\"";
        assertEquals(new JsonString("\" \\ / \b \f \n \r \t é 中 😀 é 😀"), Json.parse(json));
    }

    @Test
    void exactIntegersAndDoubles() throws IOException {
        assertEquals(300, ((JsonNumber) Json.parse("3e2")).longValueExact());
        assertEquals(3, ((JsonNumber) Json.parse("3.0")).longValueExact());
        assertThrows(ArithmeticException.class, () -> ((JsonNumber) Json.parse("3.5")).longValueExact());
        assertThrows(ArithmeticException.class, () -> ((JsonNumber) Json.parse("1e999999999")).longValueExact());
        assertEquals(1e-5, ((JsonNumber) Json.parse("1e-5")).doubleValue());
    }

    @ParameterizedTest
    @CsvSource(delimiter = '|', textBlock = """
            [1, 2,]                 | 1 | 7  | trailing comma before ']'
            {"a": 1,}               | 1 | 9  | trailing comma before '}'
            // c\\n1                | 1 | 1  | comment
            [1 /* c */]             | 1 | 4  | comment
            01                      | 1 | 1  | leading zero
            -01                     | 1 | 1  | leading zero
            1.                      | 1 | 3  | after the decimal point
            .5                      | 1 | 1  | expected a value
            1e                      | 1 | 3  | exponent
            +1                      | 1 | 1  | expected a value
            "a\tb"                  | 1 | 3  | unescaped control character U+0009
            "\\x"                   | 1 | 2  | invalid escape sequence \\x
            "\\u12G4"               | 1 | 2  | four hexadecimal digits
            "\\ud83d"               | 1 | 2  | high surrogate
            "\\ude00"               | 1 | 2  | low surrogate escape without
            "abc                    | 1 | 1  | unterminated string
            {"a": 1, "a": 2}        | 1 | 10 | duplicate member name "a"
            {a: 1}                  | 1 | 2  | member name in double quotes
            {"a" 1}                 | 1 | 6  | expected ':'
            [1 2]                   | 1 | 4  | expected ',' or ']'
            tru                     | 1 | 1  | expected a value
            NaN                     | 1 | 1  | expected a value
            {} x                    | 1 | 4  | 'x' after the JSON value
            [1]]                    | 1 | 4  | after the JSON value
            '   '                   | 1 | 4  | empty input
            [\\n\\n  1,\\n  ]       | 4 | 3  | trailing comma
            """)
    void rejectsWithLineColumnAndProblem(String json, int line, int column, String problem) {
        String text = json.replace("\\n", "\n").replace("\\t", "\t").replace("\\\\", "\\");
        JsonException e = assertThrows(JsonException.class, () -> Json.parse(text));
        assertTrue(e.getMessage().startsWith("line " + line + ", column " + column + ": "), e.getMessage());
        assertTrue(e.getMessage().contains(problem), e.getMessage());
    }

    @Test
    void namesTheFileAndRejectsBadUtf8AndByteOrderMarks() throws IOException {
        Path file = dir.resolve("config.json");
        Files.writeString(file, "{\n  \"a\": [1,]\n}");
        ModelFormatException e = assertThrows(
                ModelFormatException.class,
                () -> BoundedFiles.readJson(file, text -> Json.parse(text, file, Json.Limits.DEFAULT)));
        assertEquals(file + ": line 2, column 11: trailing comma before ']'", e.getMessage());

        Files.write(file, new byte[] {'"', (byte) 0xC3, '"'});
        e = assertThrows(
                ModelFormatException.class,
                () -> BoundedFiles.readJson(file, text -> Json.parse(text, file, Json.Limits.DEFAULT)));
        assertTrue(e.getMessage().contains("not valid UTF-8"), e.getMessage());

        Files.writeString(file, "\uFEFF{}");
        e = assertThrows(
                ModelFormatException.class,
                () -> BoundedFiles.readJson(file, text -> Json.parse(text, file, Json.Limits.DEFAULT)));
        assertTrue(e.getMessage().contains("byte order mark"), e.getMessage());
    }

    @Test
    void boundsDepthAndSize() throws IOException {
        String deep = "[".repeat(100_000) + "]".repeat(100_000);
        JsonException e = assertThrows(JsonException.class, () -> Json.parse(deep));
        assertTrue(e.getMessage().contains("nesting deeper than the limit of " + Json.DEFAULT_MAX_DEPTH));
        assertEquals(
                Json.parse("[[]]"), Json.parse("[[]]", null, Json.Limits.DEFAULT.withMaxDepth(2)), "depth 2 allowed");
        assertThrows(JsonException.class, () -> Json.parse("[[]]", null, Json.Limits.DEFAULT.withMaxDepth(1)));

        Path big = dir.resolve("big.json");
        try (RandomAccessFile file = new RandomAccessFile(big.toFile(), "rw")) {
            file.setLength(Json.DEFAULT_MAX_BYTES + 1); // sparse: costs no disk
        }
        ModelFormatException tooLarge =
                assertThrows(ModelFormatException.class, () -> BoundedFiles.readJson(big, Json::parse));
        assertTrue(tooLarge.getMessage().contains("larger than the limit"), tooLarge.getMessage());
    }

    @Test
    void writerRoundTripsAndEscapes() throws IOException {
        Map<String, JsonValue> members = new LinkedHashMap<>();
        members.put("s", new JsonString("q\" b\\ \n\t\u0001 é 中 😀"));
        members.put("n", JsonNumber.of(-12));
        members.put("d", JsonNumber.of(1e-5));
        members.put("a", new JsonArray(List.of(JsonValue.TRUE, JsonValue.NULL, new JsonObject(Map.of()))));
        JsonObject object = new JsonObject(members);
        String text = Json.write(object);
        assertEquals("{\"s\":\"q\\\" b\\\\ \\n\\t\\u0001 é 中 😀\",\"n\":-12,\"d\":1.0E-5,\"a\":[true,null,{}]}", text);
        assertEquals(object, Json.parse(text));
        assertThrows(IllegalArgumentException.class, () -> Json.write(new JsonString("\ud83d")));
        assertThrows(IllegalArgumentException.class, () -> JsonNumber.of(Double.NaN));
    }

    @Test
    void fieldsCheckTypesAndRanges() throws IOException {
        JsonFields fields = JsonFields.of(
                "config.json",
                Json.parse("{\"n\": 12, \"x\": 1.5, \"s\": \"t\", \"o\": {\"k\": [1, 2, -3]}, \"z\": null}"));
        assertEquals(12, fields.integer("n", 1, 100));
        assertEquals(7, fields.integer("z", 1, 100, 7));
        assertEquals(7, fields.integer("absent", 1, 100, 7));
        assertEquals(1.5, fields.number("x", 0));
        assertEquals("t", fields.string("s"));
        assertArrayEquals(new long[] {1, 2, -3}, fields.object("o").integers("k", -5, 5));
        assertEquals(
                "config.json: o.k[2]: value -3 is outside [0, 5]",
                assertThrows(JsonException.class, () -> fields.object("o").integers("k", 0, 5))
                        .getMessage());
        assertEquals(
                "config.json: x: expected an integer, found 1.5",
                assertThrows(JsonException.class, () -> fields.integer("x", 0, 5))
                        .getMessage());
        assertEquals(
                "config.json: s: expected an integer, found a string",
                assertThrows(JsonException.class, () -> fields.integer("s", 0, 5))
                        .getMessage());
        assertEquals(
                "config.json: m: missing",
                assertThrows(JsonException.class, () -> fields.string("m")).getMessage());
        assertEquals(
                "config.json: expected a JSON object at the top level, found an array",
                assertThrows(JsonException.class, () -> JsonFields.of("config.json", Json.parse("[]")))
                        .getMessage());
    }

    @Test
    void longNumbersAreRejectedInLinearTimeWithAShortMessage() throws JsonException {
        String digits = "7".repeat(1_000_000); // parsed whole, this took 21 s
        for (String text : List.of(digits, "[0, -" + digits + "]", "{\"n\": 1." + digits + "}", "1e" + digits)) {
            JsonException e = assertTimeoutPreemptively(
                    Duration.ofSeconds(5), () -> assertThrows(JsonException.class, () -> Json.parse(text)));
            assertTrue(
                    e.getMessage().contains("characters is longer than the limit of " + JsonNumber.MAX_CHARS + ": "),
                    e.getMessage());
            assertTrue(e.getMessage().endsWith(" chars)") && e.getMessage().length() < 200, e.getMessage());
        }
        String longest = "0." + "5".repeat(JsonNumber.MAX_CHARS - 2);
        assertEquals(0.5555555555555556, ((JsonNumber) Json.parse(longest)).doubleValue());
        assertThrows(JsonException.class, () -> Json.parse(longest + "5"));
    }

    @Test
    void integersAreExactAndHugeExponentsNeitherHangNorEscapeAsNumberFormatException() throws JsonException {
        assertEquals(15, number("1.5e1").longValueExact());
        assertEquals(1, number("100e-2").longValueExact());
        assertEquals(-9223372036854775808L, number("-9223372036854775808").longValueExact());
        assertEquals(0, number("0e99999999999999999999").longValueExact());
        assertEquals(0, number("-0.000e-99999999999999999999").longValueExact());
        for (String text : List.of("1e99999999999999999999", "1e2147483648")) {
            assertEquals(
                    text + " is too large for a long",
                    assertThrows(ArithmeticException.class, () -> number(text).longValueExact())
                            .getMessage());
        }
        for (String text : List.of("9223372036854775808", "1e19", "1e1020", "1e1021")) {
            assertThrows(ArithmeticException.class, () -> number(text).longValueExact(), text);
        }
        for (String text : List.of("1e-99999999999999999999", "1.5", "1e-1")) {
            assertThrows(ArithmeticException.class, () -> number(text).longValueExact(), text);
        }
        assertEquals(Double.POSITIVE_INFINITY, number("1e99999999999999999999").doubleValue());
        JsonFields fields = JsonFields.of("config.json", Json.parse("{\"n\": 1e99999999999999999999}"));
        assertEquals(
                "config.json: n: expected an integer, found 1e99999999999999999999",
                assertThrows(JsonException.class, () -> fields.integer("n", 0, 10))
                        .getMessage());
        assertEquals(
                "config.json: n: number 1e99999999999999999999 is out of range",
                assertThrows(JsonException.class, () -> fields.number("n", 0)).getMessage());
        String longExponent = "1e-" + "9".repeat(990);
        assertEquals(
                "config.json: n: expected an integer, found " + longExponent.substring(0, 40) + "... (993 chars)",
                assertThrows(JsonException.class, () -> JsonFields.of(
                                        "config.json", Json.parse("{\"n\": " + longExponent + "}"))
                                .integer("n", 0, 10))
                        .getMessage());
    }

    @Test
    void numbersMadeInCodeAreCheckedToo() {
        assertThrows(IllegalArgumentException.class, () -> new JsonNumber("abc"));
        assertThrows(IllegalArgumentException.class, () -> new JsonNumber("01"));
        assertThrows(IllegalArgumentException.class, () -> new JsonNumber("1".repeat(JsonNumber.MAX_CHARS + 1)));
        assertEquals("1.0E-5", JsonNumber.of(1e-5).text());
    }

    @Test
    void boundsTheValuesAndStringCharactersItBuilds() throws JsonException {
        String six = "[1, \"ab\", {\"c\": null}]"; // 6 values, 3 characters
        assertEquals(Json.parse(six), Json.parse(six, null, limits(6, 3)));
        assertEquals(
                "x: line 1, column 17: more than 5 values (counting member names), the limit",
                assertThrows(JsonException.class, () -> Json.parse(six, "x", limits(5, 3)))
                        .getMessage());
        assertEquals(
                "x: line 1, column 12: strings of more than 2 characters in all (counting member names), the limit",
                assertThrows(JsonException.class, () -> Json.parse(six, "x", limits(6, 2)))
                        .getMessage());
        String escaped = "[\"a\\u0062c\\n\"]"; // "abc\n": 4 characters
        assertEquals(new JsonArray(List.of(new JsonString("abc\n"))), Json.parse(escaped, null, limits(2, 4)));
        assertThrows(JsonException.class, () -> Json.parse(escaped, null, limits(2, 3)));

        // The default bound, reached cheaply: empty arrays are shared, so this costs a few MB.
        String many = "[" + "[],".repeat(Json.DEFAULT_MAX_VALUES - 2) + "[]]";
        assertEquals(
                Json.DEFAULT_MAX_VALUES - 1,
                ((JsonArray) Json.parse(many)).elements().size());
        JsonException e = assertThrows(JsonException.class, () -> Json.parse("[[]," + many.substring(1)));
        assertTrue(e.getMessage().contains("more than " + Json.DEFAULT_MAX_VALUES + " values"), e.getMessage());
    }

    @Test
    void longNamesAreCutInMessages() {
        String name = "n".repeat(5_000_000);
        JsonException e =
                assertThrows(JsonException.class, () -> Json.parse("{\"" + name + "\": 1, \"" + name + "\": 2}"));
        assertEquals(
                "line 1, column 5000009: duplicate member name \"" + "n".repeat(JsonException.EXCERPT_CHARS)
                        + "... (5000000 chars)\" in an object",
                e.getMessage());
        e = assertThrows(JsonException.class, () -> JsonFields.of("f", Json.parse("{\"" + name + "\": 1}"))
                .string(name));
        assertEquals(
                "f: " + "n".repeat(JsonException.EXCERPT_CHARS)
                        + "... (5000000 chars): expected a string, found a number",
                e.getMessage());
    }

    private static Json.Limits limits(int values, long chars) {
        return new Json.Limits(Json.DEFAULT_MAX_DEPTH, values, chars);
    }

    private static JsonNumber number(String text) throws JsonException {
        return (JsonNumber) Json.parse(text);
    }
}
