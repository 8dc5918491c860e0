package dev.panamax.kernels;

import java.util.Arrays;

/**
 * What {@link LayerNorm} and {@link RmsNorm} share: the backward driver that sums parameter gradients over rows in a
 * fixed order. Rows go in chunks of {@link #CHUNK}; each chunk sums its rows into a partial of its own (in row
 * order), and the partials are added to the gradients in chunk order. That order is the same whether the chunks run
 * on one thread or many, so the result is bit-identical for every thread count. On many threads the chunks go in
 * waves, each wave's partials computed in parallel and then added, so that the partials held at once do not grow with
 * the rows.
 */
final class Norms {
    // The lines (see Line) the kernels of this class stage their segment operands through, one per operand role.
    private static final ThreadLocal<Line> GRADIENT_LINE = Line.perThread();

    /** Rows per chunk: enough that adding a chunk's partial into the gradient costs little next to its rows. */
    static final int CHUNK = 32;

    /** Per-thread partials (of the calling thread, shared with its workers for one call). */
    static final Scratch PARTIALS = new Scratch();

    private Norms() {}

    /** The backward of rows {@code [from, to)}, adding each row's parameter gradients into {@code partial}. */
    @FunctionalInterface
    interface Chunk {
        /**
         * @param partial {@code sums} vectors of {@code cols} floats, from {@code at}: one per parameter gradient
         */
        void run(int from, int to, float[] partial, int at);
    }

    /**
     * Runs {@code body} over all rows in chunks and adds the partial sums to the gradients: the first {@code cols}
     * floats of each partial into {@code g0} at {@code g0Offset}, the next into {@code g1} (when not null).
     */
    static void backward(
            int rows, int cols, boolean parallel, Chunk body, Operand g0, long g0Offset, Operand g1, long g1Offset) {
        int sums = g1 == null ? 1 : 2;
        int stride = sums * cols;
        int chunks = Math.ceilDiv(rows, CHUNK);
        boolean split =
                parallel && chunks > 1 && Parallelism.threads() > 1 && (long) rows * cols >= Rows.PARALLEL_MIN_ELEMENTS;
        int wave = split ? wave(chunks, stride, Parallelism.threads()) : 1;
        float[] partials = PARTIALS.take(Math.multiplyExact(wave, stride));
        try {
            for (int first = 0; first < chunks; first += wave) {
                int count = Math.min(wave, chunks - first);
                int start = first;
                if (split) {
                    Parallelism.forEach(count, c -> chunk(rows, start + c, stride, body, partials, c * stride));
                }
                for (int c = 0; c < count; c++) {
                    if (!split) {
                        chunk(rows, start + c, stride, body, partials, 0);
                    }
                    addInto(cols, partials, c * stride, g0, g0Offset);
                    if (g1 != null) {
                        addInto(cols, partials, c * stride + cols, g1, g1Offset);
                    }
                }
            }
        } finally {
            PARTIALS.release();
        }
    }

    /**
     * Chunks per wave of a call split over {@code threads}: as many as {@link Scratch#RETAINED_FLOATS} floats of
     * partials hold, but at least four per thread, so that each wave keeps every thread busy.
     */
    static int wave(int chunks, int stride, int threads) {
        return (int) Math.min(chunks, Math.max(Scratch.RETAINED_FLOATS / stride, 4L * threads));
    }

    private static void chunk(int rows, int c, int stride, Chunk body, float[] partials, int at) {
        Arrays.fill(partials, at, at + stride, 0f);
        // In long: the last chunk's end passes Integer.MAX_VALUE when rows is within a chunk of it.
        body.run(c * CHUNK, (int) Math.min(rows, (c + 1L) * CHUNK), partials, at);
    }

    /** {@code g[j] += partial[at + j]} for {@code j < cols}; the chunk bodies' lines are done with by now. */
    private static void addInto(int cols, float[] partial, int at, Operand g, long gi) {
        Line gl = GRADIENT_LINE.get().update(g, gi, cols);
        // An exact multiply by 1 in the fused multiply-add: the same bits as g + partial.
        RowMath.axpy(cols, 1f, partial, at, gl.array, gl.offset);
        gl.commit();
    }
}
