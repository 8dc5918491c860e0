package dev.panamax.kernels;

import java.lang.foreign.MemorySegment;

/**
 * A strided view of a rank-4 float tensor {@code [batch, heads, rows, width]} whose last dimension is contiguous:
 * element {@code (b, h, r, c)} sits at index {@code offset + b·batchStride + h·headStride + r·rowStride + c} (counted
 * in floats) of an array or a memory segment. Strides make a packed QKV buffer, a KV cache with room to spare, or a
 * mask broadcast over batch and heads (stride 0) usable without copies.
 *
 * @param data the storage, a heap segment over a {@code float[]} or a native segment
 * @param offset index of element (0, 0, 0, 0)
 * @param batchStride distance between consecutive batch entries
 * @param headStride distance between consecutive heads
 * @param rowStride distance between consecutive rows
 */
public record TensorView(MemorySegment data, long offset, long batchStride, long headStride, long rowStride) {
    /**
     * Checks that the view is well-formed: storage present and offset and strides not negative.
     *
     * @throws NullPointerException if {@code data} is null
     * @throws IllegalArgumentException if the offset or a stride is negative
     */
    public TensorView {
        Checks.notNull("data", data);
        Checks.nonNegative("offset", offset);
        Checks.nonNegative("batchStride", batchStride, "headStride", headStride, "rowStride", rowStride);
    }

    /**
     * A strided view of an array.
     *
     * @param array the storage
     * @param offset index of element (0, 0, 0, 0)
     * @param batchStride distance between batch entries
     * @param headStride distance between heads
     * @param rowStride distance between rows
     * @return the view
     */
    public static TensorView of(float[] array, long offset, long batchStride, long headStride, long rowStride) {
        return new TensorView(
                MemorySegment.ofArray(Checks.notNull("array", array)), offset, batchStride, headStride, rowStride);
    }

    /**
     * A dense {@code [batch, heads, rows, width]} tensor starting at index 0 of an array.
     *
     * @param array the storage
     * @param heads heads per batch entry
     * @param rows rows per head
     * @param width elements per row
     * @return the view
     */
    public static TensorView dense(float[] array, int heads, int rows, int width) {
        checkShape(heads, rows, width);
        return of(array, 0, (long) heads * rows * width, (long) rows * width, width);
    }

    /**
     * A dense {@code [batch, heads, rows, width]} tensor starting at byte 0 of a segment.
     *
     * @param segment the storage
     * @param heads heads per batch entry
     * @param rows rows per head
     * @param width elements per row
     * @return the view
     */
    public static TensorView dense(MemorySegment segment, int heads, int rows, int width) {
        checkShape(heads, rows, width);
        return new TensorView(segment, 0, (long) heads * rows * width, (long) rows * width, width);
    }

    private static void checkShape(int heads, int rows, int width) {
        Checks.nonNegative("heads", heads, "rows", rows, "width", width);
        try {
            Math.multiplyExact(Math.multiplyExact((long) heads, rows), width);
        } catch (ArithmeticException e) {
            throw new IllegalArgumentException(
                    "heads (" + heads + ") × rows (" + rows + ") × width (" + width + ") must fit a long", e);
        }
    }

    /**
     * Floats from the offset to the end of the last row of a non-empty {@code [batch, heads, rows, width]} tensor,
     * saturated at {@code Long.MAX_VALUE}: huge strides must fail a range check, not wrap around and pass it.
     */
    long span(int batch, int heads, int rows, int width) {
        return Checks.saturatedSum(
                Checks.saturatedSum(
                        Checks.saturatedProduct(batch - 1L, batchStride),
                        Checks.saturatedProduct(heads - 1L, headStride)),
                Checks.saturatedSum(Checks.saturatedProduct(rows - 1L, rowStride), width));
    }

    /** Index of the first element of row {@code (b, h, r)}. */
    long row(int b, int h, int r) {
        return offset + b * batchStride + h * headStride + r * rowStride;
    }

    /**
     * Head {@code (b, h)} from row {@code r} on as a product's operand; the row stride must fit an int (checked by the
     * caller).
     */
    Matrix matrix(int b, int h, int r) {
        return new Matrix(data, row(b, h, r), (int) rowStride);
    }

    /**
     * Checks that a {@code [batch, heads, rows, width]} tensor fits the storage and, for an output, that no two
     * elements share an index.
     */
    void check(String name, int batch, int heads, int rows, int width, boolean output) {
        if (batch == 0 || heads == 0 || rows == 0 || width == 0) {
            return;
        }
        Checks.range(
                name,
                data,
                name + ".offset",
                offset,
                span(batch, heads, rows, width),
                name + " [" + batch + ", " + heads + ", " + rows + ", " + width + "]");
        if (output) {
            Checks.writable(name, data);
            // Sufficient for disjointness: taking dimensions by increasing stride, each stride clears the extent of
            // everything inside it.
            long[][] dims = {{rows, rowStride}, {heads, headStride}, {batch, batchStride}};
            java.util.Arrays.sort(dims, java.util.Comparator.comparingLong(d -> d[1]));
            long extent = width;
            for (long[] dim : dims) {
                if (dim[0] > 1) {
                    if (dim[1] < extent) {
                        throw new IllegalArgumentException(name + "'s strides (batch " + batchStride + ", head "
                                + headStride + ", row " + rowStride + ") make elements overlap: a stride of "
                                + dim[1] + " is less than the " + extent + " elements inside it");
                    }
                    extent = dim[1] * (dim[0] - 1) + extent;
                }
            }
        }
    }
}
