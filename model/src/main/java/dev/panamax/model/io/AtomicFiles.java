package dev.panamax.model.io;

import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.file.FileSystems;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.FileAttribute;
import java.nio.file.attribute.PosixFilePermissions;

/**
 * Files written whole or not at all. The content goes to a new temporary file beside the target, which is flushed to the
 * storage device and renamed over the target, so that readers and a crash see the old content or the new, never a part.
 * The temporary's name is new for every write, so two writers of one target, or a file of the user's that happens to
 * carry the name, are never truncated or deleted; a write that fails leaves the target as it was and no temporary.
 */
public final class AtomicFiles {
    /** A new file's permissions before the umask, as for any file the JVM creates (the temporary's would be 0600). */
    private static final FileAttribute<?> READABLE_AS_USUAL =
            PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rw-rw-rw-"));

    private AtomicFiles() {}

    /** Writes one file's content. */
    @FunctionalInterface
    public interface Content {
        /**
         * Writes the content into {@code file}, which exists and is empty.
         *
         * @param file the file to write
         * @throws IOException if it cannot be written
         */
        void write(Path file) throws IOException;
    }

    /**
     * Replaces {@code target} with what {@code content} writes.
     *
     * @param target the file to create or replace; its folder must exist
     * @param content what writes the new content
     * @throws IOException if the temporary cannot be created, written, flushed or renamed (the target is then unchanged)
     */
    public static void replace(Path target, Content content) throws IOException {
        Path absolute = target.toAbsolutePath();
        Path folder = absolute.getParent();
        String prefix = "." + absolute.getFileName() + ".";
        Path temporary = FileSystems.getDefault().supportedFileAttributeViews().contains("posix")
                ? Files.createTempFile(folder, prefix, ".tmp", READABLE_AS_USUAL)
                : Files.createTempFile(folder, prefix, ".tmp");
        try {
            content.write(temporary);
            force(temporary);
            Files.move(temporary, absolute, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
            force(folder);
        } finally {
            Files.deleteIfExists(temporary);
        }
    }

    /**
     * Replaces {@code target} with a UTF-8 text.
     *
     * @param target the file to create or replace; its folder must exist
     * @param text the text
     * @throws IOException if it cannot be written (the target is then unchanged)
     */
    public static void replace(Path target, String text) throws IOException {
        replace(target, file -> Files.writeString(file, text));
    }

    /**
     * Flushes a file, or a directory's entries, to the storage device.
     *
     * @param path the file or directory
     * @throws IOException if a file cannot be flushed
     */
    public static void force(Path path) throws IOException {
        try (FileChannel channel = FileChannel.open(path, StandardOpenOption.READ)) {
            channel.force(true);
        } catch (IOException e) {
            if (!Files.isDirectory(path)) {
                throw e;
            }
            // Some platforms cannot open a directory for syncing; the rename is still atomic there.
        }
    }
}
