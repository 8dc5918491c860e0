package dev.panamax.model.train;

import dev.panamax.model.io.AtomicFiles;
import java.io.IOException;
import java.nio.file.DirectoryNotEmptyException;
import java.nio.file.DirectoryStream;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;
import java.util.Locale;
import java.util.stream.Stream;

/**
 * The layout that makes a checkpoint atomic as a whole: every save goes into a new directory {@code step-NNNNNNNN}
 * inside the run directory, whose files are flushed to disk before the symbolic link {@value #CURRENT} is renamed over
 * to point at it. A crash at any moment leaves {@value #CURRENT} on a complete checkpoint: the previous one until the
 * rename, the new one after. After the switch, the step directories older than the one {@value #CURRENT} then points
 * to are deleted. The run directory also holds links
 * {@code NAME → current/NAME} for the trainer's files, so that readers of the flat layout (a GPT-2 model directory, a
 * llama2.c file) keep finding the current checkpoint's files under their usual names.
 */
final class CheckpointDirectory {
    /** The link to the current checkpoint's step directory. */
    static final String CURRENT = "current";

    private static final String STEP_PREFIX = "step-";
    private static final String TEMPORARY_SUFFIX = ".partial";

    /** Called after each stage of a save; a test makes it throw to interrupt the save there. */
    @FunctionalInterface
    interface SavePoint {
        /**
         * @param touched the file or directory the stage just wrote
         * @throws IOException to abort the save as a crash would
         */
        void reached(Path touched) throws IOException;
    }

    private CheckpointDirectory() {}

    /**
     * The directory holding the checkpoint to resume from: the target of {@value #CURRENT}, or the run directory
     * itself when it holds the flat layout that earlier versions wrote (or is a step directory).
     *
     * @throws CheckpointNotFoundException if there is neither
     */
    static Path resolve(Path run) throws IOException {
        Path current = run.resolve(CURRENT);
        if (Files.isDirectory(current)) {
            // Resolved once, so that a save switching the link meanwhile cannot mix the files of two checkpoints.
            return current.toRealPath();
        }
        if (Files.isRegularFile(run.resolve(Trainer.STATE_FILE), LinkOption.NOFOLLOW_LINKS)) {
            return run;
        }
        throw new CheckpointNotFoundException(run, Files.isDirectory(run));
    }

    /** Creates a new, empty step directory for a save at {@code step}. */
    static Path createStep(Path run, int step) throws IOException {
        String base = STEP_PREFIX + String.format(Locale.ROOT, "%08d", step);
        for (int attempt = 0; ; attempt++) {
            Path candidate = run.resolve(attempt == 0 ? base : base + "." + attempt);
            try {
                return Files.createDirectory(candidate);
            } catch (FileAlreadyExistsException taken) {
                // The current checkpoint at the same step, or a save that crashed: try the next name.
            }
        }
    }

