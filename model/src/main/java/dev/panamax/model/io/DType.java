package dev.panamax.model.io;

/**
 * The element types of the safetensors format, with their sizes. Every type can be read and checked; the float
 * types {@link #F32}, {@link #F16} and {@link #BF16} can also be loaded as float32.
 */
public enum DType {
    /** Boolean, one byte. */
    BOOL(1),
    /** Unsigned 8-bit integer. */
    U8(1),
    /** Signed 8-bit integer. */
    I8(1),
    /** 8-bit float, 5 exponent bits. */
    F8_E5M2(1),
    /** 8-bit float, 4 exponent bits. */
    F8_E4M3(1),
    /** Signed 16-bit integer. */
    I16(2),
    /** Unsigned 16-bit integer. */
    U16(2),
    /** IEEE 754 half precision. */
    F16(2),
    /** bfloat16: the upper half of a float32. */
    BF16(2),
    /** Signed 32-bit integer. */
    I32(4),
    /** Unsigned 32-bit integer. */
    U32(4),
    /** IEEE 754 single precision. */
    F32(4),
    /** IEEE 754 double precision. */
    F64(8),
    /** Signed 64-bit integer. */
    I64(8),
    /** Unsigned 64-bit integer. */
    U64(8);

    private final int bytes;

    DType(int bytes) {
        this.bytes = bytes;
    }

    /**
     * Returns the size of one element.
     *
     * @return bytes per element
     */
    public int bytes() {
        return bytes;
    }

    /**
     * Returns whether elements of this type can be loaded as float32.
     *
     * @return true for F32, F16 and BF16
     */
    public boolean isFloat() {
        return this == F32 || this == F16 || this == BF16;
    }

    /**
     * Converts a float to this type's bits, rounding to nearest even.
     *
     * @param value the value
     * @return the bits in the low {@link #bytes()} bytes
     * @throws UnsupportedOperationException if this is not F32, F16 or BF16
     */
    public int fromFloat(float value) {
        return switch (this) {
            case F32 -> Float.floatToRawIntBits(value);
            case F16 -> Float.floatToFloat16(value) & 0xFFFF;
            case BF16 -> {
                int bits = Float.floatToRawIntBits(value);
                // Truncating a NaN's low bits could leave an infinity: keep it a (quiet) NaN instead.
                yield Float.isNaN(value)
                        ? (bits >>> 16) | 0x40
                        : ((bits + 0x7FFF + ((bits >>> 16) & 1)) >>> 16) & 0xFFFF;
            }
            default -> throw new UnsupportedOperationException(this + " is not a float type");
        };
    }

    /**
     * Converts this type's bits to a float, exactly.
     *
     * @param bits the bits, in the low {@link #bytes()} bytes
     * @return the value
     * @throws UnsupportedOperationException if this is not F32, F16 or BF16
     */
    public float toFloat(int bits) {
        return switch (this) {
            case F32 -> Float.intBitsToFloat(bits);
            case F16 -> Float.float16ToFloat((short) bits);
            case BF16 -> Float.intBitsToFloat(bits << 16);
            default -> throw new UnsupportedOperationException(this + " is not a float type");
        };
    }
}
