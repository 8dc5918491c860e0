package dev.panamax.kernels;

import java.lang.foreign.MemorySegment;
import java.util.Arrays;

/**
 * Row-wise softmax and log-softmax over a row-major {@code rows × cols} matrix, with their backward kernels.
 *
 * <p>Each row is {@code z = scale·x} over its visible columns: with a causal mask, row {@code i} sees columns {@code j
 * <= i + causalOffset} (for attention over a KV cache, {@code causalOffset} is the position of the first query row);
 * {@link #UNMASKED} shows every column. Softmax is computed stably, {@code exp(z - max z) / Σ exp(z - max z)}, so
 * inputs of any magnitude do not overflow. Masked columns get probability 0 (log-probability -∞); a row with no
 * visible column, or whose visible inputs are all -∞, gets only zeros (log-softmax: -∞), never NaN. A NaN among a
 * row's visible inputs makes that row NaN, and so does +∞ (as {@code ∞ - ∞} does); softmax writes such a row's
 * visible columns as {@link Float#NaN} exactly.
 *
 * <p>Finite inputs with a finite scale always give a finite distribution, as in exact arithmetic, even where {@code
 * scale·x} is beyond float's range: {@code z - max z} is formed as {@code scale·(x - x*)} (x* the input at which
 * {@code z} is largest), never as a difference of rounded or overflowed products, once {@code |max z|} reaches
 * 2²⁰. Log-probabilities are -∞ only where the exact one is below {@code -Float.MAX_VALUE}.
 *
 * <p>Offsets and leading dimensions count floats, as in {@link Gemm}. {@code y} may be the same storage as {@code x}
 * (same offset and leading dimension) to work in place; in the backward kernels {@code dx} may likewise be {@code
 * dy}. Other overlaps throw {@link IllegalArgumentException}. Arguments are checked before anything is written.
 * Large problems are split by
 * rows over the threads of {@link Parallelism}; each row is always computed the same way, so results are
 * bit-identical for every thread count. The exponentials are {@code VectorMath}'s, within 2 ulp (the forward's fused
 * form for arguments at most 0 may differ from {@code VectorMath.exp} in the last bit).
 */
public final class Softmax {
    // The lines (see Line) the kernels of this class stage their segment operands through, one per operand role.
    private static final ThreadLocal<Line> X_LINE = Line.perThread();
    private static final ThreadLocal<Line> Y_LINE = Line.perThread();
    private static final ThreadLocal<Line> NEXT_X_LINE = Line.perThread();
    private static final ThreadLocal<Line> DY_LINE = Line.perThread();
    private static final ThreadLocal<Line> DX_LINE = Line.perThread();

    static {
        VectorApi.require(); // a missing --add-modules flag is named before the first kernel fails to link
    }

    /** The causal offset that masks nothing: every row sees every column. */
    public static final int UNMASKED = Integer.MAX_VALUE;

    private Softmax() {}

    /**
     * {@code y = softmax(scale·x)} row by row, on arrays.
     *
     * @param rows number of rows, at least 0
     * @param cols number of columns, at least 0
     * @param scale factor applied to x before the softmax (e.g. 1/√d in attention); finite
     * @param causalOffset row {@code i} sees columns {@code <= i + causalOffset}; {@link #UNMASKED} for all
     * @param x the input
     * @param xOffset index of x's first element
     * @param ldx leading dimension of x: at least {@code cols}
     * @param y the output; may be x itself
     * @param yOffset index of y's first element
     * @param ldy leading dimension of y: at least {@code cols}
     */
    public static void forward(
            int rows,
            int cols,
            float scale,
            int causalOffset,
            float[] x,
            int xOffset,
            int ldx,
            float[] y,
            int yOffset,
            int ldy) {
        forward(rows, cols, scale, causalOffset, Checks.wrap("x", x), xOffset, ldx, Checks.wrap("y", y), yOffset, ldy);
    }

