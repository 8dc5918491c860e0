package dev.panamax.kernels;

import static dev.panamax.kernels.testing.Agreement.assertAllRejected;
import static dev.panamax.kernels.testing.Rejection.illegalArgument;
import static dev.panamax.kernels.testing.Rejection.nullArgument;
import static dev.panamax.kernels.testing.Rejection.outOfBounds;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.panamax.kernels.testing.Inputs;
import dev.panamax.kernels.testing.ReferenceAttention;
import dev.panamax.kernels.testing.Rejection;
import dev.panamax.kernels.testing.Tolerance;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.stream.IntStream;
import java.util.stream.Stream;
import jdk.incubator.vector.VectorShape;
import jdk.jfr.Recording;
import jdk.jfr.consumer.RecordingFile;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/** Fused attention against {@link ReferenceAttention}; tolerances are stated there. */
@Tag("species")
class AttentionTest {
    private static final int DEFAULT_THREADS = Parallelism.threads();

    record Case(int batch, int qHeads, int kvHeads, int tq, int tk, int headDim, boolean causal, boolean masked) {
        @Override
        public String toString() {
            return "batch=" + batch + " heads=" + qHeads + "/" + kvHeads + " tq=" + tq + " tk=" + tk + " d=" + headDim
                    + (causal ? " causal" : "") + (masked ? " masked" : "");
        }
    }

    @AfterEach
    void restoreThreads() {
        Parallelism.setThreads(DEFAULT_THREADS);
    }

    static Stream<Case> cases() {
        int[][] lengths = {
            {1, 1},
            {1, 7},
            {7, 7},
            {1, 100},
            {7, 64},
            {64, 64},
            {64, 100},
            {100, 100},
            {1, 513},
            {100, 513},
            {513, 513},
            {7, 1}
        };
        int[][] heads = {{1, 1}, {2, 1}, {4, 2}, {8, 4}, {8, 8}, {4, 1}};
        int[] dims = {16, 32, 64, 80, 128};
        List<Case> cases = new ArrayList<>();
        int counter = 0;
        for (int d : dims) {
            for (int[] t : lengths) {
                int[] h = heads[counter % heads.length];
                boolean large = (long) t[0] * t[1] > 10_000;
                cases.add(new Case(
                        large ? 1 : 2,
                        large ? Math.min(h[0], 2) : h[0],
                        large ? Math.min(h[1], 2) : h[1],
                        t[0],
                        t[1],
                        d,
                        counter % 2 == 0,
                        counter % 3 == 0));
                counter++;
            }
        }
        return cases.stream();
    }

    @ParameterizedTest
    @MethodSource("cases")
    void matchesTheReference(Case c) {
        run(c, 0);
    }

    /** Runs a case on inputs padded inside larger buffers (strides and offsets); returns the output. */
    private static float[] run(Case c, int padding) {
        int d = c.headDim();
        float[] q = Inputs.uniform(Inputs.seed(c + "q"), c.batch() * c.qHeads() * c.tq() * d, -1, 1);
        float[] k = Inputs.uniform(Inputs.seed(c + "k"), c.batch() * c.kvHeads() * c.tk() * d, -1, 1);
        float[] v = Inputs.uniform(Inputs.seed(c + "v"), c.batch() * c.kvHeads() * c.tk() * d, -1, 1);
        float[] mask = c.masked() ? mask(c.tq(), c.tk()) : null;
        double scale = 1 / Math.sqrt(d) * 2;
        ReferenceAttention.Result expected = ReferenceAttention.forward(
                c.batch(), c.qHeads(), c.kvHeads(), c.tq(), c.tk(), d, (float) scale, c.causal(), q, k, v, mask);
        float[][] out = forwardDense(c, (float) scale, q, k, v, mask);
        Tolerance.assertClose(c + " output", expected.output(), out[0], expected.bound());
        Tolerance.assertClose(c + " log-sum-exp", expected.logSumExp(), out[1], 1e-5, 1e-5);
        return out[0];
    }

    /** The forward on dense arrays (the mask {@code [tq, tk]}, shared by batch entries and heads); returns O and lse. */
    private static float[][] forwardDense(Case c, float scale, float[] q, float[] k, float[] v, float[] mask) {
        int d = c.headDim();
        float[] o = new float[q.length];
        float[] lse = new float[c.batch() * c.qHeads() * c.tq()];
        Attention.forward(
                new Attention.Shape(c.batch(), c.qHeads(), c.kvHeads(), c.tq(), c.tk(), d),
                scale,
                c.causal(),
                TensorView.dense(q, c.qHeads(), c.tq(), d),
                TensorView.dense(k, c.kvHeads(), c.tk(), d),
                TensorView.dense(v, c.kvHeads(), c.tk(), d),
                mask == null ? null : TensorView.of(mask, 0, 0, 0, c.tk()),
                TensorView.dense(o, c.qHeads(), c.tq(), d),
                TensorView.dense(lse, c.qHeads(), c.tq(), 1));
        return new float[][] {o, lse};
    }

    /**
     * A key whose score is 250 below the others weighs 0 in float (e^-250 underflows), so a NaN in its value row adds
     * nothing: every path gives the reference's output on clean inputs, the decode paths and the prefill's alike (the
     * decode paths compute a query whose float accumulator is NaN again in double, whose weight e^-250 is not 0).
     */
    @Test
    void aValueRowWhoseWeightUnderflowsAddsNothingEvenNaN() {
        int d = 16;
        float scale = (float) (1 / Math.sqrt(d));
        for (Case c : new Case[] {
            new Case(1, 2, 1, 1, 100, d, true, false),
            new Case(2, 2, 2, 1, 37, d, false, false),
            new Case(1, 2, 1, 40, 40, d, false, false)
        }) {
            float[] q = Inputs.uniform(Inputs.seed(c + "q"), c.batch() * c.qHeads() * c.tq() * d, -1, 1);
            float[] k = Inputs.uniform(Inputs.seed(c + "k"), c.batch() * c.kvHeads() * c.tk() * d, -1, 1);
            float[] v = Inputs.uniform(Inputs.seed(c + "v"), c.batch() * c.kvHeads() * c.tk() * d, -1, 1);
            for (int i = 0; i < q.length; i += d) {
                q[i] = 10;
            }
            int under = c.tk() / 3;
            for (int b = 0; b < c.batch() * c.kvHeads(); b++) {
                k[(b * c.tk() + under) * d] = -100;
            }
            ReferenceAttention.Result clean = ReferenceAttention.forward(
                    c.batch(), c.qHeads(), c.kvHeads(), c.tq(), c.tk(), d, scale, c.causal(), q, k, v, null);
            float[] poisoned = v.clone();
            for (int b = 0; b < c.batch() * c.kvHeads(); b++) {
                poisoned[(b * c.tk() + under) * d + 1] = Float.NaN;
            }
            List<float[]> outputs = new ArrayList<>();
            outputs.add(forwardDense(c, scale, q, k, poisoned, null)[0]);
            if (c.tq() == 1 && d % Simd.LANES == 0) {
                outputs.add(decodeInterleaved(c, q, k, poisoned, null, scale, false)[0]);
            }
            for (float[] out : outputs) {
                Tolerance.assertClose(c + " output", clean.output(), out, clean.bound());
            }
        }
    }

