package dev.panamax.kernels;

import java.lang.foreign.MemorySegment;

/**
 * Layer normalisation over the rows of a row-major {@code rows × cols} matrix, as in GPT-2: {@code y = (x - mean)·rstd
 * ⊙ weight + bias} with {@code rstd = 1/√(var + epsilon)} and the biased variance of the row.
 *
 * <p>The forward can also write each row's mean and rstd, which the backward takes instead of recomputing them. The
 * backward overwrites dx and adds the weight and bias gradients into dweight and dbias (zero them before the first
 * call), so that gradients of several calls sum. The mean is computed first and the variance from {@code x - mean}
 * (two passes over a row that stays in L1), so the variance does not cancel as {@code E[x²] - E[x]²} would, and the
 * second pass also corrects the mean by the mean of those deviations (the corrected two-pass algorithm): a row far
 * from 0 with a small spread (1e6 ± 1) normalises to float accuracy, although its float sum alone is off by about
 * its spread. The mean the forward writes is that corrected mean rounded to float; the backward, which takes it,
 * inherits that rounding (half an ulp of the mean, relative to the spread).
 *
 * <p>{@code epsilon} must be above 0 (an {@link IllegalArgumentException} otherwise): it is what keeps a constant row,
 * whose variance is 0, from giving {@code 0/0}; such a row normalises to the bias. Rows of any finite magnitude
 * normalise correctly: a row whose sum of squares overflows float (entries beyond about 1.8e19 from the mean) is
 * computed again in double.
 *
 * <p>{@code y} may be {@code x} itself, and {@code dx} may be {@code dy} (same offset and leading dimension); other
 * overlaps between an output and another operand throw {@link IllegalArgumentException}. Offsets
 * count floats. Arguments are checked before anything is written; {@code cols == 0} writes nothing. Large problems
 * run on the threads of {@link Parallelism} with results bit-identical for every thread count (the backward sums the
 * parameter gradients in fixed chunks of rows, see {@code Norms}).
 */
public final class LayerNorm {
    static {
        VectorApi.require(); // a missing --add-modules flag is named before the first kernel fails to link
    }

    // The lines (see Line) the passes stage their operands through: the forward's x, the next row of x, y, weight,
    // bias, means and rstds; the backward's x, dy, dx, weight, means and rstds.
    private static final ThreadLocal<Line> X_LINE = Line.perThread(), NEXT_X_LINE = Line.perThread();
    private static final ThreadLocal<Line> Y_LINE = Line.perThread(), DY_LINE = Line.perThread();
    private static final ThreadLocal<Line> DX_LINE = Line.perThread(), WEIGHT_LINE = Line.perThread();
    private static final ThreadLocal<Line> BIAS_LINE = Line.perThread(), MEAN_LINE = Line.perThread();
    private static final ThreadLocal<Line> RSTD_LINE = Line.perThread();

    private LayerNorm() {}

    /**
     * Normalises each row of x into y, on arrays.
     *
     * @param rows number of rows, at least 0
     * @param cols number of columns (the normalised dimension), at least 0
     * @param epsilon added to the variance; finite and above 0 (GPT-2: 1e-5)
     * @param x the input
     * @param xOffset index of x's first element
     * @param ldx leading dimension of x: at least {@code cols}
     * @param weight the scale, {@code cols} floats
     * @param weightOffset index of weight's first element
     * @param bias the shift, {@code cols} floats
     * @param biasOffset index of bias's first element
     * @param y the output; may be x itself
     * @param yOffset index of y's first element
     * @param ldy leading dimension of y: at least {@code cols}
     * @param mean where to write each row's mean ({@code rows} floats), or null
     * @param meanOffset index of the first mean
     * @param rstd where to write each row's {@code 1/√(var + epsilon)} ({@code rows} floats), or null
     * @param rstdOffset index of the first rstd
     */
    public static void forward(
            int rows,
            int cols,
            float epsilon,
            float[] x,
            int xOffset,
            int ldx,
            float[] weight,
            int weightOffset,
            float[] bias,
            int biasOffset,
            float[] y,
            int yOffset,
            int ldy,
            float[] mean,
            int meanOffset,
            float[] rstd,
            int rstdOffset) {
        forward(
                rows,
                cols,
                epsilon,
                Checks.wrap("x", x),
                xOffset,
                ldx,
                Checks.wrap("weight", weight),
                weightOffset,
                Checks.wrap("bias", bias),
                biasOffset,
                Checks.wrap("y", y),
                yOffset,
                ldy,
                mean == null ? null : MemorySegment.ofArray(mean),
                meanOffset,
                rstd == null ? null : MemorySegment.ofArray(rstd),
                rstdOffset);
    }

