package dev.panamax.kernels;

import static dev.panamax.kernels.Simd.FLOAT;

import java.lang.foreign.MemorySegment;

/**
 * A matrix operand of a product as BLAS passes it: the storage, the index of element (0, 0) and the leading dimension
 * (floats between the starts of consecutive stored rows), all counted in floats. The storage is a segment; a {@code
 * float[]} comes as a heap segment over it and is used in place (see {@link Operand}). A vector whose elements are
 * {@code inc} apart is the single column {@code (data, offset, inc)}.
 *
 * @param data the storage
 * @param offset the index of element (0, 0)
 * @param ld the leading dimension
 */
record Matrix(MemorySegment data, long offset, int ld) {
    /** A matrix from index 0 of an array. */
    static Matrix of(float[] array, int ld) {
        return new Matrix(MemorySegment.ofArray(array), 0, ld);
    }

    /** The same storage from stored row {@code row} on. */
    Matrix fromRow(long row) {
        return new Matrix(data, offset + row * ld, ld);
    }

    /** The same storage from stored column {@code column} on. */
    Matrix fromColumn(long column) {
        return new Matrix(data, offset + column, ld);
    }

    /** The same matrix {@code floats} further on: the next matrix of a strided batch. */
    Matrix shifted(long floats) {
        return new Matrix(data, offset + floats, ld);
    }

    /** {@code M = beta·M} over the first {@code rows × columns}; M is not read when beta is 0, so NaN there does not survive. */
    void scale(float beta, int rows, int columns) {
        if (beta == 1f) {
            return;
        }
        for (int i = 0; i < rows; i++) {
            long row = offset + (long) i * ld;
            for (int j = 0; j < columns; j++) {
                data.setAtIndex(FLOAT, row + j, beta == 0f ? 0f : beta * data.getAtIndex(FLOAT, row + j));
            }
        }
    }
}
