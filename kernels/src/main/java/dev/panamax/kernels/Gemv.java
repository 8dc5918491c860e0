package dev.panamax.kernels;

import static dev.panamax.kernels.Simd.FLOAT;
import static dev.panamax.kernels.Simd.FLOATS;
import static dev.panamax.kernels.Simd.LANES;
import static dev.panamax.kernels.Simd.ORDER;

import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorMask;

/**
 * The matrix-vector products behind {@link Gemm#sgemv} and the {@code m == 1} / {@code n == 1} cases of SGEMM. They
 * are bound by streaming A from memory, so the loops read each element of A once, contiguously, with several rows in
 * flight. Arguments arrive checked; offsets and increments count floats.
 */
final class Gemv {
    /** Columns accumulated per sweep over the rows in the transposed product: 4 KiB of sums stay in L1. */
    private static final int COLUMN_BLOCK = 1024;
    /**
     * Below this many elements of A a product stays on the calling thread. Low, because the team's workers are
     * usually still spinning from the previous region when a decode step's next product arrives, so the hand-off
     * costs far less than streaming these 128 KiB.
     */
    private static final long PARALLEL_MIN_ELEMENTS = 1L << 15;
    /** Tasks per thread of the plain product, for products large enough to give each its 16 groups of rows. */
    private static final int TASKS_PER_THREAD = 8;
    /**
     * Column strips per thread of the transposed product: fewer, because a strip reads each row of A as one short run
     * and a narrower strip reads shorter ones, which the prefetchers follow less well.
     */
    private static final int STRIPS_PER_THREAD = 4;

    /**
     * Row panels of a transposed product with many rows: each panel's sums are accumulated over its own contiguous
     * rows, and the panels' sums are then added in panel order. A fixed count, so that the sums are the same for any
     * thread count, and even, so that two threads share the panels evenly.
     */
    private static final int PANELS = 8;
    /** Fewer rows than this are one panel: each panel should read at least 64 rows. */
    private static final int PANEL_MIN_ROWS = PANELS * 64;
    /** Widest y accumulated in panels: each panel's sums (16 KiB) stay in L1 while its rows stream past. */
    private static final int PANEL_MAX_WIDTH = 4096;

    private static final ThreadLocal<float[][]> PANEL_SUMS = ThreadLocal.withInitial(() -> new float[PANELS][0]);

    /** This thread's copy of x, which the tasks read as an array. */
    static final Scratch X = new Scratch();

    private static final ThreadLocal<float[]> COLUMN_SUMS = ThreadLocal.withInitial(() -> new float[COLUMN_BLOCK]);

    private Gemv() {}

    /**
     * {@code y = alpha·op(A)·x + beta·y} with A stored as {@code rows × cols}. Without transpose x has {@code cols}
     * elements and y {@code rows}; with it x has {@code rows} and y {@code cols}. x and y are vectors as single columns:
     * element i at {@code offset + i·ld}.
     */
    static void run(
            boolean trans,
            int rows,
            int cols,
            float alpha,
            Matrix matrix,
            Matrix x,
            float beta,
            Matrix y,
            boolean parallel) {
        MemorySegment a = matrix.data();
        long aOffset = matrix.offset();
        int lda = matrix.ld();
        int xLength = trans ? rows : cols;
        int yLength = trans ? cols : rows;
        if (yLength == 0) {
            return;
        }
        if (xLength == 0 || alpha == 0f) {
            y.scale(beta, yLength, 1);
            return;
        }
        MemorySegment ys = y.data();
        long yOffset = y.offset();
        long incY = y.ld();
        float[] xs = X.take(xLength);
        try {
            for (int i = 0; i < xLength; i++) {
                xs[i] = x.data().getAtIndex(FLOAT, x.offset() + (long) i * x.ld());
            }
            int threads = parallel && (long) rows * cols >= PARALLEL_MIN_ELEMENTS ? Parallelism.threads() : 1;
            if (trans && rows >= PANEL_MIN_ROWS && yLength <= PANEL_MAX_WIDTH) {
                // Split by rows, not columns: column strips read each row of A in pieces, one per thread, which streams
                // from memory no faster on two threads than on one.
                panels(rows, yLength, alpha, a, aOffset, lda, xs, beta, ys, yOffset, incY, threads > 1);
            } else {
                // Tasks cover whole groups of four rows (or vector-wide column strips); each y element sees the same
                // sequence of operations whatever the split. Several tasks per thread, taken as threads come free, so
                // that no thread waits long at the end for one that was slowed.
                int unit = trans ? LANES : 4;
                int perThread = trans ? STRIPS_PER_THREAD : TASKS_PER_THREAD;
                int tasks = threads == 1 ? 1 : Math.max(1, Math.min(perThread * threads, yLength / (unit * 16)));
                forEachRun(yLength, tasks, unit, (from, to) -> {
                    if (trans) {
                        transposed(rows, from, to, alpha, a, aOffset, lda, xs, beta, ys, yOffset, incY);
                    } else {
                        plain(from, to, cols, alpha, a, aOffset, lda, xs, beta, ys, yOffset, incY);
                    }
                });
            }
        } finally {
            // A copy above the cap is dropped even when a task failed, as the package promises.
            X.release();
        }
    }

