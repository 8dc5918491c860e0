package dev.panamax.kernels;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.panamax.kernels.testing.Agreement;
import dev.panamax.kernels.testing.Inputs;
import dev.panamax.kernels.testing.ReferenceAttention;
import dev.panamax.kernels.testing.Tolerance;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import java.util.SplittableRandom;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The attention backward: the float64 reference gradients are checked by central finite differences of the float64
 * forward, and the fast kernel is compared with them (bounds stated in {@link ReferenceAttention.Gradients}).
 */
@Tag("species")
class AttentionBackwardTest {
    private static final int DEFAULT_THREADS = Parallelism.threads();

    record Case(int batch, int qHeads, int kvHeads, int tq, int tk, int d, boolean causal, boolean masked) {
        /** The float64 reference's forward for this case's shape. */
        ReferenceAttention.Result referenceForward(double scale, float[] q, float[] k, float[] v, float[] mask) {
            return ReferenceAttention.forward(batch, qHeads, kvHeads, tq, tk, d, scale, causal, q, k, v, mask);
        }

        /** The float64 reference's gradients for this case's shape. */
        ReferenceAttention.Gradients referenceBackward(
                double scale, float[] q, float[] k, float[] v, float[] mask, float[] dO) {
            return ReferenceAttention.backward(batch, qHeads, kvHeads, tq, tk, d, scale, causal, q, k, v, mask, dO);
        }
    }

    @AfterEach
    void restoreThreads() {
        Parallelism.setThreads(DEFAULT_THREADS);
    }

    static Stream<Case> cases() {
        return Stream.of(
                new Case(1, 1, 1, 1, 1, 16, false, false),
                new Case(1, 1, 1, 7, 7, 16, true, false),
                new Case(2, 2, 1, 7, 9, 32, false, true),
                new Case(1, 4, 2, 64, 64, 64, true, false),
                new Case(1, 2, 2, 100, 100, 80, true, true),
                new Case(1, 2, 1, 1, 100, 64, true, false),
                new Case(1, 1, 1, 70, 130, 128, false, false),
                new Case(1, 8, 4, 33, 200, 32, true, false));
    }

    @ParameterizedTest
    @MethodSource("cases")
    void matchesTheReferenceGradients(Case c) {
        float[][] t = tensors(c);
        float[] q = t[0];
        float[] k = t[1];
        float[] v = t[2];
        float[] dO = t[3];
        float[] mask = c.masked() ? mask(c.tq(), c.tk()) : null;
        double scale = 1 / Math.sqrt(c.d());
        assertMatchesReference(c.toString(), c, (float) scale, q, k, v, mask, dO);
    }

    /** The fast backward's gradients against the float64 reference's, within its bounds. */
    private static void assertMatchesReference(
            String name, Case c, float scale, float[] q, float[] k, float[] v, float[] mask, float[] dO) {
        assertGradientsClose(name, c, scale, q, k, v, mask, dO, fast(c, scale, q, k, v, mask, dO));
    }

    /** Gradients {dQ, dK, dV, ...} against the float64 reference's, within its bounds. */
    private static void assertGradientsClose(
            String name,
            Case c,
            float scale,
            float[] q,
            float[] k,
            float[] v,
            float[] mask,
            float[] dO,
            float[][] grads) {
        ReferenceAttention.Gradients expected = c.referenceBackward(scale, q, k, v, mask, dO);
        Tolerance.assertClose(name + " dQ", expected.dq(), grads[0], expected.dqBound());
        Tolerance.assertClose(name + " dK", expected.dk(), grads[1], expected.dkBound());
        Tolerance.assertClose(name + " dV", expected.dv(), grads[2], expected.dvBound());
    }

