package dev.panamax.model.io;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Writes GGUF files (version 3): metadata, tensor infos and tensor data at the default alignment. The file is written
 * under a temporary name beside the target, flushed, and renamed over it, so that a reader (or a crash) sees the old
 * file or the new one, never a part.
 */
public final class GgufWriter {
    private GgufWriter() {}

    /**
     * Fills a tensor's bytes.
     */
    @FunctionalInterface
    public interface Content {
        /**
         * Writes the tensor's data, in its type's layout.
         *
         * @param target exactly the tensor's bytes, zeroed
         */
        void fill(MemorySegment target);
    }

    /**
     * A tensor to write.
     *
     * @param name its name, at most 64 bytes of UTF-8
     * @param type its type
     * @param dimensions its dimensions, GGML's order (row length first), 1 to 4 of them, each at least 1
     * @param content what fills its bytes
     */
    public record TensorData(String name, GgmlType type, long[] dimensions, Content content) {
        /** Copies the dimensions. */
        public TensorData {
            dimensions = dimensions.clone();
        }

        long byteSize() {
            long elements = 1;
            for (long d : dimensions) {
                elements = Math.multiplyExact(elements, d);
            }
            return Math.multiplyExact(elements / type.blockLength(), type.bytesPerBlock());
        }
    }

    /**
     * Writes a GGUF file, replacing the target atomically ({@link AtomicFiles}).
     *
     * @param file the file to create or replace
     * @param metadata the key/value pairs, in the order to write them; {@code general.alignment} must be absent
     *     (the default alignment is used)
     * @param tensors the tensors, in the order to write them
     * @throws IllegalArgumentException if a name repeats or is too long, a shape is invalid or not made of whole
     *     blocks, or a value does not hold what its type says
     * @throws IOException if the file cannot be written
     */
    public static void write(Path file, Map<String, GgufValue> metadata, List<TensorData> tensors) throws IOException {
        if (metadata.containsKey(GgufFile.ALIGNMENT_KEY)) {
            throw new IllegalArgumentException("metadata must not set " + GgufFile.ALIGNMENT_KEY);
        }
        Set<String> names = new HashSet<>();
        for (TensorData t : tensors) {
            check(t);
            if (!names.add(t.name())) {
                throw new IllegalArgumentException("tensor \"" + t.name() + "\" is given twice");
            }
        }
        // The header is built in memory (it is small next to the tensors), then sized into the mapped file.
        Header header = new Header();
        header.int32(GgufFile.MAGIC)
                .int32(GgufFile.VERSION)
                .int64(tensors.size())
                .int64(metadata.size());
        for (Map.Entry<String, GgufValue> entry : new LinkedHashMap<>(metadata).entrySet()) {
            header.string(entry.getKey());
            header.int32(entry.getValue().type().ordinal());
            header.value(entry.getKey(), entry.getValue());
        }
        List<Long> offsets = new ArrayList<>();
        long offset = 0;
        for (TensorData t : tensors) {
            header.string(t.name()).int32(t.dimensions().length);
            for (long d : t.dimensions()) {
                header.int64(d);
            }
            header.int32(t.type().id()).int64(offset);
            offsets.add(offset);
            offset = GgufFile.align(offset + t.byteSize(), GgufFile.DEFAULT_ALIGNMENT);
        }
        byte[] head = header.bytes();
        long dataOffset = GgufFile.align(head.length, GgufFile.DEFAULT_ALIGNMENT);
        long total = dataOffset
                + (tensors.isEmpty() ? 0 : offsets.getLast() + tensors.getLast().byteSize());
        AtomicFiles.replace(file, temporary -> {
            try (FileChannel channel = FileChannel.open(temporary, StandardOpenOption.READ, StandardOpenOption.WRITE);
                    Arena arena = Arena.ofConfined()) {
                MemorySegment mapped =
                        total == 0 ? MemorySegment.NULL : channel.map(FileChannel.MapMode.READ_WRITE, 0, total, arena);
                MemorySegment.copy(head, 0, mapped, ValueLayout.JAVA_BYTE, 0, head.length);
                for (int i = 0; i < tensors.size(); i++) {
                    TensorData t = tensors.get(i);
                    t.content().fill(mapped.asSlice(dataOffset + offsets.get(i), t.byteSize()));
                }
                mapped.force();
            } catch (InternalError fault) {
                // The JVM's report of a fault in mapped memory: the file system could not back a page of the mapping.
                throw new IOException(
                        file + ": could not write the file's " + total + " bytes (is the disk full?)", fault);
            }
        });
    }

