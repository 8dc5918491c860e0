package dev.panamax.model.io;

import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.file.DirectoryStream;
import java.nio.file.FileSystems;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.FileAttribute;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;

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

    /** The end of a temporary's name. */
    private static final String TEMPORARY_SUFFIX = ".tmp";

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
     * Deletes the files of the given names in a directory, and the temporaries that {@link #replace} left for them when
     * killed while writing; no one may be writing them meanwhile. Only regular files and symbolic links are deleted (a
     * link, not what it points to): an entry of such a name that is a directory is left.
     *
     * @param directory the directory
     * @param names the file names, without a directory
     * @throws IOException if the directory cannot be listed or a file cannot be deleted
     */
    public static void delete(Path directory, Collection<String> names) throws IOException {
        List<Path> doomed = new ArrayList<>();
        try (DirectoryStream<Path> entries = Files.newDirectoryStream(directory)) {
            for (Path entry : entries) {
                String name = entry.getFileName().toString();
                boolean ours = names.stream().anyMatch(target -> name.equals(target) || isTemporary(name, target));
                if (ours && !Files.isDirectory(entry, LinkOption.NOFOLLOW_LINKS)) {
                    doomed.add(entry);
                }
            }
        }
        for (Path file : doomed) {
            Files.deleteIfExists(file);
        }
    }

    /** Whether a file name is one that {@link #replace} gives a temporary of a target of the name {@code target}. */
    private static boolean isTemporary(String name, String target) {
        String prefix = temporaryPrefix(target);
        if (name.length() <= prefix.length() + TEMPORARY_SUFFIX.length()
                || !name.startsWith(prefix)
                || !name.endsWith(TEMPORARY_SUFFIX)) {
            return false;
        }
        return name.substring(prefix.length(), name.length() - TEMPORARY_SUFFIX.length())
                .chars()
                .allMatch(c -> c >= '0' && c <= '9');
    }

    /** The start of a temporary's name, which a random number and {@link #TEMPORARY_SUFFIX} follow. */
    private static String temporaryPrefix(String target) {
        return "." + target + ".";
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
        String prefix = temporaryPrefix(absolute.getFileName().toString());
        Path temporary = FileSystems.getDefault().supportedFileAttributeViews().contains("posix")
                ? Files.createTempFile(folder, prefix, TEMPORARY_SUFFIX, READABLE_AS_USUAL)
                : Files.createTempFile(folder, prefix, TEMPORARY_SUFFIX);
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
