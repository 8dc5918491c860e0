package dev.panamax.kernels;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * Encoding floats into GGML's weight formats ({@link WeightFormat}) and decoding them back, with the binary16 and
 * bfloat16 conversions they use.
 *
 * <p>The encoders follow GGML's reference rules, so that their bytes equal those of GGML's {@code quantize_row_*_ref}
 * and its float conversions, block for block:
 *
 * <ul>
 *   <li>Q8_0: {@code amax} the largest magnitude in the block, {@code d = amax / 127}, stored as binary16; each value
 *       becomes {@code q = round(x · (1/d))} (halves away from zero), all zero when {@code d == 0}. A block whose
 *       largest magnitude is 127 times a power of two no smaller than 2⁻¹⁴ thus stores its integers exactly.
 *   <li>Q4_0: {@code m} the value of largest magnitude (the first such), {@code d = m / −8}, stored as binary16; each
 *       value becomes {@code min(15, trunc(x · (1/d) + 8.5))}, so m itself is stored as 0 (that is, −8).
 *   <li>F16: IEEE binary16, rounded to nearest, ties to even; BF16: the upper half of the float, rounded to nearest,
 *       ties to even, a NaN kept NaN (made quiet).
 * </ul>
 *
 * <p>Q8_0 and Q4_0 cannot hold infinities or NaN, nor a block whose scale exceeds binary16's largest finite value
 * (65504): such input is rejected with {@link IllegalArgumentException} naming its row and block, rather than written
 * as a scale GGML would store as infinity. Every block is checked before the first is written, so a rejected call
 * leaves dst as it was. Arguments are checked as the kernels check theirs: offsets and leading dimensions of floats
 * count floats, byte offsets count bytes, and messages name the argument, its value and the bound.
 */
public final class Quantization {
    private static final ValueLayout.OfByte BYTE = ValueLayout.JAVA_BYTE;
    /** The significand's top bit, which marks a float NaN quiet. */
    private static final int QUIET = 0x0040_0000;

    private Quantization() {}

    static {
        VectorApi.require(); // a missing --add-modules flag is named before the first kernel fails to link
    }

    /**
     * Encodes a {@code rows × columns} float matrix, row-major with leading dimension {@code ld}, into {@code format},
     * rows back to back from byte {@code dstByteOffset} of {@code dst} (as a {@link QuantizedMatrix} there reads
     * them).
     *
     * @param format the format to write
     * @param src the floats
     * @param srcOffset index (in floats) of the first one
     * @param rows the rows, at least 0
     * @param columns the elements per row: at least 0, a multiple of {@code format.blockLength()}
     * @param ld floats from one row of src to the next, at least {@code columns} (and 1)
     * @param dst where the encoded rows go; must be writable
     * @param dstByteOffset the byte of dst where row 0 goes
     * @throws IllegalArgumentException for bad sizes, for src and dst sharing memory, or for a block Q8_0 or Q4_0
     *     cannot hold
     */
    public static void quantize(
            WeightFormat format,
            MemorySegment src,
            long srcOffset,
            int rows,
            int columns,
            int ld,
            MemorySegment dst,
            long dstByteOffset) {
        Checks.notNull("format", format);
        Checks.nonNegative("rows", rows);
        long rowBytes = format.rowBytes(columns);
        Checks.matrix("src", src, srcOffset, rows, columns, "ld", ld, false);
        long bytes = rows * rowBytes;
        Checks.byteRange("dst", dst, "dstByteOffset", dstByteOffset, bytes, rows + " rows of " + format);
        Checks.writable("dst", dst);
        if (bytes == 0) {
            return;
        }
        Checks.usable("dst", dst, bytes);
        MemorySegment written = dst.asSlice(dstByteOffset, bytes);
        long srcBytes = Checks.matrixExtent(rows, columns, ld) * Float.BYTES;
        if (written.asOverlappingSlice(src.asSlice(srcOffset * Float.BYTES, srcBytes))
                .isPresent()) {
            throw new IllegalArgumentException("dst (from dstByteOffset " + dstByteOffset + ") shares memory with src"
                    + " (from srcOffset " + srcOffset + "): the output must not overlap the input");
        }
        float[] row = new float[columns];
        if (format == WeightFormat.Q8_0 || format == WeightFormat.Q4_0) {
            // A pass over src before the one that writes, so that a block the format cannot hold leaves dst untouched.
            for (int r = 0; r < rows; r++) {
                readRow(src, srcOffset, ld, r, row);
                for (int j = 0; j < columns; j += QuantizedRows.BLOCK) {
                    blockScale(format, row, j, r);
                }
            }
        }
        for (int r = 0; r < rows; r++) {
            readRow(src, srcOffset, ld, r, row);
            encodeRow(format, row, r, written, r * rowBytes);
        }
    }

