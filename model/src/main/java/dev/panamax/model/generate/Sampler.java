package dev.panamax.model.generate;

import dev.panamax.model.backend.Backend;
import dev.panamax.model.backend.Tensor;
import java.util.Arrays;
import java.util.SplittableRandom;

/**
 * Picks the next token from logits: greedily (temperature 0), or at random from {@code softmax(logits / temperature)}
 * restricted to the {@code topK} most likely tokens and then to the smallest set of most likely tokens whose
 * probability reaches {@code topP} (nucleus sampling). The random numbers come from a generator seeded once, so a seed
 * reproduces a whole generation. Not thread-safe.
 */
public final class Sampler {
    private final float temperature;
    private final int topK;
    private final float topP;
    private final SplittableRandom random;
    private float[] probabilities = new float[0];
    private Integer[] order = new Integer[0];

    /**
     * A sampler.
     *
     * @param temperature 0 for greedy decoding, otherwise the softmax temperature, finite and > 0
     * @param topK keep only this many most likely tokens; 0 keeps all
     * @param topP keep the most likely tokens up to this cumulative probability, in (0, 1]; 1 keeps all
     * @param seed the random generator's seed
     * @throws IllegalArgumentException if a value is out of range
     */
    public Sampler(float temperature, int topK, float topP, long seed) {
        if (!(temperature >= 0) || !Float.isFinite(temperature)) {
            throw new IllegalArgumentException("temperature (" + temperature + ") must be finite and >= 0");
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
     * Picks a token. The logits may be overwritten (with probabilities).
     *
     * @param backend the backend that owns the logits
     * @param logits {@code [1, vocabSize]}
     * @return the token id
     */
    public int sample(Backend backend, Tensor logits) {
        if (temperature == 0) {
            return backend.argmax(logits);
        }
        backend.softmax(logits, temperature);
        int n = logits.cols();
        if (probabilities.length != n) {
            probabilities = new float[n];
        }
        backend.read(logits, probabilities);
        float coin = (float) random.nextDouble();
        if (topK == 0 && topP == 1) {
            return pick(coin, n, null, 1);
        }
        // Without top-k, tokens below (1 - topP) / (n - 1) cannot be in the nucleus (run.c's observation): sort only
        // the rest. With top-k the nucleus is cut from the k most likely tokens, so all of them must be sorted.
        float cutoff = topK == 0 && topP < 1 ? (1 - topP) / Math.max(1, n - 1) : 0;
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

    /** Inverts the cumulative distribution of {@code count} tokens (in {@code order}, or all in index order). */
    private int pick(float coin, int count, Integer[] order, float mass) {
        float target = coin * mass;
        float cumulative = 0;
        for (int i = 0; i < count; i++) {
            int token = order == null ? i : order[i];
            cumulative += probabilities[token];
            if (target < cumulative) {
                return token;
            }
        }
        return order == null ? count - 1 : order[count - 1];
    }
}
