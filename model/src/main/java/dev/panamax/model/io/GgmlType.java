package dev.panamax.model.io;

import java.util.Optional;

/**
 * The tensor types a GGUF file may declare, by GGML's type id: each type stores a row as blocks of {@link
 * #blockLength()} elements in {@link #bytesPerBlock()} bytes. Every type is known so that a file's byte ranges can be
 * checked and listed; which types a model can compute with is the backend's business.
 */
public enum GgmlType {
    /** IEEE float32. */
    F32(0, 1, 4),
    /** IEEE float16. */
    F16(1, 1, 2),
    /** 32 4-bit values and an fp16 scale. */
    Q4_0(2, 32, 18),
    /** 32 4-bit values, an fp16 scale and minimum. */
    Q4_1(3, 32, 20),
    /** 32 5-bit values and an fp16 scale. */
    Q5_0(6, 32, 22),
    /** 32 5-bit values, an fp16 scale and minimum. */
    Q5_1(7, 32, 24),
    /** 32 int8 values and an fp16 scale. */
    Q8_0(8, 32, 34),
    /** 32 int8 values, an fp16 scale and sum. */
    Q8_1(9, 32, 36),
    /** k-quant, 2 bits. */
    Q2_K(10, 256, 84),
    /** k-quant, 3 bits. */
    Q3_K(11, 256, 110),
    /** k-quant, 4 bits. */
    Q4_K(12, 256, 144),
    /** k-quant, 5 bits. */
    Q5_K(13, 256, 176),
    /** k-quant, 6 bits. */
    Q6_K(14, 256, 210),
    /** k-quant, 8 bits (intermediate). */
    Q8_K(15, 256, 292),
    /** i-quant. */
    IQ2_XXS(16, 256, 66),
    /** i-quant. */
    IQ2_XS(17, 256, 74),
    /** i-quant. */
    IQ3_XXS(18, 256, 98),
    /** i-quant. */
    IQ1_S(19, 256, 50),
    /** i-quant, non-linear 4 bits. */
    IQ4_NL(20, 32, 18),
    /** i-quant. */
    IQ3_S(21, 256, 110),
    /** i-quant. */
    IQ2_S(22, 256, 82),
    /** i-quant. */
    IQ4_XS(23, 256, 136),
    /** int8. */
    I8(24, 1, 1),
    /** int16. */
    I16(25, 1, 2),
    /** int32. */
    I32(26, 1, 4),
    /** int64. */
    I64(27, 1, 8),
    /** IEEE float64. */
    F64(28, 1, 8),
    /** i-quant. */
    IQ1_M(29, 256, 56),
    /** bfloat16. */
    BF16(30, 1, 2),
    /** ternary. */
    TQ1_0(34, 256, 54),
    /** ternary. */
    TQ2_0(35, 256, 66);

    private final int id;
    private final int blockLength;
    private final int bytesPerBlock;

    GgmlType(int id, int blockLength, int bytesPerBlock) {
        this.id = id;
        this.blockLength = blockLength;
        this.bytesPerBlock = bytesPerBlock;
    }

    /**
     * Returns GGML's id of the type, as a GGUF tensor info stores it.
     *
     * @return the id
     */
    public int id() {
        return id;
    }

    /**
     * Returns the elements of one block; a row's length is a multiple of it.
     *
     * @return the block length
     */
    public int blockLength() {
        return blockLength;
    }

    /**
     * Returns the bytes of one block.
     *
     * @return the block size
     */
    public int bytesPerBlock() {
        return bytesPerBlock;
    }

    /**
     * Returns the type with a GGML id.
     *
     * @param id the id
     * @return the type, empty for an id this reader does not know
     */
    public static Optional<GgmlType> byId(long id) {
        for (GgmlType type : values()) {
            if (type.id == id) {
                return Optional.of(type);
            }
        }
        return Optional.empty();
    }
}