    /**
     * Runs {@code body} over {@code [0, length)} cut into runs of about {@code length / tasks}, each a whole number of
     * {@code unit}s but the last, as the tasks of one parallel region. The sizes are counted so that no sum passes
     * {@link Integer#MAX_VALUE}: a wrapped task count would run no task, and y would stay unwritten.
     */
    static void forEachRun(int length, int tasks, int unit, Rows.Range body) {
        int step = (int) Math.min(length, (long) Math.ceilDiv(Math.max(1, length / tasks), unit) * unit);
        Parallelism.forEach(Math.ceilDiv(length, step), task -> {
            int from = task * step;
            body.run(from, from + Math.min(step, length - from));
        });
    }

    /**
     * Rows {@code [from, to)} of {@code y = alpha·A·x + beta·y}: dot products, four rows per pass over x, the four a
     * quarter of the range apart. A is then read as four long sequential streams, which the prefetchers follow and
     * which keep four loads (and four independent sums) in flight. Four adjacent rows are four short streams that
     * restart every group, and one row at a time is a single stream with one chain of sums; both leave bandwidth
     * unused.
     */
    private static void plain(
            int from,
            int to,
            int cols,
            float alpha,
            MemorySegment a,
            long aOffset,
            int lda,
            float[] x,
            float beta,
            MemorySegment y,
            long yOffset,
            long incY) {
        int quarter = (to - from) / 4;
        for (int i = from; i < from + quarter; i++) {
            fourRows(i, quarter, cols, alpha, a, aOffset, lda, x, beta, y, yOffset, incY);
        }
        for (int i = from + 4 * quarter; i < to; i++) {
            oneRow(i, cols, alpha, a, aOffset, lda, x, beta, y, yOffset, incY);
        }
    }

    /**
     * Rows {@code i}, {@code i + spacing}, {@code i + 2·spacing} and {@code i + 3·spacing}. Kept apart from the
     * single-row remainder, and the masked tail apart from both, so that each method stays small enough for C1 to
     * compile: otherwise C1 ran out of registers, and the method never reached C2.
     */
    private static void fourRows(
            int i,
            int spacing,
            int cols,
            float alpha,
            MemorySegment a,
            long aOffset,
            int lda,
            float[] x,
            float beta,
            MemorySegment y,
            long yOffset,
            long incY) {
        int vectorEnd = Simd.vectorEnd(cols);
        long r0 = (aOffset + (long) i * lda) * Float.BYTES;
        long step = (long) spacing * lda * Float.BYTES;
        long r1 = r0 + step;
        long r2 = r1 + step;
        long r3 = r2 + step;
        FloatVector s0 = FloatVector.zero(FLOATS), s1 = s0, s2 = s0, s3 = s0;
        for (int j = 0; j < vectorEnd; j += LANES) {
            FloatVector xv = FloatVector.fromArray(FLOATS, x, j);
            long at = (long) j * Float.BYTES;
            s0 = FloatVector.fromMemorySegment(FLOATS, a, r0 + at, ORDER).fma(xv, s0);
            s1 = FloatVector.fromMemorySegment(FLOATS, a, r1 + at, ORDER).fma(xv, s1);
            s2 = FloatVector.fromMemorySegment(FLOATS, a, r2 + at, ORDER).fma(xv, s2);
            s3 = FloatVector.fromMemorySegment(FLOATS, a, r3 + at, ORDER).fma(xv, s3);
        }
        if (vectorEnd < cols) {
            s0 = tailFma(a, r0, x, vectorEnd, cols, s0);
            s1 = tailFma(a, r1, x, vectorEnd, cols, s1);
            s2 = tailFma(a, r2, x, vectorEnd, cols, s2);
            s3 = tailFma(a, r3, x, vectorEnd, cols, s3);
        }
        update(y, yOffset + i * incY, alpha, Simd.sum(s0), beta);
        update(y, yOffset + (i + spacing) * incY, alpha, Simd.sum(s1), beta);
        update(y, yOffset + (i + 2L * spacing) * incY, alpha, Simd.sum(s2), beta);
        update(y, yOffset + (i + 3L * spacing) * incY, alpha, Simd.sum(s3), beta);
    }