    /** Copies row {@code r} of src into {@code row}. */
    private static void readRow(MemorySegment src, long srcOffset, int ld, int r, float[] row) {
        MemorySegment.copy(src, Simd.FLOAT, (srcOffset + (long) r * ld) * Float.BYTES, row, 0, row.length);
    }

    private static void encodeRow(WeightFormat format, float[] row, int r, MemorySegment dst, long at) {
        switch (format) {
            case F32 -> MemorySegment.copy(row, 0, dst, QuantizedRows.FLOAT, at, row.length);
            case F16 -> {
                for (int c = 0; c < row.length; c++) {
                    dst.set(QuantizedRows.HALF, at + 2L * c, floatToHalf(row[c]));
                }
            }
            case BF16 -> {
                for (int c = 0; c < row.length; c++) {
                    dst.set(QuantizedRows.HALF, at + 2L * c, floatToBfloat16(row[c]));
                }
            }
            case Q8_0, Q4_0 -> {
                for (int j = 0; j < row.length; j += QuantizedRows.BLOCK) {
                    long block = at + (long) (j / QuantizedRows.BLOCK) * format.bytesPerBlock();
                    if (format == WeightFormat.Q8_0) {
                        encodeQ8(row, j, r, dst, block);
                    } else {
                        encodeQ4(row, j, r, dst, block);
                    }
                }
            }
        }
    }

    /**
     * GGML's scale d of the 32 values from {@code row[j]}, row {@code r} of src: {@code amax / 127} for Q8_0, amax the
     * largest magnitude, and {@code m / −8} for Q4_0, m the first value of that magnitude. Checked: the values must be
     * finite and d within binary16's range.
     */
    private static float blockScale(WeightFormat format, float[] row, int j, int r) {
        float amax = 0;
        float max = 0;
        for (int i = 0; i < QuantizedRows.BLOCK; i++) {
            float v = finite(row[j + i], r, j + i);
            if (amax < Math.abs(v)) {
                amax = Math.abs(v);
                max = v;
            }
        }
        float d = format == WeightFormat.Q8_0 ? amax / 127 : max / -8;
        if (Float.isInfinite(halfToFloat(floatToHalf(d)))) {
            throw new IllegalArgumentException("src row " + r + ", block from column " + j + ": its largest magnitude ("
                    + amax + ") needs a scale (" + Math.abs(d) + ") above binary16's largest, 65504");
        }
        return d;
    }

    /** GGML's Q8_0 rule for the 32 values from {@code row[j]}. */
    private static void encodeQ8(float[] row, int j, int r, MemorySegment dst, long at) {
        float d = blockScale(WeightFormat.Q8_0, row, j, r);
        float id = d != 0 ? 1 / d : 0;
        dst.set(QuantizedRows.HALF, at, floatToHalf(d));
        for (int i = 0; i < QuantizedRows.BLOCK; i++) {
            dst.set(BYTE, at + 2 + i, (byte) roundHalfAway(row[j + i] * id));
        }
    }

    /** GGML's Q4_0 rule for the 32 values from {@code row[j]}. */
    private static void encodeQ4(float[] row, int j, int r, MemorySegment dst, long at) {
        float d = blockScale(WeightFormat.Q4_0, row, j, r);
        float id = d != 0 ? 1 / d : 0;
        dst.set(QuantizedRows.HALF, at, floatToHalf(d));
        int half = QuantizedRows.BLOCK / 2;
        for (int i = 0; i < half; i++) {
            int low = Math.min(15, (int) (row[j + i] * id + 8.5f));
            int high = Math.min(15, (int) (row[j + half + i] * id + 8.5f));
            dst.set(BYTE, at + 2 + i, (byte) (low | high << 4));
        }
    }

