package dev.panamax.kernels;

/**
 * The layouts of a weight matrix's rows that {@link QuantizedProduct} reads, as GGML and GGUF define them
 * (little-endian). Each row is a run of blocks; a block holds {@link #blockLength()} elements in {@link
 * #bytesPerBlock()} bytes.
 *
 * <ul>
 *   <li>{@link #F32}: one IEEE binary32 per element.
 *   <li>{@link #F16}: one IEEE binary16 per element.
 *   <li>{@link #BF16}: one bfloat16 (the top half of a binary32) per element.
 *   <li>{@link #Q8_0}: blocks of 32 elements in 34 bytes: a binary16 scale d, then 32 signed bytes q; element i is
 *       {@code d·q[i]}.
 *   <li>{@link #Q4_0}: blocks of 32 elements in 18 bytes: a binary16 scale d, then 16 bytes; byte j holds element j in
 *       its low four bits and element {@code j + 16} in its high four; an element is {@code d·(nibble − 8)}.
 * </ul>
 */
public enum WeightFormat {
    /** IEEE binary32, 4 bytes per element. */
    F32(1, 4),
    /** IEEE binary16, 2 bytes per element. */
    F16(1, 2),
    /** bfloat16, 2 bytes per element. */
    BF16(1, 2),
    /** 32 signed bytes and one binary16 scale per block of 32 elements. */
    Q8_0(32, 34),
    /** 32 four-bit values (offset by 8) and one binary16 scale per block of 32 elements. */
    Q4_0(32, 18);

    private final int blockLength;
    private final int bytesPerBlock;

    WeightFormat(int blockLength, int bytesPerBlock) {
        this.blockLength = blockLength;
        this.bytesPerBlock = bytesPerBlock;
    }

    /**
     * Returns the number of elements in one block.
     *
     * @return 32 for {@link #Q8_0} and {@link #Q4_0}, 1 for the others
     */
    public int blockLength() {
        return blockLength;
    }

    /**
     * Returns the bytes one block takes.
     *
     * @return 4 for {@link #F32}, 2 for {@link #F16} and {@link #BF16}, 34 for {@link #Q8_0}, 18 for {@link #Q4_0}
     */
    public int bytesPerBlock() {
        return bytesPerBlock;
    }

    /**
     * Returns the bytes one row of {@code columns} elements takes.
     *
     * @param columns elements per row: at least 0 and a multiple of {@link #blockLength()}
     * @return {@code columns / blockLength() · bytesPerBlock()}
     * @throws IllegalArgumentException if {@code columns} is negative or not a whole number of blocks
     */
    public long rowBytes(int columns) {
        if (columns < 0) {
            throw new IllegalArgumentException("columns (" + columns + ") must be >= 0");
        }
        if (columns % blockLength != 0) {
            throw new IllegalArgumentException("columns (" + columns + ") must be a multiple of " + blockLength
                    + ": a row of " + this + " is a whole number of blocks of " + blockLength + " elements");
        }
        return (long) (columns / blockLength) * bytesPerBlock;
    }
}
