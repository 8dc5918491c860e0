package dev.panamax.model.io;

import dev.panamax.model.json.Json;
import dev.panamax.model.json.JsonFields;
import dev.panamax.model.json.JsonValue;
import dev.panamax.model.json.JsonValue.JsonArray;
import dev.panamax.model.json.JsonValue.JsonNumber;
import dev.panamax.model.json.JsonValue.JsonObject;
import dev.panamax.model.json.JsonValue.JsonString;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.Comparator;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * A safetensors file, memory-mapped: an 8-byte little-endian header length, a JSON header mapping each tensor's name
 * to its dtype, shape and byte range (plus optional string {@code __metadata__}), then the tensors' little-endian
 * bytes. Opening checks everything before any tensor is read: that the file is a regular file, the header length
 * against the file size, the data's size and a maximum before the header is read, the JSON strictly and within {@link
 * Json.Limits#DEFAULT}, each dtype × shape against its byte range, and that the ranges tile the data area
 * exactly (in order, without overlaps, gaps or trailing bytes), as the reference implementation requires. Closing
 * unmaps the file and frees converted tensors, after which no segment from this object may be used.
 */
public final class SafeTensors implements AutoCloseable {
    /** The largest header accepted, as in the reference implementation: 100 MB. */
    public static final long MAX_HEADER_BYTES = 100_000_000;

    /**
     * How far a header may exceed the data it describes, in bytes: a real model's header is a small fraction of its
     * tensors, so a larger one is not worth reading (at most {@link #MAX_HEADER_BYTES} in any case).
     */
    public static final long HEADER_ALLOWANCE_BYTES = 1 << 20;

    private static final String METADATA = "__metadata__";
    private static final Set<String> TENSOR_KEYS = Set.of("dtype", "shape", "data_offsets");
    private static final ValueLayout.OfShort SHORT =
            ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfFloat FLOAT_UNALIGNED =
            ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    private final Path file;
    private final Arena arena;
    private final MemorySegment data;
    private final Map<String, TensorInfo> tensors;
    private final Map<String, String> metadata;
    /** Tensors converted to aligned float32, by name, so that asking twice costs no second copy. */
    private final Map<String, MemorySegment> converted = new HashMap<>();

    private SafeTensors(
            Path file, Arena arena, MemorySegment data, Map<String, TensorInfo> tensors, Map<String, String> metadata) {
        this.file = file;
        this.arena = arena;
        this.data = data;
        this.tensors = tensors;
        this.metadata = metadata;
    }

    /**
     * A tensor to write: its type, shape and little-endian bytes.
     *
     * @param dtype the element type
     * @param shape the dimensions, outermost first
     * @param data exactly {@code dtype.bytes() × product(shape)} bytes, little-endian
     */
    public record Tensor(DType dtype, List<Long> shape, MemorySegment data) {
        /**
         * Checks that the data has the size the type and shape imply.
         *
         * @throws IllegalArgumentException if it does not, or a dimension is negative
         */
        public Tensor {
            shape = List.copyOf(shape);
            long bytes = dtype.bytes();
            for (long dim : shape) {
                if (dim < 0) {
                    throw new IllegalArgumentException("negative dimension in shape " + shape);
                }
                bytes = Math.multiplyExact(bytes, dim);
            }
            if (data.byteSize() != bytes) {
                throw new IllegalArgumentException(
                        dtype + " " + shape + " needs " + bytes + " bytes, the data has " + data.byteSize());
            }
        }

        /**
         * Creates a tensor of floats stored as F32, F16 or BF16 (rounded to nearest even).
         *
         * @param dtype F32, F16 or BF16
         * @param values the values, row-major
         * @param shape the dimensions; their product must equal the number of values
         * @return the tensor, its data on the heap
         * @throws IllegalArgumentException if the shape does not fit the values
         * @throws UnsupportedOperationException if the type is not a float type
         */
        public static Tensor of(DType dtype, float[] values, long... shape) {
            MemorySegment floats = MemorySegment.ofArray(new byte[values.length * Float.BYTES]);
            for (int i = 0; i < values.length; i++) {
                floats.setAtIndex(FLOAT_UNALIGNED, i, values[i]);
            }
            return convert(floats, dtype, Arrays.stream(shape).boxed().toList());
        }

