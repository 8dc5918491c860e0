package dev.panamax.kernels;

import static jdk.incubator.vector.VectorOperators.B2F;
import static jdk.incubator.vector.VectorOperators.LSHL;
import static jdk.incubator.vector.VectorOperators.LSHR;
import static jdk.incubator.vector.VectorOperators.ZERO_EXTEND_S2I;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;

/**
 * The vector loops behind {@link QuantizedProduct} and {@link Quantization#dequantizeRow}: decoding each {@link
 * WeightFormat} to float vectors, and dot products of four weight rows with one activation row at a time, so that each
 * activation vector loaded serves four rows. A row's dot product is the same sequence of operations whether it is
 * computed with three other rows or alone (then as four copies of itself), so results do not depend on how rows are
 * split over threads.
 */
final class QuantizedRows {
    /**
     * The JVM's float species, held to 4 to 16 lanes: a block of 32 elements is then a whole number of vectors, and
     * its bytes and halves have species of their own (none is narrower than 64 bits).
     */
    static final VectorSpecies<Float> FLOATS =
            Simd.LANES < 4 ? FloatVector.SPECIES_128 : Simd.LANES > 16 ? FloatVector.SPECIES_512 : Simd.FLOATS;

    static final int LANES = FLOATS.length();
    private static final VectorSpecies<Integer> INTS = IntVector.SPECIES_PREFERRED.withShape(FLOATS.vectorShape());
    private static final VectorSpecies<Short> SHORTS =
            ShortVector.SPECIES_PREFERRED.withShape(VectorShape.forBitSize(LANES * Short.SIZE));
    /** Bytes loaded at once: a vector's worth, or 8 where that is narrower than the narrowest byte species. */
    private static final int BYTE_STEP = Math.max(8, LANES);

