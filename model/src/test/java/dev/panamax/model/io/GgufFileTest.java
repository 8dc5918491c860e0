package dev.panamax.model.io;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class GgufFileTest {
    private static final ValueLayout.OfFloat FLOAT =
            ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    @TempDir
    Path dir;

    /** Every value type, arrays of each and an array of arrays. */
    private static Map<String, GgufValue> everyType() {
        Map<String, GgufValue> m = new LinkedHashMap<>();
        m.put("u8", new GgufValue(GgufValue.Type.UINT8, null, 255L));
        m.put("i8", new GgufValue(GgufValue.Type.INT8, null, -128L));
        m.put("u16", new GgufValue(GgufValue.Type.UINT16, null, 65535L));
        m.put("i16", new GgufValue(GgufValue.Type.INT16, null, -32768L));
        m.put("u32", GgufValue.uint32(4294967295L));
        m.put("i32", new GgufValue(GgufValue.Type.INT32, null, -7L));
        m.put("f32", GgufValue.of(1.5f));
        m.put("bool", GgufValue.of(true));
        m.put("string", GgufValue.of("héllo ▁ wörld"));
        m.put("u64", new GgufValue(GgufValue.Type.UINT64, null, -1L));
        m.put("i64", new GgufValue(GgufValue.Type.INT64, null, Long.MIN_VALUE));
        m.put("f64", new GgufValue(GgufValue.Type.FLOAT64, null, Math.PI));
        m.put("strings", GgufValue.of(new String[] {"a", "", "<0x0A>"}));
        m.put("floats", GgufValue.of(new float[] {-1f, 0f, Float.MAX_VALUE}));
        m.put("ints", GgufValue.of(new int[] {1, -2, 3}));
        m.put("u8s", new GgufValue(GgufValue.Type.ARRAY, GgufValue.Type.UINT8, new long[] {0, 200}));
        m.put("bools", new GgufValue(GgufValue.Type.ARRAY, GgufValue.Type.BOOL, new boolean[] {true, false}));
        m.put("f64s", new GgufValue(GgufValue.Type.ARRAY, GgufValue.Type.FLOAT64, new double[] {1e300}));
        m.put("nested", new GgufValue(GgufValue.Type.ARRAY, GgufValue.Type.ARRAY, new GgufValue[] {
            GgufValue.of(new int[] {4}), GgufValue.of(new String[] {"x", "y"})
        }));
        return m;
    }

    private static GgufWriter.TensorData floats(String name, long... dims) {
        return new GgufWriter.TensorData(name, GgmlType.F32, dims, target -> {
            for (long i = 0; i < target.byteSize() / 4; i++) {
                target.setAtIndex(FLOAT, i, name.length() + i);
            }
        });
    }

    private Path sample() throws IOException {
        Path file = dir.resolve("sample.gguf");
        GgufWriter.write(
                file,
                everyType(),
                List.of(
                        floats("a", 3, 2),
                        new GgufWriter.TensorData("q", GgmlType.Q8_0, new long[] {64, 3}, t -> t.fill((byte) 7)),
                        floats("blk.0.attn_norm.weight", 5)));
        return file;
    }

    @Test
    void writesAndReadsBackEveryValueTypeAndTensor() throws IOException {
        Path file = sample();
        try (GgufFile gguf = GgufFile.open(file)) {
            assertEquals(3, gguf.version());
            assertEquals(GgufFile.DEFAULT_ALIGNMENT, gguf.alignment());
            assertEquals(0, gguf.dataOffset() % 32);
            Map<String, GgufValue> expected = everyType();
            assertEquals(
                    List.copyOf(expected.keySet()), List.copyOf(gguf.metadata().keySet()));
            for (var e : expected.entrySet()) {
                GgufValue read = gguf.metadata().get(e.getKey());
                assertEquals(e.getValue().type(), read.type(), e.getKey());
                assertEquals(e.getValue().elementType(), read.elementType(), e.getKey());
                assertEquals(describeDeep(e.getValue()), describeDeep(read), e.getKey());
            }
            assertEquals(4294967295L, gguf.integer("u32", 0, 1L << 32));
            assertEquals("héllo ▁ wörld", gguf.string("string"));
            assertEquals(Math.PI, gguf.number("f64"));
            assertArrayEquals(
                    new String[] {"a", "", "<0x0A>"}, (String[]) gguf.array("strings", GgufValue.Type.STRING));
            assertEquals(
                    List.of("a", "q", "blk.0.attn_norm.weight"),
                    List.copyOf(gguf.tensors().keySet()));
            GgufFile.Tensor a = gguf.tensors().get("a");
            assertArrayEquals(new long[] {3, 2}, a.dimensions());
            assertArrayEquals(new long[] {2, 3}, a.matrixShape());
            MemorySegment data = gguf.data(a);
            assertTrue(data.isReadOnly());
            assertEquals(24, data.byteSize());
            assertEquals(1f + 5, data.getAtIndex(FLOAT, 5));
            GgufFile.Tensor q = gguf.tensors().get("q");
            assertEquals(GgmlType.Q8_0, q.type());
            assertEquals(3 * 2 * 34, q.byteSize());
            assertEquals(0, q.offset() % 32);
            assertEquals(7, gguf.data(q).get(ValueLayout.JAVA_BYTE, 101));
            assertEquals(
                    22f + 4,
                    gguf.data(gguf.tensors().get("blk.0.attn_norm.weight")).getAtIndex(FLOAT, 4));
        }
        assertFalse(Files.exists(dir.resolve("sample.gguf.tmp")), "the temporary file is renamed away");
    }

    private static String describeDeep(GgufValue v) {
        return switch (v.value()) {
            case long[] a -> Arrays.toString(a);
            case float[] a -> Arrays.toString(a);
            case double[] a -> Arrays.toString(a);
            case boolean[] a -> Arrays.toString(a);
            case String[] a -> Arrays.toString(a);
            case GgufValue[] a ->
                Arrays.stream(a).map(GgufFileTest::describeDeep).toList().toString();
            default -> v.value().toString();
        };
    }

    @Test
    void typedGettersNameTheKeyAndTheBound() throws IOException {
        try (GgufFile gguf = GgufFile.open(sample())) {
            assertMessage(() -> gguf.integer("i32", 0, 10), "\"i32\" is -7, not in [0, 10]");
            assertMessage(() -> gguf.integer("u64", 0, Long.MAX_VALUE), "18446744073709551615");
            assertMessage(() -> gguf.string("f32"), "\"f32\" is a FLOAT32, not a string");
            assertMessage(() -> gguf.require("absent"), "\"absent\" is missing");
            assertMessage(() -> gguf.array("floats", GgufValue.Type.STRING), "an array of FLOAT32, not an array of");
        }
    }

    @Test
    void everyTruncationIsOneModelFormatException() throws IOException {
        byte[] whole = Files.readAllBytes(sample());
        Path cut = dir.resolve("cut.gguf");
        for (int length = 0; length < whole.length; length++) {
            Files.write(cut, Arrays.copyOf(whole, length));
            ModelFormatException e = assertThrows(
                    ModelFormatException.class, () -> GgufFile.open(cut).close());
            assertTrue(e.getMessage().startsWith(cut.toString()), e.getMessage());
        }
    }

    @Test
    void corruptedBytesOpenOrFailWithModelFormatExceptionOnly() throws IOException {
        byte[] whole = Files.readAllBytes(sample());
        Path bad = dir.resolve("bad.gguf");
        SplittableRandom random = new SplittableRandom(24);
        int headerEnd = whole.length - 6 * 4 - 6 * 34 - 5 * 4; // the tensors' data is at most this much
        for (int trial = 0; trial < 2000; trial++) {
            byte[] copy = whole.clone();
            for (int flips = 1 + random.nextInt(3); flips > 0; flips--) {
                int at = random.nextInt(headerEnd);
                copy[at] = (byte) (random.nextBoolean() ? random.nextInt(256) : copy[at] ^ (1 << random.nextInt(8)));
            }
            Files.write(bad, copy);
            try (GgufFile gguf = GgufFile.open(bad)) {
                for (GgufFile.Tensor t : gguf.tensors().values()) {
                    gguf.data(t); // any file that opens has its tensors inside it
                }
            } catch (ModelFormatException expected) {
                // the one kind of failure allowed
            }
        }
    }

    /** A hand-built GGUF header: magic, version, counts, then whatever a test appends. */
    private static final class Raw {
        final ByteBuffer b = ByteBuffer.allocate(1 << 12).order(ByteOrder.LITTLE_ENDIAN);

        Raw(int version, long tensors, long kvs) {
            b.putInt(0x46554747).putInt(version).putLong(tensors).putLong(kvs);
        }

        Raw string(String s) {
            byte[] bytes = s.getBytes(StandardCharsets.UTF_8);
            b.putLong(bytes.length).put(bytes);
            return this;
        }

        Raw tensor(String name, long[] dims, int type, long offset) {
            string(name).b.putInt(dims.length);
            for (long d : dims) {
                b.putLong(d);
            }
            b.putInt(type).putLong(offset);
            return this;
        }

        Path write(Path file, int dataBytes) throws IOException {
            int header = (b.position() + 31) / 32 * 32;
            Files.write(file, Arrays.copyOf(b.array(), header + dataBytes));
            return file;
        }
    }

    private void assertRejected(Raw raw, int dataBytes, String... fragments) throws IOException {
        Path file = raw.write(dir.resolve("raw.gguf"), dataBytes);
        ModelFormatException e = assertThrows(
                ModelFormatException.class, () -> GgufFile.open(file).close());
        assertTrue(e.getMessage().startsWith(file.toString()), e.getMessage());
        for (String fragment : fragments) {
            assertTrue(e.getMessage().contains(fragment), e.getMessage());
        }
    }

    @Test
    void rejectsWithTheFieldAndTheBound() throws IOException {
        assertRejected(new Raw(1, 0, 0), 0, "version 1 is not supported");
        Raw badMagic = new Raw(3, 0, 0);
        badMagic.b.putInt(0, 0x12345678);
        assertRejected(badMagic, 0, "not a GGUF file");
        assertRejected(new Raw(3, 1L << 40, 0), 0, "tensor_count is 1099511627776", "bytes left in the file");
        assertRejected(new Raw(3, 0, -1), 64, "metadata_kv_count is 18446744073709551615");
        Raw longKey = new Raw(3, 0, 1);
        longKey.b.putLong(1L << 50);
        assertRejected(longKey, 64, "metadata key 0 has length 1125899906842624");
        Raw hugeArray = new Raw(3, 0, 1).string("tokens");
        hugeArray.b.putInt(9).putInt(8).putLong(1L << 30);
        assertRejected(hugeArray, 64, "\"tokens\"'s length is 1073741824");
        Raw badBool = new Raw(3, 0, 1).string("flags");
        badBool.b.putInt(9).putInt(7).putLong(3).put((byte) 1).put((byte) 0).put((byte) 2);
        assertRejected(badBool, 64, "\"flags\"[2] is a bool of byte value 2, not 0 or 1");
        Raw badString = new Raw(3, 0, 1).string("words");
        badString
                .b
                .putInt(9)
                .putInt(8)
                .putLong(2)
                .putLong(1)
                .put((byte) 'a')
                .putLong(1)
                .put((byte) 0xFF);
        assertRejected(badString, 64, "\"words\"[1] is not valid UTF-8");
        Raw unknownValue = new Raw(3, 0, 1).string("k");
        unknownValue.b.putInt(13);
        assertRejected(unknownValue, 64, "unknown type id 13");
        Raw alignment = new Raw(3, 0, 1).string("general.alignment");
        alignment.b.putInt(4).putInt(24);
        assertRejected(alignment, 0, "general.alignment is 24, not a power of two");
        assertRejected(new Raw(3, 1, 0).tensor("t", new long[] {4}, 99, 0), 16, "unknown GGML type id 99");
        assertRejected(new Raw(3, 1, 0).tensor("t", new long[] {4, 1, 1, 1, 1}, 0, 0), 16, "5 dimensions");
        assertRejected(new Raw(3, 1, 0).tensor("t", new long[] {40}, 8, 0), 64, "row length 40", "block length 32");
        assertRejected(new Raw(3, 1, 0).tensor("t", new long[] {4}, 0, 8), 64, "data offset 8", "alignment 32");
        assertRejected(new Raw(3, 1, 0).tensor("t", new long[] {4, 0}, 0, 0), 64, "dimension 1 is 0");
        assertRejected(
                new Raw(3, 1, 0).tensor("t", new long[] {1L << 40, 1L << 40}, 0, 0), 64, "more than 2^63 elements");
        assertRejected(new Raw(3, 1, 0).tensor("t", new long[] {20}, 0, 0), 64, "80 bytes", "64 data bytes");
        assertRejected(
                new Raw(3, 2, 0).tensor("t", new long[] {16}, 0, 0).tensor("u", new long[] {8}, 0, 32),
                96,
                "\"u\" at data offset 32 overlaps tensor \"t\", which ends at 64");
        assertRejected(
                new Raw(3, 2, 0).tensor("t", new long[] {4}, 0, 0).tensor("t", new long[] {4}, 0, 32),
                64,
                "tensor \"t\" appears twice");
        // llama.cpp keeps names in 64 bytes with their terminating NUL: 63 at most.
        assertRejected(new Raw(3, 1, 0).tensor("x".repeat(64), new long[] {4}, 0, 0), 64, "has length 64");
        Raw badUtf8 = new Raw(3, 0, 1);
        badUtf8.b.putLong(1).put((byte) 0xFF);
        assertRejected(badUtf8, 64, "metadata key 0 is not valid UTF-8");
    }

    @Test
    void writerRefusesBadTensors() {
        assertMessage(
                () -> GgufWriter.write(
                        dir.resolve("w.gguf"),
                        Map.of(),
                        List.of(new GgufWriter.TensorData("t", GgmlType.Q4_0, new long[] {48}, t -> {}))),
                "row length 48 is not a multiple of Q4_0's block length 32");
        assertMessage(
                () -> GgufWriter.write(dir.resolve("w.gguf"), Map.of(), List.of(floats("t", 2), floats("t", 2))),
                "\"t\" is given twice");
        assertFalse(Files.exists(dir.resolve("w.gguf")));
    }

    private static void assertMessage(org.junit.jupiter.api.function.Executable call, String fragment) {
        Exception e = assertThrows(Exception.class, call);
        assertTrue(e.getMessage().contains(fragment), e.getMessage());
    }
}