    /**
     * Makes a fully written step directory the current checkpoint: flushes its files and itself, renames a fresh link
     * over {@value #CURRENT}, links the flat names, and deletes the step directories older than the current one.
     *
     * @param run the run directory
     * @param step the new step directory, inside {@code run}
     * @param names the files the trainer wrote into it, to be linked from the run directory
     * @param linkable every name the trainer may write; links among them that the new checkpoint lacks are removed
     * @param hook called after each stage
     */
    static void commit(Path run, Path step, List<String> names, List<String> linkable, SavePoint hook)
            throws IOException {
        try (Stream<Path> files = Files.list(step)) {
            for (Path file : files.toList()) {
                AtomicFiles.force(file);
            }
        }
        AtomicFiles.force(step);
        hook.reached(step);
        Path link = run.resolve(CURRENT + TEMPORARY_SUFFIX);
        Files.deleteIfExists(link);
        Files.createSymbolicLink(link, step.getFileName());
        Files.move(link, run.resolve(CURRENT), StandardCopyOption.ATOMIC_MOVE);
        AtomicFiles.force(run);
        hook.reached(run.resolve(CURRENT));
        for (String name : linkable) {
            Path flat = run.resolve(name);
            if (names.contains(name)) {
                Path target = Path.of(CURRENT, name);
                if (!Files.isSymbolicLink(flat) || !Files.readSymbolicLink(flat).equals(target)) {
                    Path temporary = run.resolve(name + TEMPORARY_SUFFIX);
                    Files.deleteIfExists(temporary);
                    Files.createSymbolicLink(temporary, target);
                    Files.move(temporary, flat, StandardCopyOption.ATOMIC_MOVE);
                    hook.reached(flat);
                }
            } else if (Files.isSymbolicLink(flat)) {
                Files.delete(flat);
            }
        }
        // Read again, so that a save that switched the link meanwhile keeps the directory it points to.
        long[] committed = order(Files.readSymbolicLink(run.resolve(CURRENT)).getFileName());
        try (DirectoryStream<Path> entries = Files.newDirectoryStream(run, STEP_PREFIX + "*")) {
            for (Path other : entries) {
                long[] rank = order(other.getFileName());
                if (rank != null
                        && committed != null
                        && Arrays.compare(rank, committed) < 0
                        && Files.isDirectory(other, LinkOption.NOFOLLOW_LINKS)) {
                    deleteTree(other);
                    hook.reached(other);
                }
            }
        }
    }

    /**
     * Deletes the checkpoints of a run directory, for a new run to be saved there: first the link {@value #CURRENT} and
     * the state file of the flat layout, so that a crash midway leaves no checkpoint rather than part of one, then the
     * links (or flat files) named {@code flat} with their temporaries, then each step directory, emptied of the files
     * named {@code inSteps}. Anything else is left, a step directory that holds anything else included.
     *
     * @param run the run directory
     * @param flat the names the run directory links to the current checkpoint's files
     * @param inSteps every name a save writes into a step directory
     */
    static void delete(Path run, List<String> flat, List<String> inSteps) throws IOException {
        Path current = run.resolve(CURRENT);
        if (Files.isSymbolicLink(current)) {
            Files.delete(current);
        }
        AtomicFiles.delete(run, List.of(Trainer.STATE_FILE));
        AtomicFiles.force(run);
        List<String> links = new ArrayList<>(List.of(CURRENT + TEMPORARY_SUFFIX));
        for (String name : flat) {
            links.add(name);
            links.add(name + TEMPORARY_SUFFIX);
        }
        AtomicFiles.delete(run, links);
        List<Path> steps = new ArrayList<>();
        try (DirectoryStream<Path> entries = Files.newDirectoryStream(run, STEP_PREFIX + "*")) {
            for (Path entry : entries) {
                if (order(entry.getFileName()) != null && Files.isDirectory(entry, LinkOption.NOFOLLOW_LINKS)) {
                    steps.add(entry);
                }
            }
        }
        for (Path step : steps) {
            AtomicFiles.delete(step, inSteps);
            try {
                Files.delete(step);
            } catch (DirectoryNotEmptyException notOnlyOurs) {
                // What a save does not write is not this method's to delete.
            }
        }
    }

    /**
     * The step and attempt of a step directory's name ({@code step-NNNNNNNN} or {@code step-NNNNNNNN.A}), in the order
     * saves create them; null for another name.
     */
    private static long[] order(Path name) {
        String text = name.toString();
        if (!text.startsWith(STEP_PREFIX)) {
            return null;
        }
        String[] parts = text.substring(STEP_PREFIX.length()).split("\\.", -1);
        if (parts.length > 2) {
            return null;
        }
        try {
            return new long[] {Long.parseLong(parts[0]), parts.length == 2 ? Long.parseLong(parts[1]) : 0};
        } catch (NumberFormatException notAStep) {
            return null;
        }
    }

    private static void deleteTree(Path root) throws IOException {
        try (Stream<Path> walk = Files.walk(root)) {
            for (Path path : walk.sorted(Comparator.reverseOrder()).toList()) {
                Files.deleteIfExists(path);
            }
        }
    }
}