    /** An additive mask with −Inf holes, a fully masked first row, and finite offsets elsewhere. */
    private static float[] mask(int tq, int tk) {
        float[] mask = Inputs.uniform(Inputs.seed("mask" + tq + "x" + tk), tq * tk, -2, 2);
        for (int i = 0; i < mask.length; i += 3) {
            mask[i] = Float.NEGATIVE_INFINITY;
        }
        Arrays.fill(mask, 0, tk, Float.NEGATIVE_INFINITY);
        return mask;
    }

    @Test
    void fullyMaskedRowsGiveZerosNotNaN() {
        int tq = 5;
        int tk = 9;
        int d = 16;
        float[] q = Inputs.uniform(1, tq * d, -1, 1);
        float[] k = Inputs.uniform(2, tk * d, -1, 1);
        float[] v = Inputs.uniform(3, tk * d, -1, 1);
        float[] mask = new float[tq * tk];
        Arrays.fill(mask, Float.NEGATIVE_INFINITY);
        float[] o = Inputs.uniform(4, tq * d, -1, 1);
        float[] lse = new float[tq];
        Attention.forward(
                new Attention.Shape(1, 1, 1, tq, tk, d),
                0.25f,
                false,
                TensorView.dense(q, 1, tq, d),
                TensorView.dense(k, 1, tk, d),
                TensorView.dense(v, 1, tk, d),
                TensorView.of(mask, 0, 0, 0, tk),
                TensorView.dense(o, 1, tq, d),
                TensorView.dense(lse, 1, tq, 1));
        assertArrayEquals(new float[tq * d], o);
        for (float value : lse) {
            assertEquals(Float.NEGATIVE_INFINITY, value);
        }
        // More queries than keys under the causal rule: the first tq - tk queries see nothing.
        float[] o2 = new float[9 * d];
        Attention.forward(
                new Attention.Shape(1, 1, 1, 9, 4, d),
                true,
                TensorView.dense(Inputs.uniform(5, 9 * d, -1, 1), 1, 9, d),
                TensorView.dense(k, 1, 4, d),
                TensorView.dense(v, 1, 4, d),
                TensorView.dense(o2, 1, 9, d));
        for (int i = 0; i < 5 * d; i++) {
            assertEquals(0f, o2[i], "row " + i / d);
        }
        assertTrue(Float.isFinite(o2[5 * d]) && o2[5 * d] != 0f);
    }

    /**
     * Scores beyond float's range (issue 19: +∞ made ∞ - ∞, NaN; -∞ everywhere made the query look fully masked) and
     * scores so large that only exact ties weigh. Queries and keys are small integers and the scales powers of two (or
     * Float.MAX_VALUE), so every score is an exact product and the float64 reference is the exact answer; the mask
     * only hides keys. Prefill tiles, the decode path and grouped heads, causal or not.
     */
    @Test
    void hugeScoresGiveTheExactDistribution() {
        Case[] cases = {
            new Case(1, 2, 1, 70, 150, 64, true, true),
            new Case(1, 2, 2, 1, 300, 64, false, false),
            new Case(2, 2, 1, 5, 9, 16, false, true),
            new Case(1, 1, 1, 3, 3, 12, true, false)
        };
        for (Case c : cases) {
            float[][] t = integerInputs(c, false);
            float[][] negative = integerInputs(c, true);
            for (float scale : new float[] {0x1p70f, 0x1p120f, -0x1p120f, Float.MAX_VALUE, -Float.MAX_VALUE}) {
                checkHuge(c, scale, t, "scale " + scale);
            }
            // Every score below -Float.MAX_VALUE.
            checkHuge(c, 0x1p125f, negative, "all scores overflowing to -∞");
        }
    }

    /**
     * Q, K in [-2, 2] (or, {@code negative}, Q in [1, 2] and K in [-2, -1], so that every dot product is negative) as
     * whole numbers, V in [-1, 1]; many dot products tie.
     */
    static float[][] integerInputs(Case c, boolean negative) {
        int d = c.headDim();
        int qLength = c.batch() * c.qHeads() * c.tq() * d;
        int kvLength = c.batch() * c.kvHeads() * c.tk() * d;
        float[] q = Inputs.uniform(Inputs.seed(c + " integer q"), qLength, negative ? 0.5f : -2.5f, 2.5f);
        float[] k = Inputs.uniform(Inputs.seed(c + " integer k"), kvLength, -2.5f, negative ? -0.5f : 2.5f);
        for (float[] values : new float[][] {q, k}) {
            for (int i = 0; i < values.length; i++) {
                values[i] = Math.round(values[i]);
            }
        }
        return new float[][] {q, k, Inputs.uniform(Inputs.seed(c + " integer v"), kvLength, -1, 1)};
    }

    /** A mask that only hides keys: every third, and all of the first query's. */
    static float[] hidingMask(int tq, int tk) {
        float[] mask = new float[tq * tk];
        for (int i = 0; i < mask.length; i += 3) {
            mask[i] = Float.NEGATIVE_INFINITY;
        }
        Arrays.fill(mask, 0, tk, Float.NEGATIVE_INFINITY);
        return mask;
    }

