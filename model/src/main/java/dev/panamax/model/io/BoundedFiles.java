package dev.panamax.model.io;

import dev.panamax.model.json.Json;
import dev.panamax.model.json.JsonException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.CharBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.CharsetDecoder;
import java.nio.charset.CoderResult;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.attribute.BasicFileAttributes;

/**
 * Reading small files whole, with the checks that keep a bad file from costing more than a clear error: that it is a
 * regular file before it is opened, a size limit before anything is allocated, and strict UTF-8.
 */
public final class BoundedFiles {
    private static final int DECODE_CHUNK_CHARS = 8192;
    private static final int FILE_TYPE_BITS = 0170000;
    private static final int FIFO = 0010000;
    private static final int CHARACTER_DEVICE = 0020000;
    private static final int BLOCK_DEVICE = 0060000;
    private static final int SOCKET = 0140000;

    private BoundedFiles() {}

    /**
     * Checks that a path names a regular file (after following symbolic links) before anything opens it: opening a
     * FIFO for reading blocks until some writer opens it, possibly forever, and a directory or device is not a file
     * to read.
     *
     * @param file the file
     * @param kind what the file is meant to be, for messages, e.g. {@code "llama2.c tokenizer"}
     * @return its size in bytes
     * @throws NoSuchFileException if nothing is there, naming the kind and the path
     * @throws ModelFormatException if it is a directory, FIFO, device or socket, naming which
     * @throws IOException if its attributes cannot be read
     */
    public static long requireRegularFile(Path file, String kind) throws IOException {
        BasicFileAttributes attributes;
        try {
            attributes = Files.readAttributes(file, BasicFileAttributes.class);
        } catch (NoSuchFileException e) {
            throw new NoSuchFileException(file.toString(), null, kind + " not found");
        }
        if (!attributes.isRegularFile()) {
            throw new ModelFormatException(
                    file, "the " + kind + " is " + describeNonRegular(file, attributes) + ", not a regular file");
        }
        return attributes.size();
    }

    private static String describeNonRegular(Path file, BasicFileAttributes attributes) {
        if (attributes.isDirectory()) {
            return "a directory";
        }
        try {
            return switch ((Integer) Files.getAttribute(file, "unix:mode") & FILE_TYPE_BITS) {
                case FIFO -> "a FIFO (named pipe)";
                case CHARACTER_DEVICE -> "a character device";
                case BLOCK_DEVICE -> "a block device";
                case SOCKET -> "a socket";
                default -> "a special file";
            };
        } catch (IOException | UnsupportedOperationException | IllegalArgumentException e) {
            return "a special file (FIFO, device or socket)"; // the file system has no unix view to tell which
        }
    }

    /**
     * Reads a file whole, if it is a regular file no larger than a limit.
     *
     * @param file the file
     * @param kind what the file is meant to be, for messages, e.g. {@code "GPT-2 merges file"}
     * @param maxBytes the largest size accepted, at most {@code Integer.MAX_VALUE - 8}
     * @return its bytes
     * @throws NoSuchFileException if it does not exist, naming the kind
     * @throws ModelFormatException if it is not a regular file or is larger than the limit
     * @throws IOException if it cannot be read, or shrinks while it is read
     */
    public static byte[] read(Path file, String kind, long maxBytes) throws IOException {
        long size = requireRegularFile(file, kind);
        if (size > maxBytes) {
            throw new ModelFormatException(
                    file, kind + " of " + size + " bytes is larger than the limit of " + maxBytes + " bytes");
        }
        try (FileChannel channel = FileChannel.open(file)) {
            // The size read before opening bounds the allocation, whatever the file does meanwhile.
            ByteBuffer bytes = ByteBuffer.allocate((int) size);
            Channels.readFully(channel, bytes, 0);
            return bytes.array();
        }
    }

    /**
     * Reads a file whole, if it is a regular file no larger than a limit; as {@link #read(Path, String, long)} with
     * the kind {@code "file"}.
     *
     * @param file the file
     * @param maxBytes the largest size accepted, at most {@code Integer.MAX_VALUE - 8}
     * @return its bytes
     * @throws NoSuchFileException if it does not exist
     * @throws ModelFormatException if it is not a regular file or is larger than the limit
     * @throws IOException if it cannot be read
     */
    public static byte[] read(Path file, long maxBytes) throws IOException {
        return read(file, "file", maxBytes);
    }

