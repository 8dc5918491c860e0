package dev.panamax.model.generate;

import dev.panamax.model.backend.Tensor;
import java.util.Arrays;
import java.util.Set;
import java.util.function.IntConsumer;

/**
 * Generates tokens from a prompt: the prompt is prefilled as one batch, then tokens are decoded one at a time against
 * the key/value cache, each handed to a callback as soon as it is chosen. Generation ends after a number of tokens or
 * at a stop token (which is neither passed on nor counted).
 */
public final class Generator {
    private final Transformer model;
    private final Sampler sampler;
    private final Set<Integer> stopTokens;

    /**
     * The outcome of one generation.
     *
     * @param tokens the generated tokens, without the prompt and the stop token
     * @param promptTokens the number of prompt tokens prefilled
     * @param stopped whether a stop token ended the generation
     * @param prefillNanos time spent on the prompt, up to choosing the first token
     * @param decodeNanos time spent after that
     * @param decodeSteps forward passes after the prompt's (one per generated token but the last)
     */
    public record Result(
            int[] tokens, int promptTokens, boolean stopped, long prefillNanos, long decodeNanos, int decodeSteps) {
        /**
         * Returns the prompt tokens processed per second.
         *
         * @return tokens per second, or NaN when no time was measured
         */
        public double prefillTokensPerSecond() {
            return rate(promptTokens, prefillNanos);
        }

        /**
         * Returns the tokens decoded per second after the prompt.
         *
         * @return tokens per second, or NaN when there were no decode steps
         */
        public double decodeTokensPerSecond() {
            return rate(decodeSteps, decodeNanos);
        }

        private static double rate(int count, long nanos) {
            return count == 0 || nanos <= 0 ? Double.NaN : count * 1e9 / nanos;
        }
    }

    /**
     * A generator.
     *
     * @param model the model; its cache is reset by every generation
     * @param sampler how tokens are chosen
     * @param stopTokens tokens that end a generation
     */
    public Generator(Transformer model, Sampler sampler, Set<Integer> stopTokens) {
        this.model = model;
        this.sampler = sampler;
        this.stopTokens = Set.copyOf(stopTokens);
    }

    /**
     * Generates up to {@code maxTokens} tokens after the prompt.
     *
     * @param prompt the prompt's token ids, at least one
     * @param maxTokens the most tokens to generate, at least 0
     * @param onToken receives each generated token as soon as it is chosen
     * @return the tokens and timings
     * @throws IllegalArgumentException if the prompt is empty, or it and the tokens to generate do not fit in the
     *     context the model's cache holds ({@code prompt.length + maxTokens - 1 > contextLength}: the last token is never
     *     fed back)
     * @throws IllegalStateException if a forward pass gives logits that are NaN or infinite, naming the pass (the
     *     prompt's, or decode step n counted from 1) and the position of the token it was to choose (the prompt's
     *     tokens are at 0 to {@code prompt.length - 1}); tokens already handed to {@code onToken} stand
     */
    public Result generate(int[] prompt, int maxTokens, IntConsumer onToken) {
        int context = model.contextLength();
        if (prompt.length < 1) {
            throw new IllegalArgumentException("prompt must hold at least one token");
        }
        if (prompt.length > context) {
            throw new IllegalArgumentException(
                    "prompt (" + prompt.length + " tokens) must fit in the context length (" + context + ")");
        }
        if (maxTokens < 0 || (long) prompt.length + maxTokens - 1 > context) {
            throw new IllegalArgumentException(
                    "maxTokens (" + maxTokens + ") must be in [0, " + (context + 1 - prompt.length) + "]: the prompt ("
                            + prompt.length + " tokens) and the generated tokens must fit"
                            + " in the context length (" + context + ")");
        }
        model.reset();
        int[] generated = new int[maxTokens];
        int count = 0;
        boolean stopped = false;
        long start = System.nanoTime();
        long prefillEnd = start;
        int steps = 0;
        if (maxTokens > 0) {
            int next = sample(model.forward(prompt, 0, prompt.length), 0, prompt.length);
            prefillEnd = System.nanoTime();
            int[] step = new int[1];
            while (true) {
                if (stopTokens.contains(next)) {
                    stopped = true;
                    break;
                }
                generated[count++] = next;
                onToken.accept(next);
                if (count == maxTokens) {
                    break;
                }
                step[0] = next;
                next = sample(model.forward(step, 0, 1), steps + 1, prompt.length + count);
                steps++;
            }
        }
        long end = System.nanoTime();
        return new Result(
                Arrays.copyOf(generated, count), prompt.length, stopped, prefillEnd - start, end - prefillEnd, steps);
    }

    /** Samples from a forward pass's logits, naming the pass and the position it chooses for when they are broken. */
    private int sample(Tensor logits, int decodeStep, int position) {
        try {
            return sampler.sample(model.backend(), logits);
        } catch (Sampler.NonFiniteLogitsException e) {
            throw new IllegalStateException(
                    "generation stopped: the logits of "
                            + (decodeStep == 0 ? "the prompt's forward pass" : "decode step " + decodeStep)
                            + " (choosing the token at position " + position + ") are not finite: " + e.getMessage(),
                    e);
        }
    }
}
