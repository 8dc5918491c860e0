package dev.panamax.kernels;

import static dev.panamax.kernels.testing.Agreement.assertRejected;
import static dev.panamax.kernels.testing.Tolerance.FLOAT_EPSILON;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.panamax.kernels.testing.Agreement;
import dev.panamax.kernels.testing.FiniteDifferences;
import dev.panamax.kernels.testing.Inputs;
import dev.panamax.kernels.testing.ReferenceOps;
import dev.panamax.kernels.testing.Tolerance;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Cross-entropy against {@link ReferenceOps}. Bounds follow {@link SoftmaxTest}'s analysis: a row's loss {@code (max
 * - x_t) + log Σ} is off by the relative error of the computed sum ({@link SoftmaxTest.RowErrors}); the mean adds ε
 * relative. Each gradient element is the softmax bound times the row weight, plus one rounding of that weight (ε) and,
 * at the target, of the subtraction (ε·|d|).
 */
@Tag("species")
class CrossEntropyTest {
    private static final int IGNORE = -100;
    /** Rows taken in chunks: two whole ones after a first of 5. */
    private static final int WIDE = 2 * CrossEntropy.CHUNK + 5;

    @ParameterizedTest
    @ValueSource(ints = {1, 2, 7, 8, 9, 31, 33, 1000, 4096, WIDE, 50257})
    void lossAndGradientMatchTheReference(int cols) {
        for (int rows : new int[] {1, 4, 13}) {
            String name = rows + "×" + cols;
            int ld = cols + 3;
            int offset = 2;
            float[] logits = Inputs.uniform(Inputs.seed(name), offset + rows * ld, -8, 8);
            int[] targets = targets(name, rows, cols, 1);
            check(name, rows, cols, logits, offset, ld, targets);
        }
    }

    @ParameterizedTest
    @ValueSource(ints = {1000, WIDE})
    void extremeLogitsAndIgnoredRows(int cols) {
        int rows = 6;
        float[] logits = Inputs.uniform(Inputs.seed("extreme"), rows * cols, -1e4f, 1e4f);
        for (int i = 0; i < logits.length; i += 7) {
            logits[i] = Float.NEGATIVE_INFINITY;
        }
        int[] targets = targets("extreme", rows, cols, 2);
        targets[0] = 3;
        // Row 0's target is the largest logit, row 1's the smallest finite one: losses 0 and ~2e4.
        logits[3] = 2e4f;
        logits[cols + 5] = -2e4f;
        targets[1] = 5;
        if (cols == WIDE) {
            // Row 2's second chunk entirely -∞, its target outside it.
            Arrays.fill(logits, 2 * cols + 5, 2 * cols + 5 + CrossEntropy.CHUNK, Float.NEGATIVE_INFINITY);
            targets[2] = 1;
        }
        check("±1e4", rows, cols, logits, 0, cols, targets);

        float[] dlogits = new float[rows * cols];
        int[] allIgnored = {IGNORE, IGNORE};
        float loss = CrossEntropy.forward(2, cols, logits, 0, cols, allIgnored, 0, IGNORE, dlogits, 0, cols);
        assertEquals(0f, loss, "every row ignored");
        for (float d : dlogits) {
            assertEquals(0f, d);
        }

        float[] nan = Inputs.uniform(Inputs.seed("nan"), rows * cols, -1, 1);
        nan[2 * cols + 17] = Float.NaN;
        if (cols == WIDE) {
            // Row 4's last chunk -∞ but for one NaN: its max comes from the pass over the chunk before, which skips
            // NaN.
            Arrays.fill(nan, 5 * cols - CrossEntropy.CHUNK, 5 * cols, Float.NEGATIVE_INFINITY);
            nan[5 * cols - CrossEntropy.CHUNK / 2] = Float.NaN;
        }
        loss = CrossEntropy.forward(rows, cols, nan, 0, cols, new int[rows], 0, IGNORE, dlogits, 0, cols);
        assertTrue(Float.isNaN(loss), "NaN logit");
        assertTrue(Float.isNaN(dlogits[2 * cols]) && !Float.isNaN(dlogits[cols]), "NaN stays in its row");
        if (cols == WIDE) {
            float[] rowGradient = new float[cols];
            float rowLoss =
                    CrossEntropy.forward(1, cols, nan, 4 * cols, cols, new int[1], 0, IGNORE, rowGradient, 0, cols);
            assertTrue(Float.isNaN(rowLoss), "a NaN among -∞ in a later chunk: " + rowLoss);
            assertTrue(Float.isNaN(rowGradient[0]), "its row's gradient: " + rowGradient[0]);
        }
    }