    /**
     * Normalises each row of x into y, on memory segments; as {@link #forward(int, int, float, float[], int, int,
     * float[], int, float[], int, float[], int, int, float[], int, float[], int)}, with offsets in floats.
     *
     * @param rows number of rows, at least 0
     * @param cols number of columns (the normalised dimension), at least 0
     * @param epsilon added to the variance; finite and above 0
     * @param x the input
     * @param xOffset index of x's first element
     * @param ldx leading dimension of x: at least {@code cols}
     * @param weight the scale, {@code cols} floats
     * @param weightOffset index of weight's first element
     * @param bias the shift, {@code cols} floats
     * @param biasOffset index of bias's first element
     * @param y the output; may be x itself; must be writable
     * @param yOffset index of y's first element
     * @param ldy leading dimension of y: at least {@code cols}
     * @param mean where to write each row's mean, or null
     * @param meanOffset index of the first mean
     * @param rstd where to write each row's {@code 1/√(var + epsilon)}, or null
     * @param rstdOffset index of the first rstd
     */
    public static void forward(
            int rows,
            int cols,
            float epsilon,
            MemorySegment x,
            long xOffset,
            int ldx,
            MemorySegment weight,
            long weightOffset,
            MemorySegment bias,
            long biasOffset,
            MemorySegment y,
            long yOffset,
            int ldy,
            MemorySegment mean,
            long meanOffset,
            MemorySegment rstd,
            long rstdOffset) {
        Checks.nonNegative("rows", rows, "cols", cols);
        Checks.positive("epsilon", epsilon);
        Checks.matrix("x", x, xOffset, rows, cols, "ldx", ldx, false);
        Checks.vector("weight", weight, weightOffset, cols, false);
        Checks.vector("bias", bias, biasOffset, cols, false);
        Checks.matrix("y", y, yOffset, rows, cols, "ldy", ldy, true);
        if (mean != null) {
            Checks.vector("mean", mean, meanOffset, rows, true);
        }
        if (rstd != null) {
            Checks.vector("rstd", rstd, rstdOffset, rows, true);
        }
        if (cols == 0) {
            return;
        }
        Checks.Strided xView = Checks.Strided.matrix("x", x, xOffset, rows, cols, ldx);
        Checks.Strided yView = Checks.Strided.matrix("y", y, yOffset, rows, cols, ldy);
        Checks.Strided weightView = Checks.Strided.vector("weight", weight, weightOffset, cols);
        Checks.Strided biasView = Checks.Strided.vector("bias", bias, biasOffset, cols);
        Checks.Strided meanView = Checks.Strided.vector("mean", mean, meanOffset, rows);
        Checks.inPlaceOrSeparate(yView, xView);
        Checks.separate(yView, weightView, biasView);
        Checks.separate(meanView, xView, yView, weightView, biasView);
        Checks.separate(
                Checks.Strided.vector("rstd", rstd, rstdOffset, rows), xView, yView, weightView, biasView, meanView);
        boolean parallel = Parallelism.shareable(x, weight, bias, y, mean, rstd);
        Operand xs = Operand.of(x);
        Operand ws = Operand.of(weight);
        Operand bs = Operand.of(bias);
        Operand ys = Operand.of(y);
        Operand means = Operand.of(mean);
        Operand rstds = Operand.of(rstd);
        Rows.forEach(rows, (long) rows * cols, parallel, (from, to) -> {
            // Every row reads the same weight and bias, and the task's means and rstds are staged as one run each.
            Line wl = WEIGHT_LINE.get().read(ws, weightOffset, cols);
            Line bl = BIAS_LINE.get().read(bs, biasOffset, cols);
            Line ml = means == null ? null : MEAN_LINE.get().write(means, meanOffset + from, to - from);
            Line rl = rstds == null ? null : RSTD_LINE.get().write(rstds, rstdOffset + from, to - from);
            Line xl = X_LINE.get().read(xs, xOffset + (long) from * ldx, cols);
            Line following = NEXT_X_LINE.get();
            float m = NormRows.mean(cols, xl.array, xl.offset);
            for (int i = from; i < to; i++) {
                // The last row passes itself as the next one; the extra mean reads it from L1 and is dropped.
                Line next = i + 1 < to ? following.read(xs, xOffset + (long) (i + 1) * ldx, cols) : xl;
                Line yl = Y_LINE.get().write(ys, yOffset + (long) i * ldy, cols);
                long correctionAndRstd = NormRows.correctionAndRstd(cols, epsilon, m, xl.array, xl.offset);
                float correction = Simd.first(correctionAndRstd);
                float r = Simd.second(correctionAndRstd);
                float nextMean;
                if (!(r > 0)) {
                    // The sum of squares, or the mean, overflowed (or x holds NaN or ∞): the row again, in double.
                    double exactMean = NormRows.exactMean(cols, xl.array, xl.offset);
                    r = NormRows.layerNormaliseExactly(
                            cols, epsilon, exactMean, xl.array, xl.offset, wl.array, wl.offset, bl.array, bl.offset,
                            yl.array, yl.offset);
                    m = (float) exactMean;
                    correction = 0f;
                    nextMean = NormRows.mean(cols, next.array, next.offset);
                } else {
                    nextMean = NormRows.normaliseAndMean(
                            cols,
                            m,
                            correction,
                            r,
                            xl.array,
                            xl.offset,
                            wl.array,
                            wl.offset,
                            bl.array,
                            bl.offset,
                            yl.array,
                            yl.offset,
                            next.array,
                            next.offset);
                }
                yl.commit();
                if (ml != null) {
                    ml.array[ml.offset + i - from] = m + correction;
                }
                if (rl != null) {
                    rl.array[rl.offset + i - from] = r;
                }
                m = nextMean;
                following = xl;
                xl = next;
            }
            if (ml != null) {
                ml.commit();
            }
            if (rl != null) {
                rl.commit();
            }
        });
    }

