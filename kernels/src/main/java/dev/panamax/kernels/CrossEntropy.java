package dev.panamax.kernels;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;

/**
 * Fused softmax and negative log-likelihood over rows of logits with integer targets: the loss of a language model's
 * last layer, with its gradient written in the same pass.
 *
 * <p>For each row {@code i} with target {@code t = targets[i]} the loss is {@code log Σⱼ exp(xᵢⱼ) - xᵢₜ}, computed
 * stably as {@code (max - xᵢₜ) + log Σ exp(xᵢⱼ - max)}; the call returns the mean over the rows whose target is not
 * {@code ignoreIndex} (0 when every row is ignored). When {@code dlogits} is given it receives the gradient of that
 * mean: {@code (softmax(xᵢ) - onehot(t)) / count} on counted rows and 0 on ignored ones. {@code dlogits} may be the
 * logits themselves (same offset and leading dimension), to save the memory of a second vocabulary-wide tensor;
 * another overlap throws {@link IllegalArgumentException}.
 *
 * <p>A NaN logit makes its row's loss (hence the mean) and gradient NaN. A row whose logits are all -∞ has a NaN loss
 * (-∞ - -∞); its softmax counts as zeros, as {@link Softmax} gives for a fully masked row, so its gradient is
 * {@code -1/count} at the target and 0 elsewhere, at every row width. Targets are checked before anything is
 * written: each must be in {@code [0, cols)} or equal {@code ignoreIndex}. Rows are processed in parallel for large
 * inputs, 65536 at a time; each row's loss is kept and they are summed in row order, so the result is bit-identical for
 * every thread count.
 */
public final class CrossEntropy {
    // The lines (see Line) the kernels of this class stage their segment operands through, one per operand role.
    private static final ThreadLocal<Line> DLOGITS_LINE = Line.perThread();
    private static final ThreadLocal<Line> LOGITS_LINE = Line.perThread();

    static {
        VectorApi.require(); // a missing --add-modules flag is named before the first kernel fails to link
    }

    /**
     * Rows whose losses a call keeps at once: the rows go in chunks of this many, each chunk's losses added in row
     * order before the next, so that a thread holds 512 KiB of losses however many rows a call has.
     */
    static final int LOSS_CHUNK_ROWS = 1 << 16;

    /** Per thread: the losses of a chunk's rows, so that they can be summed in a fixed order. */
    static final ThreadLocal<double[]> LOSSES = ThreadLocal.withInitial(() -> new double[0]);

    /**
     * Floats per chunk of {@link #wideRow}: 32 KiB, an L1's worth.
     */
    static final int CHUNK = 8192;

    /** Per thread: each chunk's maximum and sum in {@link #wideRow}, in pairs. */
    private static final ThreadLocal<float[][]> CHUNK_STATS = ThreadLocal.withInitial(() -> new float[1][0]);

    private CrossEntropy() {}

    /**
     * The mean cross-entropy loss of {@code rows} rows of logits, on arrays, and optionally its gradient.
     *
     * @param rows number of rows (tokens), at least 0
     * @param cols number of classes (the vocabulary size), at least 0
     * @param logits the logits, {@code rows × cols}
     * @param logitsOffset index of the first logit
     * @param ldLogits leading dimension of logits: at least {@code cols}
     * @param targets the target class of each row
     * @param targetsOffset index of the first target
     * @param ignoreIndex a target value that excludes its row from the loss (e.g. -100 for padding)
     * @param dlogits where to write the gradient of the mean loss, or null for the loss alone; may be logits itself
     * @param dlogitsOffset index of dlogits' first element
     * @param ldDlogits leading dimension of dlogits: at least {@code cols} (unused when dlogits is null)
     * @return the mean loss over the rows not ignored, 0 if there are none
     */
    public static float forward(
            int rows,
            int cols,
            float[] logits,
            int logitsOffset,
            int ldLogits,
            int[] targets,
            int targetsOffset,
            int ignoreIndex,
            float[] dlogits,
            int dlogitsOffset,
            int ldDlogits) {
        return forward(
                rows,
                cols,
                Checks.wrap("logits", logits),
                logitsOffset,
                ldLogits,
                Checks.wrap("targets", targets),
                targetsOffset,
                ignoreIndex,
                dlogits == null ? null : MemorySegment.ofArray(dlogits),
                dlogitsOffset,
                ldDlogits);
    }