    /**
     * Scores beyond float's range, or so large that the float log-sum-exp loses the weights of tied keys: whole-number
     * Q and K at power-of-two scales (see {@code AttentionTest.hugeScoresGiveTheExactDistribution}), against the
     * reference gradients.
     */
    @Test
    void hugeScoresGiveTheExactGradients() {
        Case[] cases = {
            new Case(1, 2, 1, 70, 150, 64, true, true),
            new Case(1, 2, 2, 1, 300, 64, false, false),
            new Case(2, 2, 1, 5, 9, 16, false, true)
        };
        for (Case c : cases) {
            AttentionTest.Case shape = new AttentionTest.Case(
                    c.batch(), c.qHeads(), c.kvHeads(), c.tq(), c.tk(), c.d(), c.causal(), c.masked());
            float[] mask = c.masked() ? AttentionTest.hidingMask(c.tq(), c.tk()) : null;
            // dO small enough that the gradients, about scale·dO, stay within float's range.
            float[] dO = Inputs.uniform(
                    Inputs.seed(c + " huge dO"), c.batch() * c.qHeads() * c.tq() * c.d(), -0x1p-20f, 0x1p-20f);
            float[][] t = AttentionTest.integerInputs(shape, false);
            for (float scale : new float[] {0x1p70f, 0x1p120f, -0x1p120f}) {
                assertMatchesReference(c + " scale " + scale, c, scale, t[0], t[1], t[2], mask, dO);
            }
            float[][] negative = AttentionTest.integerInputs(shape, true);
            assertMatchesReference(
                    c + " all scores below -Float.MAX_VALUE",
                    c,
                    0x1p125f,
                    negative[0],
                    negative[1],
                    negative[2],
                    mask,
                    dO);
        }
    }

    /**
     * Values near float's limit and output gradients of about 1/headDim: every {@code dO·v}, and D, overflow float
     * although the gradients are finite ({@code dS = P·(dO·v - D)} is a difference of such products); those queries are
     * computed in double, within the reference's bounds. Small random Q and K, so the weights vary.
     */
    @Test
    void valuesNearFloatsLimitGiveFiniteGradients() {
        Case[] cases = {
            new Case(1, 2, 1, 70, 150, 64, true, false),
            new Case(1, 2, 2, 1, 300, 64, false, false),
            new Case(2, 4, 2, 5, 9, 16, true, true)
        };
        for (Case c : cases) {
            float[][] t = tensors(c);
            float[] v = Inputs.uniform(Inputs.seed(c + " huge v"), t[2].length, 2e38f, Float.MAX_VALUE);
            float[] dO = Inputs.uniform(Inputs.seed(c + " dO for huge v"), t[3].length, 2f / c.d(), 3f / c.d());
            float[] mask = c.masked() ? mask(c.tq(), c.tk()) : null;
            assertMatchesReference(
                    c + " values near float's limit", c, (float) (1 / Math.sqrt(c.d())), t[0], t[1], v, mask, dO);
        }
    }

    /**
     * A query whose float scores overflow although its exact ones are moderate: {@code q = (x, x, ...)} and {@code k =
     * (y, -y, ...)} in the first two columns, zero everywhere but one query per head ({@code x = 1e20}) and one key
     * per key/value head ({@code y = ±1e20}, the sign alternating by head), so that {@code q·k} is ∞ - ∞ in float (NaN,
     * or ±∞ with a fused multiply-add) and exactly the rest of the row in double. Its log-sum-exp is moderate, so only
     * the scores show that its float weights cannot be had; its gradients, and those of every key it sees, are finite
     * and within the reference's bounds. The last case's key is in the second key tile, after the query's first.
     */
    @Test
    void scoresOverflowingFloatWithAModerateLogSumExpGiveFiniteGradients() {
        Case[] cases = {
            new Case(1, 1, 1, 1, 2, 2, false, false),
            new Case(1, 2, 1, 5, 9, 2, true, false),
            new Case(2, 4, 2, 7, 9, 3, false, true),
            new Case(1, 4, 2, 70, 150, 16, true, true),
            new Case(1, 2, 2, 1, 300, 64, false, false),
            new Case(1, 2, 1, 33, 300, 64, true, false)
        };
        for (Case c : cases) {
            float[][] t = tensors(c);
            int d = c.d();
            int query = c.tq() / 2;
            int key = Math.min(c.tk() - 1, query + c.tk() - c.tq()) / 2;
            for (int row = 0; row < c.batch() * c.qHeads() * c.tq(); row++) {
                float x = row % c.tq() == query ? 1e20f : 0f;
                t[0][row * d] = x;
                t[0][row * d + 1] = x;
            }
            for (int row = 0; row < c.batch() * c.kvHeads() * c.tk(); row++) {
                float y = row % c.tk() != key ? 0f : row / c.tk() % 2 == 0 ? 1e20f : -1e20f;
                t[1][row * d] = y;
                t[1][row * d + 1] = -y;
            }
            float[] mask = c.masked() ? mask(c.tq(), c.tk()) : null;
            if (mask != null) {
                mask[query * c.tk() + key] = 0.5f;
            }
            float scale = (float) (1 / Math.sqrt(d));
            float[][] grads = fast(c, scale, t[0], t[1], t[2], mask, t[3]);
            for (int g = 0; g < 3; g++) {
                for (float value : grads[g]) {
                    assertTrue(Float.isFinite(value), c + " gradient " + g + " holds " + value);
                }
            }
            assertGradientsClose(c + " overflowing scores", c, scale, t[0], t[1], t[2], mask, t[3], grads);
        }
    }