        /**
         * Creates a tensor from little-endian float32 values, stored as F32 (the same segment, not copied), F16 or
         * BF16 (converted onto the heap, rounded to nearest even).
         *
         * @param floats the values, row-major
         * @param dtype F32, F16 or BF16
         * @param shape the dimensions; their product must equal the number of values
         * @return the tensor
         * @throws IllegalArgumentException if the shape does not fit the values
         * @throws UnsupportedOperationException if the type is not a float type
         */
        public static Tensor convert(MemorySegment floats, DType dtype, List<Long> shape) {
            if (dtype == DType.F32) {
                return new Tensor(dtype, shape, floats);
            }
            long count = floats.byteSize() / Float.BYTES;
            MemorySegment bytes = MemorySegment.ofArray(new byte[Math.toIntExact(count * dtype.bytes())]);
            for (long i = 0; i < count; i++) {
                bytes.setAtIndex(SHORT, i, (short) dtype.fromFloat(floats.getAtIndex(FLOAT_UNALIGNED, i)));
            }
            return new Tensor(dtype, shape, bytes);
        }
    }

    /**
     * Opens and memory-maps a safetensors file, checking its header first.
     *
     * @param file the file
     * @return the open file; close it to unmap
     * @throws java.nio.file.NoSuchFileException if the file does not exist
     * @throws ModelFormatException if it is not a regular file, or the header length, JSON or any tensor's entry is
     *     invalid
     * @throws IOException if the file cannot be read
     */
    public static SafeTensors open(Path file) throws IOException {
        BoundedFiles.requireRegularFile(file, "safetensors file");
        try (FileChannel channel = FileChannel.open(file, StandardOpenOption.READ)) {
            long size = channel.size();
            if (size < Long.BYTES) {
                throw new ModelFormatException(
                        file, "safetensors file of " + size + " bytes is shorter than its 8-byte header length");
            }
            ByteBuffer lengthBytes = ByteBuffer.allocate(Long.BYTES).order(ByteOrder.LITTLE_ENDIAN);
            Channels.readFully(channel, lengthBytes, 0);
            long headerLength = lengthBytes.getLong(0);
            if (headerLength <= 0 || headerLength > MAX_HEADER_BYTES || headerLength > size - Long.BYTES) {
                throw new ModelFormatException(
                        file,
                        "safetensors header length " + headerLength + " is not within (0, min(" + MAX_HEADER_BYTES
                                + ", file size " + size + " - 8)]");
            }
            if (headerLength > HEADER_ALLOWANCE_BYTES + (size - Long.BYTES - headerLength)) {
                throw new ModelFormatException(
                        file,
                        "safetensors header of " + headerLength + " bytes is larger than the " + HEADER_ALLOWANCE_BYTES
                                + " bytes allowed beyond the data it describes (" + (size - Long.BYTES - headerLength)
                                + " bytes)");
            }
            ByteBuffer header = ByteBuffer.allocate((int) headerLength);
            Channels.readFully(channel, header, Long.BYTES);
            long dataStart = Long.BYTES + headerLength;
            long dataSize = size - dataStart;
            Map<String, String> metadata = new LinkedHashMap<>();
            Map<String, TensorInfo> tensors = parseHeader(file, header.array(), dataSize, metadata);
            Arena arena = Arena.ofShared();
            try {
                MemorySegment data = Channels.mapWeights(channel, dataStart, dataSize, arena);
                return new SafeTensors(
                        file, arena, data, Collections.unmodifiableMap(tensors), Collections.unmodifiableMap(metadata));
            } catch (IOException | RuntimeException e) {
                arena.close();
                throw e;
            }
        }
    }

    /** Parses and checks the header; returns the tensors in the order of their bytes and fills in the metadata. */
    private static Map<String, TensorInfo> parseHeader(
            Path file, byte[] header, long dataSize, Map<String, String> metadata) throws IOException {
        if (header[0] != '{') {
            throw new ModelFormatException(file, "safetensors header does not start with '{'");
        }
        String source = file + " (header)";
        String text = BoundedFiles.decodeUtf8(header, source);
        return BoundedFiles.parseJson(text, json -> {
            JsonFields fields = JsonFields.of(file, Json.parse(json, source, Json.Limits.DEFAULT.withMaxDepth(8)));
            return tensors(file, fields, dataSize, metadata);
        });
    }

