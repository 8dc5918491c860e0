package dev.panamax.kernels;

import java.lang.foreign.MemorySegment;

/**
 * Products of float activations with a weight matrix in one of GGML's formats ({@link QuantizedMatrix}), read in place:
 * {@code Y = X·Wᵀ}, where W is {@code rows × columns}, each of the {@code tokens} rows of X holds {@code columns}
 * floats, and each row of Y {@code rows} floats. One token is the matrix-vector product of a decoding step.
 *
 * <p><b>What is computed.</b> The activations stay float32 (they are not quantized, as llama.cpp quantizes them to
 * Q8_0 blocks): the weights are widened to floats, and every product and sum is a float operation in a fixed order. For
 * F32, F16 and BF16, {@code y[t][r]} is the float dot product of row r's values with row t of X. For Q8_0 it is, as
 * GGML writes the block dot product, {@code Σ_b d_b·(Σ_{i in b} q_i·x_i)}: each block's integer values q times the
 * activations are summed in float, and that sum is multiplied by the block's scale d and added to the row's sum. For
 * Q4_0 each weight is first decoded to {@code d·(nibble − 8)}, which is exact in float, and the result is the float dot
 * product of the decoded row with the activations. Either is within {@code (columns + 2)·2⁻²⁴·Σ|w·x|} of the exact
 * value, w being the decoded weight {@code d·q}. IEEE arithmetic decides the special cases, block by block: a scale of
 * 0, or a subnormal one, is that exact value; a NaN scale, or a NaN activation, gives NaN; an infinite activation times
 * a zero weight is NaN. An infinite Q4_0 scale makes its block's weights ±∞, and NaN where the nibble is 8. An infinite
 * Q8_0 scale makes the result ±∞ or NaN: it multiplies its block's partial sums, one per vector lane, so partial sums
 * of both signs or a zero one (∞·0) give NaN, which of the two therefore depending on the vector width. A Q8_0 block's
 * sum is a float, so it overflows to infinity once {@code |Σ q·x|} passes {@code Float.MAX_VALUE} (activations beyond
 * about 10³⁴), even where d would bring the product back into range.
 *
 * <p><b>Many tokens.</b> From 16 tokens on (a prompt), the weights are decoded to floats ({@code d·q}, exact) 64 rows
 * and 1024 columns at a time and multiplied by {@link Gemm}'s SGEMM, whose register tiles reuse each weight for many
 * tokens. Each result is then the SGEMM's float dot product of the decoded row with the token's activations:
 * within the same bound, but not the same bits as a call of fewer tokens, and an infinite Q8_0 scale gives its block's
 * weights ±∞ (NaN where q is 0) rather than multiplying a block sum. Below that count a token's results do not depend
 * on the other tokens of the call.
 *
 * <p><b>Arguments.</b> Offsets and leading dimensions count floats: row t of X starts at float {@code xOffset + t·ldx},
 * row t of Y at {@code yOffset + t·ldy}. They are checked before anything is written, and every message names the
 * argument, its value and the bound it broke: negative sizes and too-small leading dimensions throw {@link
 * IllegalArgumentException}, extents past the end of an array or segment {@link IndexOutOfBoundsException}; Y must
 * share no byte with X or with the weights ({@link IllegalArgumentException}); a closed segment throws {@link
 * IllegalStateException}, one confined to another thread {@link WrongThreadException}. An X that is not a {@code
 * float[]} (nor a writable heap segment over one) is copied into an array, so its {@code tokens·columns} must then be
 * at most {@code 2³¹ − 9} ({@link IllegalArgumentException}).
 *
 * <p><b>Threads.</b> Large products split the rows of W over the threads of {@link Parallelism}; each element of Y is
 * computed by the same operations whatever the split, so results are bit-identical for every thread count. Calls may
 * come from any number of threads at once.
 */
public final class QuantizedProduct {
    /**
     * Rows of W per task of the decoded product, decoded {@link GemmDriver#KC} columns at a time: a panel of 256 KiB
     * that stays in L2 while the SGEMM packs it, and several of its micro-kernel's column tiles wide.
     */
    private static final int PANEL_ROWS = 64;

    private QuantizedProduct() {}

    static {
        VectorApi.require(); // a missing --add-modules flag is named before the first kernel fails to link
    }

    /**
     * {@code Y = X·Wᵀ} on arrays; as {@link #multiply(QuantizedMatrix, int, MemorySegment, long, int, MemorySegment,
     * long, int)}.
     *
     * @param w the weights, {@code rows × columns}
     * @param tokens the rows of X and of Y, at least 0
     * @param x the activations, {@code tokens × w.columns()}
     * @param xOffset index of X's first element in {@code x}
     * @param ldx floats from one row of X to the next, at least {@code w.columns()} (and 1)
     * @param y the result, {@code tokens × w.rows()}
     * @param yOffset index of Y's first element in {@code y}
     * @param ldy floats from one row of Y to the next, at least {@code w.rows()} (and 1)
     */
    public static void multiply(
            QuantizedMatrix w, int tokens, float[] x, int xOffset, int ldx, float[] y, int yOffset, int ldy) {
        multiply(w, tokens, Checks.wrap("x", x), xOffset, ldx, Checks.wrap("y", y), yOffset, ldy);
    }