    /**
     * {@code y = softmax(scale·x)} row by row, on memory segments; as {@link #forward(int, int, float, int, float[],
     * int, int, float[], int, int)}.
     *
     * @param rows number of rows, at least 0
     * @param cols number of columns, at least 0
     * @param scale factor applied to x before the softmax; finite
     * @param causalOffset row {@code i} sees columns {@code <= i + causalOffset}; {@link #UNMASKED} for all
     * @param x the input
     * @param xOffset index (in floats) of x's first element
     * @param ldx leading dimension of x: at least {@code cols}
     * @param y the output; may be x itself; must be writable
     * @param yOffset index (in floats) of y's first element
     * @param ldy leading dimension of y: at least {@code cols}
     */
    public static void forward(
            int rows,
            int cols,
            float scale,
            int causalOffset,
            MemorySegment x,
            long xOffset,
            int ldx,
            MemorySegment y,
            long yOffset,
            int ldy) {
        run(false, rows, cols, scale, causalOffset, x, xOffset, ldx, y, yOffset, ldy);
    }

    /**
     * {@code y = log(softmax(scale·x))} row by row, on arrays: {@code (z - max z) - log Σ exp(z - max z)}, accurate
     * also where the probability underflows.
     *
     * @param rows number of rows, at least 0
     * @param cols number of columns, at least 0
     * @param scale factor applied to x first; finite
     * @param causalOffset row {@code i} sees columns {@code <= i + causalOffset}; {@link #UNMASKED} for all
     * @param x the input
     * @param xOffset index of x's first element
     * @param ldx leading dimension of x: at least {@code cols}
     * @param y the output; may be x itself
     * @param yOffset index of y's first element
     * @param ldy leading dimension of y: at least {@code cols}
     */
    public static void logForward(
            int rows,
            int cols,
            float scale,
            int causalOffset,
            float[] x,
            int xOffset,
            int ldx,
            float[] y,
            int yOffset,
            int ldy) {
        logForward(
                rows, cols, scale, causalOffset, Checks.wrap("x", x), xOffset, ldx, Checks.wrap("y", y), yOffset, ldy);
    }

    /**
     * {@code y = log(softmax(scale·x))} row by row, on memory segments; as {@link #logForward(int, int, float, int,
     * float[], int, int, float[], int, int)}.
     *
     * @param rows number of rows, at least 0
     * @param cols number of columns, at least 0
     * @param scale factor applied to x first; finite
     * @param causalOffset row {@code i} sees columns {@code <= i + causalOffset}; {@link #UNMASKED} for all
     * @param x the input
     * @param xOffset index (in floats) of x's first element
     * @param ldx leading dimension of x: at least {@code cols}
     * @param y the output; may be x itself; must be writable
     * @param yOffset index (in floats) of y's first element
     * @param ldy leading dimension of y: at least {@code cols}
     */
    public static void logForward(
            int rows,
            int cols,
            float scale,
            int causalOffset,
            MemorySegment x,
            long xOffset,
            int ldx,
            MemorySegment y,
            long yOffset,
            int ldy) {
        run(true, rows, cols, scale, causalOffset, x, xOffset, ldx, y, yOffset, ldy);
    }

    /**
     * The gradient of {@link #forward(int, int, float, int, float[], int, int, float[], int, int) softmax} with
     * respect to its input, on arrays: {@code dx = scale·y⊙(dy - Σ y⊙dy)} per row, from the forward output y.
     * Masked columns get {@code dx = 0}, and dy is not read there.
     *
     * @param rows number of rows, at least 0
     * @param cols number of columns, at least 0
     * @param scale the forward's scale; finite
     * @param causalOffset the forward's causal offset
     * @param y the forward's output
     * @param yOffset index of y's first element
     * @param ldy leading dimension of y: at least {@code cols}
     * @param dy the gradient of the loss with respect to y
     * @param dyOffset index of dy's first element
     * @param lddy leading dimension of dy: at least {@code cols}
     * @param dx the gradient with respect to x, overwritten; may be dy itself
     * @param dxOffset index of dx's first element
     * @param lddx leading dimension of dx: at least {@code cols}
     */
    public static void backward(
            int rows,
            int cols,
            float scale,
            int causalOffset,
            float[] y,
            int yOffset,
            int ldy,
            float[] dy,
            int dyOffset,
            int lddy,
            float[] dx,
            int dxOffset,
            int lddx) {
        backward(
                rows,
                cols,
                scale,
                causalOffset,
                Checks.wrap("y", y),
                yOffset,
                ldy,
                Checks.wrap("dy", dy),
                dyOffset,
                lddy,
                Checks.wrap("dx", dx),
                dxOffset,
                lddx);
    }

