package dev.panamax.kernels;

import java.lang.foreign.MemorySegment;

/**
 * Rotary position embeddings (RoPE) with their cosine and sine tables, reusable for every call: the rows of a
 * {@code rows × (heads·headDim)} matrix are tokens at consecutive positions, each holding {@code heads} heads of
 * {@code headDim} floats, and each head's pairs {@code (a, b)} are rotated by {@code position·θ_k}, with {@code θ_k =
 * theta^(-2k/headDim)} for pair k:
 *
 * <ul>
 *   <li>{@link Pairing#ADJACENT}: pairs {@code (x[2k], x[2k+1])}, as in Meta's Llama and llama2.c;
 *   <li>{@link Pairing#HALVES}: pairs {@code (x[k], x[k + headDim/2])}, as in GPT-NeoX and Hugging Face.
 * </ul>
 *
 * <p>The tables are computed once, in double and rounded to float, for positions {@code [0, maxPositions)}. Row
 * {@code i} of a call has position {@code position + i}, so a KV-cache step passes its current position. The backward
 * rotates by the opposite angles (the rotation's transpose). Output may be the input itself (same offset and leading
 * dimension); another overlap throws {@link IllegalArgumentException}. Offsets count floats; arguments are checked
 * before anything is written; large calls run on the threads of {@link Parallelism}, with results independent of the
 * thread count.
 */
public final class Rope {
    // The lines (see Line) the kernels of this class stage their segment operands through, one per operand role.
    private static final ThreadLocal<Line> X_LINE = Line.perThread();
    private static final ThreadLocal<Line> Y_LINE = Line.perThread();

    static {
        VectorApi.require(); // a missing --add-modules flag is named before the first kernel fails to link
    }

    /** Which elements of a head form the pairs that rotate together. */
    public enum Pairing {
        /** Adjacent pairs {@code (x[2k], x[2k+1])}: Meta's Llama, llama2.c. */
        ADJACENT,
        /** Halves {@code (x[k], x[k + headDim/2])}: GPT-NeoX, Hugging Face. */
        HALVES
    }

    private final int headDim;
    private final int maxPositions;
    private final Pairing pairing;
    /** {@code cos} per position and element, {@code maxPositions × headDim}. */
    private final float[] cos;
    /** The sine, signed as each element's partner enters its result: {@code y = x·cos + partner·sin}. */
    private final float[] sin;

    /**
     * Computes the tables.
     *
     * @param headDim floats per head; even and at least 2
     * @param maxPositions the number of positions the tables cover, at least 0
     * @param theta the base of the frequencies (10000 in Llama 2 and GPT-NeoX, 500000 in Llama 3); finite, > 0
     * @param pairing which elements rotate together
     */
    public Rope(int headDim, int maxPositions, double theta, Pairing pairing) {
        if (headDim < 2 || headDim % 2 != 0) {
            throw new IllegalArgumentException("headDim (" + headDim + ") must be even and >= 2");
        }
        Checks.nonNegative("maxPositions", maxPositions);
        Checks.positive("theta", theta);
        this.headDim = headDim;
        this.maxPositions = maxPositions;
        this.pairing = Checks.notNull("pairing", pairing);
        long size = (long) maxPositions * headDim;
        if (size > Integer.MAX_VALUE - 8) {
            throw new IllegalArgumentException("maxPositions (" + maxPositions + ") × headDim (" + headDim
                    + ") must be <= " + (Integer.MAX_VALUE - 8) + ", the most floats a Java array holds");
        }
        cos = new float[(int) size];
        sin = new float[(int) size];
        int half = headDim / 2;
        for (int p = 0; p < maxPositions; p++) {
            for (int j = 0; j < headDim; j++) {
                boolean adjacent = pairing == Pairing.ADJACENT;
                int k = adjacent ? j / 2 : j % half;
                boolean first = adjacent ? j % 2 == 0 : j < half;
                double angle = p * Math.pow(theta, -2.0 * k / headDim);
                cos[p * headDim + j] = (float) Math.cos(angle);
                sin[p * headDim + j] = (float) (first ? -Math.sin(angle) : Math.sin(angle));
            }
        }
    }

    /**
     * Rotates x into y, on arrays.
     *
     * @param rows number of tokens, at least 0
     * @param heads heads per token, at least 0
     * @param position the position of the first row; {@code position + rows <= maxPositions}
     * @param x the input, {@code rows × (heads·headDim)}
     * @param xOffset index of x's first element
     * @param ldx leading dimension of x: at least {@code heads·headDim}
     * @param y the output; may be x itself
     * @param yOffset index of y's first element
     * @param ldy leading dimension of y: at least {@code heads·headDim}
     */
    public void forward(
            int rows, int heads, int position, float[] x, int xOffset, int ldx, float[] y, int yOffset, int ldy) {
        forward(rows, heads, position, Checks.wrap("x", x), xOffset, ldx, Checks.wrap("y", y), yOffset, ldy);
    }

