package dev.panamax.model.io;

import dev.panamax.model.backend.MemorySize;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Pre-tokenized text in llm.c's token file format: a header of 256 little-endian int32 ({@code header[0]} the magic
 * {@value #MAGIC}, {@code header[1]} the version 1, {@code header[2]} the number of tokens, the rest unused), then that
 * many little-endian uint16 token ids. Reading checks the header and that the file is exactly as long as it says
 * and that the heap has room for the ids before they are allocated, and checks every id against the vocabulary.
 */
public final class TokenFile {
    /** The first int32 of a token file. */
    public static final int MAGIC = 20240520;

    /** The only version there is. */
    public static final int VERSION = 1;

    /** The header's length: 256 int32. */
    public static final int HEADER_BYTES = 256 * Integer.BYTES;

    private static final int CHUNK_TOKENS = 1 << 16;

    private TokenFile() {}

    /**
     * Returns whether a regular file starts with the token file's magic, so that it is read as tokens, not as text
     * (the magic's bytes are not valid UTF-8, so no text file starts with them).
     *
     * @param file the file
     * @return whether its first four bytes are {@value #MAGIC} as a little-endian int32
     * @throws IOException if the file cannot be read
     */
    public static boolean hasMagic(Path file) throws IOException {
        if (!Files.isRegularFile(file)) {
            return false;
        }
        byte[] start;
        try (InputStream in = Files.newInputStream(file)) {
            start = in.readNBytes(Integer.BYTES);
        }
        return start.length == Integer.BYTES
                && ByteBuffer.wrap(start).order(ByteOrder.LITTLE_ENDIAN).getInt() == MAGIC;
    }

    /**
     * Reads a token file's ids.
     *
     * @param file the file
     * @param vocabSize every id must be below it
     * @param maxTokens the most tokens accepted (the ids are held as an {@code int[]})
     * @return the ids, in file order
     * @throws ModelFormatException naming the file, if the header's magic or version is wrong, its count is negative,
     *     above {@code maxTokens} or does not match the file's length, or an id is not below {@code vocabSize}
     * @throws dev.panamax.model.backend.InsufficientMemoryException if the heap has no room for the ids, before they
     *     are allocated
     * @throws java.nio.file.NoSuchFileException if there is no such file
     * @throws IOException if the file cannot be read
     */
    public static int[] read(Path file, int vocabSize, int maxTokens) throws IOException {
        long size = BoundedFiles.requireRegularFile(file, "llm.c token file");
        try (FileChannel channel = FileChannel.open(file)) {
            if (size < HEADER_BYTES) {
                throw new ModelFormatException(
                        file,
                        "llm.c token file of " + size + " bytes is shorter than its " + HEADER_BYTES + "-byte header");
            }
            ByteBuffer header = ByteBuffer.allocate(HEADER_BYTES).order(ByteOrder.LITTLE_ENDIAN);
            Channels.readFully(channel, header, 0);
            int magic = header.getInt(0);
            int version = header.getInt(Integer.BYTES);
            int count = header.getInt(2 * Integer.BYTES);
            if (magic != MAGIC) {
                throw new ModelFormatException(
                        file, "not an llm.c token file: header[0] (magic) is " + magic + ", expected " + MAGIC);
            }
            if (version != VERSION) {
                throw new ModelFormatException(
                        file,
                        "llm.c token file version " + version + " is not supported (header[1] must be " + VERSION
                                + ")");
            }
            if (count < 0 || count > maxTokens) {
                throw new ModelFormatException(
                        file,
                        "llm.c token file header[2] (token count) is " + count + ", must be in [0, " + maxTokens + "]");
            }
            long expected = HEADER_BYTES + 2L * count;
            if (size != expected) {
                throw new ModelFormatException(
                        file,
                        "llm.c token file is " + size + " bytes but its header's count of " + count + " tokens implies "
                                + expected + " (" + HEADER_BYTES + " header bytes + 2 per token): the file is "
                                + (size < expected ? "truncated" : "longer than its count"));
            }
            MemorySize.requireHeap("reading the " + count + " token ids of " + file, (long) Integer.BYTES * count);
            int[] ids = new int[count];
            ByteBuffer chunk =
                    ByteBuffer.allocate(2 * Math.min(count, CHUNK_TOKENS)).order(ByteOrder.LITTLE_ENDIAN);
            for (int first = 0; first < count; first += CHUNK_TOKENS) {
                int n = Math.min(CHUNK_TOKENS, count - first);
                chunk.clear().limit(2 * n);
                Channels.readFully(channel, chunk, HEADER_BYTES + 2L * first);
                for (int i = 0; i < n; i++) {
                    int id = Short.toUnsignedInt(chunk.getShort(2 * i));
                    if (id >= vocabSize) {
                        throw new ModelFormatException(
                                file,
                                "token " + (first + i) + " is " + id + ", not below the model's vocabulary size "
                                        + vocabSize);
                    }
                    ids[first + i] = id;
                }
            }
            return ids;
        }
    }
}