    /** Checks the header's members: the tensors in the order of their bytes, and the metadata filled in. */
    private static Map<String, TensorInfo> tensors(
            Path file, JsonFields fields, long dataSize, Map<String, String> metadata) throws IOException {
        List<TensorInfo> list = new ArrayList<>();
        for (Map.Entry<String, JsonValue> member : fields.object().members().entrySet()) {
            String name = member.getKey();
            if (name.equals(METADATA)) {
                for (Map.Entry<String, JsonValue> entry :
                        fields.object(METADATA).object().members().entrySet()) {
                    if (!(entry.getValue() instanceof JsonString value)) {
                        throw fields.error(
                                METADATA,
                                "\"" + ModelFormatException.excerpt(entry.getKey()) + "\": expected a string, found "
                                        + entry.getValue().kind());
                    }
                    metadata.put(entry.getKey(), value.value());
                }
                continue;
            }
            JsonFields tensor = fields.object(name);
            for (String key : tensor.object().members().keySet()) {
                if (!TENSOR_KEYS.contains(key)) {
                    throw tensor.error(key, "unknown key; a tensor has only dtype, shape and data_offsets");
                }
            }
            String dtypeName = tensor.string("dtype");
            DType dtype = Arrays.stream(DType.values())
                    .filter(d -> d.name().equals(dtypeName))
                    .findFirst()
                    .orElseThrow(() -> tensor.error(
                            "dtype",
                            "unknown dtype \"" + ModelFormatException.excerpt(dtypeName) + "\"; known: "
                                    + Arrays.toString(DType.values())));
            long[] shape = tensor.integers("shape", 0, Long.MAX_VALUE);
            long[] offsets = tensor.integers("data_offsets", 0, dataSize);
            if (offsets.length != 2 || offsets[0] > offsets[1]) {
                throw tensor.error(
                        "data_offsets",
                        Arrays.toString(offsets) + " is not a range [begin, end] with begin ≤ end ≤ " + dataSize
                                + " (the data area's size)");
            }
            TensorInfo info =
                    new TensorInfo(name, dtype, Arrays.stream(shape).boxed().toList(), offsets[0], offsets[1]);
            long bytes;
            try {
                bytes = Math.multiplyExact(info.elementCount(), dtype.bytes());
            } catch (ArithmeticException e) {
                throw tensor.error("shape", Arrays.toString(shape) + " has more elements than a long can count");
            }
            if (bytes != offsets[1] - offsets[0]) {
                throw fields.error(
                        name,
                        dtype + " " + Arrays.toString(shape) + " needs " + bytes + " bytes but data_offsets "
                                + Arrays.toString(offsets) + " span " + (offsets[1] - offsets[0]));
            }
            list.add(info);
        }
        list.sort(Comparator.comparingLong(TensorInfo::begin).thenComparingLong(TensorInfo::end));
        Map<String, TensorInfo> tensors = new LinkedHashMap<>();
        long expected = 0;
        TensorInfo previous = null;
        for (TensorInfo info : list) {
            if (info.begin() != expected) {
                throw new ModelFormatException(
                        file,
                        "tensor \"" + ModelFormatException.excerpt(info.name()) + "\" at bytes [" + info.begin() + ", "
                                + info.end() + ") "
                                + (info.begin() < expected
                                        ? "overlaps \"" + ModelFormatException.excerpt(previous.name())
                                                + "\", which ends at " + expected
                                        : "leaves a gap after "
                                                + (previous == null
                                                        ? "the header"
                                                        : "\"" + ModelFormatException.excerpt(previous.name()) + "\"")
                                                + ", which ends at " + expected));
            }
            tensors.put(info.name(), info);
            expected = info.end();
            previous = info;
        }
        if (expected != dataSize) {
            throw new ModelFormatException(
                    file, (dataSize - expected) + " bytes after the last tensor; the data area has " + dataSize);
        }
        return tensors;
    }

    /**
     * Returns the file this was read from.
     *
     * @return the path
     */
    public Path file() {
        return file;
    }

    /**
     * Returns the header's {@code __metadata__}.
     *
     * @return the string pairs, empty if the header has none
     */
    public Map<String, String> metadata() {
        return metadata;
    }

    /**
     * Returns every tensor's entry, in the order of their bytes.
     *
     * @return name → entry
     */
    public Map<String, TensorInfo> tensors() {
        return tensors;
    }

    /**
     * Returns a tensor's bytes as stored: a read-only slice of the mapped file.
     *
     * @param name the tensor's name
     * @return its bytes, little-endian
     * @throws ModelFormatException if there is no such tensor
     */
    public MemorySegment bytes(String name) throws ModelFormatException {
        TensorInfo info = info(name);
        return data.asSlice(info.begin(), info.end() - info.begin());
    }