    /**
     * A thread keeps the row terms {@code D_i} of one query tile, not one per query of the call: a backward of 300
     * queries with one (batch entry, key/value head), which the calling thread runs, asked on a fresh thread.
     */
    @Test
    void rowTermsAreKeptForOneQueryTile() throws InterruptedException {
        Case c = new Case(1, 2, 1, 300, 40, 16, true, false);
        float[][] t = tensors(c);
        int[] kept = new int[1];
        Thread caller = new Thread(() -> {
            fast(c, 0.25f, t[0], t[1], t[2], null, t[3]);
            kept[0] = AttentionTiles.WORKSPACE.get().rowDots.length;
        });
        caller.start();
        caller.join();
        assertEquals(AttentionTiles.QUERY_TILE, kept[0], "row terms kept");
    }

    @Test
    void inputsChangedBetweenCallsAreSeen() {
        // As in AttentionTest: packed tiles are kept within a call, never into the next. One head and one query tile.
        Case c = new Case(1, 1, 1, 50, 300, 32, true, false);
        float[][] t = tensors(c);
        double scale = 1 / Math.sqrt(c.d());
        for (int call = 0; call < 2; call++) {
            if (call == 1) {
                for (int i = 0; i < t.length; i++) {
                    System.arraycopy(Inputs.uniform(21 + i, t[i].length, -1, 1), 0, t[i], 0, t[i].length);
                }
            }
            assertMatchesReference("call " + call, c, (float) scale, t[0], t[1], t[2], null, t[3]);
        }
    }

    @Test
    void referenceGradientsMatchFiniteDifferences() {
        Case c = new Case(1, 2, 1, 5, 6, 8, true, true);
        float[][] t = tensors(c);
        float[] mask = mask(c.tq(), c.tk());
        double scale = 0.4;
        ReferenceAttention.Gradients analytic = c.referenceBackward(scale, t[0], t[1], t[2], mask, t[3]);
        double[][] gradients = {analytic.dq(), analytic.dk(), analytic.dv()};
        SplittableRandom random = new SplittableRandom(5);
        for (int which = 0; which < 3; which++) {
            for (int trial = 0; trial < 12; trial++) {
                float[] tensor = t[which];
                int index = random.nextInt(tensor.length);
                float original = tensor[index];
                // Float inputs, float64 loss: a step of 1e-3 keeps truncation error near 1e-7 and rounding far below.
                float step = 1e-3f;
                tensor[index] = original + step;
                double plus = loss(c, scale, t, mask);
                tensor[index] = original - step;
                double minus = loss(c, scale, t, mask);
                tensor[index] = original;
                double numeric = (plus - minus) / ((double) (original + step) - (original - step));
                assertEquals(
                        numeric,
                        gradients[which][index],
                        1e-5 + 1e-4 * Math.abs(numeric),
                        "tensor " + which + " index " + index);
            }
        }
    }

    @Test
    void everyThreadCountGivesTheSameBits() {
        Case c = new Case(2, 4, 2, 90, 150, 64, true, false);
        float[][] t = tensors(c);
        float[][] first = null;
        for (int threads = 1; threads <= 3; threads++) {
            Parallelism.setThreads(threads);
            float[][] grads = fast(c, 0.125f, t[0], t[1], t[2], null, t[3]);
            if (first == null) {
                first = grads;
            } else {
                for (int g = 0; g < 3; g++) {
                    assertArrayEquals(first[g], grads[g], "gradient " + g + " with " + threads + " threads");
                }
            }
        }
    }

