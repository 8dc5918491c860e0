package dev.panamax.model.train;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.SplittableRandom;
import java.util.regex.Pattern;

/**
 * A tokenised corpus cut into training windows: the first part of the tokens for training, the rest held out for
 * validation. A window of {@code seqLen} inputs at token {@code i·seqLen} predicts the tokens one further on, so
 * window {@code i} reads tokens {@code [i·seqLen, (i+1)·seqLen]}. Each epoch visits the training windows in file order
 * or in an order shuffled by the seed and the epoch alone, so a resumed run sees the same batches as one that never
 * stopped.
 */
public final class TokenDataset {
    /** The name of the digest in a fingerprint. */
    private static final String DIGEST = "sha256-128";

    /** The bytes of SHA-256's 32 that a fingerprint keeps: enough that different data never match by chance. */
    private static final int DIGEST_BYTES = 16;

    /** Tokens per chunk that the digest reads. */
    private static final int DIGEST_CHUNK_TOKENS = 1 << 14;

    private static final ValueLayout.OfInt LITTLE_ENDIAN_INT =
            ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    /** A fingerprint of versions before the digest: the split, then each part's 32-bit hash code. */
    private static final Pattern HASH_CODE_FINGERPRINT = Pattern.compile("\\d+\\+\\d+:[0-9a-f]{1,8}:[0-9a-f]{1,8}");

    private final int[] train;
    private final int[] validation;
    private final int vocabSize;
    private final int seqLen;
    private final double validationFraction;

    /** {@link #fingerprint()}, computed on first use; the tokens never change. */
    private String fingerprint;

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
     * Returns a fingerprint of the data, stored in checkpoints so that a run is not resumed on other data by mistake:
     * {@code N+M:sha256-128:TRAIN:VALIDATION}, the training and validation token counts and the first 128 bits of the
     * SHA-256 digest of each part's tokens as 32-bit little-endian integers, in hexadecimal.
     *
     * @return the fingerprint
     */
    public String fingerprint() {
        String computed = fingerprint;
        if (computed == null) {
            computed = train.length + "+" + validation.length + ":" + DIGEST + ":" + digest(train) + ":"
                    + digest(validation);
            fingerprint = computed;
        }
        return computed;
    }

    /**
     * The fingerprint in the form of one a checkpoint stored: for the 32-bit hashes that versions before {@link
     * #fingerprint()} took a digest wrote, the same hashes of this data, so that their runs still resume; else {@link
     * #fingerprint()}.
     */
    String fingerprintLike(String stored) {
        return HASH_CODE_FINGERPRINT.matcher(stored).matches() ? hashCodeFingerprint() : fingerprint();
    }

    /** The fingerprint of versions before the digest: {@link Arrays#hashCode(int[])}, which is trivially collided. */
    private String hashCodeFingerprint() {
        return train.length + "+" + validation.length + ":" + Integer.toHexString(Arrays.hashCode(train)) + ":"
                + Integer.toHexString(Arrays.hashCode(validation));
    }

    /** The first {@value #DIGEST_BYTES} bytes of the SHA-256 of the tokens' little-endian bytes, in hexadecimal. */
    private static String digest(int[] tokens) {
        MessageDigest sha256;
        try {
            sha256 = MessageDigest.getInstance("SHA-256");
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("every Java platform provides SHA-256", e);
        }
        // The tokens pass through a small buffer, so that a corpus of a gigabyte is not copied whole.
        byte[] chunk = new byte[DIGEST_CHUNK_TOKENS * Integer.BYTES];
        MemorySegment bytes = MemorySegment.ofArray(chunk);
        for (int from = 0; from < tokens.length; from += DIGEST_CHUNK_TOKENS) {
            int count = Math.min(DIGEST_CHUNK_TOKENS, tokens.length - from);
            MemorySegment.copy(tokens, from, bytes, LITTLE_ENDIAN_INT, 0, count);
            sha256.update(chunk, 0, count * Integer.BYTES);
        }
        return HexFormat.of().formatHex(sha256.digest(), 0, DIGEST_BYTES);
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
