package dev.panamax.kernels;

import java.lang.foreign.MemorySegment;

/**
 * Root-mean-square normalisation over the rows of a row-major {@code rows × cols} matrix, as in Llama: {@code y = x·rstd
 * ⊙ weight} with {@code rstd = 1/√(mean(x²) + epsilon)}.
 *
 * <p>{@code epsilon} must be above 0 (an {@link IllegalArgumentException} otherwise), so that a row of zeros gives
 * zeros rather than {@code 0/0}. Rows of any finite magnitude normalise correctly: a row whose sum of squares
 * overflows float (entries beyond about 1.8e19) is computed again in double.
 *
 * <p>The forward can also write each row's rstd, which the backward takes instead of recomputing it. The backward
 * overwrites dx and adds the weight gradient into dweight (zero it before the first call). {@code y} may be {@code x}
 * itself and {@code dx} may be {@code dy} (same offset and leading dimension); other overlaps between an output and
 * another operand throw {@link IllegalArgumentException}. Offsets count floats. Arguments are
 * checked before anything is written; {@code cols == 0} writes nothing. Large problems run on the threads of {@link
 * Parallelism} with results bit-identical for every thread count (see {@link LayerNorm}).
 */
public final class RmsNorm {
    static {
        VectorApi.require(); // a missing --add-modules flag is named before the first kernel fails to link
    }

    // The lines (see Line) the passes stage their operands through: the forward's x, the next row of x, y, weight
    // and rstds; the backward's x, dy, dx, weight and rstds.
    private static final ThreadLocal<Line> X_LINE = Line.perThread(), NEXT_X_LINE = Line.perThread();
    private static final ThreadLocal<Line> Y_LINE = Line.perThread(), DY_LINE = Line.perThread();
    private static final ThreadLocal<Line> DX_LINE = Line.perThread(), WEIGHT_LINE = Line.perThread();
    private static final ThreadLocal<Line> RSTD_LINE = Line.perThread();

    private RmsNorm() {}