    /**
     * Q, K and V read in place from a packed projection {@code [batch, t, qHeads + 2·kvHeads, d]} (heads side by side
     * in each token's row, after a few floats of padding), dQ, dK and dV written into a buffer of the same layout, and
     * O, dO and the log-sum-exp token-major at an offset too: every result has the dense layout's bits, and the padding
     * is not written.
     */
    @Test
    void packedProjectionLayoutsGiveTheDenseBits() {
        Case[] cases = {new Case(2, 4, 2, 70, 70, 32, true, true), new Case(1, 3, 1, 9, 9, 16, false, false)};
        int pad = 5;
        float scale = 0.25f;
        for (Case c : cases) {
            int d = c.d();
            int t = c.tq();
            int qWidth = c.qHeads() * d;
            int width = qWidth + 2 * c.kvHeads() * d;
            float[][] dense = tensors(c);
            float[] mask = c.masked() ? mask(t, t) : null;
            float[][] expected = fast(c, scale, dense[0], dense[1], dense[2], mask, dense[3]);
            float[] qkv = new float[pad + c.batch() * t * width];
            // NaN where nothing may be written, and where dK and dV must be zeroed before they are added to.
            float[] dqkv = new float[qkv.length];
            Arrays.fill(dqkv, Float.NaN);
            float[] o = new float[pad + c.batch() * t * qWidth];
            float[] dO = new float[o.length];
            float[] lse = new float[pad + c.batch() * t * c.qHeads()];
            float[] paddedMask = new float[pad + t * t];
            if (mask != null) {
                System.arraycopy(mask, 0, paddedMask, pad, mask.length);
            }
            long[] offsets = {pad, pad + qWidth, pad + qWidth + c.kvHeads() * d};
            TensorView[] packed = new TensorView[3];
            TensorView[] gradients = new TensorView[3];
            for (int x = 0; x < 3; x++) {
                packed[x] = TensorView.of(qkv, offsets[x], (long) t * width, d, width);
                gradients[x] = TensorView.of(dqkv, offsets[x], (long) t * width, d, width);
                int heads = x == 0 ? c.qHeads() : c.kvHeads();
                copyRows(c.batch(), heads, t, d, dense[x], TensorView.dense(dense[x], heads, t, d), qkv, packed[x]);
            }
            TensorView oView = TensorView.of(o, pad, (long) t * qWidth, d, qWidth);
            TensorView dOView = TensorView.of(dO, pad, (long) t * qWidth, d, qWidth);
            copyRows(c.batch(), c.qHeads(), t, d, dense[3], TensorView.dense(dense[3], c.qHeads(), t, d), dO, dOView);
            TensorView lseView = TensorView.of(lse, pad, (long) t * c.qHeads(), 1, c.qHeads());
            forwardThenBackward(
                    c,
                    scale,
                    new Views(
                            packed[0],
                            packed[1],
                            packed[2],
                            mask == null ? null : TensorView.of(paddedMask, pad, 0, 0, t),
                            oView,
                            lseView,
                            dOView,
                            gradients[0],
                            gradients[1],
                            gradients[2]));
            float[][] got = new float[5][];
            for (int x = 0; x < 3; x++) {
                int heads = x == 0 ? c.qHeads() : c.kvHeads();
                got[x] = new float[expected[x].length];
                copyRows(c.batch(), heads, t, d, dqkv, gradients[x], got[x], TensorView.dense(got[x], heads, t, d));
            }
            got[3] = new float[expected[3].length];
            copyRows(c.batch(), c.qHeads(), t, d, o, oView, got[3], TensorView.dense(got[3], c.qHeads(), t, d));
            got[4] = new float[expected[4].length];
            copyRows(c.batch(), c.qHeads(), t, 1, lse, lseView, got[4], TensorView.dense(got[4], c.qHeads(), t, 1));
            String[] names = {"dQ", "dK", "dV", "O", "log-sum-exp"};
            for (int x = 0; x < 5; x++) {
                assertArrayEquals(expected[x], got[x], c + " packed " + names[x]);
            }
            for (int i = 0; i < pad; i++) {
                assertTrue(Float.isNaN(dqkv[i]), c + " padding " + i + " of the packed gradients was written");
            }
            assertGradientsClose(c + " packed", c, scale, dense[0], dense[1], dense[2], mask, dense[3], got);
        }
    }