    private static void checkHuge(Case c, float scale, float[][] t, String name) {
        int d = c.headDim();
        float[] mask = c.masked() ? hidingMask(c.tq(), c.tk()) : null;
        ReferenceAttention.Result expected = ReferenceAttention.forward(
                c.batch(), c.qHeads(), c.kvHeads(), c.tq(), c.tk(), d, scale, c.causal(), t[0], t[1], t[2], mask);
        float[][] out = forwardDense(c, scale, t[0], t[1], t[2], mask);
        float[] o = out[0];
        float[] lse = out[1];
        // Exact scores: only the exponentials, the sums over keys and the division round (see ReferenceAttention).
        double[] bound = new double[o.length];
        Arrays.fill(bound, 2 * Tolerance.FLOAT_EPSILON * (4 * c.tk() + 16));
        Tolerance.assertClose(c + " " + name + " output", expected.output(), o, bound);
        double[] expectedLse = expected.logSumExp().clone();
        for (int i = 0; i < expectedLse.length; i++) {
            // Beyond float's range the log-sum-exp can only be ±∞.
            expectedLse[i] = Math.abs(expectedLse[i]) > Float.MAX_VALUE ? (float) expectedLse[i] : expectedLse[i];
        }
        Tolerance.assertClose(c + " " + name + " log-sum-exp", expectedLse, lse, 0, 2 * Tolerance.FLOAT_EPSILON);
    }

    /**
     * Values near float's limit: the float accumulator {@code Σ exp(s - max)·v} can overflow although the output, a
     * weighted mean of the values, cannot. Q and K are 0, so every visible key weighs the same and the output is the
     * mean of the values the query sees. Prefill tiles, the decode paths (four parts, the row-by-row path of a single
     * key/value head, a head size that is not a whole number of vectors), grouped heads, causal or not; and the same
     * with a NaN in the last key's value row, which must reach only the queries that see it.
     */
    @Test
    void valuesNearFloatsLimitGiveFiniteOutputs() {
        Case[] cases = {
            new Case(1, 2, 1, 70, 150, 64, true, false),
            new Case(1, 2, 2, 1, 300, 64, false, false),
            new Case(1, 4, 2, 1, 40, 32, true, true),
            new Case(1, 4, 1, 1, 300, 64, false, false),
            new Case(1, 2, 1, 1, 40, 13, true, true),
            new Case(2, 2, 1, 5, 9, 12, false, true)
        };
        for (Case c : cases) {
            int d = c.headDim();
            float[] q = new float[c.batch() * c.qHeads() * c.tq() * d];
            float[] k = new float[c.batch() * c.kvHeads() * c.tk() * d];
            float[] v = Inputs.uniform(Inputs.seed(c + " huge v"), k.length, 2e38f, Float.MAX_VALUE);
            // A mask that only hides keys (every third), so that the keys a query sees weigh the same.
            float[] mask = null;
            if (c.masked()) {
                mask = new float[c.tq() * c.tk()];
                for (int i = 0; i < mask.length; i++) {
                    mask[i] = (i / c.tk() + i % c.tk()) % 3 == 0 ? Float.NEGATIVE_INFINITY : 0f;
                }
            }
            ReferenceAttention.Result expected = ReferenceAttention.forward(
                    c.batch(), c.qHeads(), c.kvHeads(), c.tq(), c.tk(), d, 1f, c.causal(), q, k, v, mask);
            double[] bound = new double[q.length];
            for (int i = 0; i < bound.length; i++) {
                // Equal weights: only the sum over keys and the division round.
                bound[i] = Math.abs(expected.output()[i]) * Tolerance.FLOAT_EPSILON * (c.tk() + 4);
            }
            Expect[] clean = new Expect[q.length];
            Arrays.fill(clean, Expect.CLEAN);
            assertPoisoned(
                    c + " values near float's limit",
                    expected.output(),
                    bound,
                    forwardDense(c, 1f, q, k, v, mask)[0],
                    clean);
            // Column 0 of the last key's value row, in every batch entry and key/value head.
            float[] poisoned = v.clone();
            for (int row = c.tk() - 1; row < poisoned.length / d; row += c.tk()) {
                poisoned[row * d] = Float.NaN;
            }
            Expect[] expect = new Expect[q.length];
            for (int i = 0; i < expect.length; i++) {
                boolean seen = sees(c.tq(), c.tk(), c.causal(), mask, i / d % c.tq(), c.tk() - 1);
                expect[i] = seen && i % d == 0 ? Expect.NON_FINITE : Expect.CLEAN;
            }
            assertPoisoned(
                    c + " values near float's limit, a NaN in the last value row",
                    expected.output(),
                    bound,
                    forwardDense(c, 1f, q, k, poisoned, mask)[0],
                    expect);
        }
    }

    @Test
    void nanPropagatesToItsRow() {
        int d = 16;
        float[] q = Inputs.uniform(1, 3 * d, -1, 1);
        q[d + 2] = Float.NaN;
        float[] k = Inputs.uniform(2, 4 * d, -1, 1);
        float[] v = Inputs.uniform(3, 4 * d, -1, 1);
        float[] o = new float[3 * d];
        Attention.forward(
                new Attention.Shape(1, 1, 1, 3, 4, d),
                false,
                TensorView.dense(q, 1, 3, d),
                TensorView.dense(k, 1, 4, d),
                TensorView.dense(v, 1, 4, d),
                TensorView.dense(o, 1, 3, d));
        for (int c = 0; c < d; c++) {
            assertTrue(Float.isNaN(o[d + c]));
            assertTrue(Float.isFinite(o[c]) && Float.isFinite(o[2 * d + c]));
        }
    }

    @Test
    void inputsChangedBetweenCallsAreSeen() {
        // A thread keeps a head's packed key and value tiles, and a query tile's packed queries, while it works through
        // them; a second call over the same buffers and views, rewritten in place as a KV cache is, must not see the
        // first's. One head, one query tile and one thread, so that the second call starts where the first ended.
        Parallelism.setThreads(1);
        int tq = 50;
        int tk = 300;
        int d = 32;
        Attention.Shape shape = new Attention.Shape(1, 1, 1, tq, tk, d);
        float[] q = Inputs.uniform(11, tq * d, -1, 1);
        float[] k = Inputs.uniform(12, tk * d, -1, 1);
        float[] v = Inputs.uniform(13, tk * d, -1, 1);
        float[] o = new float[q.length];
        TensorView qView = TensorView.dense(q, 1, tq, d);
        TensorView kView = TensorView.dense(k, 1, tk, d);
        TensorView vView = TensorView.dense(v, 1, tk, d);
        for (int call = 0; call < 2; call++) {
            if (call == 1) {
                float[][] inputs = {q, k, v};
                for (int i = 0; i < inputs.length; i++) {
                    float[] input = inputs[i];
                    System.arraycopy(Inputs.uniform(14 + i, input.length, -1, 1), 0, input, 0, input.length);
                }
            }
            Attention.forward(shape, true, qView, kView, vView, TensorView.dense(o, 1, tq, d));
            ReferenceAttention.Result expected =
                    ReferenceAttention.forward(1, 1, 1, tq, tk, d, shape.defaultScale(), true, q, k, v, null);
            Tolerance.assertClose("call " + call, expected.output(), o, expected.bound());
        }
    }

