package dev.panamax.model.train;

import java.nio.file.NoSuchFileException;
import java.nio.file.Path;

/** A run directory to resume from that holds no checkpoint: nothing there was written by {@link Trainer#save}. */
public final class CheckpointNotFoundException extends NoSuchFileException {
    private static final long serialVersionUID = 1L;

    /**
     * Creates the exception.
     *
     * @param directory the directory given to resume from
     * @param exists whether it exists at all
     */
    public CheckpointNotFoundException(Path directory, boolean exists) {
        super(
                directory.toString(),
                null,
                (exists ? "holds no checkpoint" : "does not exist") + " to resume from: expected a link "
                        + CheckpointDirectory.CURRENT + " to a step directory, or a " + Trainer.STATE_FILE
                        + " beside " + Trainer.WEIGHTS_FILE + " and " + Trainer.OPTIMIZER_FILE
                        + ", as Trainer.save (panamax train --out or --checkpoint-every) writes them");
    }
}