    /** Copies {@code [batch, heads, rows, width]} row by row from one view of an array to another. */
    private static void copyRows(
            int batch,
            int heads,
            int rows,
            int width,
            float[] from,
            TensorView fromView,
            float[] to,
            TensorView toView) {
        for (int b = 0; b < batch; b++) {
            for (int h = 0; h < heads; h++) {
                for (int r = 0; r < rows; r++) {
                    System.arraycopy(from, (int) fromView.row(b, h, r), to, (int) toView.row(b, h, r), width);
                }
            }
        }
    }

    /**
     * Forward and backward on float[]s, heap segments, native segments of a shared and a confined arena, a slice of a
     * larger float[] and a segment over a byte[] (see {@link Agreement#assertFormsAgree}): the same bits everywhere,
     * and the arrays' gradients within the reference's bounds. Several query and key tiles, a mask, grouped heads.
     */
    @Test
    void everyStorageGivesTheSameBits() {
        Case c = new Case(2, 4, 2, 70, 150, 32, true, true);
        float scale = 0.125f;
        float[][] t = tensors(c);
        float[] mask = mask(c.tq(), c.tk());
        float[] dk = new float[t[1].length];
        Arrays.fill(dk, Float.NaN);
        float[][] operands = {
            t[0],
            t[1],
            t[2],
            mask,
            new float[t[0].length],
            new float[c.batch() * c.qHeads() * c.tq()],
            t[3],
            new float[t[0].length],
            dk,
            new float[t[2].length]
        };
        Agreement.assertFormsAgree(
                c + " forward and backward",
                operands,
                a -> {
                    forwardThenBackward(c, scale, segments(a));
                    assertGradientsClose(
                            c + " on arrays", c, scale, a[0], a[1], a[2], a[3], a[6], new float[][] {a[7], a[8], a[9]});
                },
                (s, arena) -> forwardThenBackward(c, scale, s));
    }

    /**
     * Causal with more queries than keys, which the Javadoc allows: query i sees keys {@code j <= i + tk - tq}, so the
     * first {@code tq - tk} see none and get a log-sum-exp of -∞. Their gradients are zeros, every other one finite and
     * within the reference's bounds. A whole query tile sees nothing; in the next, queries that see keys sit beside
     * queries that see none.
     */
    @Test
    void queriesThatSeeNoKeyGetZeroGradients() {
        float scale = 0.25f;
        for (boolean masked : new boolean[] {false, true}) {
            Case c = new Case(1, 2, 1, 150, 40, 32, true, masked);
            float[][] t = tensors(c);
            float[] mask = masked ? mask(c.tq(), c.tk()) : null;
            float[][] out = fast(c, scale, t[0], t[1], t[2], mask, t[3]);
            int blind = c.tq() - c.tk();
            for (int h = 0; h < c.qHeads(); h++) {
                for (int i = 0; i < c.tq(); i++) {
                    int row = h * c.tq() + i;
                    String where = c + " head " + h + " query " + i;
                    if (i < blind) {
                        assertEquals(Float.NEGATIVE_INFINITY, out[4][row], where + " log-sum-exp");
                    } else {
                        assertTrue(Float.isFinite(out[4][row]), where + " log-sum-exp " + out[4][row]);
                    }
                    for (int e = 0; e < c.d(); e++) {
                        float dq = out[0][row * c.d() + e];
                        assertTrue(i < blind ? dq == 0 : Float.isFinite(dq), where + " dQ " + dq);
                    }
                }
            }
            for (int x = 1; x < 3; x++) {
                for (float g : out[x]) {
                    assertTrue(Float.isFinite(g), c + " gradient " + x + ": " + g);
                }
            }
            assertGradientsClose(c.toString(), c, scale, t[0], t[1], t[2], mask, t[3], out);
        }
    }

