package dev.panamax.model.train;

import java.util.Arrays;
import java.util.SplittableRandom;

/**
 * A tokenised corpus cut into training windows: the first part of the tokens for training, the rest held out for
 * validation. A window of {@code seqLen} inputs at token {@code i·seqLen} predicts the tokens one further on, so
 * window {@code i} reads tokens {@code [i·seqLen, (i+1)·seqLen]}. Each epoch visits the training windows in file order
 * or in an order shuffled by the seed and the epoch alone, so a resumed run sees the same batches as one that never
 * stopped.
 */
public final class TokenDataset {
    private final int[] train;
    private final int[] validation;
    private final int vocabSize;
    private final int seqLen;
    private final double validationFraction;

    /**
     * Splits a corpus.
     *
     * @param tokens the tokenised text
     * @param vocabSize the vocabulary size; every token must be below it
     * @param seqLen tokens per window, at least 1
     * @param validationFraction the share of tokens held out at the end, in [0, 0.5]
     * @throws IllegalArgumentException if a token is out of range, or either part is too short for one window (the
     *     message says how many tokens are needed)
     */
    public TokenDataset(int[] tokens, int vocabSize, int seqLen, double validationFraction) {
        if (seqLen < 1) {
            throw new IllegalArgumentException("seqLen (" + seqLen + ") must be >= 1");
        }
        if (!(validationFraction >= 0 && validationFraction <= 0.5)) {
            throw new IllegalArgumentException("validationFraction (" + validationFraction + ") must be in [0, 0.5]");
        }
        for (int i = 0; i < tokens.length; i++) {
            if (tokens[i] < 0 || tokens[i] >= vocabSize) {
                throw new IllegalArgumentException(
                        "tokens[" + i + "] (" + tokens[i] + ") must be in [0, vocabSize (" + vocabSize + "))");
            }
        }
        int held = heldOutTokens(tokens.length, validationFraction);
        int split = tokens.length - held;
        this.train = Arrays.copyOfRange(tokens, 0, split);
        this.validation = Arrays.copyOfRange(tokens, split, tokens.length);
        this.vocabSize = vocabSize;
        this.seqLen = seqLen;
        this.validationFraction = validationFraction;
        if (trainWindows() < 1) {
            throw new IllegalArgumentException("the training part has " + train.length + " tokens; a window of seqLen "
                    + seqLen + " needs at least " + (seqLen + 1) + " (the corpus has " + tokens.length + ")");
        }
        if (held > 0 && validationWindows() < 1) {
            throw new IllegalArgumentException("the validation part has " + validation.length
                    + " tokens; a window of seqLen " + seqLen + " needs at least " + (seqLen + 1)
                    + ": use a longer text, a shorter sequence or a larger validation fraction");
        }
    }

    /**
     * Returns how many of a corpus's tokens are held out for validation: the last {@code validationFraction} of them,
     * rounded to the nearest whole token.
     *
     * @param tokens the corpus's length in tokens
     * @param validationFraction the share held out
     * @return the tokens held out
     */
    public static int heldOutTokens(int tokens, double validationFraction) {
        return (int) Math.round(tokens * validationFraction);
    }

    /**
     * Returns the vocabulary size.
     *
     * @return the vocabulary size
     */
    public int vocabSize() {
        return vocabSize;
    }

    /**
     * Returns the window length.
     *
     * @return tokens per window
     */
    public int seqLen() {
        return seqLen;
    }

    /**
     * Returns the share of the tokens held out for validation, as given to the constructor.
     *
     * @return the fraction, in [0, 0.5]
     */
    public double validationFraction() {
        return validationFraction;
    }

    /**
     * Returns the number of training windows.
     *
     * @return the count
     */
    public int trainWindows() {
        return (train.length - 1) / seqLen;
    }

    /**
     * Returns the number of validation windows.
     *
     * @return the count, 0 when nothing is held out
     */
    public int validationWindows() {
        return validation.length == 0 ? 0 : (validation.length - 1) / seqLen;
    }

    /**
     * Returns the number of training tokens.
     *
     * @return the count
     */
    public int trainTokens() {
        return train.length;
    }

    /**
     * Returns a fingerprint of the data (its split and a hash of its tokens), stored in checkpoints so that a run is
     * not resumed on other data by mistake.
     *
     * @return the fingerprint
     */
    public String fingerprint() {
        return train.length + "+" + validation.length + ":" + Integer.toHexString(Arrays.hashCode(train)) + ":"
                + Integer.toHexString(Arrays.hashCode(validation));
    }

    /**
     * The order in which an epoch visits the training windows: file order, or a permutation that depends only on the
     * seed and the epoch.
     *
     * @param dataOrder shuffled or sequential
     * @param seed the run's seed (unused for the sequential order)
     * @param epoch the 0-based epoch
     * @return window indices
     */
    public int[] order(TrainingOptions.DataOrder dataOrder, long seed, int epoch) {
        int[] order = new int[trainWindows()];
        for (int i = 0; i < order.length; i++) {
            order[i] = i;
        }
        if (dataOrder == TrainingOptions.DataOrder.SEQUENTIAL) {
            return order;
        }
        SplittableRandom random = new SplittableRandom(seed * 0x9E3779B97F4A7C15L + epoch);
        for (int i = order.length - 1; i > 0; i--) {
            int j = random.nextInt(i + 1);
            int t = order[i];
            order[i] = order[j];
            order[j] = t;
        }
        return order;
    }

    /**
     * Copies a window's inputs and targets.
     *
     * @param validation whether the window is a validation window
     * @param window its index
     * @param inputs receives {@code seqLen} input tokens at {@code at}
     * @param targets receives the {@code seqLen} tokens that follow each input, at {@code at}
     * @param at where to write
     */
    public void window(boolean validation, int window, int[] inputs, int[] targets, int at) {
        int[] tokens = validation ? this.validation : train;
        int count = validation ? validationWindows() : trainWindows();
        if (window < 0 || window >= count) {
            throw new IllegalArgumentException("window (" + window + ") must be in [0, " + count + ")");
        }
        System.arraycopy(tokens, window * seqLen, inputs, at, seqLen);
        System.arraycopy(tokens, window * seqLen + 1, targets, at, seqLen);
    }
}
