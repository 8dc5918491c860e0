package dev.panamax.model.io;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Reading small files whole, with the checks that keep a bad file from costing more than a clear error: a size limit
 * before anything is allocated, and strict UTF-8.
 */
public final class BoundedFiles {
    private BoundedFiles() {}

    /**
     * Reads a file whole, if it is no larger than a limit.
     *
     * @param file the file
     * @param maxBytes the largest size accepted
     * @return its bytes
     * @throws ModelFormatException if the file is larger than the limit
     * @throws IOException if it cannot be read
     */
    public static byte[] read(Path file, long maxBytes) throws IOException {
        long size;
        try (FileChannel channel = FileChannel.open(file)) {
            size = channel.size();
        }
        if (size > maxBytes) {
            throw new ModelFormatException(
                    file, "file of " + size + " bytes is larger than the limit of " + maxBytes + " bytes");
        }
        return Files.readAllBytes(file);
    }

    /**
     * Decodes UTF-8 strictly: malformed bytes are an error, not replaced.
     *
     * @param bytes the bytes
     * @param source what to name in the error message, e.g. the file; may be {@code null}
     * @return the text
     * @throws ModelFormatException if the bytes are not valid UTF-8
     */
    public static String decodeUtf8(byte[] bytes, Object source) throws ModelFormatException {
        try {
            return StandardCharsets.UTF_8
                    .newDecoder()
                    .onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT)
                    .decode(ByteBuffer.wrap(bytes))
                    .toString();
        } catch (CharacterCodingException e) {
            throw new ModelFormatException(source, "not valid UTF-8", e);
        }
    }
}