    /**
     * Logits of any finite magnitude (issue 19 asked every softmax-shaped kernel to be covered): mixed signs up to
     * ±1.5e38 (losses up to 3e38, still a float), a row at float's largest values, and a row near 2²² where many
     * classes weigh although the logits are far from 0.
     */
    @ParameterizedTest
    @ValueSource(ints = {9, 1000, WIDE})
    void hugeLogitsGiveTheExactLossAndGradient(int cols) {
        int rows = 4;
        float[] logits = Inputs.uniform(Inputs.seed("huge logits"), rows * cols, -1.5e38f, 1.5e38f);
        float[] offsets = Inputs.uniform(Inputs.seed("huge offsets"), cols, 0, 16);
        for (int j = 0; j < cols; j++) {
            logits[cols + j] = Math.nextDown(Float.MAX_VALUE) - j % 3 * Math.ulp(Float.MAX_VALUE);
            logits[2 * cols + j] = 0x1p22f + Math.round(offsets[j] * 2) / 2f;
        }
        logits[cols + cols / 2] = Float.MAX_VALUE;
        check("huge logits", rows, cols, logits, 0, cols, targets("huge logits", rows, cols, 1), true);
    }

    @ParameterizedTest
    @ValueSource(ints = {1, 2, 9, 33, 300})
    void referenceGradientMatchesFiniteDifferences(int cols) {
        double[] x = ReferenceOps.toDouble(Inputs.uniform(Inputs.seed("fd " + cols), cols, -4, 4), 0, cols);
        int target = cols / 2;
        FiniteDifferences.assertMatches(
                "cross-entropy " + cols,
                ReferenceOps.crossEntropyBackward(x, target, 1),
                FiniteDifferences.gradient(
                        v -> new double[] {ReferenceOps.crossEntropy(v, target)}, x, new double[] {1}, 1e-6),
                1e-6);
    }

    @ParameterizedTest
    @ValueSource(ints = {777, WIDE})
    void gradientInPlaceOverTheLogitsEqualsOutOfPlace(int cols) {
        int rows = 5;
        float[] logits = Inputs.uniform(Inputs.seed("in place"), rows * cols, -5, 5);
        int[] targets = targets("in place", rows, cols, 3);
        float[] d = new float[rows * cols];
        float loss = CrossEntropy.forward(rows, cols, logits, 0, cols, targets, 0, IGNORE, d, 0, cols);
        float[] inPlace = logits.clone();
        float again = CrossEntropy.forward(rows, cols, inPlace, 0, cols, targets, 0, IGNORE, inPlace, 0, cols);
        assertEquals(loss, again);
        assertArrayEquals(d, inPlace);
        assertEquals(loss, CrossEntropy.forward(rows, cols, logits, 0, cols, targets, 0, IGNORE, null, 0, 0));
    }

    /** Narrow rows (one pass) and wide ones (in chunks) treat a row of -∞ alike: NaN loss, softmax taken as zeros. */
    @ParameterizedTest
    @ValueSource(ints = {1, 7, 1000, WIDE})
    void rowOfNegativeInfinityHasNaNLossAndOnlyTheTargetsGradient(int cols) {
        int rows = 2;
        float[] logits = Inputs.uniform(Inputs.seed("-inf row"), rows * cols, -4, 4);
        Arrays.fill(logits, cols, 2 * cols, Float.NEGATIVE_INFINITY);
        int[] targets = {0, cols / 2};
        float[] d = new float[rows * cols];
        float loss = CrossEntropy.forward(rows, cols, logits, 0, cols, targets, 0, IGNORE, d, 0, cols);
        assertTrue(Float.isNaN(loss), "mean loss " + loss);
        for (int j = 0; j < cols; j++) {
            assertEquals(j == cols / 2 ? -0.5f : 0f, d[cols + j], "d[1][" + j + "]");
        }
        for (int j = 0; j < cols; j++) {
            assertTrue(Float.isFinite(d[j]), "the finite row's gradient stays finite");
        }
    }