    /**
     * Returns a tensor as little-endian float32: for F32 a slice of the mapped file (copied only if the file places
     * it at an address that is not a multiple of 4), for F16 and BF16 an exact conversion into memory owned by this
     * object, made once and kept until {@link #close()}.
     *
     * @param name the tensor's name
     * @return its values, row-major
     * @throws ModelFormatException if there is no such tensor or its dtype is not F32, F16 or BF16
     */
    public MemorySegment floats(String name) throws ModelFormatException {
        TensorInfo info = info(name);
        if (!info.dtype().isFloat()) {
            throw new ModelFormatException(
                    file,
                    "tensor \"" + ModelFormatException.excerpt(name) + "\" has dtype " + info.dtype()
                            + "; expected F32, F16 or BF16");
        }
        MemorySegment stored = bytes(name);
        if (info.dtype() == DType.F32 && stored.address() % Float.BYTES == 0) {
            return stored;
        }
        synchronized (converted) {
            MemorySegment floats = converted.get(name);
            if (floats == null) {
                floats = convert(info, stored);
                converted.put(name, floats);
            }
            return floats;
        }
    }

    private MemorySegment convert(TensorInfo info, MemorySegment stored) {
        long count = info.elementCount();
        MemorySegment result = arena.allocate(count * Float.BYTES, Float.BYTES);
        if (info.dtype() == DType.F32) {
            MemorySegment.copy(stored, 0, result, 0, stored.byteSize());
        } else {
            for (long i = 0; i < count; i++) {
                result.setAtIndex(FLOAT, i, info.dtype().toFloat(stored.getAtIndex(SHORT, i)));
            }
        }
        return result.asReadOnly();
    }

    private TensorInfo info(String name) throws ModelFormatException {
        TensorInfo info = tensors.get(name);
        if (info == null) {
            throw new ModelFormatException(file, "no tensor named \"" + ModelFormatException.excerpt(name) + "\"");
        }
        return info;
    }

    /** Unmaps the file and frees converted tensors. */
    @Override
    public void close() {
        arena.close();
    }

    /**
     * Writes a safetensors file that other implementations read: the tensors' bytes in the given order, the header
     * padded with spaces so that the data starts at a multiple of 8 bytes.
     *
     * @param file the file to create or replace, atomically ({@link AtomicFiles})
     * @param tensors name → tensor, in the order to store them; no name may be {@code __metadata__}
     * @param metadata string pairs for the header's {@code __metadata__}; omitted when empty
     * @throws IllegalArgumentException if a tensor is named {@code __metadata__}
     * @throws IOException if the file cannot be written
     */
    public static void write(Path file, Map<String, Tensor> tensors, Map<String, String> metadata) throws IOException {
        Map<String, JsonValue> header = new LinkedHashMap<>();
        if (!metadata.isEmpty()) {
            Map<String, JsonValue> pairs = new LinkedHashMap<>();
            metadata.forEach((k, v) -> pairs.put(k, new JsonString(v)));
            header.put(METADATA, new JsonObject(pairs));
        }
        long offset = 0;
        for (Map.Entry<String, Tensor> entry : tensors.entrySet()) {
            if (entry.getKey().equals(METADATA)) {
                throw new IllegalArgumentException("a tensor cannot be named " + METADATA);
            }
            Tensor tensor = entry.getValue();
            long end = offset + tensor.data().byteSize();
            Map<String, JsonValue> entryJson = new LinkedHashMap<>();
            entryJson.put("dtype", new JsonString(tensor.dtype().name()));
            entryJson.put(
                    "shape",
                    new JsonArray(tensor.shape().stream()
                            .<JsonValue>map(JsonNumber::of)
                            .toList()));
            entryJson.put("data_offsets", new JsonArray(List.of(JsonNumber.of(offset), JsonNumber.of(end))));
            header.put(entry.getKey(), new JsonObject(entryJson));
            offset = end;
        }
        byte[] json = Json.write(new JsonObject(header)).getBytes(StandardCharsets.UTF_8);
        int padded = (json.length + 7) & ~7;
        ByteBuffer head = ByteBuffer.allocate(Long.BYTES + padded).order(ByteOrder.LITTLE_ENDIAN);
        head.putLong(padded).put(json);
        while (head.hasRemaining()) {
            head.put((byte) ' ');
        }
        AtomicFiles.replace(file, temporary -> {
            try (FileChannel channel = Channels.create(temporary)) {
                Channels.writeFully(channel, head.flip());
                for (Tensor tensor : tensors.values()) {
                    Channels.write(channel, tensor.data());
                }
            }
        });
    }
}
