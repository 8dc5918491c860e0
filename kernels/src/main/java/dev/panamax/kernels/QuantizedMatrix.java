package dev.panamax.kernels;

import java.lang.foreign.MemorySegment;

/**
 * A {@code rows × columns} weight matrix stored row by row in one {@link WeightFormat}, read in place: row r starts at
 * byte {@code byteOffset + r·format.rowBytes(columns)} of {@code data}, typically a read-only mapped file. The bytes
 * are not copied and not checked (any bit pattern is a value); the shape is checked on construction.
 *
 * @param format the layout of every row
 * @param data the memory that holds the matrix
 * @param byteOffset the byte of {@code data} where row 0 starts
 * @param rows the number of rows, at least 0
 * @param columns the elements per row, at least 0 and a multiple of {@code format.blockLength()}
 */
public record QuantizedMatrix(WeightFormat format, MemorySegment data, long byteOffset, int rows, int columns) {
    /**
     * Checks the shape against the memory.
     *
     * @throws NullPointerException if {@code format} or {@code data} is null
     * @throws IllegalArgumentException if {@code rows} or {@code columns} is negative, or {@code columns} is not a
     *     whole number of blocks
     * @throws IndexOutOfBoundsException if {@code byteOffset} is negative or the rows run past the end of {@code data}
     */
    public QuantizedMatrix {
        Checks.notNull("format", format, "data", data);
        Checks.nonNegative("rows", rows);
        long rowBytes = format.rowBytes(columns);
        Checks.byteRange(
                "data",
                data,
                "byteOffset",
                byteOffset,
                Checks.saturatedProduct(rows, rowBytes),
                rows + " rows of " + columns + " " + format + " columns");
    }

    /**
     * Returns the bytes one row takes.
     *
     * @return {@code format().rowBytes(columns())}
     */
    public long rowBytes() {
        return format.rowBytes(columns);
    }

    /**
     * Returns the bytes the whole matrix takes.
     *
     * @return {@code rows() · rowBytes()}
     */
    public long byteSize() {
        return rows * rowBytes();
    }
}