    @Test
    void formsAndThreadCountsAgreeBitForBit() {
        int rows = 40;
        int cols = 50257;
        float[] logits = Inputs.uniform(Inputs.seed("forms"), rows * cols, -10, 10);
        int[] targets = targets("forms", rows, cols, 5);
        float[] loss = new float[1];
        Agreement.assertFormsAgree(
                "cross-entropy",
                new float[][] {logits, new float[rows * cols], loss},
                a -> a[2][0] = CrossEntropy.forward(rows, cols, a[0], 0, cols, targets, 0, IGNORE, a[1], 0, cols),
                (s, arena) -> {
                    MemorySegment t = arena.allocateFrom(ValueLayout.JAVA_INT, targets);
                    float value = CrossEntropy.forward(rows, cols, s[0], 0, cols, t, 0, IGNORE, s[1], 0, cols);
                    s[2].setAtIndex(ValueLayout.JAVA_FLOAT_UNALIGNED, 0, value);
                });
        Agreement.assertThreadIndependent("cross-entropy", () -> {
            float[] d = new float[rows * cols];
            float value = CrossEntropy.forward(rows, cols, logits, 0, cols, targets, 0, IGNORE, d, 0, cols);
            return new float[][] {d, {value}};
        });
    }

    /**
     * Rows in several chunks of {@link CrossEntropy#LOSS_CHUNK_ROWS}: the loss is, to the bit, every row's loss (the
     * kernel's own, replayed) added in row order in one double, as when all were kept at once; the gradient is the
     * reference's; every thread count gives the same bits; and a thread keeps one chunk's losses, not a double per row
     * of the call (asked on a fresh thread, whose scratch holds only this call's).
     */
    @Test
    void rowsPastOneChunkAreSummedInOrderAndKeepOneChunk() throws InterruptedException {
        int rows = 2 * CrossEntropy.LOSS_CHUNK_ROWS + 5;
        int cols = 5;
        float[] logits = Inputs.uniform(Inputs.seed("chunks"), rows * cols, -8, 8);
        int[] targets = targets("chunks", rows, cols, 7);
        check("chunks", rows, cols, logits, 0, cols, targets);
        int count = 0;
        for (int target : targets) {
            count += target == IGNORE ? 0 : 1;
        }
        float weight = (float) (1.0 / count);
        double sum = 0;
        for (int i = 0; i < rows; i++) {
            sum += targets[i] == IGNORE ? 0 : CrossEntropy.row(cols, logits, i * cols, targets[i], weight, null, 0);
        }
        float expected = (float) (sum / count);
        assertEquals(
                Float.floatToRawIntBits(expected),
                Float.floatToRawIntBits(
                        CrossEntropy.forward(rows, cols, logits, 0, cols, targets, 0, IGNORE, null, 0, 0)),
                "loss " + expected);
        Agreement.assertThreadIndependent("cross-entropy in chunks", () -> {
            float[] d = new float[rows * cols];
            float value = CrossEntropy.forward(rows, cols, logits, 0, cols, targets, 0, IGNORE, d, 0, cols);
            return new float[][] {d, {value}};
        });
        int[] kept = new int[1];
        Thread caller = new Thread(() -> {
            CrossEntropy.forward(rows, cols, logits, 0, cols, targets, 0, IGNORE, null, 0, 0);
            kept[0] = CrossEntropy.LOSSES.get().length;
        });
        caller.start();
        caller.join();
        assertEquals(CrossEntropy.LOSS_CHUNK_ROWS, kept[0], "losses kept by the calling thread");
    }