    @Test
    void packedQkvAndAKvCacheWithSpareCapacityNeedNoCopies() {
        // Q, K, V interleaved as [batch, t, 3, heads, d]; the cache [batch, heads, capacity, d] is partly filled.
        int batch = 2;
        int heads = 4;
        int t = 37;
        int d = 32;
        int capacity = 64;
        float[] qkv = Inputs.uniform(7, batch * t * 3 * heads * d, -1, 1);
        long row = 3L * heads * d;
        TensorView q = TensorView.of(qkv, 0, t * row, d, row);
        float[] o = new float[batch * heads * t * d];
        Attention.Shape shape = new Attention.Shape(batch, heads, heads, t, t, d);
        Attention.forward(
                shape,
                true,
                q,
                TensorView.of(qkv, (long) heads * d, t * row, d, row),
                TensorView.of(qkv, 2L * heads * d, t * row, d, row),
                TensorView.dense(o, heads, t, d));
        // The same through dense copies and the reference.
        float[] qd = new float[batch * heads * t * d];
        float[] kd = new float[qd.length];
        float[] vd = new float[qd.length];
        float[] cacheK = new float[batch * heads * capacity * d];
        float[] cacheV = new float[cacheK.length];
        for (int b = 0; b < batch; b++) {
            for (int i = 0; i < t; i++) {
                for (int h = 0; h < heads; h++) {
                    int src = (int) (b * t * row + i * row + h * d);
                    int dst = ((b * heads + h) * t + i) * d;
                    System.arraycopy(qkv, src, qd, dst, d);
                    System.arraycopy(qkv, src + heads * d, kd, dst, d);
                    System.arraycopy(qkv, src + 2 * heads * d, vd, dst, d);
                    System.arraycopy(qkv, src + heads * d, cacheK, ((b * heads + h) * capacity + i) * d, d);
                    System.arraycopy(qkv, src + 2 * heads * d, cacheV, ((b * heads + h) * capacity + i) * d, d);
                }
            }
        }
        ReferenceAttention.Result expected =
                ReferenceAttention.forward(batch, heads, heads, t, t, d, 1 / Math.sqrt(d), true, qd, kd, vd, null);
        Tolerance.assertClose("packed QKV", expected.output(), o, expected.bound());
        // Decode the last token against the cache: tq = 1, tk = t, reading only the filled part.
        float[] lastQ = new float[batch * heads * d];
        for (int b = 0; b < batch; b++) {
            for (int h = 0; h < heads; h++) {
                System.arraycopy(qd, ((b * heads + h) * t + t - 1) * d, lastQ, (b * heads + h) * d, d);
            }
        }
        float[] decoded = new float[batch * heads * d];
        TensorView cache = TensorView.of(cacheK, 0, (long) heads * capacity * d, (long) capacity * d, d);
        Attention.forward(
                new Attention.Shape(batch, heads, heads, 1, t, d),
                true,
                TensorView.dense(lastQ, heads, 1, d),
                cache,
                TensorView.of(cacheV, 0, (long) heads * capacity * d, (long) capacity * d, d),
                TensorView.dense(decoded, heads, 1, d));
        for (int b = 0; b < batch; b++) {
            for (int h = 0; h < heads; h++) {
                int from = ((b * heads + h) * t + t - 1) * d;
                float[] got = Arrays.copyOfRange(decoded, (b * heads + h) * d, (b * heads + h + 1) * d);
                Tolerance.assertClose(
                        "decode b" + b + " h" + h,
                        Arrays.copyOfRange(expected.output(), from, from + d),
                        got,
                        Arrays.copyOfRange(expected.bound(), from, from + d));
            }
        }
    }

    static Stream<Case> interleavedDecodeCases() {
        int[][] heads = {{12, 12}, {8, 2}, {4, 1}, {1, 1}, {3, 3}, {32, 32}, {6, 2}};
        int[] lengths = {1, 2, 3, 5, 16, 17, 100, 513};
        List<Case> cases = new ArrayList<>();
        int counter = 0;
        for (int d : new int[] {16, 64, 80}) {
            for (int tk : lengths) {
                int[] h = heads[counter % heads.length];
                cases.add(new Case(counter % 4 == 0 ? 2 : 1, h[0], h[1], 1, tk, d, counter % 2 == 0, counter % 3 == 0));
                counter++;
            }
        }
        return cases.stream();
    }

    /**
     * Decoding against a cache laid out as a model writes it, {@code [batch, position, kvHeads, headDim]} with spare
     * capacity, padded rows and an offset: the path that reads all heads row by row. The rows past the keys hold NaN,
     * so reading one would show; every thread count and heap or native storage give the same bits.
     */
    @ParameterizedTest
    @MethodSource("interleavedDecodeCases")
    void interleavedCacheDecodeMatchesTheReference(Case c) {
        int d = c.headDim();
        float[] q = Inputs.uniform(Inputs.seed(c + "q"), c.batch() * c.qHeads() * d, -1, 1);
        float[] k = Inputs.uniform(Inputs.seed(c + "k"), c.batch() * c.kvHeads() * c.tk() * d, -2, 2);
        float[] v = Inputs.uniform(Inputs.seed(c + "v"), c.batch() * c.kvHeads() * c.tk() * d, -1, 1);
        float[] mask = null;
        if (c.masked()) {
            // Finite offsets with every third key hidden (all of them when tk is 1).
            mask = Inputs.uniform(Inputs.seed(c + "mask"), c.tk(), -2, 2);
            for (int i = 0; i < mask.length; i += 3) {
                mask[i] = Float.NEGATIVE_INFINITY;
            }
        }
        float scale = (float) (1 / Math.sqrt(d));
        ReferenceAttention.Result expected = ReferenceAttention.forward(
                c.batch(), c.qHeads(), c.kvHeads(), 1, c.tk(), d, scale, c.causal(), q, k, v, mask);
        float[] first = null;
        for (int threads = 1; threads <= 3; threads++) {
            for (boolean nativeMemory : new boolean[] {false, true}) {
                Parallelism.setThreads(threads);
                float[][] out = decodeInterleaved(c, q, k, v, mask, scale, nativeMemory);
                Tolerance.assertClose(c + " output", expected.output(), out[0], expected.bound());
                Tolerance.assertClose(c + " log-sum-exp", expected.logSumExp(), out[1], 1e-5, 1e-5);
                if (first == null) {
                    first = out[0];
                } else {
                    assertArrayEquals(first, out[0], c + ", " + threads + " threads, native " + nativeMemory);
                }
            }
        }
    }

