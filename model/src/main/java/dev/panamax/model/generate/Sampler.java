package dev.panamax.model.generate;

import dev.panamax.model.backend.Backend;
import dev.panamax.model.backend.Tensor;
import java.util.Arrays;
import java.util.SplittableRandom;

/**
 * Picks the next token from logits: greedily (temperature 0), or at random from {@code softmax(logits / temperature)}
 * restricted to the {@code topK} most likely tokens and then to the smallest set of most likely tokens whose
 * probability reaches {@code topP} (nucleus sampling). The random numbers come from a generator seeded once, so a seed
 * reproduces a whole generation. Logits that are not all finite are refused with {@link NonFiniteLogitsException}
 * rather than turned into an arbitrary token. Not thread-safe.
 */
public final class Sampler {
    private final float temperature;
    private final int topK;
    private final float topP;
    private final SplittableRandom random;
    private float[] probabilities = new float[0];
    private Integer[] order = new Integer[0];
    private float[] scratch = new float[0];

    /**
     * A sampler.
     *
     * @param temperature 0 for greedy decoding, otherwise the softmax temperature, finite and large enough that its
     *     reciprocal is finite (at least about 2.94e-39)
     * @param topK keep only this many most likely tokens; 0 keeps all
     * @param topP keep the most likely tokens up to this cumulative probability, in (0, 1]; 1 keeps all
     * @param seed the random generator's seed
     * @throws IllegalArgumentException if a value is out of range
     */
    public Sampler(float temperature, int topK, float topP, long seed) {
        if (!(temperature >= 0) || !Float.isFinite(temperature)) {
            throw new IllegalArgumentException("temperature (" + temperature + ") must be finite and >= 0");
        }
        if (temperature > 0 && !Float.isFinite(1 / temperature)) {
            // The softmax divides the logits by it: one whose reciprocal overflows would scale them to infinity.
            throw new IllegalArgumentException("temperature (" + temperature + ") must be 0 or at least "
                    + Math.nextUp(1 / Float.MAX_VALUE) + ", whose reciprocal is finite");
        }
        if (topK < 0) {
            throw new IllegalArgumentException("topK (" + topK + ") must be >= 0");
        }
        if (!(topP > 0 && topP <= 1)) {
            throw new IllegalArgumentException("topP (" + topP + ") must be in (0, 1]");
        }
        this.temperature = temperature;
        this.topK = topK;
        this.topP = topP;
        this.random = new SplittableRandom(seed);
    }

    /**
     * A greedy sampler: always the most likely token (the first on ties).
     *
     * @return the sampler
     */
    public static Sampler greedy() {
        return new Sampler(0, 0, 1, 0);
    }

    /**
     * Logits that are not all finite: a broken model or weights, from which no token can be chosen.
     */
    public static final class NonFiniteLogitsException extends IllegalStateException {
        private static final long serialVersionUID = 1L;

        private NonFiniteLogitsException(String message) {
            super(message);
        }
    }