    @Test
    void badArgumentsAreRejectedBeforeAnythingIsWritten() {
        float[] logits = new float[20];
        float[] d = Inputs.uniform(1, 20, -1, 1);
        float[] before = d.clone();
        int[] targets = {1, 2, 4, IGNORE};
        assertRejected(
                IndexOutOfBoundsException.class,
                "targets[2] (4) must be in [0, cols (4)) or equal ignoreIndex (-100)",
                () -> CrossEntropy.forward(4, 4, logits, 0, 4, targets, 0, IGNORE, d, 0, 4));
        assertRejected(
                IndexOutOfBoundsException.class,
                "targets holds 4 ints, but targets needs 4 from targetsOffset (1), up to index 4",
                () -> CrossEntropy.forward(4, 4, logits, 0, 4, targets, 1, IGNORE, d, 0, 4));
        assertRejected(
                IllegalArgumentException.class,
                "ldLogits (3) must be >= cols (4) for logits",
                () -> CrossEntropy.forward(4, 4, logits, 0, 3, targets, 0, IGNORE, d, 0, 4));
        assertRejected(
                IndexOutOfBoundsException.class,
                "dlogits holds 20 floats, but dlogits needs 16 from dlogitsOffset (5)",
                () -> CrossEntropy.forward(4, 4, logits, 0, 4, new int[4], 0, IGNORE, d, 5, 4));
        assertRejected(
                NullPointerException.class,
                "targets must not be null",
                () -> CrossEntropy.forward(4, 4, logits, 0, 4, null, 0, IGNORE, d, 0, 4));
        assertRejected(
                IllegalArgumentException.class,
                "rows (-1) must be >= 0",
                () -> CrossEntropy.forward(-1, 4, logits, 0, 4, targets, 0, IGNORE, d, 0, 4));
        assertArrayEquals(before, d, "dlogits was written by a rejected call");
    }

    /** Random targets in [0, cols), every {@code ignoreEvery}-th row ignored (none when 1). */
    private static int[] targets(String name, int rows, int cols, int ignoreEvery) {
        SplittableRandom random = new SplittableRandom(Inputs.seed(name + " targets"));
        int[] targets = new int[rows];
        for (int i = 0; i < rows; i++) {
            targets[i] = ignoreEvery > 1 && i % ignoreEvery == ignoreEvery - 1 ? IGNORE : random.nextInt(cols);
        }
        return targets;
    }

    private static void check(String name, int rows, int cols, float[] logits, int offset, int ld, int[] targets) {
        check(name, rows, cols, logits, offset, ld, targets, false);
    }

    /** {@code wide}: rows held to the error of exponents {@code x - max} rounded once (see SoftmaxTest.RowErrors). */
    private static void check(
            String name, int rows, int cols, float[] logits, int offset, int ld, int[] targets, boolean wide) {
        int count = 0;
        for (int t : targets) {
            count += t == IGNORE ? 0 : 1;
        }
        float[] d = Inputs.uniform(Inputs.seed(name + " d"), offset + rows * ld, -1, 1);
        float[] before = d.clone();
        float loss = CrossEntropy.forward(rows, cols, logits, offset, ld, targets, 0, IGNORE, d, offset, ld);
        double expectedLoss = 0;
        double lossError = 0;
        for (int i = 0; i < rows; i++) {
            int at = offset + i * ld;
            double[] row = ReferenceOps.toDouble(logits, at, cols);
            if (targets[i] == IGNORE) {
                for (int j = 0; j < cols; j++) {
                    assertEquals(0f, d[at + j], name + " ignored row " + i);
                }
                continue;
            }
            SoftmaxTest.RowErrors errors = SoftmaxTest.RowErrors.of(row, 1, cols, wide);
            expectedLoss += ReferenceOps.crossEntropy(row, targets[i]) / count;
            lossError += errors.sumError() / count;
            double weight = 1.0 / count;
            double[] expected = ReferenceOps.crossEntropyBackward(row, targets[i], weight);
            int target = targets[i];
            Tolerance.assertClose(
                    name + " dlogits row " + i,
                    cols,
                    j -> expected[j],
                    j -> d[at + j],
                    j -> errors.probability(j, expected[j] / weight + (j == target ? 1 : 0)) * weight
                            + FLOAT_EPSILON * (Math.abs(expected[j]) + weight),
                    j -> "column " + j);
        }
        double bound = lossError + 2 * FLOAT_EPSILON * Math.abs(expectedLoss);
        Tolerance.assertClose(name + " loss", new double[] {expectedLoss}, new float[] {loss}, new double[] {bound});
        SoftmaxTest.assertPaddingUntouched(before, d, offset, ld, rows, cols, name);
    }
}