    /**
     * A NaN in one element of query i's row, or of its output gradient's, makes query i's dQ row NaN and puts NaN in
     * the dK and dV rows of the keys it sees, as the backward's Javadoc says; every other query's dQ stays finite, and
     * so do the dK and dV rows of the keys query i does not see. Causal, so some keys are unseen; queries in both query
     * tiles.
     */
    @Test
    void nanReachesTheGradientsOfItsQuery() {
        Case c = new Case(1, 2, 1, 70, 70, 16, true, false);
        int d = c.d();
        for (int which : new int[] {0, 3}) {
            for (int query : new int[] {5, 66}) {
                float[][] t = tensors(c);
                int row = c.tq() + query;
                t[which][row * d + 3] = Float.NaN;
                float[][] out = fast(c, 0.25f, t[0], t[1], t[2], null, t[3]);
                String name = (which == 0 ? "NaN in Q" : "NaN in dO") + " of head 1 query " + query;
                for (int r = 0; r < c.qHeads() * c.tq(); r++) {
                    for (int e = 0; e < d; e++) {
                        float dq = out[0][r * d + e];
                        assertTrue(r == row ? Float.isNaN(dq) : Float.isFinite(dq), name + ": dQ row " + r + " " + dq);
                    }
                }
                for (int key = 0; key < c.tk(); key++) {
                    boolean nanK = false;
                    boolean nanV = false;
                    boolean finite = true;
                    for (int e = 0; e < d; e++) {
                        nanK |= Float.isNaN(out[1][key * d + e]);
                        nanV |= Float.isNaN(out[2][key * d + e]);
                        finite &= Float.isFinite(out[1][key * d + e]) && Float.isFinite(out[2][key * d + e]);
                    }
                    if (key <= query) {
                        assertTrue(nanK && nanV, name + ": dK or dV of key " + key + " without NaN");
                    } else {
                        assertTrue(finite, name + ": dK or dV of unseen key " + key);
                    }
                }
            }
        }
    }

    /** A shape, the key rows to poison (in K or V) and the query rows to poison (in Q or dO), one at a time. */
    record PoisonCase(Case shape, int[] keys, int[] queries) {
        @Override
        public String toString() {
            return shape + " keys " + Arrays.toString(keys) + " queries " + Arrays.toString(queries);
        }
    }

    /**
     * Query tiles whose diagonal key tile holds a poisoned row, several query tiles, poisoned rows in later key tiles
     * with fewer queries than keys, a mask that hides the row from some queries, a single query, GQA, batches, an odd
     * head size.
     */
    static Stream<PoisonCase> poisonCases() {
        return Stream.of(
                new PoisonCase(
                        new Case(1, 4, 2, 100, 100, 32, true, false), new int[] {5, 70, 99}, new int[] {5, 70, 99}),
                new PoisonCase(new Case(2, 2, 1, 70, 200, 16, true, false), new int[] {150, 199}, new int[] {3, 66}),
                new PoisonCase(new Case(1, 2, 2, 37, 37, 13, true, true), new int[] {0, 20, 36}, new int[] {0, 20}),
                new PoisonCase(new Case(1, 2, 1, 1, 50, 16, false, true), new int[] {0, 1, 48}, new int[] {0}));
    }