    /**
     * The gradient of softmax on memory segments; as {@link #backward(int, int, float, int, float[], int, int,
     * float[], int, int, float[], int, int)}.
     *
     * @param rows number of rows, at least 0
     * @param cols number of columns, at least 0
     * @param scale the forward's scale; finite
     * @param causalOffset the forward's causal offset
     * @param y the forward's output
     * @param yOffset index (in floats) of y's first element
     * @param ldy leading dimension of y: at least {@code cols}
     * @param dy the gradient of the loss with respect to y
     * @param dyOffset index (in floats) of dy's first element
     * @param lddy leading dimension of dy: at least {@code cols}
     * @param dx the gradient with respect to x, overwritten; may be dy itself; must be writable
     * @param dxOffset index (in floats) of dx's first element
     * @param lddx leading dimension of dx: at least {@code cols}
     */
    public static void backward(
            int rows,
            int cols,
            float scale,
            int causalOffset,
            MemorySegment y,
            long yOffset,
            int ldy,
            MemorySegment dy,
            long dyOffset,
            int lddy,
            MemorySegment dx,
            long dxOffset,
            int lddx) {
        runBackward(false, rows, cols, scale, causalOffset, y, yOffset, ldy, dy, dyOffset, lddy, dx, dxOffset, lddx);
    }

    /**
     * The gradient of {@link #logForward(int, int, float, int, float[], int, int, float[], int, int) log-softmax}
     * with respect to its input, on arrays: {@code dx = scale·(dy - exp(y)·Σ dy)} per row, from the forward output y.
     * Masked columns get {@code dx = 0}, and dy is not read there.
     *
     * @param rows number of rows, at least 0
     * @param cols number of columns, at least 0
     * @param scale the forward's scale; finite
     * @param causalOffset the forward's causal offset
     * @param y the forward's output (log-probabilities)
     * @param yOffset index of y's first element
     * @param ldy leading dimension of y: at least {@code cols}
     * @param dy the gradient of the loss with respect to y
     * @param dyOffset index of dy's first element
     * @param lddy leading dimension of dy: at least {@code cols}
     * @param dx the gradient with respect to x, overwritten; may be dy itself
     * @param dxOffset index of dx's first element
     * @param lddx leading dimension of dx: at least {@code cols}
     */
    public static void logBackward(
            int rows,
            int cols,
            float scale,
            int causalOffset,
            float[] y,
            int yOffset,
            int ldy,
            float[] dy,
            int dyOffset,
            int lddy,
            float[] dx,
            int dxOffset,
            int lddx) {
        logBackward(
                rows,
                cols,
                scale,
                causalOffset,
                Checks.wrap("y", y),
                yOffset,
                ldy,
                Checks.wrap("dy", dy),
                dyOffset,
                lddy,
                Checks.wrap("dx", dx),
                dxOffset,
                lddx);
    }

