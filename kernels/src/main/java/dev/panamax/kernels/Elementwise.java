package dev.panamax.kernels;

import java.lang.foreign.MemorySegment;

/**
 * Elementwise vector operations on {@code n} contiguous floats: the residual add, scaling and BLAS's axpy. Their
 * gradients are themselves (an add passes dy to both inputs, a scale scales it), so they serve the backward pass too.
 * Also the sum of squares, for global-norm gradient clipping. Outputs may be the same storage as an input (same
 * offset); other overlaps throw {@link IllegalArgumentException}. Offsets count floats; arguments are checked before
 * anything is written; large arrays are split over the threads of {@link Parallelism} (each element is computed the
 * same way whatever the split).
 */
public final class Elementwise {
    // The lines (see Line) the kernels of this class stage their segment operands through, one per operand role.
    private static final ThreadLocal<Line> X_LINE = Line.perThread();
    private static final ThreadLocal<Line> Y_LINE = Line.perThread();

    static {
        VectorApi.require(); // a missing --add-modules flag is named before the first kernel fails to link
    }

    /**
     * Elements per partial sum of {@link #sumOfSquares(int, MemorySegment, long)}: fixed, so that the order of the
     * additions does not depend on how the spans are split over threads; a multiple of every vector width.
     */
    private static final int SUM_SPAN = 4096;

    private Elementwise() {}

    /**
     * {@code y = a + b} on arrays (the residual connection).
     *
     * @param n number of elements, at least 0
     * @param a the first input
     * @param aOffset index of a's first element
     * @param b the second input
     * @param bOffset index of b's first element
     * @param y the output; may be a or b itself
     * @param yOffset index of y's first element
     */
    public static void add(int n, float[] a, int aOffset, float[] b, int bOffset, float[] y, int yOffset) {
        add(n, Checks.wrap("a", a), aOffset, Checks.wrap("b", b), bOffset, Checks.wrap("y", y), yOffset);
    }

    /**
     * {@code y = a + b} on memory segments; as {@link #add(int, float[], int, float[], int, float[], int)}.
     *
     * @param n number of elements, at least 0
     * @param a the first input
     * @param aOffset index (in floats) of a's first element
     * @param b the second input
     * @param bOffset index (in floats) of b's first element
     * @param y the output; may be a or b itself; must be writable
     * @param yOffset index (in floats) of y's first element
     */
    public static void add(
            int n, MemorySegment a, long aOffset, MemorySegment b, long bOffset, MemorySegment y, long yOffset) {
        Rows.checkedSpans(n, "a", a, aOffset, "b", b, bOffset, "y", y, yOffset, ElementwiseRows::addRun);
    }

    /**
     * {@code x = alpha·x} on an array, in place (BLAS {@code sscal}).
     *
     * @param n number of elements, at least 0
     * @param alpha the factor
     * @param x the vector
     * @param xOffset index of x's first element
     */
    public static void scale(int n, float alpha, float[] x, int xOffset) {
        scale(n, alpha, Checks.wrap("x", x), xOffset);
    }

    /**
     * {@code x = alpha·x} on a memory segment, in place; as {@link #scale(int, float, float[], int)}.
     *
     * @param n number of elements, at least 0
     * @param alpha the factor
     * @param x the vector; must be writable
     * @param xOffset index (in floats) of x's first element
     */
    public static void scale(int n, float alpha, MemorySegment x, long xOffset) {
        Checks.nonNegative("n", n);
        Checks.vector("x", x, xOffset, n, true);
        Operand xs = Operand.of(x);
        Rows.forEachSpan(n, Parallelism.shareable(x), Line.staged(xs), (from, to) -> {
            Line xl = X_LINE.get().update(xs, xOffset + from, to - from);
            RowMath.scale(to - from, alpha, xl.array, xl.offset);
            xl.commit();
        });
    }

    /**
     * {@code x = 0} on an array: every element set to +0, whatever it held (NaN included, unlike scaling by 0).
     *
     * @param n number of elements, at least 0
     * @param x the vector
     * @param xOffset index of x's first element
     */
    public static void zero(int n, float[] x, int xOffset) {
        zero(n, Checks.wrap("x", x), xOffset);
    }