    /** Scores beyond float's range on the row-by-row decode path, as {@link #hugeScoresGiveTheExactDistribution}. */
    @Test
    void interleavedCacheDecodeWithHugeScoresIsExact() {
        for (Case c :
                new Case[] {new Case(1, 8, 2, 1, 301, 64, true, true), new Case(2, 3, 3, 1, 7, 16, false, false)}) {
            float[][] t = integerInputs(c, false);
            float[] mask = c.masked() ? hidingMask(1, c.tk()) : null;
            for (float scale : new float[] {0x1p120f, -Float.MAX_VALUE}) {
                ReferenceAttention.Result expected = ReferenceAttention.forward(
                        c.batch(),
                        c.qHeads(),
                        c.kvHeads(),
                        1,
                        c.tk(),
                        c.headDim(),
                        scale,
                        c.causal(),
                        t[0],
                        t[1],
                        t[2],
                        mask);
                float[][] out = decodeInterleaved(c, t[0], t[1], t[2], mask, scale, false);
                double[] bound = new double[out[0].length];
                Arrays.fill(bound, 2 * Tolerance.FLOAT_EPSILON * (4 * c.tk() + 16));
                Tolerance.assertClose(c + " scale " + scale, expected.output(), out[0], bound);
            }
        }
    }

    /**
     * One decode step with q dense and K, V copied from dense {@code [batch, kvHeads, tk, d]} arrays into a cache of
     * rows {@code kvHeads·d + 8} floats apart, from float 3, with room for {@code tk + 5} positions whose spare rows
     * and padding hold NaN; returns the output and the log-sum-exps.
     */
    private static float[][] decodeInterleaved(
            Case c, float[] q, float[] k, float[] v, float[] mask, float scale, boolean nativeMemory) {
        int d = c.headDim();
        int kvHeads = c.kvHeads();
        int row = kvHeads * d + 8;
        int capacity = c.tk() + 5;
        int offset = 3;
        float[] cacheK = new float[offset + c.batch() * capacity * row];
        float[] cacheV = new float[cacheK.length];
        Arrays.fill(cacheK, Float.NaN);
        Arrays.fill(cacheV, Float.NaN);
        for (int b = 0; b < c.batch(); b++) {
            for (int h = 0; h < kvHeads; h++) {
                for (int i = 0; i < c.tk(); i++) {
                    int src = ((b * kvHeads + h) * c.tk() + i) * d;
                    int dst = offset + (b * capacity + i) * row + h * d;
                    System.arraycopy(k, src, cacheK, dst, d);
                    System.arraycopy(v, src, cacheV, dst, d);
                }
            }
        }
        float[] o = new float[q.length];
        float[] lse = new float[c.batch() * c.qHeads()];
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment keys =
                    nativeMemory ? arena.allocateFrom(ValueLayout.JAVA_FLOAT, cacheK) : MemorySegment.ofArray(cacheK);
            MemorySegment values =
                    nativeMemory ? arena.allocateFrom(ValueLayout.JAVA_FLOAT, cacheV) : MemorySegment.ofArray(cacheV);
            Attention.forward(
                    new Attention.Shape(c.batch(), c.qHeads(), kvHeads, 1, c.tk(), d),
                    scale,
                    c.causal(),
                    TensorView.dense(q, c.qHeads(), 1, d),
                    new TensorView(keys, offset, (long) capacity * row, d, row),
                    new TensorView(values, offset, (long) capacity * row, d, row),
                    mask == null ? null : TensorView.of(mask, 0, 0, 0, c.tk()),
                    TensorView.dense(o, c.qHeads(), 1, d),
                    TensorView.dense(lse, c.qHeads(), 1, 1));
        }
        return new float[][] {o, lse};
    }

    /** What a poison test asks of one output element. */
    enum Expect {
        /** Within the bound of the float64 reference on the clean inputs: the element does not see the poison. */
        CLEAN,
        /** NaN or ±∞: the element sees the poison and IEEE arithmetic makes it non-finite. */
        NON_FINITE,
        /** Finite, of any value (a key whose score is −∞ weighs nothing, and so leaves its query finite). */
        FINITE,
        /** Not checked: the poison reaches the element, but not as NaN or ∞ (a key of score −∞ moves the others). */
        ANY
    }

    /** NaN and the infinities: values that reach every output that sees them, and must reach no other. */
    static final float[] POISONS = {Float.NaN, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY};

    /** A mask that hides key j from query i where {@code (i + j) % 3 == 0}, with finite offsets elsewhere. */
    static float[] poisonMask(int tq, int tk) {
        float[] mask = Inputs.uniform(Inputs.seed("poison mask " + tq + "x" + tk), tq * tk, -1, 1);
        for (int i = 0; i < tq; i++) {
            for (int j = 0; j < tk; j++) {
                if ((i + j) % 3 == 0) {
                    mask[i * tk + j] = Float.NEGATIVE_INFINITY;
                }
            }
        }
        return mask;
    }

    /** Whether query i sees key j: the causal rule, then the mask. */
    static boolean sees(int tq, int tk, boolean causal, float[] mask, int i, int j) {
        return (!causal || j <= i + tk - tq) && (mask == null || mask[i * tk + j] != Float.NEGATIVE_INFINITY);
    }

    /** Asserts each element of {@code actual} as {@code expect} says, against the clean reference and its bounds. */
    static void assertPoisoned(String what, double[] clean, double[] bound, float[] actual, Expect[] expect) {
        int[] compared = IntStream.range(0, actual.length)
                .filter(i -> expect[i] == Expect.CLEAN)
                .toArray();
        Tolerance.assertClose(
                what,
                compared.length,
                i -> clean[compared[i]],
                i -> actual[compared[i]],
                i -> bound[compared[i]],
                i -> "index " + compared[i]);
        for (int i = 0; i < actual.length; i++) {
            boolean finite = Float.isFinite(actual[i]);
            if (expect[i] == Expect.NON_FINITE && finite || expect[i] == Expect.FINITE && !finite) {
                throw new AssertionError(what + ": index " + i + " is " + actual[i] + ", expected " + expect[i]);
            }
        }
    }

    /** A shape and the key/value rows to poison, one at a time, in the last batch entry's last key/value head. */
    record PoisonCase(Case shape, int... rows) {
        @Override
        public String toString() {
            return shape + " rows " + Arrays.toString(rows);
        }
    }

    /**
     * Query tiles whose diagonal key tile holds a poisoned row that some of their queries do not see, poisoned rows in
     * later key tiles, fewer queries than keys, masks that hide the row from some queries, decoding (four parts and a
     * fifth, the row-by-row path, a head size that is not a whole number of vectors), GQA, batches, odd sizes.
     */
    static Stream<PoisonCase> poisonCases() {
        return Stream.of(
                new PoisonCase(new Case(2, 4, 2, 100, 100, 64, true, false), 5, 70, 99),
                new PoisonCase(new Case(1, 2, 1, 70, 300, 32, true, false), 250, 290, 299),
                new PoisonCase(new Case(2, 3, 3, 37, 37, 13, true, true), 0, 20, 36),
                new PoisonCase(new Case(1, 4, 1, 45, 45, 16, true, false), 10, 44),
                new PoisonCase(new Case(1, 2, 2, 3, 50, 32, true, false), 48, 49),
                new PoisonCase(new Case(1, 2, 1, 20, 30, 16, false, true), 6, 29),
                new PoisonCase(new Case(2, 4, 2, 1, 202, 64, true, true), 99, 100, 150, 201),
                new PoisonCase(new Case(2, 4, 1, 1, 202, 64, false, true), 99, 100, 150, 201),
                new PoisonCase(new Case(1, 2, 1, 1, 50, 13, true, true), 0, 1, 48));
    }

    /**
     * NaN and ±∞ in one element of a key or value row: an output whose query does not see that row (the causal rule or
     * the mask hides it) matches the reference on the clean inputs; one that sees it is non-finite where IEEE
     * arithmetic makes it so (the value's column, or the whole row for a score of NaN or +∞). Decoding also reads a
     * cache whose rows hold the heads side by side.
     */
    @ParameterizedTest
    @MethodSource("poisonCases")
    void rowsAQueryDoesNotSeeDoNotReachIt(PoisonCase pc) {
        Case c = pc.shape();
        int d = c.headDim();
        float[] q = Inputs.uniform(Inputs.seed(c + "q"), c.batch() * c.qHeads() * c.tq() * d, -1, 1);
        float[][] kv = {
            Inputs.uniform(Inputs.seed(c + "k"), c.batch() * c.kvHeads() * c.tk() * d, -1, 1),
            Inputs.uniform(Inputs.seed(c + "v"), c.batch() * c.kvHeads() * c.tk() * d, -1, 1)
        };
        float[] mask = c.masked() ? poisonMask(c.tq(), c.tk()) : null;
        float scale = (float) (1 / Math.sqrt(d));
        ReferenceAttention.Result clean = ReferenceAttention.forward(
                c.batch(), c.qHeads(), c.kvHeads(), c.tq(), c.tk(), d, scale, c.causal(), q, kv[0], kv[1], mask);
        double[] lseBound = new double[clean.logSumExp().length];
        for (int i = 0; i < lseBound.length; i++) {
            lseBound[i] = 1e-5 + 1e-5 * Math.abs(clean.logSumExp()[i]);
        }
        int b0 = c.batch() - 1;
        int kvHead = c.kvHeads() - 1;
        int group = c.qHeads() / c.kvHeads();
        for (int tensor = 0; tensor < 2; tensor++) {
            for (int row : pc.rows()) {
                int column = row % d;
                for (float poison : POISONS) {
                    float[][] poisoned = {kv[0].clone(), kv[1].clone()};
                    poisoned[tensor][((b0 * c.kvHeads() + kvHead) * c.tk() + row) * d + column] = poison;
                    Expect[] expectO = new Expect[q.length];
                    Expect[] expectLse = new Expect[clean.logSumExp().length];
                    for (int r = 0; r < expectLse.length; r++) {
                        int i = r % c.tq();
                        int head = r / c.tq() % c.qHeads();
                        boolean seen = r / c.tq() / c.qHeads() == b0
                                && head / group == kvHead
                                && sees(c.tq(), c.tk(), c.causal(), mask, i, row);
                        // A poisoned key's score is NaN or ±∞; at -∞ the key weighs nothing.
                        boolean scoreNegative = scale * q[r * d + column] * poison < 0;
                        Expect whole = !seen
                                ? Expect.CLEAN
                                : tensor == 1 ? Expect.CLEAN : scoreNegative ? Expect.FINITE : Expect.NON_FINITE;
                        for (int e = 0; e < d; e++) {
                            expectO[r * d + e] = seen && tensor == 1 && e == column ? Expect.NON_FINITE : whole;
                        }
                        // Values do not move the log-sum-exp.
                        expectLse[r] = whole == Expect.FINITE ? Expect.ANY : whole;
                    }
                    List<float[][]> results = new ArrayList<>();
                    Parallelism.setThreads(3);
                    results.add(forwardDense(c, scale, q, poisoned[0], poisoned[1], mask));
                    Parallelism.setThreads(1);
                    // The pass that leaves weights of 0 out is chosen per query tile, the same way at any thread count.
                    assertArrayEquals(
                            results.get(0)[0],
                            forwardDense(c, scale, q, poisoned[0], poisoned[1], mask)[0],
                            "1 thread");
                    if (c.tq() == 1 && d % Simd.LANES == 0) {
                        results.add(decodeInterleaved(c, q, poisoned[0], poisoned[1], mask, scale, false));
                    }
                    for (int layout = 0; layout < results.size(); layout++) {
                        String name = c + (tensor == 0 ? " K" : " V") + " row " + row + " column " + column + " = "
                                + poison + (layout == 0 ? "" : " interleaved cache");
                        assertPoisoned(
                                name + " output", clean.output(), clean.bound(), results.get(layout)[0], expectO);
                        assertPoisoned(
                                name + " log-sum-exp", clean.logSumExp(), lseBound, results.get(layout)[1], expectLse);
                    }
                }
            }
        }
    }

    @Test
    void everyThreadCountAndStorageGivesTheSameBits() {
        // Tiles of many queries, and decoding (one query, whose path reads the cache in place, 201 keys: four parts of
        // 50 and one left over).
        assertThreadsAndStorageAgree(new Case(2, 4, 2, 130, 200, 64, true, false));
        assertThreadsAndStorageAgree(new Case(2, 4, 2, 1, 201, 64, true, false));
    }

    private void assertThreadsAndStorageAgree(Case c) {
        float[] first = null;
        for (int threads = 1; threads <= 3; threads++) {
            Parallelism.setThreads(threads);
            float[] o = run(c, 0);
            if (first == null) {
                first = o;
            } else {
                assertArrayEquals(first, o, threads + " threads");
            }
        }
        int d = c.headDim();
        try (Arena arena = Arena.ofConfined()) {
            float[] q = Inputs.uniform(Inputs.seed(c + "q"), c.batch() * c.qHeads() * c.tq() * d, -1, 1);
            float[] k = Inputs.uniform(Inputs.seed(c + "k"), c.batch() * c.kvHeads() * c.tk() * d, -1, 1);
            float[] v = Inputs.uniform(Inputs.seed(c + "v"), c.batch() * c.kvHeads() * c.tk() * d, -1, 1);
            MemorySegment o = arena.allocate(ValueLayout.JAVA_FLOAT, q.length);
            Attention.forward(
                    new Attention.Shape(c.batch(), c.qHeads(), c.kvHeads(), c.tq(), c.tk(), d),
                    (float) (2 / Math.sqrt(d)),
                    true,
                    TensorView.dense(arena.allocateFrom(ValueLayout.JAVA_FLOAT, q), c.qHeads(), c.tq(), d),
                    TensorView.dense(arena.allocateFrom(ValueLayout.JAVA_FLOAT, k), c.kvHeads(), c.tk(), d),
                    TensorView.dense(arena.allocateFrom(ValueLayout.JAVA_FLOAT, v), c.kvHeads(), c.tk(), d),
                    null,
                    TensorView.dense(o, c.qHeads(), c.tq(), d),
                    null);
            assertArrayEquals(first, o.toArray(ValueLayout.JAVA_FLOAT), "native confined segments");
        }
    }

    /**
     * A thread's workspace is the same for every number of queries above one (the backward keeps a query tile's row
     * terms, not one per query); a single query adds the partial results of every batch entry and head.
     */
    @Test
    void workspaceDoesNotGrowWithTheQueries() {
        int d = 64;
        long tile = Attention.workspaceFloats(new Attention.Shape(2, 4, 2, 2, 1000, d));
        assertEquals(tile, Attention.workspaceFloats(new Attention.Shape(2, 4, 2, 1 << 20, 1000, d)));
        assertEquals(
                tile + 2 * 4 * 4 * (d + 2) + 4 * d,
                Attention.workspaceFloats(new Attention.Shape(2, 4, 2, 1, 1000, d)),
                "decoding: four parts' maximum, sum and accumulator per batch entry and head, and each head's query");
    }

    /**
     * A decoding call's partial results, four per batch entry and head, are kept by the calling thread up to 16 MiB
     * and let go above it: 64 entries of 64 heads of 256 floats take 4227072 floats. Asked on a fresh thread, whose
     * scratch holds only these calls'.
     */
    @Test
    void decodingPartialsAboveTheCapAreNotKept() throws InterruptedException {
        int heads = 64;
        int d = 256;
        int[] kept = new int[2];
        Thread caller = new Thread(() -> {
            kept[0] = partialsKeptAfterDecoding(1, heads, d);
            kept[1] = partialsKeptAfterDecoding(64, heads, d);
        });
        caller.start();
        caller.join();
        assertEquals(4 * heads * (d + 2), kept[0], "one batch entry's partials, kept");
        assertEquals(0, kept[1], "64 batch entries' partials, let go");
    }

    /** Decodes one query per head of {@code batch} entries against 8 keys; returns the partials the thread keeps. */
    private static int partialsKeptAfterDecoding(int batch, int heads, int d) {
        int tk = 8;
        float[] q = Inputs.uniform(1, batch * heads * d, -1, 1);
        float[] k = Inputs.uniform(2, batch * tk * d, -1, 1);
        float[] v = Inputs.uniform(3, batch * tk * d, -1, 1);
        Attention.forward(
                new Attention.Shape(batch, heads, 1, 1, tk, d),
                false,
                TensorView.dense(q, heads, 1, d),
                TensorView.dense(k, 1, tk, d),
                TensorView.dense(v, 1, tk, d),
                TensorView.dense(new float[q.length], heads, 1, d));
        return AttentionRowDecode.PARTIALS.retained();
    }

    @Test
    void longCausalSequenceUsesMemoryLinearInLength() throws Throwable {
        // Wider than the hardware, vectors are emulated with objects: allocation then says nothing, and it is slow.
        Assumptions.assumeTrue(
                Simd.FLOATS.vectorBitSize() <= VectorShape.preferredShape().vectorBitSize(),
                "vector width " + Simd.FLOATS.vectorBitSize() + " is emulated on this machine");
        Parallelism.setThreads(1);
        int t = 16384;
        int d = 64;
        Attention.Shape shape = new Attention.Shape(1, 1, 1, t, t, d);
        assertEquals(
                Attention.workspaceFloats(new Attention.Shape(1, 1, 1, t, t / 2, d)),
                Attention.workspaceFloats(shape),
                "workspace grows with the number of keys past the packed tiles kept");
        assertTrue(
                Attention.workspaceFloats(shape) < (long) t * t / 64,
                "workspace " + Attention.workspaceFloats(shape) + " floats");
        float[] q = Inputs.uniform(1, t * d, -1, 1);
        float[] k = Inputs.uniform(2, t * d, -1, 1);
        float[] v = Inputs.uniform(3, t * d, -1, 1);
        float[] o = new float[t * d];
        Executable call = () -> Attention.forward(
                shape,
                true,
                TensorView.dense(q, 1, t, d),
                TensorView.dense(k, 1, t, d),
                TensorView.dense(v, 1, t, d),
                TensorView.dense(o, 1, t, d));
        call.execute(); // the workspaces are made by the first call
        // A T × T score matrix would be one allocation of 1 GiB, too large for any thread-local allocation buffer, so
        // the JVM records it as an allocation outside one. What else a call allocates depends on the JIT's state
        // (boxed vectors in code not yet compiled), is garbage, and comes in small objects: their total says nothing.
        long largest;
        Path dump = Files.createTempFile("attention-allocations", ".jfr");
        try (Recording recording = new Recording()) {
            recording.enable("jdk.ObjectAllocationOutsideTLAB");
            recording.start();
            call.execute();
            recording.stop();
            recording.dump(dump);
            largest = RecordingFile.readAllEvents(dump).stream()
                    .mapToLong(event -> event.getLong("allocationSize"))
                    .max()
                    .orElse(0);
        } finally {
            Files.delete(dump);
        }
        long bound = (long) t * t * Float.BYTES / 8;
        assertTrue(largest < bound, "largest allocation " + largest + " bytes, against " + bound);
        // Spot-check the last query against the reference on its own.
        float[] lastQ = Arrays.copyOfRange(q, (t - 1) * d, t * d);
        ReferenceAttention.Result expected =
                ReferenceAttention.forward(1, 1, 1, 1, t, d, 1 / Math.sqrt(d), true, lastQ, k, v, null);
        Tolerance.assertClose(
                "last query", expected.output(), Arrays.copyOfRange(o, (t - 1) * d, t * d), expected.bound());
    }

    /**
     * Broadcast inputs let a call's sizes pass the extent checks with an output of 8 GiB, and its task count then
     * overflowed an int: the call returned without writing. The output is a sparse file's mapping, never touched.
     */
    @Test
    void aCallWithMoreTasksThanAnIntHoldsIsRefused() throws Exception {
        Path file = Files.createTempFile("attention-output", ".bin");
        try (Arena arena = Arena.ofConfined()) {
            int batch = 1 << 30;
            long floats = 2L * batch;
            try (var random = new java.io.RandomAccessFile(file.toFile(), "rw")) {
                random.setLength(floats * Float.BYTES);
            }
            MemorySegment o;
            try (var channel = java.nio.channels.FileChannel.open(
                    file, java.nio.file.StandardOpenOption.READ, java.nio.file.StandardOpenOption.WRITE)) {
                o = channel.map(java.nio.channels.FileChannel.MapMode.READ_WRITE, 0, floats * Float.BYTES, arena);
            }
            float[] one = {1f, 1f};
            Attention.Shape shape = new Attention.Shape(batch, 2, 1, 1, 1, 1);
            IllegalArgumentException e = assertThrows(
                    IllegalArgumentException.class,
                    () -> Attention.forward(
                            shape,
                            false,
                            TensorView.of(one, 0, 0, 1, 1),
                            TensorView.of(one, 0, 0, 1, 1),
                            TensorView.of(one, 0, 0, 1, 1),
                            new TensorView(o, 0, 2, 1, 1)));
            assertEquals(
                    "batch (1073741824) × qHeads (2) × query tiles of " + AttentionTiles.QUERY_TILE
                            + " (1) is 2147483648 tasks, more than the 2147483647 one call can run",
                    e.getMessage());
        } finally {
            Files.delete(file);
        }
    }

    /**
     * Query tiles of up to 2³¹ - 1 queries. Counted in int, {@code (tq + 63) / 64} wrapped to a negative number from
     * 2³¹ - 63 queries on: the call then passed its checks, ran no task and left the output unwritten. (A call of that
     * many queries writes gigabytes, so the count is tested alone.)
     */
    @Test
    void queryTilesAreCountedUpToTheIntRange() {
        for (int tq : new int[] {0, 1, 64, 65, Integer.MAX_VALUE - 63, Integer.MAX_VALUE - 62, Integer.MAX_VALUE}) {
            long expected = ((long) tq + AttentionTiles.QUERY_TILE - 1) / AttentionTiles.QUERY_TILE;
            assertEquals(expected, AttentionTiles.queryTiles(tq), "tq " + tq);
        }
    }

    /**
     * A head size whose tile of key rows cannot be one array is refused with the shape, before its workspace's sizes
     * could overflow inside the call.
     */
    @Test
    void aHeadSizeTooLargeForTheWorkspaceIsRefused() {
        int largest = AttentionTiles.MAX_HEAD_DIM;
        assertEquals(largest, new Attention.Shape(1, 1, 1, 1, 1, largest).headDim());
        for (int headDim : new int[] {largest + 1, 1 << 25, Integer.MAX_VALUE}) {
            IllegalArgumentException e =
                    assertThrows(IllegalArgumentException.class, () -> new Attention.Shape(1, 1, 1, 1, 1, headDim));
            assertEquals(
                    "headDim (" + headDim + ") must be <= 16777215: a tile of 128 key rows of headDim floats must fit"
                            + " one array",
                    e.getMessage());
        }
    }

    @Test
    void badArgumentsAreRejected() {
        float[] data = new float[64];
        TensorView view = TensorView.dense(data, 1, 4, 16);
        IllegalArgumentException heads =
                assertThrows(IllegalArgumentException.class, () -> new Attention.Shape(1, 3, 2, 4, 4, 16));
        assertEquals("qHeads (3) must be a multiple of kvHeads (2)", heads.getMessage());
        IllegalArgumentException negative =
                assertThrows(IllegalArgumentException.class, () -> TensorView.of(data, 0, 0, -1, 16));
        assertEquals("headStride (-1) must be >= 0", negative.getMessage());
        Attention.Shape shape = new Attention.Shape(1, 1, 1, 4, 4, 16);
        List<Rejection> rows = List.of(
                outOfBounds(
                        "q holds 64 floats, but q [1, 1, 5, 16] needs 80",
                        forward(1, 5, TensorView.dense(data, 1, 5, 16), view)),
                illegalArgument(
                        "o's strides (batch 0, head 0, row 8) make elements overlap",
                        () -> Attention.forward(
                                shape, false, view, view, view, TensorView.of(new float[64], 0, 0, 0, 8))),
                illegalArgument(
                        "scale (NaN) must be finite",
                        () -> Attention.forward(shape, Float.NaN, false, view, view, view, null, view, null)),
                illegalArgument("heads (-1) must be >= 0", () -> TensorView.dense(data, -1, 4, 16)),
                nullArgument("shape must not be null", () -> Attention.forward(null, false, view, view, view, view)),
                // Strides whose product with the sizes passes a long must not wrap around and pass the range check.
                outOfBounds(
                        "needs more than a long counts",
                        forward(3, 4, TensorView.of(data, 0, Long.MAX_VALUE / 2, 0, 16), view)),
                illegalArgument(
                        "q.rowStride (2147483648) must be <= 2147483647",
                        forward(1, 1, TensorView.of(data, 0, 0, 0, 1L << 31), view)));
        assertAllRejected(rows);
    }

    /** A non-causal forward of one head, 16 dimensions and 4 keys (kv, as keys and values), into an output of its own. */
    private static Executable forward(int batch, int tq, TensorView q, TensorView kv) {
        TensorView o = TensorView.dense(new float[batch * tq * 16], 1, tq, 16);
        return () -> Attention.forward(new Attention.Shape(batch, 1, 1, tq, 4, 16), false, q, kv, kv, o);
    }
}