    /**
     * The gradients of {@link #forward(int, int, float, float[], int, int, float[], int, float[], int, float[], int,
     * int, float[], int, float[], int) forward}, on arrays: overwrites dx and adds into dweight and dbias.
     *
     * @param rows number of rows, at least 0
     * @param cols number of columns, at least 0
     * @param x the forward's input
     * @param xOffset index of x's first element
     * @param ldx leading dimension of x: at least {@code cols}
     * @param weight the forward's weight
     * @param weightOffset index of weight's first element
     * @param mean the forward's row means
     * @param meanOffset index of the first mean
     * @param rstd the forward's row rstd
     * @param rstdOffset index of the first rstd
     * @param dy the gradient of the loss with respect to y
     * @param dyOffset index of dy's first element
     * @param lddy leading dimension of dy: at least {@code cols}
     * @param dx the gradient with respect to x, overwritten; may be dy itself
     * @param dxOffset index of dx's first element
     * @param lddx leading dimension of dx: at least {@code cols}
     * @param dweight the weight's gradient, {@code cols} floats, added to
     * @param dweightOffset index of dweight's first element
     * @param dbias the bias's gradient, {@code cols} floats, added to
     * @param dbiasOffset index of dbias's first element
     */
    public static void backward(
            int rows,
            int cols,
            float[] x,
            int xOffset,
            int ldx,
            float[] weight,
            int weightOffset,
            float[] mean,
            int meanOffset,
            float[] rstd,
            int rstdOffset,
            float[] dy,
            int dyOffset,
            int lddy,
            float[] dx,
            int dxOffset,
            int lddx,
            float[] dweight,
            int dweightOffset,
            float[] dbias,
            int dbiasOffset) {
        backward(
                rows,
                cols,
                Checks.wrap("x", x),
                xOffset,
                ldx,
                Checks.wrap("weight", weight),
                weightOffset,
                Checks.wrap("mean", mean),
                meanOffset,
                Checks.wrap("rstd", rstd),
                rstdOffset,
                Checks.wrap("dy", dy),
                dyOffset,
                lddy,
                Checks.wrap("dx", dx),
                dxOffset,
                lddx,
                Checks.wrap("dweight", dweight),
                dweightOffset,
                Checks.wrap("dbias", dbias),
                dbiasOffset);
    }