    /** Row {@code i}, with the same sequence of operations as each row of {@link #fourRows}. */
    private static void oneRow(
            int i,
            int cols,
            float alpha,
            MemorySegment a,
            long aOffset,
            int lda,
            float[] x,
            float beta,
            MemorySegment y,
            long yOffset,
            long incY) {
        int vectorEnd = Simd.vectorEnd(cols);
        long r0 = (aOffset + (long) i * lda) * Float.BYTES;
        FloatVector s0 = FloatVector.zero(FLOATS);
        for (int j = 0; j < vectorEnd; j += LANES) {
            FloatVector xv = FloatVector.fromArray(FLOATS, x, j);
            s0 = FloatVector.fromMemorySegment(FLOATS, a, r0 + (long) j * Float.BYTES, ORDER)
                    .fma(xv, s0);
        }
        if (vectorEnd < cols) {
            s0 = tailFma(a, r0, x, vectorEnd, cols, s0);
        }
        update(y, yOffset + i * incY, alpha, Simd.sum(s0), beta);
    }

    /**
     * {@code sum} plus the row's masked last vector times x's, fused: the tail of {@link #fourRows} and {@link
     * #oneRow}, apart so that fourRows stays small enough for C1: with the four masked loads inline, C1 runs out of
     * registers, the method never reaches C2, and the product runs on the Vector API's slow Java fallback.
     */
    private static FloatVector tailFma(MemorySegment a, long row, float[] x, int vectorEnd, int cols, FloatVector sum) {
        VectorMask<Float> tail = Simd.tail(vectorEnd, cols);
        return FloatVector.fromMemorySegment(FLOATS, a, row + (long) vectorEnd * Float.BYTES, ORDER, tail)
                .fma(FloatVector.fromArray(FLOATS, x, vectorEnd, tail), sum);
    }

    private static void update(MemorySegment y, long index, float alpha, float sum, float beta) {
        float dot = alpha * sum;
        y.setAtIndex(FLOAT, index, beta == 0f ? dot : dot + beta * y.getAtIndex(FLOAT, index));
    }

    /**
     * Columns {@code [from, to)} of {@code y = alpha·Aᵀ·x + beta·y}: each row of A, scaled by its x, is added into a
     * block of column sums; rows are visited in order, so every sum has one fixed order.
     */
    static void transposed(
            int rows,
            int from,
            int to,
            float alpha,
            MemorySegment a,
            long aOffset,
            int lda,
            float[] x,
            float beta,
            MemorySegment y,
            long yOffset,
            long incY) {
        float[] sums = COLUMN_SUMS.get();
        for (int c0 = from; c0 < to; c0 += Math.min(COLUMN_BLOCK, to - c0)) {
            int width = Math.min(COLUMN_BLOCK, to - c0);
            Arrays.fill(sums, 0, width, 0f);
            addRows(0, rows, c0, width, a, aOffset, lda, x, sums);
            store(alpha, sums, width, beta, y, yOffset + c0 * incY, incY);
        }
    }

    /** {@code y[j] = alpha·sums[j] + beta·y[j]} for {@code j < width}, y's element j at {@code yOffset + j·incY}. */
    private static void store(
            float alpha, float[] sums, int width, float beta, MemorySegment y, long yOffset, long incY) {
        for (int j = 0; j < width; j++) {
            long index = yOffset + j * incY;
            float value = alpha * sums[j];
            y.setAtIndex(FLOAT, index, beta == 0f ? value : value + beta * y.getAtIndex(FLOAT, index));
        }
    }

    /**
     * {@code sums[j] += Σ_i A[i][c0 + j]·x[i]} for rows {@code [r0, r1)} and {@code j < width}: four rows per pass over
     * the sums, in row order, so each sum sees the rows in the same order however the work is split.
     */
    private static void addRows(
            int r0, int r1, int c0, int width, MemorySegment a, long aOffset, int lda, float[] x, float[] sums) {
        int vectorEnd = width - width % LANES;
        VectorMask<Float> tail = FLOATS.indexInRange(vectorEnd, width);
        int i = r0;
        for (; i <= r1 - 4; i += 4) {
            long at = (aOffset + (long) i * lda + c0) * Float.BYTES;
            addFourRows(a, at, lda, x, i, sums, vectorEnd);
            if (vectorEnd < width) {
                for (int r = 0; r < 4; r++) {
                    addTail(a, at + (long) r * lda * Float.BYTES, x[i + r], sums, vectorEnd, tail);
                }
            }
        }
        for (; i < r1; i++) {
            long at = (aOffset + (long) i * lda + c0) * Float.BYTES;
            addRow(a, at, x[i], sums, vectorEnd);
            if (vectorEnd < width) {
                addTail(a, at, x[i], sums, vectorEnd, tail);
            }
        }
    }