    /**
     * Normalises each row of x into y, on arrays.
     *
     * @param rows number of rows, at least 0
     * @param cols number of columns (the normalised dimension), at least 0
     * @param epsilon added to the mean square; finite and above 0 (Llama: 1e-5 or 1e-6)
     * @param x the input
     * @param xOffset index of x's first element
     * @param ldx leading dimension of x: at least {@code cols}
     * @param weight the scale, {@code cols} floats
     * @param weightOffset index of weight's first element
     * @param y the output; may be x itself
     * @param yOffset index of y's first element
     * @param ldy leading dimension of y: at least {@code cols}
     * @param rstd where to write each row's {@code 1/√(mean(x²) + epsilon)} ({@code rows} floats), or null
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
            float[] y,
            int yOffset,
            int ldy,
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
                Checks.wrap("y", y),
                yOffset,
                ldy,
                rstd == null ? null : MemorySegment.ofArray(rstd),
                rstdOffset);
    }

    /**
     * Normalises each row of x into y, on memory segments; as {@link #forward(int, int, float, float[], int, int,
     * float[], int, float[], int, int, float[], int)}, with offsets in floats.
     *
     * @param rows number of rows, at least 0
     * @param cols number of columns (the normalised dimension), at least 0
     * @param epsilon added to the mean square; finite and above 0
     * @param x the input
     * @param xOffset index of x's first element
     * @param ldx leading dimension of x: at least {@code cols}
     * @param weight the scale, {@code cols} floats
     * @param weightOffset index of weight's first element
     * @param y the output; may be x itself; must be writable
     * @param yOffset index of y's first element
     * @param ldy leading dimension of y: at least {@code cols}
     * @param rstd where to write each row's rstd, or null
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
            MemorySegment y,
            long yOffset,
            int ldy,
            MemorySegment rstd,
            long rstdOffset) {
        Checks.nonNegative("rows", rows, "cols", cols);
        Checks.positive("epsilon", epsilon);
        Checks.matrix("x", x, xOffset, rows, cols, "ldx", ldx, false);
        Checks.vector("weight", weight, weightOffset, cols, false);
        Checks.matrix("y", y, yOffset, rows, cols, "ldy", ldy, true);
        if (rstd != null) {
            Checks.vector("rstd", rstd, rstdOffset, rows, true);
        }
        if (cols == 0) {
            return;
        }
        Checks.Strided xView = Checks.Strided.matrix("x", x, xOffset, rows, cols, ldx);
        Checks.Strided yView = Checks.Strided.matrix("y", y, yOffset, rows, cols, ldy);
        Checks.Strided weightView = Checks.Strided.vector("weight", weight, weightOffset, cols);
        Checks.inPlaceOrSeparate(yView, xView);
        Checks.separate(yView, weightView);
        Checks.separate(Checks.Strided.vector("rstd", rstd, rstdOffset, rows), xView, yView, weightView);
        boolean parallel = Parallelism.shareable(x, weight, y, rstd);
        Operand xs = Operand.of(x);
        Operand ws = Operand.of(weight);
        Operand ys = Operand.of(y);
        Operand rstds = Operand.of(rstd);
        Rows.forEach(rows, (long) rows * cols, parallel, (from, to) -> {
            // Every row reads the same weight, and the task's rstds are staged as one run.
            Line wl = WEIGHT_LINE.get().read(ws, weightOffset, cols);
            Line rl = rstds == null ? null : RSTD_LINE.get().write(rstds, rstdOffset + from, to - from);
            Line xl = X_LINE.get().read(xs, xOffset + (long) from * ldx, cols);
            Line following = NEXT_X_LINE.get();
            float squares = NormRows.sumOfSquares(cols, xl.array, xl.offset);
            for (int i = from; i < to; i++) {
                // The last row passes itself as the next one; the extra sum reads it from L1 and is dropped.
                Line next = i + 1 < to ? following.read(xs, xOffset + (long) (i + 1) * ldx, cols) : xl;
                Line yl = Y_LINE.get().write(ys, yOffset + (long) i * ldy, cols);
                float r = (float) (1 / Math.sqrt((double) squares / cols + epsilon));
                if (!(r > 0)) {
                    // The sum of squares overflowed (or x holds NaN or ∞): the row again, in double.
                    r = NormRows.rmsNormaliseExactly(
                            cols, epsilon, xl.array, xl.offset, wl.array, wl.offset, yl.array, yl.offset);
                    squares = NormRows.sumOfSquares(cols, next.array, next.offset);
                } else {
                    squares = NormRows.normaliseAndSumSquares(
                            cols,
                            r,
                            xl.array,
                            xl.offset,
                            wl.array,
                            wl.offset,
                            yl.array,
                            yl.offset,
                            next.array,
                            next.offset);
                }
                yl.commit();
                if (rl != null) {
                    rl.array[rl.offset + i - from] = r;
                }
                following = xl;
                xl = next;
            }
            if (rl != null) {
                rl.commit();
            }
        });
    }

    /**
     * The gradients of {@link #forward(int, int, float, float[], int, int, float[], int, float[], int, int, float[],
     * int) forward}, on arrays: overwrites dx and adds into dweight.
     *
     * @param rows number of rows, at least 0
     * @param cols number of columns, at least 0
     * @param x the forward's input
     * @param xOffset index of x's first element
     * @param ldx leading dimension of x: at least {@code cols}
     * @param weight the forward's weight
     * @param weightOffset index of weight's first element
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
     */
    public static void backward(
            int rows,
            int cols,
            float[] x,
            int xOffset,
            int ldx,
            float[] weight,
            int weightOffset,
            float[] rstd,
            int rstdOffset,
            float[] dy,
            int dyOffset,
            int lddy,
            float[] dx,
            int dxOffset,
            int lddx,
            float[] dweight,
            int dweightOffset) {
        backward(
                rows,
                cols,
                Checks.wrap("x", x),
                xOffset,
                ldx,
                Checks.wrap("weight", weight),
                weightOffset,
                Checks.wrap("rstd", rstd),
                rstdOffset,
                Checks.wrap("dy", dy),
                dyOffset,
                lddy,
                Checks.wrap("dx", dx),
                dxOffset,
                lddx,
                Checks.wrap("dweight", dweight),
                dweightOffset);
    }

