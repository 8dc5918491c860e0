package dev.panamax.model.testing;

import dev.panamax.model.io.TokenFile;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;

/** Writes llm.c token files, as its data scripts do, with any header for the tests of malformed ones. */
public final class TokenFiles {
    private TokenFiles() {}

    /**
     * Writes {@code ids} as uint16 after a header of 256 int32.
     *
     * @param file the file
     * @param magic header[0]
     * @param version header[1]
     * @param count header[2]
     * @param ids the ids, each in [0, 65535]
     * @return the file
     * @throws IOException if it cannot be written
     */
    public static Path withHeader(Path file, int magic, int version, int count, int... ids) throws IOException {
        ByteBuffer bytes =
                ByteBuffer.allocate(TokenFile.HEADER_BYTES + 2 * ids.length).order(ByteOrder.LITTLE_ENDIAN);
        bytes.putInt(0, magic).putInt(4, version).putInt(8, count);
        for (int i = 0; i < ids.length; i++) {
            bytes.putShort(TokenFile.HEADER_BYTES + 2 * i, (short) ids[i]);
        }
        Files.write(file, bytes.array());
        return file;
    }

    /**
     * Writes a well-formed token file.
     *
     * @param file the file
     * @param ids the ids, each in [0, 65535]
     * @return the file
     * @throws IOException if it cannot be written
     */
    public static Path write(Path file, int... ids) throws IOException {
        return withHeader(file, TokenFile.MAGIC, TokenFile.VERSION, ids.length, ids);
    }

    /**
     * A pseudo-random token sequence with some structure to learn: a walk that mostly steps by one.
     *
     * @param count how many
     * @param vocabSize ids are below it
     * @param seed the seed
     * @return the ids
     */
    public static int[] walk(int count, int vocabSize, long seed) {
        java.util.SplittableRandom random = new java.util.SplittableRandom(seed);
        int[] ids = new int[count];
        int id = 0;
        for (int i = 0; i < count; i++) {
            id = random.nextInt(4) == 0 ? random.nextInt(vocabSize) : (id + 1) % vocabSize;
            ids[i] = id;
        }
        return ids;
    }
}