    /**
     * {@code y = alpha·Aᵀ·x + beta·y} for A of {@code rows} (at least {@link #PANEL_MIN_ROWS}) × {@code width} (at most
     * {@link #PANEL_MAX_WIDTH}): each of {@link #PANELS} runs of contiguous rows into sums of its own, the panels' sums
     * then added in panel order and scaled.
     */
    private static void panels(
            int rows,
            int width,
            float alpha,
            MemorySegment a,
            long aOffset,
            int lda,
            float[] x,
            float beta,
            MemorySegment y,
            long yOffset,
            long incY,
            boolean parallel) {
        float[][] sums = PANEL_SUMS.get();
        if (sums[0].length < width) {
            for (int p = 0; p < PANELS; p++) {
                sums[p] = new float[width];
            }
        }
        int panelRows = Math.ceilDiv(rows, PANELS);
        Parallelism.forEach(PANELS, parallel, p -> {
            Arrays.fill(sums[p], 0, width, 0f);
            int from = p * panelRows;
            addRows(from, from + Math.min(panelRows, rows - from), 0, width, a, aOffset, lda, x, sums[p]);
        });
        float[] total = sums[0];
        for (int p = 1; p < PANELS; p++) {
            for (int j = 0; j < width; j++) {
                total[j] += sums[p][j];
            }
        }
        store(alpha, total, width, beta, y, yOffset, incY);
    }

    /**
     * {@code sums += x[i]·A[i] + … + x[i+3]·A[i+3]} over the whole vectors of one column block, the four rows from
     * byte {@code at} and {@code lda} floats apart, added in row order (so each sum sees the same operations as four
     * {@link #addRow} calls). Four rows at a time keep four streams of A in flight: one row at a time, each 4 KiB
     * stretch of a row would wait for the prefetcher to start again. The masked tail is
     * {@link #addTail}'s: with it here, C1 runs out of registers and the method never reaches C2.
     */
    private static void addFourRows(MemorySegment a, long at, int lda, float[] x, int i, float[] sums, int vectorEnd) {
        long step = (long) lda * Float.BYTES;
        FloatVector x0 = FloatVector.broadcast(FLOATS, x[i]);
        FloatVector x1 = FloatVector.broadcast(FLOATS, x[i + 1]);
        FloatVector x2 = FloatVector.broadcast(FLOATS, x[i + 2]);
        FloatVector x3 = FloatVector.broadcast(FLOATS, x[i + 3]);
        for (int j = 0; j < vectorEnd; j += LANES) {
            long from = at + (long) j * Float.BYTES;
            FloatVector s = FloatVector.fromArray(FLOATS, sums, j);
            s = FloatVector.fromMemorySegment(FLOATS, a, from, ORDER).fma(x0, s);
            s = FloatVector.fromMemorySegment(FLOATS, a, from + step, ORDER).fma(x1, s);
            s = FloatVector.fromMemorySegment(FLOATS, a, from + 2 * step, ORDER).fma(x2, s);
            s = FloatVector.fromMemorySegment(FLOATS, a, from + 3 * step, ORDER).fma(x3, s);
            s.intoArray(sums, j);
        }
    }

    /** {@code sums += x·A[i]} over the whole vectors of one column block, row i from byte {@code at}. */
    private static void addRow(MemorySegment a, long at, float x, float[] sums, int vectorEnd) {
        FloatVector xi = FloatVector.broadcast(FLOATS, x);
        for (int j = 0; j < vectorEnd; j += LANES) {
            FloatVector.fromMemorySegment(FLOATS, a, at + (long) j * Float.BYTES, ORDER)
                    .fma(xi, FloatVector.fromArray(FLOATS, sums, j))
                    .intoArray(sums, j);
        }
    }

    /** {@link #addRow} for the block's last, partial vector. */
    private static void addTail(
            MemorySegment a, long at, float x, float[] sums, int vectorEnd, VectorMask<Float> tail) {
        FloatVector.fromMemorySegment(FLOATS, a, at + (long) vectorEnd * Float.BYTES, ORDER, tail)
                .fma(FloatVector.broadcast(FLOATS, x), FloatVector.fromArray(FLOATS, sums, vectorEnd, tail))
                .intoArray(sums, vectorEnd, tail);
    }
}