    private static float finite(float value, int r, int c) {
        if (!Float.isFinite(value)) {
            throw new IllegalArgumentException(
                    "src row " + r + ", column " + c + " (" + value + ") must be finite: Q8_0 and Q4_0 cannot hold it");
        }
        return value;
    }

    /** C's {@code roundf}: to the nearest integer, halves away from zero. */
    private static int roundHalfAway(float v) {
        float magnitude = Math.abs(v);
        float floor = (float) Math.floor(magnitude);
        int rounded = (int) floor + (magnitude - floor >= 0.5f ? 1 : 0);
        return v < 0 ? -rounded : rounded;
    }

    /**
     * Decodes row {@code row} of {@code w} into {@code w.columns()} floats at {@code dst[dstOffset…]}: each element the
     * float its format defines, as {@link QuantizedProduct} uses it.
     *
     * @param w the matrix
     * @param row the row, {@code 0 <= row < w.rows()}
     * @param dst where the floats go; must be writable
     * @param dstOffset index (in floats) of the first
     */
    public static void dequantizeRow(QuantizedMatrix w, int row, MemorySegment dst, long dstOffset) {
        Checks.notNull("w", w);
        if (row < 0 || row >= w.rows()) {
            throw new IndexOutOfBoundsException("row (" + row + ") must be >= 0 and < w.rows() (" + w.rows() + ")");
        }
        Checks.vector("dst", dst, dstOffset, w.columns(), true);
        Checks.usable("w.data()", w.data(), w.rowBytes());
        float[] values = new float[w.columns()];
        QuantizedRows.decodeRow(w, row, 0, w.columns(), values, 0);
        MemorySegment.copy(values, 0, dst, Simd.FLOAT, dstOffset * Float.BYTES, values.length);
    }

    /**
     * Decodes row {@code row} of {@code w} into {@code dst[dstOffset…]}; as {@link #dequantizeRow(QuantizedMatrix,
     * int, MemorySegment, long)}.
     *
     * @param w the matrix
     * @param row the row, {@code 0 <= row < w.rows()}
     * @param dst where the floats go
     * @param dstOffset index of the first
     */
    public static void dequantizeRow(QuantizedMatrix w, int row, float[] dst, int dstOffset) {
        dequantizeRow(w, row, Checks.wrap("dst", dst), dstOffset);
    }

    /**
     * An IEEE binary16 value as a float (exact).
     *
     * @param half the binary16 bits
     * @return the same value; a NaN keeps its sign and payload and is made quiet
     */
    public static float halfToFloat(short half) {
        float value = Float.float16ToFloat(half);
        // The JDK's compiled conversion (x86's instruction) sets the quiet bit and its plain Java one does not.
        return Float.isNaN(value) ? Float.intBitsToFloat(Float.floatToRawIntBits(value) | QUIET) : value;
    }

    /**
     * A float rounded to IEEE binary16, to nearest with ties to even; beyond the largest finite binary16 it becomes an
     * infinity.
     *
     * @param value the float
     * @return the binary16 bits
     */
    public static short floatToHalf(float value) {
        return Float.floatToFloat16(value);
    }

    /**
     * A bfloat16 value as a float (exact: bfloat16 is a float's upper 16 bits).
     *
     * @param bfloat16 the bfloat16 bits
     * @return the same value
     */
    public static float bfloat16ToFloat(short bfloat16) {
        return Float.intBitsToFloat(bfloat16 << 16);
    }

    /**
     * A float rounded to bfloat16, to nearest with ties to even (as GGML rounds); a NaN stays NaN, made quiet.
     *
     * @param value the float
     * @return the bfloat16 bits
     */
    public static short floatToBfloat16(float value) {
        int bits = Float.floatToRawIntBits(value);
        if ((bits & 0x7FFFFFFF) > 0x7F800000) {
            return (short) ((bits >>> 16) | 0x40);
        }
        return (short) ((bits + 0x7FFF + ((bits >>> 16) & 1)) >>> 16);
    }
}
