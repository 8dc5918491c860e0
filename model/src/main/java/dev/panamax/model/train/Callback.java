package dev.panamax.model.train;

import java.io.IOException;
import java.nio.file.Path;

/**
 * Hooks {@link Trainer#fit} calls as training goes. Returning false from either method stops training after the
 * current step (early stopping).
 */
public interface Callback {
    /**
     * Called after every optimizer step.
     *
     * @param trainer the trainer, e.g. to save a checkpoint
     * @param metrics the step's numbers; validation ones are NaN unless evaluated at this step
     * @return whether to go on
     * @throws IOException if the callback's output fails
     */
    default boolean afterStep(Trainer trainer, Metrics metrics) throws IOException {
        return true;
    }

    /**
     * Called after each epoch, with that epoch's mean training loss and accuracy and a validation pass.
     *
     * @param trainer the trainer
     * @param metrics the epoch's numbers
     * @return whether to go on
     * @throws IOException if the callback's output fails
     */
    default boolean afterEpoch(Trainer trainer, Metrics metrics) throws IOException {
        return true;
    }

    /**
     * Saves a checkpoint every {@code every} steps (and after the last), overwriting the previous one.
     *
     * @param directory the checkpoint directory
     * @param every the interval in steps, at least 1
     * @return the callback
     */
    static Callback checkpointEvery(Path directory, int every) {
        if (every < 1) {
            throw new IllegalArgumentException("every (" + every + ") must be >= 1");
        }
        return new Callback() {
            @Override
            public boolean afterStep(Trainer trainer, Metrics metrics) throws IOException {
                if (metrics.step() % every == 0 || metrics.step() == trainer.totalSteps()) {
                    trainer.save(directory);
                }
                return true;
            }
        };
    }

    /**
     * Stops when the validation loss has not improved on its best for {@code patience} evaluations in a row. Its best
     * loss and count are this object's, not the checkpoint's: a resumed run starts them afresh, so it may train past
     * the evaluation where the run that never stopped would have stopped.
     *
     * @param patience evaluations without improvement to tolerate, at least 1
     * @return the callback
     */
    static Callback earlyStopping(int patience) {
        if (patience < 1) {
            throw new IllegalArgumentException("patience (" + patience + ") must be >= 1");
        }
        return new Callback() {
            private float best = Float.POSITIVE_INFINITY;
            private int worse;

            @Override
            public boolean afterStep(Trainer trainer, Metrics metrics) {
                if (!metrics.validated()) {
                    return true;
                }
                if (metrics.validationLoss() < best) {
                    best = metrics.validationLoss();
                    worse = 0;
                    return true;
                }
                return ++worse < patience;
            }
        };
    }
}
