package dev.panamax.model.generate;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.panamax.kernels.testing.Inputs;
import dev.panamax.model.backend.CpuBackend;
import dev.panamax.model.backend.Tensor;
import java.util.Arrays;
import java.util.HashSet;
import java.util.Set;
import java.util.stream.IntStream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

class SamplerTest {
    /** Probabilities after softmax: token 3 most likely (≈0.49), then 1 (≈0.18), 4, 0 and 2. */
    private static final float[] LOGITS = {0.5f, 1.5f, -1f, 2.5f, 1f};

    private final CpuBackend backend = new CpuBackend();
    private final Tensor logits = backend.allocate(1, LOGITS.length);

    @AfterEach
    void close() {
        backend.close();
    }

    private int[] draw(Sampler sampler, int count) {
        int[] tokens = new int[count];
        for (int i = 0; i < count; i++) {
            backend.write(LOGITS, logits);
            tokens[i] = sampler.sample(backend, logits);
        }
        return tokens;
    }

    @Test
    void greedyTakesTheLargestLogitAndTheFirstOnTies() {
        assertEquals(3, draw(Sampler.greedy(), 1)[0]);
        backend.write(new float[] {1, 7, 7, 7, 0}, logits);
        assertEquals(1, Sampler.greedy().sample(backend, logits));
    }

    @Test
    void aSeedReproducesTheDrawsAndAnotherSeedChangesThem() {
        int[] first = draw(new Sampler(1, 0, 1, 42), 200);
        assertArrayEquals(first, draw(new Sampler(1, 0, 1, 42), 200));
        assertNotEquals(Arrays.toString(first), Arrays.toString(draw(new Sampler(1, 0, 1, 43), 200)));
    }

    @Test
    void drawsFollowTheSoftmaxAndItsTemperature() {
        int n = 20000;
        int[] counts = new int[LOGITS.length];
        for (int token : draw(new Sampler(1, 0, 1, 7), n)) {
            counts[token]++;
        }
        double sum = 0;
        for (float l : LOGITS) {
            sum += Math.exp(l);
        }
        for (int i = 0; i < LOGITS.length; i++) {
            double p = Math.exp(LOGITS[i]) / sum;
            // Five standard deviations of a binomial proportion.
            assertEquals(p, counts[i] / (double) n, 5 * Math.sqrt(p * (1 - p) / n), "token " + i);
        }
        int cold = 0;
        for (int token : draw(new Sampler(0.1f, 0, 1, 7), 1000)) {
            cold += token == 3 ? 1 : 0;
        }
        assertTrue(cold > 990, "at temperature 0.1 token 3 has probability > 0.9999, drawn " + cold + " times");
    }

    @Test
    void topKAndTopPKeepOnlyTheMostLikelyTokens() {
        for (int token : draw(new Sampler(1, 1, 1, 3), 200)) {
            assertEquals(3, token, "top-k 1 is greedy");
        }
        for (int token : draw(new Sampler(1, 2, 1, 3), 500)) {
            assertTrue(token == 3 || token == 1, "top-k 2 keeps tokens 3 and 1, drew " + token);
        }
        for (int token : draw(new Sampler(1, 0, 0.3f, 3), 200)) {
            assertEquals(3, token, "the nucleus of mass 0.3 is token 3 alone");
        }
        boolean[] seen = new boolean[LOGITS.length];
        for (int token : draw(new Sampler(1, 0, 0.6f, 3), 2000)) {
            seen[token] = true;
        }
        assertArrayEquals(new boolean[] {false, true, false, true, false}, seen, "top-p 0.6: tokens 3 and 1");
    }

    @Test
    void topKOverALargeVocabularyDrawsOnlyFromTheKMostLikely() {
        int n = 1000;
        float[] values = Inputs.uniform(5, n, -3, 3);
        Integer[] ranked = IntStream.range(0, n).boxed().toArray(Integer[]::new);
        Arrays.sort(ranked, (a, b) -> Float.compare(values[b], values[a]));
        Set<Integer> top = Set.of(Arrays.copyOf(ranked, 10));
        Tensor large = backend.allocate(1, n);
        Sampler sampler = new Sampler(2, 10, 1, 8);
        Set<Integer> drawn = new HashSet<>();
        for (int i = 0; i < 2000; i++) {
            backend.write(values, large);
            drawn.add(sampler.sample(backend, large));
        }
        assertEquals(top, drawn, "at temperature 2 each of the 10 is drawn in 2000 tries, and nothing else");
    }

    @Test
    void nonFiniteLogitsStopEverySamplerWithTheFirstBadLogitNamed() {
        float nan = Float.NaN;
        float inf = Float.POSITIVE_INFINITY;
        float[][] rows = {
            {0.5f, 1.5f, nan, 2.5f, 1f},
            {0.5f, 1.5f, -1f, 2.5f, inf},
            {-inf, -inf, -inf, -inf, -inf},
            {0.5f, -inf, -1f, 2.5f, nan},
        };
        String[] messages = {
            "1 of the 5 logits are not finite (logit 2 is NaN)",
            "1 of the 5 logits are not finite (logit 4 is Infinity)",
            "5 of the 5 logits are not finite (logit 0 is -Infinity)",
            "2 of the 5 logits are not finite (logit 1 is -Infinity)",
        };
        Sampler[] samplers = {
            Sampler.greedy(), new Sampler(1, 0, 1, 5), new Sampler(0.7f, 2, 1, 5), new Sampler(1.3f, 0, 0.6f, 5)
        };
        for (Sampler sampler : samplers) {
            for (int r = 0; r < rows.length; r++) {
                backend.write(rows[r], logits);
                assertEquals(
                        messages[r],
                        assertThrows(Sampler.NonFiniteLogitsException.class, () -> sampler.sample(backend, logits))
                                .getMessage());
            }
            assertTrue(draw(sampler, 1)[0] >= 0, "a finite row samples again afterwards");
        }
    }

    @Test
    void invalidSettingsNameTheArgumentAndBound() {
        assertTrue(assertThrows(IllegalArgumentException.class, () -> new Sampler(-1, 0, 1, 0))
                .getMessage()
                .contains("temperature (-1.0) must be finite and >= 0"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> new Sampler(1, -2, 1, 0))
                .getMessage()
                .contains("topK (-2) must be >= 0"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> new Sampler(1, 0, 0, 0))
                .getMessage()
                .contains("topP (0.0) must be in (0, 1]"));
        // A temperature whose reciprocal overflows would make the softmax scale every logit to infinity.
        assertEquals(
                "temperature (1.0E-39) must be 0 or at least 2.938737E-39, whose reciprocal is finite",
                assertThrows(IllegalArgumentException.class, () -> new Sampler(1e-39f, 0, 1, 0))
                        .getMessage());
    }

    @Test
    void topPBelowOneOverTheVocabularyKeepsTheMostLikelyToken() {
        // A flat distribution has no token at or above run.c's cutoff (1 - topP) / (n - 1) when topP < 1/n.
        Sampler sampler = new Sampler(1000, 0, 0.001f, 1);
        for (int i = 0; i < 50; i++) {
            backend.write(LOGITS, logits);
            assertEquals(3, sampler.sample(backend, logits));
        }
    }
}
