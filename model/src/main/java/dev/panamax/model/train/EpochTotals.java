package dev.panamax.model.train;

/**
 * The sums over the steps an epoch has taken so far, from which its summary is made. A checkpoint keeps them, so that
 * the summary of an epoch that was stopped and resumed covers all its steps, not only those after the resume.
 *
 * @param steps steps of the epoch summed so far
 * @param lossSum the sum of their training losses
 * @param accuracySum the sum of their training accuracies
 * @param seconds the time spent in the epoch so far, in fits that have ended (or until a checkpoint was written)
 */
record EpochTotals(int steps, double lossSum, double accuracySum, double seconds) {
    /** An epoch that has taken no step. */
    static final EpochTotals NONE = new EpochTotals(0, 0, 0, 0);

    /** These totals with one more step's loss and accuracy. */
    EpochTotals plus(Metrics step) {
        return new EpochTotals(steps + 1, lossSum + step.trainLoss(), accuracySum + step.trainAccuracy(), seconds);
    }

    /** These totals with {@code more} seconds spent. */
    EpochTotals after(double more) {
        return new EpochTotals(steps, lossSum, accuracySum, seconds + more);
    }
}