    /**
     * Rotates x into y, on memory segments; as {@link #forward(int, int, int, float[], int, int, float[], int, int)}.
     *
     * @param rows number of tokens, at least 0
     * @param heads heads per token, at least 0
     * @param position the position of the first row; {@code position + rows <= maxPositions}
     * @param x the input
     * @param xOffset index (in floats) of x's first element
     * @param ldx leading dimension of x: at least {@code heads·headDim}
     * @param y the output; may be x itself; must be writable
     * @param yOffset index (in floats) of y's first element
     * @param ldy leading dimension of y: at least {@code heads·headDim}
     */
    public void forward(
            int rows,
            int heads,
            int position,
            MemorySegment x,
            long xOffset,
            int ldx,
            MemorySegment y,
            long yOffset,
            int ldy) {
        run(1f, rows, heads, position, x, xOffset, ldx, y, yOffset, ldy);
    }

    /**
     * The gradient of {@link #forward(int, int, int, float[], int, int, float[], int, int) forward}, on arrays: dy
     * rotated by the opposite angles.
     *
     * @param rows number of tokens, at least 0
     * @param heads heads per token, at least 0
     * @param position the forward's first position
     * @param dy the gradient with respect to the output
     * @param dyOffset index of dy's first element
     * @param lddy leading dimension of dy: at least {@code heads·headDim}
     * @param dx the gradient with respect to the input, overwritten; may be dy itself
     * @param dxOffset index of dx's first element
     * @param lddx leading dimension of dx: at least {@code heads·headDim}
     */
    public void backward(
            int rows, int heads, int position, float[] dy, int dyOffset, int lddy, float[] dx, int dxOffset, int lddx) {
        backward(rows, heads, position, Checks.wrap("dy", dy), dyOffset, lddy, Checks.wrap("dx", dx), dxOffset, lddx);
    }

    /**
     * The gradient of the rotation on memory segments; as {@link #backward(int, int, int, float[], int, int, float[],
     * int, int)}.
     *
     * @param rows number of tokens, at least 0
     * @param heads heads per token, at least 0
     * @param position the forward's first position
     * @param dy the gradient with respect to the output
     * @param dyOffset index (in floats) of dy's first element
     * @param lddy leading dimension of dy: at least {@code heads·headDim}
     * @param dx the gradient with respect to the input, overwritten; may be dy itself; must be writable
     * @param dxOffset index (in floats) of dx's first element
     * @param lddx leading dimension of dx: at least {@code heads·headDim}
     */
    public void backward(
            int rows,
            int heads,
            int position,
            MemorySegment dy,
            long dyOffset,
            int lddy,
            MemorySegment dx,
            long dxOffset,
            int lddx) {
        run(-1f, rows, heads, position, dy, dyOffset, lddy, dx, dxOffset, lddx);
    }

    /**
     * Returns the number of floats per head.
     *
     * @return headDim
     */
    public int headDim() {
        return headDim;
    }

    /**
     * Returns how many positions the tables cover.
     *
     * @return maxPositions
     */
    public int maxPositions() {
        return maxPositions;
    }

    /**
     * Returns which elements rotate together.
     *
     * @return the pairing
     */
    public Pairing pairing() {
        return pairing;
    }

    /** Rotates by {@code sign·angle}: 1 for the forward, -1 for the backward. */
    private void run(
            float sign,
            int rows,
            int heads,
            int position,
            MemorySegment x,
            long xOffset,
            int ldx,
            MemorySegment y,
            long yOffset,
            int ldy) {
        Checks.nonNegative("rows", rows, "heads", heads, "position", position);
        if ((long) position + rows > maxPositions) {
            throw new IndexOutOfBoundsException(
                    "position (" + position + ") + rows (" + rows + ") must be <= maxPositions (" + maxPositions + ")");
        }
        if ((long) heads * headDim > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("heads (" + heads + ") × headDim (" + headDim + ") must be <= "
                    + Integer.MAX_VALUE + ", the most floats a row can hold");
        }
        int cols = heads * headDim;
        String in = sign > 0 ? "x" : "dy";
        String out = sign > 0 ? "y" : "dx";
        Checks.matrix(in, x, xOffset, rows, "heads·headDim", cols, "ld" + in, ldx, false);
        Checks.matrix(out, y, yOffset, rows, "heads·headDim", cols, "ld" + out, ldy, true);
        Checks.inPlaceOrSeparate(
                Checks.Strided.matrix(out, y, yOffset, rows, cols, ldy),
                Checks.Strided.matrix(in, x, xOffset, rows, cols, ldx));
        Operand xs = Operand.of(x);
        Operand ys = Operand.of(y);
        Rows.forEach(rows, (long) rows * cols, Parallelism.shareable(x, y), (from, to) -> {
            for (int i = from; i < to; i++) {
                int table = (position + i) * headDim;
                Line xl = X_LINE.get().read(xs, xOffset + (long) i * ldx, cols);
                Line yl = Y_LINE.get().write(ys, yOffset + (long) i * ldy, cols);
                for (int h = 0; h < heads; h++) {
                    int xi = xl.offset + h * headDim;
                    int yi = yl.offset + h * headDim;
                    if (pairing == Pairing.ADJACENT) {
                        RopeRows.adjacent(headDim, sign, cos, sin, table, xl.array, xi, yl.array, yi);
                    } else {
                        RopeRows.halves(headDim / 2, sign, cos, sin, table, xl.array, xi, yl.array, yi);
                    }
                }
                yl.commit();
            }
        });
    }
}