    /**
     * NaN and ±∞ in one element of K, V or dO (and NaN in Q): a gradient that no query seeing the poison feeds matches
     * the reference on the clean inputs; the gradients it reaches through IEEE arithmetic are non-finite (dQ of the
     * queries that see it, dK and dV of the keys those queries see, only the poisoned column of dV for dO).
     */
    @ParameterizedTest
    @MethodSource("poisonCases")
    void rowsAQueryDoesNotSeeDoNotReachItsGradients(PoisonCase pc) {
        Case c = pc.shape();
        int d = c.d();
        float[][] t = tensors(c);
        float[] mask = c.masked() ? AttentionTest.poisonMask(c.tq(), c.tk()) : null;
        float scale = (float) (1 / Math.sqrt(d));
        ReferenceAttention.Gradients clean = c.referenceBackward(scale, t[0], t[1], t[2], mask, t[3]);
        int b0 = c.batch() - 1;
        int group = c.qHeads() / c.kvHeads();
        for (int tensor = 0; tensor < 4; tensor++) {
            boolean keySide = tensor == 1 || tensor == 2;
            int head = keySide ? c.kvHeads() - 1 : c.qHeads() - 1;
            int rows = keySide ? c.tk() : c.tq();
            for (int row : keySide ? pc.keys() : pc.queries()) {
                int column = row % d;
                for (float poison : tensor == 0 ? new float[] {Float.NaN} : AttentionTest.POISONS) {
                    float[][] poisoned = t.clone();
                    poisoned[tensor] = t[tensor].clone();
                    poisoned[tensor][((b0 * (keySide ? c.kvHeads() : c.qHeads()) + head) * rows + row) * d + column] =
                            poison;
                    // Per query: whether it sees the poison (tainted), and whether that makes its dS row non-finite
                    // (broken: all but a key whose score is -∞, which weighs nothing).
                    boolean[] tainted = new boolean[c.batch() * c.qHeads() * c.tq()];
                    boolean[] broken = new boolean[tainted.length];
                    for (int r = 0; r < tainted.length; r++) {
                        int i = r % c.tq();
                        int h = r / c.tq() % c.qHeads();
                        boolean here = r / c.tq() / c.qHeads() == b0;
                        boolean seesAny = false;
                        for (int j = 0; j < c.tk(); j++) {
                            seesAny |= AttentionTest.sees(c.tq(), c.tk(), c.causal(), mask, i, j);
                        }
                        tainted[r] = keySide
                                ? here
                                        && h / group == head
                                        && AttentionTest.sees(c.tq(), c.tk(), c.causal(), mask, i, row)
                                : here && h == head && i == row && seesAny;
                        broken[r] = tainted[r] && !(tensor == 1 && scale * t[0][r * d + column] * poison < 0);
                    }
                    AttentionTest.Expect[][] expect = {
                        new AttentionTest.Expect[t[0].length],
                        new AttentionTest.Expect[t[1].length],
                        new AttentionTest.Expect[t[2].length]
                    };
                    for (int r = 0; r < tainted.length; r++) {
                        Arrays.fill(expect[0], r * d, (r + 1) * d, level(broken[r], tainted[r]));
                    }
                    for (int kr = 0; kr < c.batch() * c.kvHeads() * c.tk(); kr++) {
                        int j = kr % c.tk();
                        int kvHead = kr / c.tk() % c.kvHeads();
                        int b = kr / c.tk() / c.kvHeads();
                        boolean seenByBroken = false;
                        boolean seenByTainted = false;
                        for (int h = kvHead * group; h < (kvHead + 1) * group; h++) {
                            for (int i = 0; i < c.tq(); i++) {
                                int r = (b * c.qHeads() + h) * c.tq() + i;
                                if (AttentionTest.sees(c.tq(), c.tk(), c.causal(), mask, i, j)) {
                                    seenByBroken |= broken[r];
                                    seenByTainted |= tainted[r];
                                }
                            }
                        }
                        // Under a key score of +∞ the other keys weigh 0 and are left out: their gradients stay finite.
                        seenByBroken &= !(tensor == 1 && Float.isInfinite(poison));
                        for (int e = 0; e < d; e++) {
                            expect[1][kr * d + e] = level(seenByBroken, seenByTainted);
                            // dV = Pᵀ·dO: V does not enter it, and dO only in its own column.
                            boolean reached = tensor != 2 && (tensor != 3 || e == column);
                            expect[2][kr * d + e] = level(reached && seenByBroken, reached && seenByTainted);
                        }
                    }
                    float[][] out = fast(c, scale, poisoned[0], poisoned[1], poisoned[2], mask, poisoned[3]);
                    String name = c + " " + new String[] {"Q", "K", "V", "dO"}[tensor] + " row " + row + " column "
                            + column + " = " + poison;
                    AttentionTest.assertPoisoned(name + " dQ", clean.dq(), clean.dqBound(), out[0], expect[0]);
                    AttentionTest.assertPoisoned(name + " dK", clean.dk(), clean.dkBound(), out[1], expect[1]);
                    AttentionTest.assertPoisoned(name + " dV", clean.dv(), clean.dvBound(), out[2], expect[2]);
                }
            }
        }
    }

    /** Non-finite where the poison arrives broken, unchecked where it arrives harmless, else the clean value. */
    private static AttentionTest.Expect level(boolean broken, boolean tainted) {
        return broken
                ? AttentionTest.Expect.NON_FINITE
                : tainted ? AttentionTest.Expect.ANY : AttentionTest.Expect.CLEAN;
    }

    private static double loss(Case c, double scale, float[][] t, float[] mask) {
        double[] out = c.referenceForward(scale, t[0], t[1], t[2], mask).output();
        double sum = 0;
        for (int i = 0; i < out.length; i++) {
            sum += out[i] * t[3][i];
        }
        return sum;
    }