    /**
     * {@code Y = X·Wᵀ}: {@code y[t][r] = Σ_c W[r][c]·x[t][c]} for every token {@code t < tokens} and row {@code r <
     * w.rows()}, on memory segments with offsets and leading dimensions in floats.
     *
     * @param w the weights, {@code rows × columns}
     * @param tokens the rows of X and of Y, at least 0
     * @param x the activations, {@code tokens × w.columns()} floats
     * @param xOffset index (in floats) of X's first element
     * @param ldx floats from one row of X to the next, at least {@code w.columns()} (and 1)
     * @param y the result, {@code tokens × w.rows()} floats; must be writable
     * @param yOffset index (in floats) of Y's first element
     * @param ldy floats from one row of Y to the next, at least {@code w.rows()} (and 1)
     */
    public static void multiply(
            QuantizedMatrix w,
            int tokens,
            MemorySegment x,
            long xOffset,
            int ldx,
            MemorySegment y,
            long yOffset,
            int ldy) {
        Checks.notNull("w", w);
        Checks.nonNegative("tokens", tokens);
        int rows = w.rows();
        int columns = w.columns();
        Checks.matrix("x", x, xOffset, tokens, "w.columns()", columns, "ldx", ldx, false);
        Checks.matrix("y", y, yOffset, tokens, "w.rows()", rows, "ldy", ldy, true);
        if (tokens == 0 || rows == 0) {
            return;
        }
        Checks.usable("w.data()", w.data(), w.byteSize());
        Checks.unshared(
                Checks.Strided.matrix("y", y, yOffset, tokens, rows, ldy),
                Checks.Strided.matrix("x", x, xOffset, tokens, columns, ldx),
                1);
        separateFromWeights(w, y, yOffset, tokens, ldy);
        // The vector loops read arrays: x in place when it is one, else staged once into this thread's buffer, which
        // the workers only read.
        Operand xs = Operand.of(x);
        float[] xArray;
        int xBase;
        int xStride;
        if (xs.array != null) {
            xArray = xs.array;
            xBase = Math.toIntExact(xs.arrayBase + xOffset);
            xStride = ldx;
        } else {
            xArray = QuantizedRows.STAGED.take(stagedLength(tokens, columns));
            Rows.copy(x, xOffset, ldx, tokens, columns, xArray);
            xBase = 0;
            xStride = columns;
        }
        boolean parallel =
                Parallelism.shareable(w.data(), y) && (long) tokens * rows * columns >= Rows.PARALLEL_MIN_ELEMENTS;
        boolean decoded = tokens >= QuantizedRows.DECODED_PANEL_TOKENS;
        int threads = parallel ? Parallelism.threads() : 1;
        // Decoded: panels of fixed rows whatever the thread count, so that each element's SGEMM is the same. Else tasks
        // of at least 64 rows, so that a hand-off to a worker buys enough work to pay for itself.
        int tasks = decoded ? Math.ceilDiv(rows, PANEL_ROWS) : Math.max(1, Math.min(4 * threads, rows / 64));
        try {
            Parallelism.forEach(tasks, threads > 1, task -> {
                int from = decoded ? task * PANEL_ROWS : (int) ((long) rows * task / tasks);
                int to = decoded ? Math.min(rows, from + PANEL_ROWS) : (int) ((long) rows * (task + 1) / tasks);
                QuantizedRows.multiply(w, tokens, xArray, xBase, xStride, y, yOffset, ldy, from, to);
            });
        } finally {
            QuantizedRows.STAGED.release();
        }
    }

    /** The floats of an X that is not a float array, which is copied into one: they must fit it. */
    private static int stagedLength(int tokens, int columns) {
        long floats = (long) tokens * columns;
        if (floats > Checks.MAX_ARRAY_LENGTH) {
            throw new IllegalArgumentException("x is not a float array, so it is copied into one: tokens (" + tokens
                    + ") × w.columns() (" + columns + ") = " + floats + " must be <= " + Checks.MAX_ARRAY_LENGTH);
        }
        return (int) floats;
    }

    /** Y, written, must share no byte with the weights, which are read all the while. */
    private static void separateFromWeights(QuantizedMatrix w, MemorySegment y, long yOffset, int tokens, int ldy) {
        long yBytes = Checks.matrixExtent(tokens, w.rows(), ldy) * Float.BYTES;
        MemorySegment written = y.asSlice(yOffset * Float.BYTES, yBytes);
        if (written.asOverlappingSlice(w.data().asSlice(w.byteOffset(), w.byteSize()))
                .isPresent()) {
            throw new IllegalArgumentException("y (from yOffset " + yOffset + ") shares memory with w.data() (from"
                    + " byteOffset " + w.byteOffset() + "): the output must not overlap the weights");
        }
    }
}