    /**
     * The gradients of layer normalisation on memory segments; as {@link #backward(int, int, float[], int, int,
     * float[], int, float[], int, float[], int, float[], int, int, float[], int, int, float[], int, float[], int)}.
     *
     * @param rows number of rows, at least 0
     * @param cols number of columns, at least 0
     * @param x the forward's input
     * @param xOffset index of x's first element
     * @param ldx leading dimension of x: at least {@code cols}
     * @param weight the forward's weight
     * @param weightOffset index of weight's first element
     * @param mean the forward's row means
     * @param meanOffset index of the first mean
     * @param rstd the forward's row rstd
     * @param rstdOffset index of the first rstd
     * @param dy the gradient of the loss with respect to y
     * @param dyOffset index of dy's first element
     * @param lddy leading dimension of dy: at least {@code cols}
     * @param dx the gradient with respect to x, overwritten; may be dy itself; must be writable
     * @param dxOffset index of dx's first element
     * @param lddx leading dimension of dx: at least {@code cols}
     * @param dweight the weight's gradient, added to; must be writable
     * @param dweightOffset index of dweight's first element
     * @param dbias the bias's gradient, added to; must be writable
     * @param dbiasOffset index of dbias's first element
     */
    public static void backward(
            int rows,
            int cols,
            MemorySegment x,
            long xOffset,
            int ldx,
            MemorySegment weight,
            long weightOffset,
            MemorySegment mean,
            long meanOffset,
            MemorySegment rstd,
            long rstdOffset,
            MemorySegment dy,
            long dyOffset,
            int lddy,
            MemorySegment dx,
            long dxOffset,
            int lddx,
            MemorySegment dweight,
            long dweightOffset,
            MemorySegment dbias,
            long dbiasOffset) {
        Checks.nonNegative("rows", rows, "cols", cols);
        Checks.matrix("x", x, xOffset, rows, cols, "ldx", ldx, false);
        Checks.vector("weight", weight, weightOffset, cols, false);
        Checks.vector("mean", mean, meanOffset, rows, false);
        Checks.vector("rstd", rstd, rstdOffset, rows, false);
        Checks.matrix("dy", dy, dyOffset, rows, cols, "lddy", lddy, false);
        Checks.matrix("dx", dx, dxOffset, rows, cols, "lddx", lddx, true);
        Checks.vector("dweight", dweight, dweightOffset, cols, true);
        Checks.vector("dbias", dbias, dbiasOffset, cols, true);
        if (cols == 0) {
            return;
        }
        Checks.Strided xView = Checks.Strided.matrix("x", x, xOffset, rows, cols, ldx);
        Checks.Strided weightView = Checks.Strided.vector("weight", weight, weightOffset, cols);
        Checks.Strided meanView = Checks.Strided.vector("mean", mean, meanOffset, rows);
        Checks.Strided rstdView = Checks.Strided.vector("rstd", rstd, rstdOffset, rows);
        Checks.Strided dyView = Checks.Strided.matrix("dy", dy, dyOffset, rows, cols, lddy);
        Checks.Strided dxView = Checks.Strided.matrix("dx", dx, dxOffset, rows, cols, lddx);
        Checks.Strided dweightView = Checks.Strided.vector("dweight", dweight, dweightOffset, cols);
        Checks.inPlaceOrSeparate(dxView, dyView);
        Checks.separate(dxView, xView, weightView, meanView, rstdView);
        Checks.separate(dweightView, xView, weightView, meanView, rstdView, dyView, dxView);
        Checks.separate(
                Checks.Strided.vector("dbias", dbias, dbiasOffset, cols),
                xView,
                weightView,
                meanView,
                rstdView,
                dyView,
                dxView,
                dweightView);
        boolean parallel = Parallelism.shareable(x, weight, mean, rstd, dy, dx, dweight, dbias);
        Operand xs = Operand.of(x);
        Operand ws = Operand.of(weight);
        Operand means = Operand.of(mean);
        Operand rstds = Operand.of(rstd);
        Operand dys = Operand.of(dy);
        Operand dxs = Operand.of(dx);
        Norms.backward(
                rows,
                cols,
                parallel,
                (from, to, partial, at) -> {
                    // Every row reads the same weight, and the chunk's means and rstds are staged as one run each.
                    Line wl = WEIGHT_LINE.get().read(ws, weightOffset, cols);
                    Line ml = MEAN_LINE.get().read(means, meanOffset + from, to - from);
                    Line rl = RSTD_LINE.get().read(rstds, rstdOffset + from, to - from);
                    for (int i = from; i < to; i++) {
                        Line xl = X_LINE.get().read(xs, xOffset + (long) i * ldx, cols);
                        Line dyl = DY_LINE.get().read(dys, dyOffset + (long) i * lddy, cols);
                        Line dxl = DX_LINE.get().write(dxs, dxOffset + (long) i * lddx, cols);
                        NormRows.layerBackwardRow(
                                cols,
                                xl.array,
                                xl.offset,
                                wl.array,
                                wl.offset,
                                ml.array[ml.offset + i - from],
                                rl.array[rl.offset + i - from],
                                dyl.array,
                                dyl.offset,
                                dxl.array,
                                dxl.offset,
                                partial,
                                at);
                        dxl.commit();
                    }
                },
                Operand.of(dweight),
                dweightOffset,
                Operand.of(dbias),
                dbiasOffset);
    }
}