    private static float[][] tensors(Case c) {
        int qLength = c.batch() * c.qHeads() * c.tq() * c.d();
        int kvLength = c.batch() * c.kvHeads() * c.tk() * c.d();
        return new float[][] {
            Inputs.uniform(Inputs.seed(c + "q"), qLength, -1, 1),
            Inputs.uniform(Inputs.seed(c + "k"), kvLength, -1, 1),
            Inputs.uniform(Inputs.seed(c + "v"), kvLength, -1, 1),
            Inputs.uniform(Inputs.seed(c + "dO"), qLength, -1, 1)
        };
    }

    private static float[] mask(int tq, int tk) {
        float[] mask = Inputs.uniform(Inputs.seed("backward mask" + tq + "x" + tk), tq * tk, -1, 1);
        for (int i = 1; i < mask.length; i += 4) {
            mask[i] = Float.NEGATIVE_INFINITY;
        }
        return mask;
    }

    /** Forward (for O and the log-sum-exp) then backward on dense arrays; returns dQ, dK, dV, O and the log-sum-exp. */
    private static float[][] fast(Case c, float scale, float[] q, float[] k, float[] v, float[] mask, float[] dO) {
        float[] dk = new float[k.length];
        // dK is zeroed before it is added to: NaN here would show if it were not.
        Arrays.fill(dk, Float.NaN);
        float[][] a = {
            q,
            k,
            v,
            mask,
            new float[q.length],
            new float[c.batch() * c.qHeads() * c.tq()],
            dO,
            new float[q.length],
            dk,
            new float[v.length]
        };
        forwardThenBackward(c, scale, segments(a));
        return new float[][] {a[7], a[8], a[9], a[4], a[5]};
    }

    /**
     * Forward then backward on dense tensors in segments: q, k, v, mask (null for none), o, lse, dO, dQ, dK, dV.
     * The backward reads O, the forward's output, through a read-only view, as it must be able to.
     */
    private static void forwardThenBackward(Case c, float scale, MemorySegment[] s) {
        int d = c.d();
        TensorView q = TensorView.dense(s[0], c.qHeads(), c.tq(), d);
        TensorView k = TensorView.dense(s[1], c.kvHeads(), c.tk(), d);
        TensorView v = TensorView.dense(s[2], c.kvHeads(), c.tk(), d);
        TensorView mask = s[3] == null ? null : new TensorView(s[3], 0, 0, 0, c.tk());
        TensorView o = TensorView.dense(s[4], c.qHeads(), c.tq(), d);
        TensorView lse = TensorView.dense(s[5], c.qHeads(), c.tq(), 1);
        forwardThenBackward(
                c,
                scale,
                new Views(
                        q,
                        k,
                        v,
                        mask,
                        o,
                        lse,
                        TensorView.dense(s[6], c.qHeads(), c.tq(), d),
                        TensorView.dense(s[7], c.qHeads(), c.tq(), d),
                        TensorView.dense(s[8], c.kvHeads(), c.tk(), d),
                        TensorView.dense(s[9], c.kvHeads(), c.tk(), d)));
    }

    /** Heap segments over arrays, null for null. */
    private static MemorySegment[] segments(float[][] arrays) {
        MemorySegment[] segments = new MemorySegment[arrays.length];
        for (int i = 0; i < arrays.length; i++) {
            segments[i] = arrays[i] == null ? null : MemorySegment.ofArray(arrays[i]);
        }
        return segments;
    }

    /** The views of one forward and backward call. */
    private record Views(
            TensorView q,
            TensorView k,
            TensorView v,
            TensorView mask,
            TensorView o,
            TensorView lse,
            TensorView dO,
            TensorView dq,
            TensorView dk,
            TensorView dv) {}

    private static void forwardThenBackward(Case c, float scale, Views w) {
        Attention.Shape shape = new Attention.Shape(c.batch(), c.qHeads(), c.kvHeads(), c.tq(), c.tk(), c.d());
        Attention.forward(shape, scale, c.causal(), w.q(), w.k(), w.v(), w.mask(), w.o(), w.lse());
        Attention.backward(
                shape,
                scale,
                c.causal(),
                w.q(),
                w.k(),
                w.v(),
                w.mask(),
                readOnly(w.o()),
                w.lse(),
                w.dO(),
                w.dq(),
                w.dk(),
                w.dv());
    }

    private static TensorView readOnly(TensorView view) {
        return new TensorView(
                view.data().asReadOnly(), view.offset(), view.batchStride(), view.headStride(), view.rowStride());
    }
}
