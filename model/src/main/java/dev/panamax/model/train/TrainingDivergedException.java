package dev.panamax.model.train;

/**
 * Thrown by {@link Trainer#trainStep} when a step's gradient norm is not finite. The step is not taken: the weights,
 * the optimizer's moments and the step count are those from before it, so the trainer can still be saved.
 */
public final class TrainingDivergedException extends IllegalStateException {
    private static final long serialVersionUID = 1L;

    /** The step that diverged, one after the trainer's. */
    private final int step;

    /** The non-finite gradient norm. */
    private final float gradientNorm;

    /**
     * @param step the step that diverged
     * @param gradientNorm its gradient norm, not finite
     * @param loss its mean loss
     */
    TrainingDivergedException(int step, float gradientNorm, double loss) {
        super("training diverged at step " + step + ": the gradient norm is " + gradientNorm + " (mean loss " + loss
                + "); lower the learning rate");
        this.step = step;
        this.gradientNorm = gradientNorm;
    }

    /**
     * Returns the step that diverged, which was not taken.
     *
     * @return the step, one after the trainer's
     */
    public int step() {
        return step;
    }

    /**
     * Returns the step's gradient norm.
     *
     * @return NaN or an infinity
     */
    public float gradientNorm() {
        return gradientNorm;
    }
}