    /**
     * Picks a token. The logits may be overwritten (with probabilities).
     *
     * @param backend the backend that owns the logits
     * @param logits {@code [1, vocabSize]}
     * @return the token id
     * @throws NonFiniteLogitsException if a logit is NaN or infinite, naming the first such and how many there are
     */
    public int sample(Backend backend, Tensor logits) {
        int n = logits.cols();
        if (probabilities.length != n) {
            probabilities = new float[n];
        }
        backend.read(logits, probabilities);
        int best = finiteArgmax(n);
        if (temperature == 0) {
            return best;
        }
        backend.softmax(logits, temperature);
        backend.read(logits, probabilities);
        // A double just below 1 rounds to 1f, which no cumulative sum exceeds.
        float coin = Math.min((float) random.nextDouble(), Math.nextDown(1f));
        if (topK == 0 && topP == 1) {
            // The probabilities' float sum falls short of 1 by rounding: the coin is scaled to it, so that no draw
            // lands past the last token.
            float sum = 0;
            for (int i = 0; i < n; i++) {
                sum += probabilities[i];
            }
            return pick(coin, n, null, sum);
        }
        // Only candidates are sorted: with top-k, the tokens at least as likely as the k-th; without it, those at
        // least (1 - topP) / (n - 1), since the tokens below that cannot reach the nucleus (run.c's observation).
        // The most likely token is always a candidate: with top-p below 1/n a flat distribution has none above the
        // cutoff.
        float cutoff = topK > 0 && topK < n
                ? kthLargest(n, topK)
                : topK == 0 ? Math.min((1 - topP) / Math.max(1, n - 1), probabilities[best]) : 0;
        int candidates = 0;
        if (order.length != n) {
            order = new Integer[n];
        }
        for (int i = 0; i < n; i++) {
            if (probabilities[i] >= cutoff) {
                order[candidates++] = i;
            }
        }
        Arrays.sort(order, 0, candidates, (a, b) -> Float.compare(probabilities[b], probabilities[a]));
        int kept = topK == 0 ? candidates : Math.min(topK, candidates);
        // The nucleus is cut from the top-k distribution, renormalised; without top-k that is the whole softmax.
        double total = 1;
        if (topK != 0) {
            total = 0;
            for (int i = 0; i < kept; i++) {
                total += probabilities[order[i]];
            }
        }
        double mass = 0;
        int nucleus = kept;
        for (int i = 0; i < kept; i++) {
            mass += probabilities[order[i]];
            if (mass >= topP * total) {
                nucleus = i + 1;
                break;
            }
        }
        return pick(coin, nucleus, order, (float) mass);
    }

    /**
     * The first of the largest of the first n logits in {@code probabilities}, checking in the same pass that every
     * one is finite: a NaN or infinity would otherwise leave softmax and the samplers without a distribution.
     */
    private int finiteArgmax(int n) {
        int best = 0;
        int nonFinite = 0;
        int firstNonFinite = -1;
        for (int i = 0; i < n; i++) {
            float logit = probabilities[i];
            if (!Float.isFinite(logit)) {
                if (nonFinite++ == 0) {
                    firstNonFinite = i;
                }
            } else if (logit > probabilities[best]) {
                best = i;
            }
        }
        if (nonFinite > 0) {
            throw new NonFiniteLogitsException(nonFinite + " of the " + n + " logits are not finite (logit "
                    + firstNonFinite + " is " + probabilities[firstNonFinite] + ")");
        }
        return best;
    }

    /** The k-th largest of the first n probabilities, by quickselect on a copy: linear time, no sort of the vocabulary. */
    private float kthLargest(int n, int k) {
        if (scratch.length != n) {
            scratch = new float[n];
        }
        System.arraycopy(probabilities, 0, scratch, 0, n);
        int low = 0;
        int high = n - 1;
        int target = k - 1;
        while (low < high) {
            float pivot = scratch[(low + high) >>> 1];
            int i = low;
            int j = high;
            while (i <= j) {
                while (scratch[i] > pivot) {
                    i++;
                }
                while (scratch[j] < pivot) {
                    j--;
                }
                if (i <= j) {
                    float t = scratch[i];
                    scratch[i++] = scratch[j];
                    scratch[j--] = t;
                }
            }
            if (target <= j) {
                high = j;
            } else if (target >= i) {
                low = i;
            } else {
                break;
            }
        }
        return scratch[target];
    }

    /**
     * Inverts the cumulative distribution of {@code count} tokens (in {@code order}, or all in index order); a target
     * that rounding leaves at the very top goes to the last token with any probability, never to one without.
     */
    private int pick(float coin, int count, Integer[] order, float mass) {
        float target = coin * mass;
        float cumulative = 0;
        int lastLikely = order == null ? 0 : order[0];
        for (int i = 0; i < count; i++) {
            int token = order == null ? i : order[i];
            cumulative += probabilities[token];
            if (target < cumulative) {
                return token;
            }
            if (probabilities[token] > 0) {
                lastLikely = token;
            }
        }
        return lastLikely;
    }
}
