package dev.panamax.model.cli;

import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.channels.OverlappingFileLockException;
import java.nio.file.FileSystemException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;

/**
 * An exclusive lock on a run directory, held by {@code panamax train} until its end once taken, so that two processes
 * never save into one run: their saves would interleave and could delete each other's checkpoint.
 */
final class RunLock implements AutoCloseable {
    /** The file in the run directory whose lock is held; it stays when released, as deleting it would race. */
    static final String FILE = "train.lock";

    private final Path run;
    private final String named;
    private FileChannel channel;

    /**
     * A lock on a run directory, not taken yet.
     *
     * @param run the run directory
     * @param named the directory as a refusal names it (the option and the path)
     */
    RunLock(Path run, String named) {
        this.run = run;
        this.named = named;
    }

    /** Whether {@link #take} has taken the lock. */
    boolean held() {
        return channel != null;
    }

    /**
     * Takes the lock, unless held already; the run directory must exist.
     *
     * @throws FileSystemException if another process (or another command in this one) holds it
     * @throws IOException if the lock file cannot be opened
     */
    void take() throws IOException {
        if (channel != null) {
            return;
        }
        FileChannel opened = FileChannel.open(run.resolve(FILE), StandardOpenOption.CREATE, StandardOpenOption.WRITE);
        FileLock lock;
        try {
            lock = opened.tryLock();
        } catch (OverlappingFileLockException heldInThisProcess) {
            lock = null;
        } catch (IOException | RuntimeException e) {
            opened.close();
            throw e;
        }
        if (lock == null) {
            opened.close();
            throw new FileSystemException(
                    named,
                    null,
                    "the run is being trained by another process (it holds " + FILE + " there); wait for it to end,"
                            + " or train into another directory");
        }
        channel = opened;
    }

    @Override
    public void close() throws IOException {
        if (channel != null) {
            channel.close();
        }
    }
}