    /**
     * The mean cross-entropy loss on memory segments, and optionally its gradient; as {@link #forward(int, int,
     * float[], int, int, int[], int, int, float[], int, int)}. Targets are 32-bit ints in native byte order.
     *
     * @param rows number of rows (tokens), at least 0
     * @param cols number of classes (the vocabulary size), at least 0
     * @param logits the logits, {@code rows × cols}
     * @param logitsOffset index (in floats) of the first logit
     * @param ldLogits leading dimension of logits: at least {@code cols}
     * @param targets the target class of each row, as ints
     * @param targetsOffset index (in ints) of the first target
     * @param ignoreIndex a target value that excludes its row from the loss
     * @param dlogits where to write the gradient of the mean loss, or null for the loss alone; must be writable
     * @param dlogitsOffset index (in floats) of dlogits' first element
     * @param ldDlogits leading dimension of dlogits: at least {@code cols} (unused when dlogits is null)
     * @return the mean loss over the rows not ignored, 0 if there are none
     */
    public static float forward(
            int rows,
            int cols,
            MemorySegment logits,
            long logitsOffset,
            int ldLogits,
            MemorySegment targets,
            long targetsOffset,
            int ignoreIndex,
            MemorySegment dlogits,
            long dlogitsOffset,
            int ldDlogits) {
        Checks.nonNegative("rows", rows, "cols", cols);
        Checks.matrix("logits", logits, logitsOffset, rows, cols, "ldLogits", ldLogits, false);
        Checks.intRange("targets", targets, "targetsOffset", targetsOffset, rows, "targets");
        if (dlogits != null) {
            Checks.matrix("dlogits", dlogits, dlogitsOffset, rows, cols, "ldDlogits", ldDlogits, true);
            Checks.Strided gradient = Checks.Strided.matrix("dlogits", dlogits, dlogitsOffset, rows, cols, ldDlogits);
            Checks.inPlaceOrSeparate(
                    gradient, Checks.Strided.matrix("logits", logits, logitsOffset, rows, cols, ldLogits));
            // Targets are read again as rows are written: the gradient must not overlap them either.
            Checks.separate(gradient, Checks.Strided.vector("targets", targets, targetsOffset, rows));
        }
        int count = 0;
        for (int i = 0; i < rows; i++) {
            int target = targets.getAtIndex(ValueLayout.JAVA_INT_UNALIGNED, targetsOffset + i);
            if (target == ignoreIndex) {
                continue;
            }
            if (target < 0 || target >= cols) {
                throw new IndexOutOfBoundsException("targets[" + (targetsOffset + i) + "] (" + target
                        + ") must be in [0, cols (" + cols + ")) or equal ignoreIndex (" + ignoreIndex + ")");
            }
            count++;
        }
        double[] losses = losses(Math.min(rows, LOSS_CHUNK_ROWS));
        float weight = count == 0 ? 0f : (float) (1.0 / count);
        boolean parallel = Parallelism.shareable(logits)
                && Parallelism.shareable(targets)
                && (dlogits == null || Parallelism.shareable(dlogits));
        Operand xs = Operand.of(logits);
        Operand ds = Operand.of(dlogits);
        // One sum, over the rows in order: the chunks change when a loss is added, not the order of the additions.
        double sum = 0;
        for (int first = 0; first < rows; first += Math.min(LOSS_CHUNK_ROWS, rows - first)) {
            int start = first;
            int chunk = Math.min(LOSS_CHUNK_ROWS, rows - first);
            Rows.forEach(chunk, (long) chunk * cols, parallel, (from, to) -> {
                for (int i = start + from; i < start + to; i++) {
                    int target = targets.getAtIndex(ValueLayout.JAVA_INT_UNALIGNED, targetsOffset + i);
                    Line d = ds == null
                            ? null
                            : DLOGITS_LINE.get().write(ds, dlogitsOffset + (long) i * ldDlogits, cols);
                    if (target == ignoreIndex) {
                        losses[i - start] = 0;
                        if (d != null) {
                            Arrays.fill(d.array, d.offset, d.offset + cols, 0f);
                        }
                    } else {
                        Line x = LOGITS_LINE.get().read(xs, logitsOffset + (long) i * ldLogits, cols);
                        losses[i - start] = d == null
                                ? row(cols, x.array, x.offset, target, weight, null, 0)
                                : row(cols, x.array, x.offset, target, weight, d.array, d.offset);
                    }
                    if (d != null) {
                        d.commit();
                    }
                }
            });
            for (int i = 0; i < chunk; i++) {
                sum += losses[i];
            }
        }
        return count == 0 ? 0f : (float) (sum / count);
    }

    private static double[] losses(int rows) {
        if (LOSSES.get().length < rows) {
            LOSSES.set(new double[rows]);
        }
        return LOSSES.get();
    }