    /**
     * Decodes UTF-8 strictly: malformed bytes are an error, not replaced. The bytes are checked in small chunks before
     * the text is made, so that decoding takes no more memory than the text itself.
     *
     * @param bytes the bytes
     * @param source what to name in the error message, e.g. the file; may be {@code null}
     * @return the text
     * @throws ModelFormatException if the bytes are not valid UTF-8, naming the offset of the first bad byte
     */
    public static String decodeUtf8(byte[] bytes, Object source) throws ModelFormatException {
        CharsetDecoder decoder = StandardCharsets.UTF_8
                .newDecoder()
                .onMalformedInput(CodingErrorAction.REPORT)
                .onUnmappableCharacter(CodingErrorAction.REPORT);
        ByteBuffer in = ByteBuffer.wrap(bytes);
        CharBuffer out = CharBuffer.allocate(DECODE_CHUNK_CHARS);
        CoderResult result;
        do {
            result = decoder.decode(in, out.clear(), true);
        } while (result.isOverflow());
        if (result.isUnderflow()) {
            result = decoder.flush(out.clear());
        }
        if (result.isError()) {
            throw new ModelFormatException(source, "not valid UTF-8: malformed byte sequence at byte " + in.position());
        }
        // Checked above, so the JDK's decoder, which would replace malformed input, gives the same text.
        return new String(bytes, StandardCharsets.UTF_8);
    }

    /**
     * Reads a small file as strict UTF-8 text, at most {@code maxBytes} long.
     *
     * @param file the file
     * @param kind what the file is, for messages, e.g. {@code "JSON file"}
     * @param maxBytes the most bytes it may have
     * @return its text
     * @throws NoSuchFileException if the file does not exist
     * @throws ModelFormatException if it is not a regular file, larger than {@code maxBytes} or not UTF-8
     * @throws IOException if it cannot be read
     */
    public static String readUtf8(Path file, String kind, long maxBytes) throws IOException {
        // The bytes are dropped once decoded, before the caller builds anything from the text.
        return decodeUtf8(read(file, kind, maxBytes), file);
    }

    /**
     * Reads a JSON file (at most {@link Json#DEFAULT_MAX_BYTES}, strict UTF-8) and hands its text to {@code reader},
     * which parses it with the JSON package and reads the members it expects. The JSON package's exceptions, the
     * parser's and those about members alike, become {@link ModelFormatException}s with the same message, which names
     * the file.
     *
     * @param file the file
     * @param reader what to make of the text
     * @param <T> what it makes
     * @return what the reader returned
     * @throws NoSuchFileException if the file does not exist
     * @throws ModelFormatException if it is not a regular file, too large, not UTF-8 or not valid JSON, or the reader
     *     found a member missing, mistyped or out of range
     * @throws IOException if the file cannot be read, or the reader threw it
     */
    public static <T> T readJson(Path file, JsonText<T> reader) throws IOException {
        return parseJson(readUtf8(file, "JSON file", Json.DEFAULT_MAX_BYTES), reader);
    }

    /**
     * Hands JSON text read from a file to {@code reader}, reporting the JSON package's exceptions as {@link
     * ModelFormatException}s with the same message, as {@link #readJson} does.
     *
     * @param text the text
     * @param reader what to make of it
     * @param <T> what it makes
     * @return what the reader returned
     * @throws ModelFormatException if the text is not valid JSON or the reader found a bad member
     * @throws IOException if the reader threw it
     */
    public static <T> T parseJson(String text, JsonText<T> reader) throws IOException {
        try {
            return reader.read(text);
        } catch (JsonException e) {
            throw new ModelFormatException(e);
        }
    }

    /**
     * What a loader makes of a JSON file's text.
     *
     * @param <T> what it makes
     */
    @FunctionalInterface
    public interface JsonText<T> {
        /**
         * Parses the text and reads the members.
         *
         * @param text the file's text
         * @return what it describes
         * @throws IOException if it is not valid JSON, or its members are missing, mistyped, out of range or
         *     inconsistent
         */
        T read(String text) throws IOException;
    }
}
