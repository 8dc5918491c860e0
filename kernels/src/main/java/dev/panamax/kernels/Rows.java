package dev.panamax.kernels;

import static dev.panamax.kernels.Simd.FLOAT;

import java.lang.foreign.MemorySegment;

/**
 * Row-wise helpers: splitting work over the threads of {@link Parallelism} (each row is computed by the same code
 * whatever the split, so results do not depend on the thread count; small problems stay on the calling thread), and
 * copying strided rows out of a segment into an array.
 */
final class Rows {
    // The lines (see Line) the kernels of this class stage their segment operands through, one per operand role.
    private static final ThreadLocal<Line> A_LINE = Line.perThread();
    private static final ThreadLocal<Line> B_LINE = Line.perThread();
    private static final ThreadLocal<Line> Y_LINE = Line.perThread();

    /** Below this many elements a call stays on the caller's thread: a hand-off can cost a scheduler slice. */
    static final long PARALLEL_MIN_ELEMENTS = 1L << 18;

    /** A range of rows (or of any independent units) {@code [from, to)}. */
    @FunctionalInterface
    interface Range {
        void run(int from, int to);
    }

    /**
     * Elements per call of a flat elementwise op's body when operands are staged through {@link Line}s: 4 KiB, a
     * multiple of every vector width, so that staged spans stay in L1 rather than the whole array being staged at once.
     */
    private static final int SPAN = 1024;

    private Rows() {}

    /**
     * Runs {@code body} over the elements {@code [0, n)} of a flat elementwise op, split over the threads of {@link
     * Parallelism} when {@code parallel} allows it and {@code n} is large; with {@code staged} operands, one span of at
     * most {@link #SPAN} elements per call.
     */
    static void forEachSpan(int n, boolean parallel, boolean staged, Range body) {
        int spans = Math.ceilDiv(n, SPAN);
        forEach(spans, n, parallel, (from, to) -> {
            int step = staged ? 1 : to - from;
            for (int span = from; span < to; span += step) {
                body.run(span * SPAN, (int) Math.min(n, (long) (span + step) * SPAN));
            }
        });
    }

    /** The body of an elementwise kernel with two inputs and one output, on arrays, over {@code n} elements. */
    @FunctionalInterface
    interface BinaryRun {
        void run(int n, float[] a, int ai, float[] b, int bi, float[] y, int yi);
    }

    /**
     * Runs {@code body} over {@code n} elements of inputs a and b and output y, in spans split over the threads when
     * all three can be shared: an operand that is a {@code float[]} is used in place, any other is staged through this
     * class's lines (y is written, not read).
     */
    static void forEachSpan(
            int n,
            MemorySegment a,
            long aOffset,
            MemorySegment b,
            long bOffset,
            MemorySegment y,
            long yOffset,
            BinaryRun body) {
        Operand as = Operand.of(a);
        Operand bs = Operand.of(b);
        Operand ys = Operand.of(y);
        forEachSpan(n, Parallelism.shareable(a, b, y), Line.staged(as, bs, ys), (from, to) -> {
            int count = to - from;
            Line al = A_LINE.get().read(as, aOffset + from, count);
            Line bl = B_LINE.get().read(bs, bOffset + from, count);
            Line yl = Y_LINE.get().write(ys, yOffset + from, count);
            body.run(count, al.array, al.offset, bl.array, bl.offset, yl.array, yl.offset);
            yl.commit();
        });
    }

    /**
     * Checks the operands of an elementwise kernel {@code y = f(a, b)} over {@code n} floats, named {@code aName},
     * {@code bName} and {@code yName} (y may be a or b itself, and otherwise shares no float with either), then runs
     * {@code body}
     * over them as {@link #forEachSpan(int, MemorySegment, long, MemorySegment, long, MemorySegment, long, BinaryRun)}
     * does.
     */
    static void checkedSpans(
            int n,
            String aName,
            MemorySegment a,
            long aOffset,
            String bName,
            MemorySegment b,
            long bOffset,
            String yName,
            MemorySegment y,
            long yOffset,
            BinaryRun body) {
        Checks.nonNegative("n", n);
        Checks.vector(aName, a, aOffset, n, false);
        Checks.vector(bName, b, bOffset, n, false);
        Checks.vector(yName, y, yOffset, n, true);
        Checks.Strided yView = Checks.Strided.vector(yName, y, yOffset, n);
        Checks.inPlaceOrSeparate(yView, Checks.Strided.vector(aName, a, aOffset, n));
        Checks.inPlaceOrSeparate(yView, Checks.Strided.vector(bName, b, bOffset, n));
        forEachSpan(n, a, aOffset, b, bOffset, y, yOffset, body);
    }

    /**
     * Runs {@code body} over {@code [0, rows)}, split into contiguous ranges on up to {@link Parallelism#threads()}
     * threads when {@code parallel} allows it and there are at least {@link #PARALLEL_MIN_ELEMENTS} elements.
     */
    static void forEach(int rows, long elements, boolean parallel, Range body) {
        if (rows == 0) {
            // Bodies may read their first row before their loop (the pipelined kernels take its maximum or mean).
            return;
        }
        int threads = Parallelism.threads();
        if (!parallel || threads == 1 || rows < 2 || elements < PARALLEL_MIN_ELEMENTS) {
            body.run(0, rows);
            return;
        }
        int tasks = Math.min(rows, 4 * threads);
        Parallelism.forEach(
                tasks, task -> body.run((int) ((long) rows * task / tasks), (int) ((long) rows * (task + 1) / tasks)));
    }

    /**
     * Copies {@code count} runs of {@code width} floats of {@code from}, {@code stride} floats apart from float {@code
     * first}, back to back into {@code into} from index 0: one bulk copy when they are contiguous. Kernels copy rows
     * they read often, or from a segment of any kind, into an array so that their vector loops read arrays.
     */
    static void copy(MemorySegment from, long first, long stride, int count, int width, float[] into) {
        if (stride == width || count == 1) {
            MemorySegment.copy(from, FLOAT, first * Float.BYTES, into, 0, count * width);
            return;
        }
        for (int r = 0; r < count; r++) {
            MemorySegment.copy(from, FLOAT, (first + r * stride) * Float.BYTES, into, r * width, width);
        }
    }
}
