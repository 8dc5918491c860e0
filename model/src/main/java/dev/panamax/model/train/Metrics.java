package dev.panamax.model.train;

/**
 * Where training stands after a step, as {@link Trainer#fit} reports it to callbacks and writes it to the loss curve,
 * or an epoch's summary. A summary's training loss, accuracy and throughput are over the epoch's steps so far, those
 * before a resume included (a checkpoint keeps their sums; one written before it did starts the sums at the resume).
 * Its throughput counts the time spent in fits, not the time between a stop and a resume.
 *
 * @param step optimizer steps done
 * @param epoch the 1-based epoch the step belongs to
 * @param trainLoss mean cross-entropy of the step's batches (nats per token); in a summary, the mean over its steps
 * @param trainAccuracy share of the step's tokens whose most likely next token was the right one; in a summary, the
 *     mean over its steps
 * @param validationLoss mean validation cross-entropy, or NaN when not evaluated at this step
 * @param validationAccuracy validation next-token accuracy, or NaN when not evaluated
 * @param learningRate the step's learning rate
 * @param gradientNorm the global gradient norm before clipping
 * @param tokensPerSecond training throughput over the step
 */
public record Metrics(
        int step,
        int epoch,
        float trainLoss,
        float trainAccuracy,
        float validationLoss,
        float validationAccuracy,
        float learningRate,
        float gradientNorm,
        double tokensPerSecond) {

    /**
     * Returns whether validation was measured at this step.
     *
     * @return whether the validation values are numbers
     */
    public boolean validated() {
        return !Float.isNaN(validationLoss);
    }
}
