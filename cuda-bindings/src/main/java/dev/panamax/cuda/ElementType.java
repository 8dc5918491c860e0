package dev.panamax.cuda;

import dev.panamax.cuda.ffi.CudaFfi;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * The element type of a {@link DeviceBuffer} or {@link PinnedBuffer}. Copies from and to {@code float[]} convert:
 * to half and bfloat16 by rounding to nearest even, back exactly.
 */
public enum ElementType {
    /** IEEE 754 binary32, {@code CUDA_R_32F}. */
    FLOAT(Float.BYTES, CudaFfi.CUDA_R_32F()),
    /** IEEE 754 binary16, {@code CUDA_R_16F}. */
    HALF(Short.BYTES, CudaFfi.CUDA_R_16F()),
    /** bfloat16 (the upper half of a binary32), {@code CUDA_R_16BF}. */
    BFLOAT16(Short.BYTES, CudaFfi.CUDA_R_16BF());

    private static final ValueLayout.OfFloat FLOATS = ValueLayout.JAVA_FLOAT_UNALIGNED;
    private static final ValueLayout.OfShort SHORTS = ValueLayout.JAVA_SHORT_UNALIGNED;

    private final int byteSize;
    private final int cudaDataType;

    ElementType(int byteSize, int cudaDataType) {
        this.byteSize = byteSize;
        this.cudaDataType = cudaDataType;
    }

    /**
     * Bytes per element.
     *
     * @return 4 for {@link #FLOAT}, 2 for the others
     */
    public int byteSize() {
        return byteSize;
    }

    /** cuBLAS's {@code cudaDataType} for this type. */
    int cudaDataType() {
        return cudaDataType;
    }

    /**
     * The nearest bfloat16 to a float, ties to even; NaN stays NaN.
     *
     * @param value the float
     * @return the bfloat16's bits
     */
    public static short toBfloat16(float value) {
        int bits = Float.floatToRawIntBits(value);
        if (Float.isNaN(value)) {
            return (short) ((bits >>> 16) | 0x0040);
        }
        return (short) ((bits + 0x7FFF + ((bits >>> 16) & 1)) >>> 16);
    }

    /**
     * A bfloat16's value.
     *
     * @param bits the bfloat16's bits
     * @return the float it denotes, exactly
     */
    public static float fromBfloat16(short bits) {
        return Float.intBitsToFloat((bits & 0xFFFF) << 16);
    }

    /**
     * Rounds a float to this type and back: what a copy to a buffer of this type and back returns.
     *
     * @param value the float
     * @return the nearest value of this type, as a float
     */
    public float round(float value) {
        return switch (this) {
            case FLOAT -> value;
            case HALF -> Float.float16ToFloat(Float.floatToFloat16(value));
            case BFLOAT16 -> fromBfloat16(toBfloat16(value));
        };
    }

    /** Writes {@code count} floats from {@code src[srcOffset]} as elements of this type from {@code dst[index]}. */
    void store(float[] src, int srcOffset, MemorySegment dst, long index, int count) {
        switch (this) {
            case FLOAT -> MemorySegment.copy(src, srcOffset, dst, FLOATS, index * Float.BYTES, count);
            case HALF -> {
                for (int i = 0; i < count; i++) {
                    dst.setAtIndex(SHORTS, index + i, Float.floatToFloat16(src[srcOffset + i]));
                }
            }
            case BFLOAT16 -> {
                for (int i = 0; i < count; i++) {
                    dst.setAtIndex(SHORTS, index + i, toBfloat16(src[srcOffset + i]));
                }
            }
        }
    }

    /** Reads {@code count} elements of this type from {@code src[index]} as floats into {@code dst[dstOffset]}. */
    void load(MemorySegment src, long index, float[] dst, int dstOffset, int count) {
        switch (this) {
            case FLOAT -> MemorySegment.copy(src, FLOATS, index * Float.BYTES, dst, dstOffset, count);
            case HALF -> {
                for (int i = 0; i < count; i++) {
                    dst[dstOffset + i] = Float.float16ToFloat(src.getAtIndex(SHORTS, index + i));
                }
            }
            case BFLOAT16 -> {
                for (int i = 0; i < count; i++) {
                    dst[dstOffset + i] = fromBfloat16(src.getAtIndex(SHORTS, index + i));
                }
            }
        }
    }
}
