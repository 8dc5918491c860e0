package dev.panamax.model.io;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;

/**
 * llm.c's token file ({@code .bin} from its data scripts): a header of 256 little-endian int32 (magic {@value #MAGIC},
 * version 1, the token count, the rest unused) and then the tokens as little-endian uint16.
 */
public final class LlmcTokenFile {
    /** The header's first int32. */
    public static final int MAGIC = 20240520;

    private static final int HEADER_INTS = 256;
    private static final int HEADER_BYTES = HEADER_INTS * Integer.BYTES;

    private LlmcTokenFile() {}

    /**
     * Returns whether a file starts with llm.c's token-file magic.
     *
     * @param file a regular file
     * @return whether its first int32 is {@value #MAGIC}
     * @throws IOException if it cannot be read
     */
    public static boolean isTokenFile(Path file) throws IOException {
        try (FileChannel channel = FileChannel.open(file, StandardOpenOption.READ)) {
            ByteBuffer head = ByteBuffer.allocate(Integer.BYTES).order(ByteOrder.LITTLE_ENDIAN);
            return channel.read(head, 0) == Integer.BYTES && head.getInt(0) == MAGIC;
        }
    }

    /**
     * Reads a token file whole, checking its header and that its length is exactly what the count implies.
     *
     * @param file the file
     * @param maxTokens the most tokens accepted (the caller's memory bound)
     * @return the token ids, each in {@code [0, 65536)}
     * @throws ModelFormatException if the magic, version, count or length is wrong, naming the field and the bound
     * @throws IOException if the file cannot be read
     */
    public static int[] read(Path file, int maxTokens) throws IOException {
        long size = BoundedFiles.requireRegularFile(file, "llm.c token file");
        try (FileChannel channel = FileChannel.open(file, StandardOpenOption.READ)) {
            if (size < HEADER_BYTES) {
                throw new ModelFormatException(
                        file,
                        "llm.c token file of " + size + " bytes is shorter than its " + HEADER_BYTES + "-byte header");
            }
            ByteBuffer header = ByteBuffer.allocate(HEADER_BYTES).order(ByteOrder.LITTLE_ENDIAN);
            Channels.readFully(channel, header, 0);
            if (header.getInt(0) != MAGIC) {
                throw new ModelFormatException(
                        file, "magic " + header.getInt(0) + " is not llm.c's token-file magic " + MAGIC);
            }
            if (header.getInt(4) != 1) {
                throw new ModelFormatException(file, "version " + header.getInt(4) + " is not 1 (uint16 tokens)");
            }
            long count = Integer.toUnsignedLong(header.getInt(8));
            if (count > maxTokens) {
                throw new ModelFormatException(
                        file, "token count " + count + " is more than the limit of " + maxTokens);
            }
            long expected = HEADER_BYTES + 2 * count;
            if (size != expected) {
                throw new ModelFormatException(
                        file,
                        "the header's token count " + count + " implies " + expected + " bytes but the file has "
                                + size);
            }
            ByteBuffer body = ByteBuffer.allocate((int) (2 * count)).order(ByteOrder.LITTLE_ENDIAN);
            Channels.readFully(channel, body, HEADER_BYTES);
            int[] tokens = new int[(int) count];
            for (int i = 0; i < tokens.length; i++) {
                tokens[i] = Short.toUnsignedInt(body.getShort(2 * i));
            }
            return tokens;
        }
    }
}
