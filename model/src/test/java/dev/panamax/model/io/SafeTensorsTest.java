package dev.panamax.model.io;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.panamax.model.io.SafeTensors.Tensor;
import dev.panamax.model.testing.Segments;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class SafeTensorsTest {
    @TempDir
    Path dir;

    @Test
    void writesTheSpecLayoutAndReadsItBack() throws IOException {
        Map<String, Tensor> tensors = new LinkedHashMap<>();
        tensors.put("a", Tensor.of(DType.F32, new float[] {1, -2.5f, 3, 4, 5, 6}, 2, 3));
        tensors.put("b.half", Tensor.of(DType.F16, new float[] {0.5f, -65504, 1e-8f}, 3));
        tensors.put("c.brain", Tensor.of(DType.BF16, new float[] {1.00390625f, 1.01171875f, Float.NaN, -3}, 2, 2));
        tensors.put("empty", Tensor.of(DType.F32, new float[0], 0, 4));
        Path file = dir.resolve("t.safetensors");
        SafeTensors.write(file, tensors, Map.of("format", "pt"));

        byte[] bytes = Files.readAllBytes(file);
        long headerLength =
                ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN).getLong();
        assertEquals(0, headerLength % 8, "data starts 8-aligned");
        String header = new String(bytes, 8, (int) headerLength, StandardCharsets.UTF_8);
        assertTrue(
                header.startsWith("{\"__metadata__\":{\"format\":\"pt\"},\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],"
                        + "\"data_offsets\":[0,24]},\"b.half\":{\"dtype\":\"F16\",\"shape\":[3],"
                        + "\"data_offsets\":[24,30]}"),
                header);
        assertEquals(8 + headerLength + 24 + 6 + 8 + 0, bytes.length);

        try (SafeTensors read = SafeTensors.open(file)) {
            assertEquals(Map.of("format", "pt"), read.metadata());
            assertEquals(
                    List.of("a", "b.half", "c.brain", "empty"),
                    List.copyOf(read.tensors().keySet()));
            assertEquals(
                    new TensorInfo("a", DType.F32, List.of(2L, 3L), 0, 24),
                    read.tensors().get("a"));
            assertArrayEquals(new float[] {1, -2.5f, 3, 4, 5, 6}, Segments.toFloats(read.floats("a")));
            // F16: -65504 is the most negative finite half; 1e-8 underflows to the nearest subnormal, 0.
            assertArrayEquals(new float[] {0.5f, -65504, 0}, Segments.toFloats(read.floats("b.half")));
            assertEquals(read.floats("b.half"), read.floats("b.half"), "converted once");
            // BF16 rounds to nearest even: 1 + 2⁻⁸ is a tie and goes down to 1, 1 + 3·2⁻⁸ up to 1 + 2⁻⁶.
            float[] brain = Segments.toFloats(read.floats("c.brain"));
            assertArrayEquals(new float[] {1, 1.015625f}, new float[] {brain[0], brain[1]});
            assertTrue(Float.isNaN(brain[2]));
            assertEquals(-3, brain[3]);
            assertEquals(0, read.floats("empty").byteSize());
            assertEquals(6, read.bytes("b.half").byteSize());
        }
    }

    @Test
    void readsAFileLaidOutByHandAndOnlyFloatDtypesAsFloats() throws IOException {
        // As another implementation would write it: unpadded header, so the F32 data is not 4-aligned in the file.
        ByteBuffer data = ByteBuffer.allocate(12).order(ByteOrder.LITTLE_ENDIAN);
        data.putInt(7).putFloat(1.5f).putFloat(-2);
        Path file = write(
                "{\"ids\":{\"dtype\":\"I32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                        + "\"w\":{\"shape\":[2],\"dtype\":\"F32\",\"data_offsets\":[4,12]}}",
                data.array());
        try (SafeTensors read = SafeTensors.open(file)) {
            assertEquals(
                    7, read.bytes("ids").get(ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN), 0));
            MemorySegment w = read.floats("w");
            assertEquals(0, w.address() % 4, "copied to an aligned address");
            assertArrayEquals(new float[] {1.5f, -2}, Segments.toFloats(w));
            assertRejected("tensor \"ids\" has dtype I32; expected F32, F16 or BF16", () -> read.floats("ids"));
            assertRejected("no tensor named \"nope\"", () -> read.floats("nope"));
        }
    }

    @Test
    void rejectsBadHeaderLengths() throws IOException {
        assertRejected("shorter than its 8-byte header length", raw(new byte[5]));
        assertRejected("header length -1 is not within", raw(header(-1, "{}", 0)));
        assertRejected("header length 0 is not within", raw(header(0, "{}", 0)));
        assertRejected("header length 3 is not within (0, min(100000000, file size 10 - 8)]", raw(header(3, "{}", 0)));
        Path huge = dir.resolve("huge.safetensors");
        try (RandomAccessFile f = new RandomAccessFile(huge.toFile(), "rw")) {
            f.setLength(200_000_100L); // sparse
            f.write(header(200_000_000L, "{", 0));
        }
        assertRejected("header length 200000000 is not within (0, min(100000000", huge);
    }

    @Test
    void rejectsAHeaderFarLargerThanItsDataBeforeReadingIt() throws IOException {
        Path file = dir.resolve("header.safetensors");
        long header = SafeTensors.HEADER_ALLOWANCE_BYTES + 101;
        try (RandomAccessFile f = new RandomAccessFile(file.toFile(), "rw")) {
            f.setLength(8 + header + 100); // sparse: the header is never read, so its zeros do not matter
            f.write(header(header, "", 0));
        }
        assertRejected(
                "safetensors header of 1048677 bytes is larger than the 1048576 bytes allowed beyond the data it"
                        + " describes (100 bytes)",
                file);
        assertRejected("the safetensors file is a directory, not a regular file", dir);
    }

    @Test
    void cutsLongTensorNamesInMessages() throws IOException {
        String name = "w".repeat(100_000);
        Path file = write("{\"" + name + "\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", new byte[8]);
        assertRejected(
                ": tensor \"" + "w".repeat(ModelFormatException.EXCERPT_CHARS)
                        + "... (100000 chars)\" at bytes [4, 8) leaves a gap after the header, which ends at 0",
                file);
    }

    @Test
    void rejectsBadHeaders() throws IOException {
        assertRejected("(header): line 1, column 2: unexpected 'x'", write("{x", new byte[0]));
        assertRejected("does not start with '{'", write("[]", new byte[0]));
        assertRejected("(header): line 1, column 9: trailing comma", write("{\"a\":{},}", new byte[0]));
        assertRejected(
                "duplicate member name \"a\"",
                write(
                        "{\"a\":{\"dtype\":\"U8\",\"shape\":[],\"data_offsets\":[0,1]},"
                                + "\"a\":{\"dtype\":\"U8\",\"shape\":[],\"data_offsets\":[0,1]}}",
                        new byte[1]));
        assertRejected("a: expected an object, found a number", write("{\"a\":1}", new byte[0]));
        assertRejected(
                "__metadata__: \"k\": expected a string, found a number",
                write("{\"__metadata__\":{\"k\":1}}", new byte[0]));
        // A key is quoted as an excerpt, its control characters escaped: no terminal escape reaches the message.
        assertRejected(
                "__metadata__: \"\\u001B]52;c;x\\u0007\": expected a string",
                write("{\"__metadata__\":{\"\\u001b]52;c;x\\u0007\":1}}", new byte[0]));
        assertRejected("a.dtype: unknown dtype \"F33\"", tensor("F33", "[1]", "[0,4]", 4));
        assertRejected("a.dtype: expected a string", tensor("4", "[1]", "[0,4]", 4));
        assertRejected("a.dtype: missing", write("{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", new byte[4]));
        assertRejected(
                "a.extra: unknown key",
                write("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"extra\":1}}", new byte[4]));
        assertRejected("a.shape[0]: value -1 is outside", tensor("F32", "[-1]", "[0,4]", 4));
        assertRejected("a.shape[1]: expected an integer, found 1.5", tensor("F32", "[1,1.5]", "[0,4]", 4));
        assertRejected("more elements than a long can count", tensor("F32", "[4611686018427387904,4]", "[0,4]", 4));
        assertRejected("a: F32 [2] needs 8 bytes but data_offsets [0, 4] span 4", tensor("F32", "[2]", "[0,4]", 4));
        assertRejected("a: BF16 [3] needs 6 bytes", tensor("BF16", "[3]", "[0,4]", 4));
        assertRejected("a.data_offsets[1]: value 8 is outside [0, 4]", tensor("F32", "[2]", "[0,8]", 4));
        assertRejected("a.data_offsets[0]: value -4 is outside", tensor("F32", "[2]", "[-4,4]", 4));
        assertRejected("[4, 0] is not a range", tensor("F32", "[0]", "[4,0]", 4));
        assertRejected("[0, 4, 8] is not a range", tensor("F32", "[1]", "[0,4,8]", 8));
        assertRejected("4 bytes after the last tensor", tensor("F32", "[1]", "[0,4]", 8));
    }

    @Test
    void rejectsOverlapsAndGaps() throws IOException {
        assertRejected(
                "tensor \"b\" at bytes [4, 12) overlaps \"a\", which ends at 8",
                write(
                        "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                                + "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
                        new byte[12]));
        assertRejected(
                "tensor \"a\" at bytes [0, 8) overlaps \"b\"",
                write(
                        "{\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                                + "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
                        new byte[8]));
        assertRejected(
                "tensor \"b\" at bytes [8, 12) leaves a gap after \"a\", which ends at 4",
                write(
                        "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                                + "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}",
                        new byte[12]));
    }

    private Path tensor(String dtype, String shape, String offsets, int dataBytes) throws IOException {
        String json = "{\"a\":{\"dtype\":" + (dtype.matches("\\d+") ? dtype : "\"" + dtype + "\"") + ",\"shape\":"
                + shape + ",\"data_offsets\":" + offsets + "}}";
        return write(json, new byte[dataBytes]);
    }

    private Path write(String json, byte[] data) throws IOException {
        byte[] bytes = json.getBytes(StandardCharsets.UTF_8);
        ByteBuffer file = ByteBuffer.allocate(8 + bytes.length + data.length).order(ByteOrder.LITTLE_ENDIAN);
        file.putLong(bytes.length).put(bytes).put(data);
        return raw(file.array());
    }

    private static byte[] header(long length, String json, int data) {
        byte[] bytes = json.getBytes(StandardCharsets.UTF_8);
        return ByteBuffer.allocate(8 + bytes.length + data)
                .order(ByteOrder.LITTLE_ENDIAN)
                .putLong(length)
                .put(bytes)
                .array();
    }

    private Path raw(byte[] bytes) throws IOException {
        Path file = dir.resolve("bad.safetensors");
        Files.write(file, bytes);
        return file;
    }

    private static void assertRejected(String problem, Path file) {
        assertRejected(problem, () -> SafeTensors.open(file).close());
        String message = assertThrows(
                        ModelFormatException.class, () -> SafeTensors.open(file).close())
                .getMessage();
        assertTrue(message.startsWith(file.toString()), message);
    }

    private static void assertRejected(String problem, org.junit.jupiter.api.function.Executable action) {
        String message = assertThrows(ModelFormatException.class, action).getMessage();
        assertTrue(message.contains(problem), message);
    }
}
