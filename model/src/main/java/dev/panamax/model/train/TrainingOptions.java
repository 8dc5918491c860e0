package dev.panamax.model.train;

import java.util.ArrayList;
import java.util.List;

/**
 * What a training run holds fixed from its first step to its last: the batch shape, the optimizer and its
 * learning-rate schedule, and the seed of the data order. A checkpoint stores them, so that a resumed run continues
 * exactly as the uninterrupted one would have.
 *
 * @param batchSize sequences per micro-batch
 * @param seqLen tokens per sequence, at most the model's context
 * @param microBatches micro-batches whose gradients are averaged into one optimizer step (gradient accumulation)
 * @param learningRate the peak learning rate, reached after the warm-up
 * @param minLearningRate the rate the cosine decay ends at
 * @param warmupSteps steps of linear warm-up from {@code learningRate / warmupSteps}, fewer than the run's steps
 *     ({@link Trainer#fit} refuses a run no longer than its warm-up)
 * @param weightDecay AdamW's decoupled weight decay, applied to matrices and embeddings, not to norms and biases
 * @param beta1 the first moment's decay
 * @param beta2 the second moment's decay
 * @param epsilon added to the second moment's square root
 * @param gradClip the largest global gradient norm; larger gradients are scaled down to it (0: no clipping)
 * @param seed the seed of the shuffled order of training windows
 * @param dataOrder whether each epoch visits the training windows shuffled or in file order
 */
public record TrainingOptions(
        int batchSize,
        int seqLen,
        int microBatches,
        float learningRate,
        float minLearningRate,
        int warmupSteps,
        float weightDecay,
        float beta1,
        float beta2,
        float epsilon,
        float gradClip,
        long seed,
        DataOrder dataOrder) {

    /** The order in which an epoch visits the training windows. */
    public enum DataOrder {
        /** A permutation that depends on the seed and the epoch alone ({@link TokenDataset#order}). */
        SHUFFLED,
        /**
         * File order: step {@code s} of an epoch takes windows {@code s·B … s·B+B−1}, for runs that must be reproduced
         * by another program.
         */
        SEQUENTIAL
    }

    /**
     * Checks the options.
     *
     * @throws IllegalArgumentException listing every value out of range
     */
    public TrainingOptions {
        List<String> problems = new ArrayList<>();
        if (batchSize < 1) {
            problems.add("batchSize (" + batchSize + ") must be >= 1");
        }
        if (seqLen < 1) {
            problems.add("seqLen (" + seqLen + ") must be >= 1");
        }
        if (microBatches < 1) {
            problems.add("microBatches (" + microBatches + ") must be >= 1");
        }
        if (!(learningRate > 0) || !Float.isFinite(learningRate)) {
            problems.add("learningRate (" + learningRate + ") must be finite and > 0");
        }
        if (!(minLearningRate >= 0) || minLearningRate > learningRate) {
            problems.add("minLearningRate (" + minLearningRate + ") must be in [0, learningRate]");
        }
        if (warmupSteps < 0) {
            problems.add("warmupSteps (" + warmupSteps + ") must be >= 0");
        }
        if (!(weightDecay >= 0) || !Float.isFinite(weightDecay)) {
            problems.add("weightDecay (" + weightDecay + ") must be finite and >= 0");
        }
        if (!(beta1 >= 0 && beta1 < 1)) {
            problems.add("beta1 (" + beta1 + ") must be in [0, 1)");
        }
        if (!(beta2 >= 0 && beta2 < 1)) {
            problems.add("beta2 (" + beta2 + ") must be in [0, 1)");
        }
        if (!(epsilon > 0) || !Float.isFinite(epsilon)) {
            problems.add("epsilon (" + epsilon + ") must be finite and > 0");
        }
        if (!(gradClip >= 0) || !Float.isFinite(gradClip)) {
            problems.add("gradClip (" + gradClip + ") must be finite and >= 0");
        }
        if (dataOrder == null) {
            problems.add("dataOrder must not be null");
        }
        if (!problems.isEmpty()) {
            throw new IllegalArgumentException("invalid training options: " + String.join("; ", problems));
        }
    }

    /**
     * The usual choices for a small model: one micro-batch, learning rate 1e-3 decaying to 1e-4 after 100 warm-up
     * steps, weight decay 0.1, betas (0.9, 0.95), epsilon 1e-8, clipping at 1.0, seed 1337, shuffled windows.
     *
     * @param batchSize sequences per step
     * @param seqLen tokens per sequence
     * @return the options
     */
    public static TrainingOptions defaults(int batchSize, int seqLen) {
        return new TrainingOptions(
                batchSize, seqLen, 1, 1e-3f, 1e-4f, 100, 0.1f, 0.9f, 0.95f, 1e-8f, 1f, 1337, DataOrder.SHUFFLED);
    }

    /**
     * Returns these options with another peak learning rate (the minimum kept at a tenth of it).
     *
     * @param rate the peak learning rate
     * @return the options
     */
    public TrainingOptions withLearningRate(float rate) {
        return withSchedule(rate, rate / 10, warmupSteps);
    }

    /**
     * Returns these options with another number of warm-up steps.
     *
     * @param steps the warm-up steps
     * @return the options
     */
    public TrainingOptions withWarmupSteps(int steps) {
        return withSchedule(learningRate, minLearningRate, steps);
    }

    /** These options with another learning-rate schedule, the one part the {@code with} methods change. */
    private TrainingOptions withSchedule(float rate, float minRate, int steps) {
        return new TrainingOptions(
                batchSize,
                seqLen,
                microBatches,
                rate,
                minRate,
                steps,
                weightDecay,
                beta1,
                beta2,
                epsilon,
                gradClip,
                seed,
                dataOrder);
    }

    /**
     * Returns the tokens one optimizer step trains on.
     *
     * @return {@code batchSize · seqLen · microBatches}
     */
    public long tokensPerStep() {
        return (long) batchSize * seqLen * microBatches;
    }

    /**
     * The learning rate of a step: linear warm-up, then cosine decay to {@code minLearningRate} at {@code totalSteps}.
     *
     * @param step the 1-based step
     * @param totalSteps the steps of the whole run
     * @return the rate
     */
    public float learningRate(int step, int totalSteps) {
        if (step <= warmupSteps) {
            return learningRate * step / warmupSteps;
        }
        int decaySteps = Math.max(1, totalSteps - warmupSteps);
        double progress = Math.min(1.0, (double) (step - warmupSteps) / decaySteps);
        return (float) (minLearningRate + 0.5 * (1 + Math.cos(Math.PI * progress)) * (learningRate - minLearningRate));
    }
}