    private static final VectorSpecies<Byte> BYTES =
            ByteVector.SPECIES_PREFERRED.withShape(VectorShape.forBitSize(BYTE_STEP * Byte.SIZE));
    private static final ByteOrder ORDER = ByteOrder.LITTLE_ENDIAN;
    /** A little-endian binary16 at any byte offset: GGUF's tensors are packed without alignment inside a row. */
    static final ValueLayout.OfShort HALF = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ORDER);

    static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ORDER);
    /** Elements per block of {@link WeightFormat#Q8_0} and {@link WeightFormat#Q4_0}. */
    static final int BLOCK = 32;

    private static final int VECTORS_PER_BLOCK = BLOCK / LANES;
    /** The bytes of a block before its quantized values: the binary16 scale. */
    private static final int SCALE_BYTES = 2;

    private static final ThreadLocal<float[]> STAGED = ThreadLocal.withInitial(() -> new float[0]);

    private QuantizedRows() {}

    /** This thread's scratch array of at least {@code length} floats, for activations staged out of a segment. */
    static float[] staging(int length) {
        float[] buffer = STAGED.get();
        if (buffer.length < length) {
            buffer = new float[length];
            STAGED.set(buffer);
        }
        return buffer;
    }

    /**
     * {@code y[t][r] = Σ_c W[r][c]·x[t][c]} for rows {@code [from, to)} and every token t: token t's activations at
     * {@code x[xBase + t·ldx]}, its results at float {@code yOffset + t·ldy + r} of y. Rows go four at a time, the four
     * a quarter of the range apart, so that the matrix is read as four long sequential streams; each group's rows stay
     * in cache while every token uses them.
     */
    static void multiply(
            QuantizedMatrix w,
            int tokens,
            float[] x,
            int xBase,
            int ldx,
            MemorySegment y,
            long yOffset,
            int ldy,
            int from,
            int to) {
        int quarter = (to - from) / 4;
        float[] sums = new float[4];
        for (int i = from; i < from + quarter; i++) {
            for (int t = 0; t < tokens; t++) {
                fourRows(w, i, i + quarter, i + 2 * quarter, i + 3 * quarter, x, xBase + t * ldx, sums);
                long at = yOffset + (long) t * ldy;
                for (int k = 0; k < 4; k++) {
                    y.setAtIndex(Simd.FLOAT, at + i + (long) k * quarter, sums[k]);
                }
            }
        }
        for (int i = from + 4 * quarter; i < to; i++) {
            for (int t = 0; t < tokens; t++) {
                fourRows(w, i, i, i, i, x, xBase + t * ldx, sums);
                y.setAtIndex(Simd.FLOAT, yOffset + (long) t * ldy + i, sums[0]);
            }
        }
    }

    /** The dot products of rows a, b, c and d of w with {@code x[xi, xi + columns)}, into {@code sums[0..3]}. */
    private static void fourRows(QuantizedMatrix w, int a, int b, int c, int d, float[] x, int xi, float[] sums) {
        MemorySegment data = w.data();
        long rowBytes = w.rowBytes();
        long base = w.byteOffset();
        long r0 = base + a * rowBytes, r1 = base + b * rowBytes, r2 = base + c * rowBytes, r3 = base + d * rowBytes;
        switch (w.format()) {
            case Q8_0, Q4_0 ->
                blockRows(w.format() == WeightFormat.Q4_0, data, r0, r1, r2, r3, w.columns(), x, xi, sums);
            case F32, F16, BF16 -> elementRows(w.format(), data, r0, r1, r2, r3, w.columns(), x, xi, sums);
        }
    }

    /**
     * Four rows of Q8_0 or Q4_0 blocks (from bytes r0 to r3) times x: each weight decoded to the float {@code d·q},
     * then multiplied and added in column order within a vector's lanes.
     */
    private static void blockRows(
            boolean q4,
            MemorySegment w,
            long r0,
            long r1,
            long r2,
            long r3,
            int columns,
            float[] x,
            int xi,
            float[] sums) {
        int blockBytes = q4 ? WeightFormat.Q4_0.bytesPerBlock() : WeightFormat.Q8_0.bytesPerBlock();
        FloatVector s0 = FloatVector.zero(FLOATS), s1 = s0, s2 = s0, s3 = s0;
        for (int j = 0; j < columns; j += BLOCK) {
            long at = (long) (j / BLOCK) * blockBytes;
            int xj = xi + j;
            s0 = block(q4, w, r0 + at, x, xj, s0);
            s1 = block(q4, w, r1 + at, x, xj, s1);
            s2 = block(q4, w, r2 + at, x, xj, s2);
            s3 = block(q4, w, r3 + at, x, xj, s3);
        }
        store(sums, s0, s1, s2, s3);
    }

    /** {@code sum} plus the block at byte {@code at}, decoded, times {@code x[xj, xj + 32)}, lane-wise. */
    private static FloatVector block(boolean q4, MemorySegment w, long at, float[] x, int xj, FloatVector sum) {
        FloatVector d = scale(w, at);
        for (int v = 0; v < VECTORS_PER_BLOCK; v++) {
            FloatVector weights = q4 ? q4(w, at, d, v) : q8(w, at, d, v);
            sum = weights.fma(FloatVector.fromArray(FLOATS, x, xj + v * LANES), sum);
        }
        return sum;
    }

    /**
     * Four rows of one value per element (F32, F16 or BF16, from bytes r0 to r3) times x, multiplied and added in
     * column order within a vector's lanes; the last partial vector is masked.
     */
    private static void elementRows(
            WeightFormat format,
            MemorySegment w,
            long r0,
            long r1,
            long r2,
            long r3,
            int columns,
            float[] x,
            int xi,
            float[] sums) {
        int bytes = format.bytesPerBlock();
        int vectorEnd = columns - columns % LANES;
        FloatVector s0 = FloatVector.zero(FLOATS), s1 = s0, s2 = s0, s3 = s0;
        for (int j = 0; j < vectorEnd; j += LANES) {
            FloatVector xv = FloatVector.fromArray(FLOATS, x, xi + j);
            long at = (long) j * bytes;
            s0 = elements(format, w, r0 + at).fma(xv, s0);
            s1 = elements(format, w, r1 + at).fma(xv, s1);
            s2 = elements(format, w, r2 + at).fma(xv, s2);
            s3 = elements(format, w, r3 + at).fma(xv, s3);
        }
        if (vectorEnd < columns) {
            long at = (long) vectorEnd * bytes;
            s0 = tailFma(format, w, r0 + at, x, xi + vectorEnd, columns - vectorEnd, s0);
            s1 = tailFma(format, w, r1 + at, x, xi + vectorEnd, columns - vectorEnd, s1);
            s2 = tailFma(format, w, r2 + at, x, xi + vectorEnd, columns - vectorEnd, s2);
            s3 = tailFma(format, w, r3 + at, x, xi + vectorEnd, columns - vectorEnd, s3);
        }
        store(sums, s0, s1, s2, s3);
    }

    /**
     * {@code sum} plus the row's last {@code count} (fewer than a vector) elements times x's, lanes past them zero:
     * apart from {@link #elementRows} so that it stays small enough for C1 to compile, and so reaches C2.
     */
    private static FloatVector tailFma(
            WeightFormat format, MemorySegment w, long at, float[] x, int xj, int count, FloatVector sum) {
        return elements(format, w, at, count)
                .fma(FloatVector.fromArray(FLOATS, x, xj, FLOATS.indexInRange(0, count)), sum);
    }

    private static void store(float[] sums, FloatVector s0, FloatVector s1, FloatVector s2, FloatVector s3) {
        sums[0] = Simd.sumAnyWidth(s0);
        sums[1] = Simd.sumAnyWidth(s1);
        sums[2] = Simd.sumAnyWidth(s2);
        sums[3] = Simd.sumAnyWidth(s3);
    }

    /** The binary16 scale of the block at byte {@code at}, in every lane. */
    private static FloatVector scale(MemorySegment w, long at) {
        return FloatVector.broadcast(FLOATS, Float.float16ToFloat(w.get(HALF, at)));
    }

    /** Vector {@code v} of the Q8_0 block at byte {@code at}, decoded: {@code d·q}, exact in float. */
    private static FloatVector q8(MemorySegment w, long at, FloatVector d, int v) {
        int first = v * LANES;
        ByteVector q = ByteVector.fromMemorySegment(BYTES, w, at + SCALE_BYTES + first - first % BYTE_STEP, ORDER);
        return ((FloatVector) q.convertShape(B2F, FLOATS, first % BYTE_STEP / LANES)).mul(d);
    }

    /**
     * Vector {@code v} of the Q4_0 block at byte {@code at}, decoded: {@code d·(nibble − 8)}, exact in float. Elements
     * 0 to 15 are the low nibbles of the block's 16 bytes, elements 16 to 31 the high ones.
     */
    private static FloatVector q4(MemorySegment w, long at, FloatVector d, int v) {
        int first = v * LANES;
        int byteIndex = first % (BLOCK / 2);
        ByteVector packed =
                ByteVector.fromMemorySegment(BYTES, w, at + SCALE_BYTES + byteIndex - byteIndex % BYTE_STEP, ORDER);
        ByteVector nibbles = first < BLOCK / 2 ? packed.and((byte) 0x0F) : packed.lanewise(LSHR, 4);
        return ((FloatVector) nibbles.sub((byte) 8).convertShape(B2F, FLOATS, byteIndex % BYTE_STEP / LANES)).mul(d);
    }

    /** {@link #LANES} elements of an F32, F16 or BF16 row from byte {@code at}, as floats. */
    private static FloatVector elements(WeightFormat format, MemorySegment w, long at) {
        return switch (format) {
            case F16 -> halfToFloat(ShortVector.fromMemorySegment(SHORTS, w, at, ORDER));
            case BF16 -> bfloat16ToFloat(ShortVector.fromMemorySegment(SHORTS, w, at, ORDER));
            default -> FloatVector.fromMemorySegment(FLOATS, w, at, ORDER);
        };
    }

    /** {@link #elements(WeightFormat, MemorySegment, long)} for the first {@code count} lanes; the others are 0. */
    private static FloatVector elements(WeightFormat format, MemorySegment w, long at, int count) {
        VectorMask<Short> halves = SHORTS.indexInRange(0, count);
        return switch (format) {
            case F16 -> halfToFloat(ShortVector.fromMemorySegment(SHORTS, w, at, ORDER, halves));
            case BF16 -> bfloat16ToFloat(ShortVector.fromMemorySegment(SHORTS, w, at, ORDER, halves));
            default -> FloatVector.fromMemorySegment(FLOATS, w, at, ORDER, FLOATS.indexInRange(0, count));
        };
    }

    /**
     * binary16 bits to floats, exactly, by integer operations (the Vector API has no conversion): the exponent and
     * significand moved to a float's places and scaled by 2¹¹² (the difference of the exponent biases), which also
     * makes subnormal halves normal floats; all-ones exponents (infinities, NaN) are given the float's all-ones
     * exponent, keeping the significand bits, and a NaN is made quiet, as x86's conversion instruction (which {@link
     * Float#float16ToFloat} compiles to) makes it.
     */
    static FloatVector halfToFloat(ShortVector halves) {
        IntVector h = (IntVector) halves.convertShape(ZERO_EXTEND_S2I, INTS, 0);
        IntVector magnitude = h.and(0x7FFF).lanewise(LSHL, 13);
        IntVector finite = magnitude.reinterpretAsFloats().mul(0x1p112f).reinterpretAsInts();
        IntVector special = magnitude.or(0x7F800000);
        special = special.blend(special.or(0x00400000), h.and(0x7FFF).compare(VectorOperators.GT, 0x7C00));
        IntVector bits = finite.blend(special, h.and(0x7C00).eq(0x7C00));
        return bits.or(h.and(0x8000).lanewise(LSHL, 16)).reinterpretAsFloats();
    }

    /** bfloat16 bits to floats: they are a float's upper half. */
    static FloatVector bfloat16ToFloat(ShortVector bfloats) {
        return ((IntVector) bfloats.convertShape(ZERO_EXTEND_S2I, INTS, 0))
                .lanewise(LSHL, 16)
                .reinterpretAsFloats();
    }

    /** Decodes row {@code row} of w into {@code dst[0, columns)}, each element as the products decode it. */
    static void decodeRow(QuantizedMatrix w, int row, float[] dst) {
        MemorySegment data = w.data();
        long at = w.byteOffset() + row * w.rowBytes();
        int columns = w.columns();
        WeightFormat format = w.format();
        switch (format) {
            case Q8_0, Q4_0 -> {
                for (int j = 0; j < columns; j += BLOCK) {
                    long block = at + (long) (j / BLOCK) * format.bytesPerBlock();
                    FloatVector d = scale(data, block);
                    for (int v = 0; v < VECTORS_PER_BLOCK; v++) {
                        (format == WeightFormat.Q4_0 ? q4(data, block, d, v) : q8(data, block, d, v))
                                .intoArray(dst, j + v * LANES);
                    }
                }
            }
            case F32, F16, BF16 -> {
                int vectorEnd = columns - columns % LANES;
                int bytes = format.bytesPerBlock();
                for (int j = 0; j < vectorEnd; j += LANES) {
                    elements(format, data, at + (long) j * bytes).intoArray(dst, j);
                }
                if (vectorEnd < columns) {
                    int count = columns - vectorEnd;
                    elements(format, data, at + (long) vectorEnd * bytes, count)
                            .intoArray(dst, vectorEnd, FLOATS.indexInRange(0, count));
                }
            }
        }
    }
}