    /**
     * The gradients of RMS normalisation on memory segments; as {@link #backward(int, int, float[], int, int, float[],
     * int, float[], int, float[], int, int, float[], int, int, float[], int)}.
     *
     * @param rows number of rows, at least 0
     * @param cols number of columns, at least 0
     * @param x the forward's input
     * @param xOffset index of x's first element
     * @param ldx leading dimension of x: at least {@code cols}
     * @param weight the forward's weight
     * @param weightOffset index of weight's first element
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
     */
    public static void backward(
            int rows,
            int cols,
            MemorySegment x,
            long xOffset,
            int ldx,
            MemorySegment weight,
            long weightOffset,
            MemorySegment rstd,
            long rstdOffset,
            MemorySegment dy,
            long dyOffset,
            int lddy,
            MemorySegment dx,
            long dxOffset,
            int lddx,
            MemorySegment dweight,
            long dweightOffset) {
        Checks.nonNegative("rows", rows, "cols", cols);
        Checks.matrix("x", x, xOffset, rows, cols, "ldx", ldx, false);
        Checks.vector("weight", weight, weightOffset, cols, false);
        Checks.vector("rstd", rstd, rstdOffset, rows, false);
        Checks.matrix("dy", dy, dyOffset, rows, cols, "lddy", lddy, false);
        Checks.matrix("dx", dx, dxOffset, rows, cols, "lddx", lddx, true);
        Checks.vector("dweight", dweight, dweightOffset, cols, true);
        if (cols == 0) {
            return;
        }
        Checks.Strided xView = Checks.Strided.matrix("x", x, xOffset, rows, cols, ldx);
        Checks.Strided weightView = Checks.Strided.vector("weight", weight, weightOffset, cols);
        Checks.Strided rstdView = Checks.Strided.vector("rstd", rstd, rstdOffset, rows);
        Checks.Strided dyView = Checks.Strided.matrix("dy", dy, dyOffset, rows, cols, lddy);
        Checks.Strided dxView = Checks.Strided.matrix("dx", dx, dxOffset, rows, cols, lddx);
        Checks.inPlaceOrSeparate(dxView, dyView);
        Checks.separate(dxView, xView, weightView, rstdView);
        Checks.separate(
                Checks.Strided.vector("dweight", dweight, dweightOffset, cols),
                xView,
                weightView,
                rstdView,
                dyView,
                dxView);
        boolean parallel = Parallelism.shareable(x, weight, rstd, dy, dx, dweight);
        Operand xs = Operand.of(x);
        Operand ws = Operand.of(weight);
        Operand rstds = Operand.of(rstd);
        Operand dys = Operand.of(dy);
        Operand dxs = Operand.of(dx);
        Norms.backward(
                rows,
                cols,
                parallel,
                (from, to, partial, at) -> {
                    // Every row reads the same weight, and the chunk's rstds are staged as one run.
                    Line wl = WEIGHT_LINE.get().read(ws, weightOffset, cols);
                    Line rl = RSTD_LINE.get().read(rstds, rstdOffset + from, to - from);
                    for (int i = from; i < to; i++) {
                        Line xl = X_LINE.get().read(xs, xOffset + (long) i * ldx, cols);
                        Line dyl = DY_LINE.get().read(dys, dyOffset + (long) i * lddy, cols);
                        Line dxl = DX_LINE.get().write(dxs, dxOffset + (long) i * lddx, cols);
                        NormRows.rmsBackwardRow(
                                cols,
                                xl.array,
                                xl.offset,
                                wl.array,
                                wl.offset,
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
                null,
                0);
    }
}