    private static void check(TensorData t) {
        int nameBytes = t.name().getBytes(StandardCharsets.UTF_8).length;
        if (nameBytes == 0 || nameBytes > GgufFile.MAX_NAME_BYTES) {
            throw new IllegalArgumentException("tensor name \"" + t.name() + "\" takes " + nameBytes
                    + " bytes, not 1 to " + GgufFile.MAX_NAME_BYTES);
        }
        long[] dims = t.dimensions();
        if (dims.length < 1 || dims.length > GgufFile.MAX_DIMENSIONS) {
            throw new IllegalArgumentException("tensor \"" + t.name() + "\" has " + dims.length
                    + " dimensions, not 1 to " + GgufFile.MAX_DIMENSIONS);
        }
        for (long d : dims) {
            if (d < 1) {
                throw new IllegalArgumentException("tensor \"" + t.name() + "\" has dimensions "
                        + java.util.Arrays.toString(dims) + "; each must be at least 1");
            }
        }
        if (dims[0] % t.type().blockLength() != 0) {
            throw new IllegalArgumentException(
                    "tensor \"" + t.name() + "\"'s row length " + dims[0] + " is not a multiple of " + t.type()
                            + "'s block length " + t.type().blockLength());
        }
    }

    /** A growing little-endian byte buffer for the header. */
    private static final class Header {
        private byte[] bytes = new byte[1 << 12];
        private int size;

        private MemorySegment reserve(int n) {
            if (bytes.length - size < n) {
                bytes = java.util.Arrays.copyOf(bytes, Math.max(2 * bytes.length, size + n));
            }
            MemorySegment slice = MemorySegment.ofArray(bytes).asSlice(size, n);
            size += n;
            return slice;
        }

        Header int32(int v) {
            reserve(4).set(GgufFile.INT, 0, v);
            return this;
        }

        Header int64(long v) {
            reserve(8).set(GgufFile.LONG, 0, v);
            return this;
        }

        Header string(String s) {
            byte[] utf8 = s.getBytes(StandardCharsets.UTF_8);
            int64(utf8.length);
            MemorySegment.copy(utf8, 0, reserve(utf8.length), ValueLayout.JAVA_BYTE, 0, utf8.length);
            return this;
        }

        void value(String key, GgufValue v) {
            try {
                if (v.type() == GgufValue.Type.ARRAY) {
                    int32(v.elementType().ordinal());
                    int64(v.length());
                    for (int i = 0; i < v.length(); i++) {
                        element(key, v, i);
                    }
                } else {
                    scalar(v.type(), v.value());
                }
            } catch (ClassCastException e) {
                throw new IllegalArgumentException(
                        "metadata \"" + key + "\" does not hold what its type " + v.type() + " says", e);
            }
        }

        private void element(String key, GgufValue v, int i) {
            switch (v.value()) {
                case long[] a -> scalar(v.elementType(), a[i]);
                case float[] a -> scalar(v.elementType(), a[i]);
                case double[] a -> scalar(v.elementType(), a[i]);
                case boolean[] a -> scalar(v.elementType(), a[i]);
                case String[] a -> scalar(v.elementType(), a[i]);
                case GgufValue[] a -> {
                    int32(a[i].elementType().ordinal());
                    int64(a[i].length());
                    for (int j = 0; j < a[i].length(); j++) {
                        element(key, a[i], j);
                    }
                }
                default -> throw new IllegalArgumentException("metadata \"" + key + "\" is not an array");
            }
        }

        private void scalar(GgufValue.Type type, Object value) {
            switch (type) {
                case UINT8, INT8 -> reserve(1).set(ValueLayout.JAVA_BYTE, 0, (byte) (long) (Long) value);
                case UINT16, INT16 -> reserve(2).set(GgufFile.SHORT, 0, (short) (long) (Long) value);
                case UINT32, INT32 -> int32((int) (long) (Long) value);
                case UINT64, INT64 -> int64((Long) value);
                case FLOAT32 -> reserve(4).set(GgufFile.FLOAT, 0, (Float) value);
                case FLOAT64 -> reserve(8).set(GgufFile.DOUBLE, 0, (Double) value);
                case BOOL -> reserve(1).set(ValueLayout.JAVA_BYTE, 0, (byte) ((Boolean) value ? 1 : 0));
                case STRING -> string((String) value);
                case ARRAY -> throw new IllegalArgumentException("nested array without element type");
            }
        }

        byte[] bytes() {
            return java.util.Arrays.copyOf(bytes, size);
        }
    }
}