    /**
     * The gradient of log-softmax on memory segments; as {@link #logBackward(int, int, float, int, float[], int, int,
     * float[], int, int, float[], int, int)}.
     *
     * @param rows number of rows, at least 0
     * @param cols number of columns, at least 0
     * @param scale the forward's scale; finite
     * @param causalOffset the forward's causal offset
     * @param y the forward's output (log-probabilities)
     * @param yOffset index (in floats) of y's first element
     * @param ldy leading dimension of y: at least {@code cols}
     * @param dy the gradient of the loss with respect to y
     * @param dyOffset index (in floats) of dy's first element
     * @param lddy leading dimension of dy: at least {@code cols}
     * @param dx the gradient with respect to x, overwritten; may be dy itself; must be writable
     * @param dxOffset index (in floats) of dx's first element
     * @param lddx leading dimension of dx: at least {@code cols}
     */
    public static void logBackward(
            int rows,
            int cols,
            float scale,
            int causalOffset,
            MemorySegment y,
            long yOffset,
            int ldy,
            MemorySegment dy,
            long dyOffset,
            int lddy,
            MemorySegment dx,
            long dxOffset,
            int lddx) {
        runBackward(true, rows, cols, scale, causalOffset, y, yOffset, ldy, dy, dyOffset, lddy, dx, dxOffset, lddx);
    }

    private static void checkShape(int rows, int cols, float scale) {
        Checks.nonNegative("rows", rows, "cols", cols);
        Checks.finite("scale", scale);
    }

    /** Columns row {@code row} sees: {@code [0, visible)}. */
    static int visible(int row, int cols, int causalOffset) {
        return Math.clamp((long) row + causalOffset + 1, 0, cols);
    }

    private static void run(
            boolean log,
            int rows,
            int cols,
            float scale,
            int causalOffset,
            MemorySegment x,
            long xOffset,
            int ldx,
            MemorySegment y,
            long yOffset,
            int ldy) {
        checkShape(rows, cols, scale);
        Checks.matrix("x", x, xOffset, rows, cols, "ldx", ldx, false);
        Checks.matrix("y", y, yOffset, rows, cols, "ldy", ldy, true);
        Checks.inPlaceOrSeparate(
                Checks.Strided.matrix("y", y, yOffset, rows, cols, ldy),
                Checks.Strided.matrix("x", x, xOffset, rows, cols, ldx));
        boolean parallel = Parallelism.shareable(x) && Parallelism.shareable(y);
        Operand xs = Operand.of(x);
        Operand ys = Operand.of(y);
        Rows.forEach(rows, (long) rows * cols, parallel, (from, to) -> {
            if (!log) {
                forwardRows(from, to, cols, scale, causalOffset, xs, xOffset, ldx, ys, yOffset, ldy);
                return;
            }
            for (int i = from; i < to; i++) {
                int n = visible(i, cols, causalOffset);
                Line xl = X_LINE.get().read(xs, xOffset + (long) i * ldx, n);
                Line yl = Y_LINE.get().write(ys, yOffset + (long) i * ldy, cols);
                int written = SoftmaxRows.logRow(n, scale, xl.array, xl.offset, yl.array, yl.offset);
                Arrays.fill(yl.array, yl.offset + written, yl.offset + cols, Float.NEGATIVE_INFINITY);
                yl.commit();
            }
        });
    }

    /**
     * Softmax of rows {@code [from, to)}. Each row's max is taken in the pass that exponentiates the row before it, so
     * that its reads stream from memory while that row computes. Every row's arithmetic is the same as taking its max
     * first, whatever its place in the task.
     */
    private static void forwardRows(
            int from,
            int to,
            int cols,
            float scale,
            int causalOffset,
            Operand xs,
            long xOffset,
            int ldx,
            Operand ys,
            long yOffset,
            int ldy) {
        int n = visible(from, cols, causalOffset);
        Line xl = X_LINE.get().read(xs, xOffset + (long) from * ldx, n);
        Line following = NEXT_X_LINE.get();
        Line output = Y_LINE.get();
        float max = RowMath.max(n, scale, xl.array, xl.offset);
        for (int i = from; i < to; i++) {
            // Rows see no fewer columns than the row before. The last row passes itself as the next one; the extra max
            // reads it from L1 and is dropped.
            boolean last = i + 1 == to;
            int nextN = last ? n : visible(i + 1, cols, causalOffset);
            Line next = last ? xl : following.read(xs, xOffset + (long) (i + 1) * ldx, nextN);
            Line yl = output.write(ys, yOffset + (long) i * ldy, cols);
            float nextMax;
            int written = 0;
            if (Math.abs(max) >= SoftmaxRows.WIDE_ROW) {
                // Also the rows with nothing visible, or every visible entry -∞, which get zeros.
                if (SoftmaxRows.wideExponents(n, scale, xl.array, xl.offset, yl.array, yl.offset)) {
                    float sum = RowMath.expSum(n, 2f, 0f, yl.array, yl.offset, yl.array, yl.offset);
                    normalize(n, sum, yl.array, yl.offset);
                    written = n;
                }
                nextMax = RowMath.max(nextN, scale, next.array, next.offset);
            } else {
                long sumAndNextMax = RowMath.expSumAndNextMax(
                        n, scale, max, xl.array, xl.offset, yl.array, yl.offset, nextN, next.array, next.offset);
                normalize(n, RowMath.sumOf(sumAndNextMax), yl.array, yl.offset);
                nextMax = RowMath.nextMaxOf(sumAndNextMax);
                written = n;
            }
            Arrays.fill(yl.array, yl.offset + written, yl.offset + cols, 0f);
            yl.commit();
            following = xl;
            xl = next;
            n = nextN;
            max = nextMax;
        }
    }