    /**
     * One row's loss; with {@code d} given, writes {@code weight·(softmax - onehot(target))} there. The target logit
     * is read first, since d may be the logits.
     */
    static double row(int cols, float[] x, int xi, int target, float weight, float[] d, int di) {
        float logit = x[xi + target];
        double logSumExp;
        if (cols > CHUNK) {
            logSumExp = wideRow(cols, weight, x, xi, d, di);
        } else {
            float max = RowMath.max(cols, 1f, x, xi);
            if (max == Float.NEGATIVE_INFINITY) {
                // Every logit -∞: its softmax counts as zeros, as in wideRow (exp(x - max) would be NaN).
                if (d != null) {
                    Arrays.fill(d, di, di + cols, 0f);
                }
                logSumExp = max;
            } else {
                float sum = RowMath.expSum(cols, 1f, max, x, xi, d, di);
                if (d != null) {
                    RowMath.scale(cols, weight / sum, d, di);
                }
                logSumExp = max + Math.log(sum);
            }
        }
        if (d != null) {
            d[di + target] -= weight;
        }
        return logSumExp - logit;
    }

    /**
     * {@code y = weight·softmax(x)} over a row of {@code n > CHUNK} floats (y may be x itself, or null to compute
     * only the result), returning {@code log Σ exp(x)}. A row whose every entry is -∞ gives zeros and
     * -∞.
     *
     * <p>The row goes in chunks of {@link #CHUNK}, each exponentiated against its own maximum while the next chunk's
     * maximum is taken in the same pass, then rescaled by {@code weight·exp(its max - the row's max)/sum} once those
     * are known: the next chunk streams from memory while this one computes, and x is read a second time from L1,
     * not L2. Rows that fit L1 keep {@link #row}, for which the chunking would be overhead. Chunk sums combine in
     * double, in chunk order, so the loss does not depend on y being given.
     */
    private static double wideRow(int n, float weight, float[] x, int xi, float[] y, int yi) {
        int chunks = Math.ceilDiv(n, CHUNK);
        float[] stats = chunkStats(chunks);
        // The first chunk takes the remainder, so that none is longer than the next: the fused pass reads as far into
        // the next chunk as into its own. The last chunk passes itself as the next one.
        int first = n - (chunks - 1) * CHUNK;
        int length = first;
        float max = RowMath.max(length, 1f, x, xi);
        float rowMax = Float.NEGATIVE_INFINITY;
        for (int c = 0, at = 0; c < chunks; c++) {
            boolean last = c + 1 == chunks;
            int nextAt = last ? at : at + length;
            int nextLength = last ? length : CHUNK;
            float sum = 0f;
            float nextMax;
            if (max == Float.NEGATIVE_INFINITY) {
                // Every entry -∞: the chunk's terms are all 0, and exp(x - max) would be NaN.
                if (y != null) {
                    Arrays.fill(y, yi + at, yi + at + length, 0f);
                }
                nextMax = RowMath.max(nextLength, 1f, x, xi + nextAt);
            } else if (y == null) {
                sum = RowMath.expSum(length, 1f, max, x, xi + at, null, 0);
                nextMax = RowMath.max(nextLength, 1f, x, xi + nextAt);
            } else {
                long sumAndNextMax =
                        RowMath.expSumAndNextMax(length, 1f, max, x, xi + at, y, yi + at, nextLength, x, xi + nextAt);
                sum = RowMath.sumOf(sumAndNextMax);
                nextMax = RowMath.nextMaxOf(sumAndNextMax);
            }
            stats[2 * c] = max;
            stats[2 * c + 1] = sum;
            rowMax = Math.max(rowMax, max);
            at = nextAt;
            length = nextLength;
            max = nextMax;
        }
        if (rowMax == Float.NEGATIVE_INFINITY) {
            return Double.NEGATIVE_INFINITY;
        }
        double total = 0;
        for (int c = 0; c < chunks; c++) {
            total += stats[2 * c + 1] * Math.exp((double) stats[2 * c] - rowMax);
        }
        if (y != null) {
            for (int c = 0, at = 0, size = first; c < chunks; c++, at += size, size = CHUNK) {
                if (stats[2 * c] != Float.NEGATIVE_INFINITY) {
                    double factor = weight * Math.exp((double) stats[2 * c] - rowMax) / total;
                    RowMath.scale(size, (float) factor, y, yi + at);
                }
            }
        }
        return rowMax + Math.log(total);
    }

    /** This thread's {@link #CHUNK_STATS} array, grown to hold {@code chunks} pairs. */
    private static float[] chunkStats(int chunks) {
        float[][] holder = CHUNK_STATS.get();
        if (holder[0].length < 2 * chunks) {
            holder[0] = new float[2 * chunks];
        }
        return holder[0];
    }
}