    /**
     * {@code x = 0} on a memory segment; as {@link #zero(int, float[], int)}. Large runs are split over the threads: one
     * thread does not fill memory as fast as two (the gradients of a 124M-parameter model: 52 against 42 ms).
     *
     * @param n number of elements, at least 0
     * @param x the vector; must be writable
     * @param xOffset index (in floats) of x's first element
     */
    public static void zero(int n, MemorySegment x, long xOffset) {
        Checks.nonNegative("n", n);
        Checks.vector("x", x, xOffset, n, true);
        Rows.forEachSpan(n, Parallelism.shareable(x), false, (from, to) -> x.asSlice(
                        (xOffset + from) * Float.BYTES, (long) (to - from) * Float.BYTES)
                .fill((byte) 0));
    }

    /**
     * {@code y = alpha·x + y} on arrays (BLAS {@code saxpy}), with one rounding per element (a fused multiply-add).
     *
     * @param n number of elements, at least 0
     * @param alpha the factor
     * @param x the vector added
     * @param xOffset index of x's first element
     * @param y the vector added to
     * @param yOffset index of y's first element
     */
    public static void axpy(int n, float alpha, float[] x, int xOffset, float[] y, int yOffset) {
        axpy(n, alpha, Checks.wrap("x", x), xOffset, Checks.wrap("y", y), yOffset);
    }

    /**
     * {@code y = alpha·x + y} on memory segments; as {@link #axpy(int, float, float[], int, float[], int)}.
     *
     * @param n number of elements, at least 0
     * @param alpha the factor
     * @param x the vector added
     * @param xOffset index (in floats) of x's first element
     * @param y the vector added to; must be writable
     * @param yOffset index (in floats) of y's first element
     */
    public static void axpy(int n, float alpha, MemorySegment x, long xOffset, MemorySegment y, long yOffset) {
        Checks.inPlaceOrSeparate(n, x, xOffset, y, yOffset);
        Operand xs = Operand.of(x);
        Operand ys = Operand.of(y);
        Rows.forEachSpan(n, Parallelism.shareable(x, y), Line.staged(xs, ys), (from, to) -> {
            Line xl = X_LINE.get().read(xs, xOffset + from, to - from);
            Line yl = Y_LINE.get().update(ys, yOffset + from, to - from);
            RowMath.axpy(to - from, alpha, xl.array, xl.offset, yl.array, yl.offset);
            yl.commit();
        });
    }

    /**
     * {@code Σ x[i]²} on an array: the squared Euclidean norm, as global-norm gradient clipping needs it.
     *
     * <p>The elements are taken in fixed spans of 4096; within a span the squares are summed in float vectors
     * (fused multiply-adds into a few accumulators per lane, then a fixed tree over the lanes), and the spans' sums are
     * added in double, in span order. Spans do not depend on the thread count, so neither does the result, to the bit.
     * A NaN makes the result NaN, an infinity (or a span whose sum exceeds the float range) makes it infinite.
     *
     * @param n number of elements, at least 0
     * @param x the vector
     * @param xOffset index of x's first element
     * @return the sum of the squares; 0 when {@code n} is 0
     */
    public static double sumOfSquares(int n, float[] x, int xOffset) {
        return sumOfSquares(n, Checks.wrap("x", x), xOffset);
    }

    /**
     * {@code Σ x[i]²} on a memory segment; as {@link #sumOfSquares(int, float[], int)}.
     *
     * @param n number of elements, at least 0
     * @param x the vector
     * @param xOffset index (in floats) of x's first element
     * @return the sum of the squares; 0 when {@code n} is 0
     */
    public static double sumOfSquares(int n, MemorySegment x, long xOffset) {
        Checks.nonNegative("n", n);
        Checks.vector("x", x, xOffset, n, false);
        int spans = Math.ceilDiv(n, SUM_SPAN);
        double[] partials = new double[spans];
        // Split by span index rather than through Rows.forEachSpan, so that each task owns whole partials of this
        // class's SUM_SPAN whatever span size Rows uses; the split and the small-problem threshold are the same.
        Operand xs = Operand.of(x);
        Rows.forEach(spans, n, Parallelism.shareable(x), (from, to) -> {
            for (int s = from; s < to; s++) {
                int start = s * SUM_SPAN;
                int count = Math.min(SUM_SPAN, n - start);
                Line xl = X_LINE.get().read(xs, xOffset + start, count);
                partials[s] = ElementwiseRows.sumOfSquaresRun(count, xl.array, xl.offset);
            }
        });
        double sum = 0;
        for (double partial : partials) {
            sum += partial;
        }
        return sum;
    }
}
