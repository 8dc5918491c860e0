package dev.panamax.model.io;

import dev.panamax.model.backend.MemorySize;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.CharBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CharsetDecoder;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A GGUF file (llama.cpp's format, version 3 and the identical version 2), memory-mapped: the magic {@code GGUF}, the
 * version, the tensor and metadata counts, the metadata key/value pairs, the tensor infos (name, dimensions, GGML type,
 * offset), and then, at the next multiple of {@code general.alignment} (32 by default), the tensor data, each tensor at
 * its aligned offset. All little-endian.
 *
 * <p>Opening checks everything before it is used: every count and length against the bytes left in the file (and
 * sane bounds) before anything is allocated for it, every type id, every tensor's shape against its type's block
 * length, its offset against the alignment, its byte range against the file, and that no two tensors overlap. A bad
 * file is one {@link ModelFormatException} naming the file, the field and the bound. Tensors are read-only slices of
 * the mapping, valid until {@link #close()}.
 */
public final class GgufFile implements AutoCloseable {
    /** The alignment of the tensor data when {@code general.alignment} is absent. */
    public static final int DEFAULT_ALIGNMENT = 32;

    /** The metadata key that sets the alignment. */
    public static final String ALIGNMENT_KEY = "general.alignment";

    static final int MAGIC = 0x46554747; // "GGUF" read as a little-endian int32
    static final int VERSION = 3;
    static final int MAX_DIMENSIONS = 4; // GGML_MAX_DIMS
    static final int MAX_NAME_BYTES = 63; // GGML_MAX_NAME (64) less the terminating NUL, as llama.cpp checks it
    private static final int MAX_KEY_BYTES = 65535;
    private static final int MAX_STRING_BYTES = 1 << 24;
    private static final int MAX_ARRAY_LENGTH = 1 << 24;
    private static final int MAX_ENTRIES = 1 << 20;
    private static final int MAX_ARRAY_DEPTH = 4;
    private static final int MAX_ALIGNMENT = 1 << 20;
    private static final int HEADER_BYTES = 24;
    private static final int MIN_TENSOR_INFO_BYTES = 8 + 1 + 4 + 8 + 4 + 8;
    private static final int MIN_KEY_VALUE_BYTES = 8 + 1 + 4 + 1;

    static final ValueLayout.OfInt INT = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    static final ValueLayout.OfLong LONG = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    static final ValueLayout.OfShort SHORT = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    static final ValueLayout.OfDouble DOUBLE = ValueLayout.JAVA_DOUBLE_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    /**
     * One tensor's info.
     *
     * @param name its name, e.g. {@code blk.0.attn_q.weight}
     * @param dimensions its dimensions, GGML's order: {@code dimensions[0]} is the row length (the fastest-varying)
     * @param type its type
     * @param offset its data's offset from the start of the data section
     * @param byteSize its data's bytes
     */
    public record Tensor(String name, long[] dimensions, GgmlType type, long offset, long byteSize) {
        /** Copies the dimensions. */
        public Tensor {
            dimensions = dimensions.clone();
        }

        @Override
        public long[] dimensions() {
            return dimensions.clone();
        }

        /**
         * Returns the number of elements.
         *
         * @return the product of the dimensions
         */
        public long elements() {
            long n = 1;
            for (long d : dimensions) {
                n *= d;
            }
            return n;
        }

        /**
         * Returns the shape as a matrix: the row length and the number of rows (all other dimensions).
         *
         * @return {@code {rows, columns}}
         */
        public long[] matrixShape() {
            return new long[] {elements() / dimensions[0], dimensions[0]};
        }

        /**
         * Describes the dimensions as GGML lists them, e.g. {@code [64, 512]}.
         *
         * @return the description
         */
        public String shape() {
            return java.util.Arrays.toString(dimensions);
        }
    }

    private final Path file;
    private final Arena arena;
    private final int version;
    private final Map<String, GgufValue> metadata;
    private final Map<String, Tensor> tensors;
    private final long dataOffset;
    private final int alignment;
    private final MemorySegment data;

    private GgufFile(
            Path file,
            Arena arena,
            int version,
            Map<String, GgufValue> metadata,
            Map<String, Tensor> tensors,
            long dataOffset,
            int alignment,
            MemorySegment data) {
        this.file = file;
        this.arena = arena;
        this.version = version;
        this.metadata = Collections.unmodifiableMap(metadata);
        this.tensors = Collections.unmodifiableMap(tensors);
        this.dataOffset = dataOffset;
        this.alignment = alignment;
        this.data = data;
    }

    /**
     * Opens and memory-maps a GGUF file, checking all of it but the tensors' values.
     *
     * @param file the file
     * @return the open file; close it to unmap
     * @throws ModelFormatException if it is not a GGUF file of version 2 or 3, or anything in it is malformed,
     *     inconsistent or out of bounds
     * @throws java.nio.file.NoSuchFileException if there is no such file
     * @throws IOException if it cannot be read
     */
    public static GgufFile open(Path file) throws IOException {
        BoundedFiles.requireRegularFile(file, "GGUF file");
        Arena arena = Arena.ofShared();
        try (FileChannel channel = FileChannel.open(file, StandardOpenOption.READ)) {
            long size = channel.size();
            if (size < HEADER_BYTES) {
                throw new ModelFormatException(
                        file, "GGUF file of " + size + " bytes is shorter than its " + HEADER_BYTES + "-byte header");
            }
            MemorySegment mapped = Channels.mapWeights(channel, 0, size, arena);
            return new Parser(file, mapped).parse(arena);
        } catch (IOException | RuntimeException e) {
            arena.close();
            throw e;
        }
    }

    /** Reads the file front to back, each read checked against the bytes left. */
    private static final class Parser {
        private final Path file;
        private final MemorySegment bytes;
        private final CharsetDecoder utf8 = StandardCharsets.UTF_8
                .newDecoder()
                .onMalformedInput(CodingErrorAction.REPORT)
                .onUnmappableCharacter(CodingErrorAction.REPORT);
        private long position;

        Parser(Path file, MemorySegment bytes) {
            this.file = file;
            this.bytes = bytes;
        }

        GgufFile parse(Arena arena) throws ModelFormatException {
            int magic = bytes.get(INT, 0);
            if (magic != MAGIC) {
                throw new ModelFormatException(
                        file, "not a GGUF file: it starts with 0x%08x, not the magic \"GGUF\"".formatted(magic));
            }
            int version = bytes.get(INT, 4);
            if (version != VERSION && version != 2) {
                throw new ModelFormatException(
                        file,
                        "GGUF version " + Integer.toUnsignedString(version) + " is not supported; only versions 2 and"
                                + " 3 (little-endian) are");
            }
            position = 8;
            long tensorCount = count("tensor_count", MIN_TENSOR_INFO_BYTES, MAX_ENTRIES);
            long keyValueCount = count("metadata_kv_count", MIN_KEY_VALUE_BYTES, MAX_ENTRIES);
            Map<String, GgufValue> metadata = new LinkedHashMap<>();
            for (long i = 0; i < keyValueCount; i++) {
                String key = string("metadata key " + i, MAX_KEY_BYTES);
                if (key.isEmpty()) {
                    throw problem("metadata key " + i + " is empty");
                }
                GgufValue value = value("metadata value of \"" + excerpt(key) + "\"", valueType(key), 0);
                if (metadata.putIfAbsent(key, value) != null) {
                    throw problem("metadata key \"" + excerpt(key) + "\" appears twice");
                }
            }
            int alignment = alignment(metadata.get(ALIGNMENT_KEY));
            List<Tensor> infos = new ArrayList<>();
            Map<String, Tensor> byName = new LinkedHashMap<>();
            for (long i = 0; i < tensorCount; i++) {
                Tensor tensor = tensorInfo(i, alignment);
                if (byName.putIfAbsent(tensor.name(), tensor) != null) {
                    throw problem("tensor \"" + excerpt(tensor.name()) + "\" appears twice");
                }
                infos.add(tensor);
            }
            // A file without tensor data (a vocabulary-only file) may end before the padding, as llama.cpp's allow.
            long dataOffset = Math.min(align(position, alignment), bytes.byteSize());
            long dataBytes = bytes.byteSize() - dataOffset;
            infos.sort(Comparator.comparingLong(Tensor::offset));
            long end = 0;
            String previous = null;
            for (Tensor t : infos) {
                if (t.offset() > dataBytes || t.byteSize() > dataBytes - t.offset()) {
                    throw problem("tensor \"" + excerpt(t.name()) + "\" (" + t.type() + " " + t.shape() + ", "
                            + t.byteSize() + " bytes at data offset " + t.offset() + ") ends past the end of the"
                            + " file's " + dataBytes + " data bytes");
                }
                if (t.offset() < end) {
                    throw problem("tensor \"" + excerpt(t.name()) + "\" at data offset " + t.offset()
                            + " overlaps tensor \"" + excerpt(previous) + "\", which ends at " + end);
                }
                end = t.offset() + t.byteSize();
                previous = t.name();
            }
            return new GgufFile(
                    file,
                    arena,
                    version,
                    metadata,
                    byName,
                    dataOffset,
                    alignment,
                    bytes.asSlice(dataOffset, dataBytes));
        }

        private Tensor tensorInfo(long index, int alignment) throws ModelFormatException {
            String what = "tensor info " + index;
            String name = string(what + "'s name", MAX_NAME_BYTES);
            String field = "tensor \"" + excerpt(name) + "\"";
            int dims = (int) Math.min(Integer.MAX_VALUE, Integer.toUnsignedLong(int32(field + "'s n_dimensions")));
            if (dims < 1 || dims > MAX_DIMENSIONS) {
                throw problem(field + " has " + dims + " dimensions, not 1 to " + MAX_DIMENSIONS);
            }
            long[] dimensions = new long[dims];
            long elements = 1;
            for (int d = 0; d < dims; d++) {
                dimensions[d] = int64(field + "'s dimension " + d);
                if (dimensions[d] < 1) {
                    throw problem(field + "'s dimension " + d + " is " + Long.toUnsignedString(dimensions[d])
                            + ", not in [1, 2^63)");
                }
                try {
                    elements = Math.multiplyExact(elements, dimensions[d]);
                } catch (ArithmeticException e) {
                    throw problem(field + "'s dimensions " + java.util.Arrays.toString(dimensions)
                            + " have more than 2^63 elements");
                }
            }
            long typeId = Integer.toUnsignedLong(int32(field + "'s type"));
            GgmlType type =
                    GgmlType.byId(typeId).orElseThrow(() -> problem(field + " has the unknown GGML type id " + typeId));
            if (dimensions[0] % type.blockLength() != 0) {
                throw problem(field + "'s row length " + dimensions[0] + " is not a multiple of " + type
                        + "'s block length " + type.blockLength());
            }
            long offset = int64(field + "'s offset");
            if (offset < 0 || offset % alignment != 0) {
                throw problem(field + "'s data offset " + Long.toUnsignedString(offset)
                        + " is not a non-negative multiple of the alignment " + alignment);
            }
            long byteSize;
            try {
                byteSize = Math.multiplyExact(elements / type.blockLength(), type.bytesPerBlock());
            } catch (ArithmeticException e) {
                throw problem(field + " (" + type + " " + java.util.Arrays.toString(dimensions)
                        + ") takes more than 2^63 bytes");
            }
            return new Tensor(name, dimensions, type, offset, byteSize);
        }

        private GgufValue.Type valueType(String key) throws ModelFormatException {
            long id = Integer.toUnsignedLong(int32("metadata value type of \"" + excerpt(key) + "\""));
            return GgufValue.Type.byId(id)
                    .orElseThrow(
                            () -> problem("metadata value of \"" + excerpt(key) + "\" has the unknown type id " + id));
        }

        private GgufValue value(String what, GgufValue.Type type, int depth) throws ModelFormatException {
            if (type != GgufValue.Type.ARRAY) {
                return new GgufValue(type, null, scalar(what, type));
            }
            if (depth >= MAX_ARRAY_DEPTH) {
                throw problem(what + " nests arrays deeper than " + MAX_ARRAY_DEPTH);
            }
            long elementId = Integer.toUnsignedLong(int32(what + "'s element type"));
            GgufValue.Type element = GgufValue.Type.byId(elementId)
                    .orElseThrow(() -> problem(what + " is an array of the unknown type id " + elementId));
            int n = (int) count(what + "'s length", element.minimumBytes(), MAX_ARRAY_LENGTH);
            // The file's bytes bound n, but an element takes up to 8 times its bytes once decoded (a uint8 as a long).
            MemorySize.requireHeap(
                    "GGUF metadata array " + what + " (" + n + " × " + element + ")", heapBytes(element, n));
            Object array =
                    switch (element) {
                        case FLOAT32 -> {
                            float[] a = new float[n];
                            MemorySegment.copy(bytes, FLOAT, position, a, 0, n);
                            position += 4L * n;
                            yield a;
                        }
                        case FLOAT64 -> {
                            double[] a = new double[n];
                            MemorySegment.copy(bytes, DOUBLE, position, a, 0, n);
                            position += 8L * n;
                            yield a;
                        }
                        case BOOL -> {
                            boolean[] a = new boolean[n];
                            for (int i = 0; i < n; i++) {
                                a[i] = bool(what, i, position + i);
                            }
                            position += n;
                            yield a;
                        }
                        case STRING -> {
                            String[] a = new String[n];
                            for (int i = 0; i < n; i++) {
                                a[i] = string(what, i, MAX_STRING_BYTES);
                            }
                            yield a;
                        }
                        case ARRAY -> {
                            GgufValue[] a = new GgufValue[n];
                            for (int i = 0; i < n; i++) {
                                a[i] = value(what + "[" + i + "]", element, depth + 1);
                            }
                            yield a;
                        }
                        default -> {
                            long[] a = new long[n];
                            int width = element.minimumBytes();
                            for (int i = 0; i < n; i++) {
                                a[i] = integer(element, position + (long) i * width);
                            }
                            position += (long) n * width;
                            yield a;
                        }
                    };
            return new GgufValue(GgufValue.Type.ARRAY, element, array);
        }

        private Object scalar(String what, GgufValue.Type type) throws ModelFormatException {
            if (type == GgufValue.Type.STRING) {
                return string(what, -1, MAX_STRING_BYTES);
            }
            require(what, type.minimumBytes());
            long at = position;
            position += type.minimumBytes();
            return switch (type) {
                case FLOAT32 -> bytes.get(FLOAT, at);
                case FLOAT64 -> bytes.get(DOUBLE, at);
                case BOOL -> bool(what, -1, at);
                case STRING, ARRAY -> throw new AssertionError(type);
                default -> integer(type, at);
            };
        }

        /** The integer of this type at byte {@code at}, widened to a long (a uint64 keeps its bits). */
        private long integer(GgufValue.Type type, long at) {
            return switch (type) {
                case UINT8 -> bytes.get(ValueLayout.JAVA_BYTE, at) & 0xFF;
                case INT8 -> bytes.get(ValueLayout.JAVA_BYTE, at);
                case UINT16 -> bytes.get(SHORT, at) & 0xFFFF;
                case INT16 -> bytes.get(SHORT, at);
                case UINT32 -> Integer.toUnsignedLong(bytes.get(INT, at));
                case INT32 -> bytes.get(INT, at);
                case UINT64, INT64 -> bytes.get(LONG, at);
                default -> throw new AssertionError(type);
            };
        }

        /** The bool at byte {@code at}: element {@code index} of {@code what}, or {@code what} itself when negative. */
        private boolean bool(String what, int index, long at) throws ModelFormatException {
            byte b = bytes.get(ValueLayout.JAVA_BYTE, at);
            if (b != 0 && b != 1) {
                throw problem(element(what, index) + " is a bool of byte value " + b + ", not 0 or 1");
            }
            return b == 1;
        }

        /** The heap that {@code n} decoded elements of this type take, at least (a string's characters besides). */
        private static long heapBytes(GgufValue.Type element, int n) {
            int each =
                    switch (element) {
                        case BOOL -> 1;
                        case FLOAT32 -> Float.BYTES;
                        case STRING, ARRAY -> 48; // a reference, an object header and an array header or two
                        default -> Long.BYTES;
                    };
            return (long) n * each;
        }

        /** Element {@code index} of {@code what} for messages, or {@code what} itself when the index is negative. */
        private static String element(String what, int index) {
            return index < 0 ? what : what + "[" + index + "]";
        }

        /** A uint64 count of items of at least {@code itemBytes} each, bounded by the bytes left and {@code max}. */
        private long count(String what, int itemBytes, long max) throws ModelFormatException {
            long n = int64(what);
            long fits = (bytes.byteSize() - position) / itemBytes;
            if (n < 0 || n > Math.min(max, fits)) {
                throw problem(what + " is " + Long.toUnsignedString(n) + ", more than "
                        + (fits < max
                                ? "the " + (bytes.byteSize() - position) + " bytes left in the file can hold (" + fits
                                        + " of at least " + itemBytes + " bytes)"
                                : "the limit of " + max));
            }
            return n;
        }

        private String string(String what, int maxBytes) throws ModelFormatException {
            return string(what, -1, maxBytes);
        }

        /** A string: element {@code index} of {@code what}, or {@code what} itself when the index is negative. */
        private String string(String what, int index, int maxBytes) throws ModelFormatException {
            if (bytes.byteSize() - position < Long.BYTES) {
                require(element(what, index) + "'s length", Long.BYTES); // named only when it fails: arrays are long
            }
            long length = bytes.get(LONG, position);
            position += Long.BYTES;
            long left = bytes.byteSize() - position;
            if (length < 0 || length > Math.min(maxBytes, left)) {
                throw problem(element(what, index) + " has length " + Long.toUnsignedString(length) + ", more than "
                        + (left < maxBytes ? "the " + left + " bytes left in the file" : "the limit of " + maxBytes)
                        + " bytes");
            }
            ByteBuffer source = bytes.asSlice(position, length).asByteBuffer();
            position += length;
            try {
                CharBuffer chars = utf8.reset().decode(source);
                return chars.toString();
            } catch (CharacterCodingException e) {
                throw problem(element(what, index) + " is not valid UTF-8");
            }
        }

        private int int32(String what) throws ModelFormatException {
            require(what, Integer.BYTES);
            int value = bytes.get(INT, position);
            position += Integer.BYTES;
            return value;
        }

        private long int64(String what) throws ModelFormatException {
            require(what, Long.BYTES);
            long value = bytes.get(LONG, position);
            position += Long.BYTES;
            return value;
        }

        private void require(String what, long n) throws ModelFormatException {
            if (bytes.byteSize() - position < n) {
                throw problem("the file ends at byte " + bytes.byteSize() + " inside " + what + " (" + n
                        + " bytes at byte " + position + ")");
            }
        }

        private int alignment(GgufValue value) throws ModelFormatException {
            if (value == null) {
                return DEFAULT_ALIGNMENT;
            }
            if (!value.type().isInteger()) {
                throw problem(ALIGNMENT_KEY + " is a " + value.type() + ", not an integer");
            }
            long a = (Long) value.value();
            if (a < 1 || a > MAX_ALIGNMENT || Long.bitCount(a) != 1) {
                throw problem(ALIGNMENT_KEY + " is " + Long.toUnsignedString(a) + ", not a power of two in [1, "
                        + MAX_ALIGNMENT + "]");
            }
            return (int) a;
        }

        private ModelFormatException problem(String message) {
            return new ModelFormatException(file, message);
        }
    }

    static long align(long offset, int alignment) {
        return (offset + alignment - 1) / alignment * alignment;
    }

    private static String excerpt(String value) {
        return ModelFormatException.excerpt(value);
    }

    /**
     * Returns the file's path.
     *
     * @return the path
     */
    public Path file() {
        return file;
    }

    /**
     * Returns the format version, 2 or 3.
     *
     * @return the version
     */
    public int version() {
        return version;
    }

    /**
     * Returns the metadata, in file order.
     *
     * @return key → value, unmodifiable
     */
    public Map<String, GgufValue> metadata() {
        return metadata;
    }

    /**
     * Returns the tensor infos, in file order.
     *
     * @return name → info, unmodifiable
     */
    public Map<String, Tensor> tensors() {
        return tensors;
    }

    /**
     * Returns the byte offset of the data section in the file.
     *
     * @return the offset, a multiple of {@link #alignment()} (or the file's end, for a file without tensor data
     *     that ends before the padding)
     */
    public long dataOffset() {
        return dataOffset;
    }

    /**
     * Returns the data alignment.
     *
     * @return {@code general.alignment}, or {@value #DEFAULT_ALIGNMENT}
     */
    public int alignment() {
        return alignment;
    }

    /**
     * Returns a tensor's data: a read-only slice of the mapping, valid until {@link #close()}.
     *
     * @param tensor one of {@link #tensors()}
     * @return its bytes
     */
    public MemorySegment data(Tensor tensor) {
        return data.asSlice(tensor.offset(), tensor.byteSize());
    }

    /**
     * Returns a metadata value that must be present.
     *
     * @param key the key
     * @return the value
     * @throws ModelFormatException if the key is absent
     */
    public GgufValue require(String key) throws ModelFormatException {
        GgufValue value = metadata.get(key);
        if (value == null) {
            throw new ModelFormatException(file, "metadata key \"" + key + "\" is missing");
        }
        return value;
    }

    /**
     * Returns an integer metadata value within bounds.
     *
     * @param key the key
     * @param min the least accepted
     * @param max the most accepted
     * @return the value
     * @throws ModelFormatException if the key is absent, not an integer, or out of bounds
     */
    public long integer(String key, long min, long max) throws ModelFormatException {
        GgufValue value = require(key);
        if (!value.type().isInteger()) {
            throw new ModelFormatException(file, "metadata \"" + key + "\" is a " + value.type() + ", not an integer");
        }
        long v = (Long) value.value();
        boolean unsignedHuge = value.type() == GgufValue.Type.UINT64 && v < 0;
        if (unsignedHuge || v < min || v > max) {
            throw new ModelFormatException(
                    file, "metadata \"" + key + "\" is " + value.describe() + ", not in [" + min + ", " + max + "]");
        }
        return v;
    }

    /**
     * Returns a string metadata value.
     *
     * @param key the key
     * @return the value
     * @throws ModelFormatException if the key is absent or not a string
     */
    public String string(String key) throws ModelFormatException {
        GgufValue value = require(key);
        if (value.type() != GgufValue.Type.STRING) {
            throw new ModelFormatException(file, "metadata \"" + key + "\" is a " + value.type() + ", not a string");
        }
        return (String) value.value();
    }

    /**
     * Returns a float metadata value (float32 or float64) that must be finite.
     *
     * @param key the key
     * @return the value
     * @throws ModelFormatException if the key is absent, not a float, or not finite
     */
    public double number(String key) throws ModelFormatException {
        GgufValue value = require(key);
        double v =
                switch (value.value()) {
                    case Float f when value.type() == GgufValue.Type.FLOAT32 -> f;
                    case Double d when value.type() == GgufValue.Type.FLOAT64 -> d;
                    default ->
                        throw new ModelFormatException(
                                file, "metadata \"" + key + "\" is a " + value.type() + ", not a float");
                };
        if (!Double.isFinite(v)) {
            throw new ModelFormatException(file, "metadata \"" + key + "\" is " + v + ", not finite");
        }
        return v;
    }

    /**
     * Returns an array metadata value of one element type.
     *
     * @param key the key
     * @param elementType the elements' type
     * @return the value's array ({@code String[]}, {@code float[]}, {@code long[]}, … as {@link GgufValue} holds it)
     * @throws ModelFormatException if the key is absent or not an array of that type
     */
    public Object array(String key, GgufValue.Type elementType) throws ModelFormatException {
        GgufValue value = require(key);
        if (value.type() != GgufValue.Type.ARRAY || value.elementType() != elementType) {
            throw new ModelFormatException(
                    file,
                    "metadata \"" + key + "\" is "
                            + (value.type() == GgufValue.Type.ARRAY
                                    ? "an array of " + value.elementType()
                                    : "a " + value.type())
                            + ", not an array of " + elementType);
        }
        return value.value();
    }

    /** Unmaps the file; tensor data must not be used afterwards. */
    @Override
    public void close() {
        arena.close();
    }
}