    /**
     * {@code y *= 1/sum} over a row's {@code n} exponentials. A NaN sum, from a NaN or +∞ among the row's inputs, makes
     * the row {@link Float#NaN}: the NaN the arithmetic gives takes its sign from the max the row was shifted by, which
     * a task's first row takes NaN included and the others NaN skipped, so its bits would follow the thread count.
     */
    private static void normalize(int n, float sum, float[] y, int yi) {
        if (Float.isNaN(sum)) {
            Arrays.fill(y, yi, yi + n, Float.NaN);
        } else {
            RowMath.scale(n, 1f / sum, y, yi);
        }
    }

    private static void runBackward(
            boolean log,
            int rows,
            int cols,
            float scale,
            int causalOffset,
            MemorySegment y,
            long yOffset,
            int ldy,
            MemorySegment dy,
            long dyOffset,
            int lddy,
            MemorySegment dx,
            long dxOffset,
            int lddx) {
        checkShape(rows, cols, scale);
        Checks.matrix("y", y, yOffset, rows, cols, "ldy", ldy, false);
        Checks.matrix("dy", dy, dyOffset, rows, cols, "lddy", lddy, false);
        Checks.matrix("dx", dx, dxOffset, rows, cols, "lddx", lddx, true);
        Checks.Strided dxView = Checks.Strided.matrix("dx", dx, dxOffset, rows, cols, lddx);
        Checks.inPlaceOrSeparate(dxView, Checks.Strided.matrix("dy", dy, dyOffset, rows, cols, lddy));
        Checks.separate(dxView, Checks.Strided.matrix("y", y, yOffset, rows, cols, ldy));
        boolean parallel = Parallelism.shareable(y) && Parallelism.shareable(dy) && Parallelism.shareable(dx);
        Operand ys = Operand.of(y);
        Operand dys = Operand.of(dy);
        Operand dxs = Operand.of(dx);
        Rows.forEach(rows, (long) rows * cols, parallel, (from, to) -> {
            for (int i = from; i < to; i++) {
                int n = visible(i, cols, causalOffset);
                Line yl = Y_LINE.get().read(ys, yOffset + (long) i * ldy, n);
                Line dyl = DY_LINE.get().read(dys, dyOffset + (long) i * lddy, n);
                Line dxl = DX_LINE.get().write(dxs, dxOffset + (long) i * lddx, cols);
                if (log) {
                    SoftmaxRows.logBackwardRow(
                            n, scale, yl.array, yl.offset, dyl.array, dyl.offset, dxl.array, dxl.offset);
                } else {
                    SoftmaxRows.backwardRow(
                            n, scale, yl.array, yl.offset, dyl.array, dyl.offset, dxl.array, dxl.offset);
                }
                Arrays.fill(dxl.array, dxl.offset + n, dxl.offset + cols, 0f);
                dxl.commit();
            }
        });
    }
}
