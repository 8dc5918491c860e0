package dev.panamax.kernels;

import static jdk.incubator.vector.VectorOperators.ASHR;
import static jdk.incubator.vector.VectorOperators.B2F;
import static jdk.incubator.vector.VectorOperators.B2S;
import static jdk.incubator.vector.VectorOperators.I2F;
import static jdk.incubator.vector.VectorOperators.LSHL;
import static jdk.incubator.vector.VectorOperators.LSHR;
import static jdk.incubator.vector.VectorOperators.ZERO_EXTEND_B2I;
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
 * The vector loops behind {@link QuantizedProduct} and {@link Quantization#dequantizeRow}: widening each {@link
 * WeightFormat} to float vectors, the dot product of one weight row with one activation row, and, for Q8_0 and Q4_0,
 * the integer dot product of a row's values with activations quantized by {@link ActivationBlocks}. Each row's dot
 * product is one fixed sequence of operations, whichever task computes it, so results do not depend on how rows are
 * split over threads. The integer products multiply 16-bit lanes: the Vector API has no 8-bit multiply-add, and
 * widening bytes to 16 bits costs one conversion per 16 values where widening them to floats costs two per 8.
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

    /** Parts of a byte load that each fill a float vector: 1, or 2 for 4-lane vectors. */
    private static final int PARTS = BYTE_STEP / LANES;

    private static final VectorSpecies<Byte> BYTES =
            ByteVector.SPECIES_PREFERRED.withShape(VectorShape.forBitSize(BYTE_STEP * Byte.SIZE));
    private static final ByteOrder ORDER = ByteOrder.LITTLE_ENDIAN;
    /** A little-endian binary16 at any byte offset: GGUF's tensors are packed without alignment inside a row. */
    static final ValueLayout.OfShort HALF = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ORDER);

    static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ORDER);
    /** Elements per block of {@link WeightFormat#Q8_0} and {@link WeightFormat#Q4_0}. */
    static final int BLOCK = 32;

    private static final int Q8_BYTES = WeightFormat.Q8_0.bytesPerBlock();
    private static final int Q4_BYTES = WeightFormat.Q4_0.bytesPerBlock();
    /** The bytes of a block before its quantized values: the binary16 scale. */
    private static final int SCALE_BYTES = 2;

    /**
     * The shape of the integer products: the float shape, but at most 256 bits, since a Q4_0 block's 16 packed bytes
     * must fill a vector of 16-bit lanes; 16-bit vectors of that shape hold {@link #SHORT_LANES} values, widened from
     * half as many bits of bytes.
     */
    private static final VectorShape INTEGER_SHAPE =
            FLOATS.vectorBitSize() > 256 ? VectorShape.S_256_BIT : FLOATS.vectorShape();

    private static final VectorSpecies<Float> INTEGER_FLOATS = FloatVector.SPECIES_PREFERRED.withShape(INTEGER_SHAPE);
    private static final VectorSpecies<Integer> INTEGER_INTS = IntVector.SPECIES_PREFERRED.withShape(INTEGER_SHAPE);
    private static final VectorSpecies<Short> INTEGER_SHORTS = ShortVector.SPECIES_PREFERRED.withShape(INTEGER_SHAPE);
    private static final int SHORT_LANES = INTEGER_SHORTS.length();
    private static final VectorSpecies<Byte> HALF_BYTES =
            ByteVector.SPECIES_PREFERRED.withShape(VectorShape.forBitSize(INTEGER_SHAPE.vectorBitSize() / 2));

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
     * {@code x[xBase + t·ldx]}, its results at float {@code yOffset + t·ldy + r} of y. For Q8_0 and Q4_0, {@code
     * blocks} holds the activations quantized; a token it marks as not finite is multiplied as floats. Rows go in
     * order, so the matrix is read as one sequential stream, and each row stays in cache while every token uses it.
     */
    static void multiply(
            QuantizedMatrix w,
            ActivationBlocks blocks,
            int tokens,
            float[] x,
            int xBase,
            int ldx,
            MemorySegment y,
            long yOffset,
            int ldy,
            int from,
            int to) {
        MemorySegment data = w.data();
        long rowBytes = w.rowBytes();
        int columns = w.columns();
        WeightFormat format = w.format();
        for (int r = from; r < to; r++) {
            long row = w.byteOffset() + r * rowBytes;
            for (int t = 0; t < tokens; t++) {
                int xi = xBase + t * ldx;
                boolean integer = blocks != null && blocks.finite(t);
                float dot =
                        switch (format) {
                            case Q8_0 ->
                                integer
                                        ? q8Integer(
                                                data,
                                                row,
                                                columns,
                                                blocks.values(),
                                                t * columns,
                                                blocks.scales(),
                                                t * columns / BLOCK)
                                        : q8Row(data, row, columns, x, xi);
                            case Q4_0 ->
                                integer
                                        ? q4Integer(
                                                data,
                                                row,
                                                columns,
                                                blocks.values(),
                                                t * columns,
                                                blocks.scales(),
                                                t * columns / BLOCK)
                                        : q4Row(data, row, columns, x, xi);
                            case F32, F16, BF16 -> elementRow(format, data, row, columns, x, xi);
                        };
                y.setAtIndex(Simd.FLOAT, yOffset + (long) t * ldy + r, dot);
            }
        }
    }

    /**
     * The Q8_0 row at byte {@code row} times quantized activations: per block the integer dot product {@code Σ q·v}
     * of its values q with the activations' values v ({@code values[vi, vi + columns)}), exact in int; then, lane by
     * lane, that sum times the block's scale d and times the activations' scale ({@code scales[si + b]}), added to
     * the row's sum. Two 16-bit products are added in 16 bits before widening, which cannot overflow: |q| ≤ 128 and
     * |v| ≤ 127. Every step is inline, for the reason given at {@link #q8Row}.
     */
    private static float q8Integer(
            MemorySegment w, long row, int columns, short[] values, int vi, float[] scales, int si) {
        FloatVector sum = FloatVector.zero(INTEGER_FLOATS);
        for (int b = 0; b < columns / BLOCK; b++) {
            long at = row + (long) b * Q8_BYTES + SCALE_BYTES;
            int vj = vi + b * BLOCK;
            IntVector dot = IntVector.zero(INTEGER_INTS);
            for (int k = 0; k < BLOCK; k += 2 * SHORT_LANES) {
                ShortVector q0 = (ShortVector) ByteVector.fromMemorySegment(HALF_BYTES, w, at + k, ORDER)
                        .convertShape(B2S, INTEGER_SHORTS, 0);
                ShortVector q1 = (ShortVector) ByteVector.fromMemorySegment(HALF_BYTES, w, at + k + SHORT_LANES, ORDER)
                        .convertShape(B2S, INTEGER_SHORTS, 0);
                ShortVector products = q0.mul(ShortVector.fromArray(INTEGER_SHORTS, values, vj + k))
                        .add(q1.mul(ShortVector.fromArray(INTEGER_SHORTS, values, vj + k + SHORT_LANES)));
                // Each int lane holds two 16-bit lanes: the low one sign-extended by shifting up and back, plus the
                // high.
                IntVector pairs = products.reinterpretAsInts();
                dot = dot.add(pairs.lanewise(LSHL, 16).lanewise(ASHR, 16)).add(pairs.lanewise(ASHR, 16));
            }
            float d = Float.float16ToFloat(w.get(HALF, at - SCALE_BYTES));
            sum = ((FloatVector) dot.convert(I2F, 0))
                    .mul(d)
                    .fma(FloatVector.broadcast(INTEGER_FLOATS, scales[si + b]), sum);
        }
        return Simd.sumAnyWidth(sum);
    }

    /**
     * The Q4_0 row at byte {@code row} times quantized activations, as {@link #q8Integer} computes it with each value
     * {@code nibble − 8}: a block's 16 bytes widen to 16-bit lanes, whose low nibbles are its elements 0 to 15 and
     * whose high ones (shifted down and masked, which also clears the sign the widening copied) 16 to 31.
     */
    private static float q4Integer(
            MemorySegment w, long row, int columns, short[] values, int vi, float[] scales, int si) {
        FloatVector sum = FloatVector.zero(INTEGER_FLOATS);
        for (int b = 0; b < columns / BLOCK; b++) {
            long at = row + (long) b * Q4_BYTES + SCALE_BYTES;
            int vj = vi + b * BLOCK;
            IntVector dot = IntVector.zero(INTEGER_INTS);
            for (int k = 0; k < BLOCK / 2; k += SHORT_LANES) {
                ShortVector packed = (ShortVector) ByteVector.fromMemorySegment(HALF_BYTES, w, at + k, ORDER)
                        .convertShape(B2S, INTEGER_SHORTS, 0);
                ShortVector low = packed.and((short) 0x0F).sub((short) 8);
                ShortVector high = packed.lanewise(ASHR, 4).and((short) 0x0F).sub((short) 8);
                ShortVector products = low.mul(ShortVector.fromArray(INTEGER_SHORTS, values, vj + k))
                        .add(high.mul(ShortVector.fromArray(INTEGER_SHORTS, values, vj + k + BLOCK / 2)));
                IntVector pairs = products.reinterpretAsInts();
                dot = dot.add(pairs.lanewise(LSHL, 16).lanewise(ASHR, 16)).add(pairs.lanewise(ASHR, 16));
            }
            float d = Float.float16ToFloat(w.get(HALF, at - SCALE_BYTES));
            sum = ((FloatVector) dot.convert(I2F, 0))
                    .mul(d)
                    .fma(FloatVector.broadcast(INTEGER_FLOATS, scales[si + b]), sum);
        }
        return Simd.sumAnyWidth(sum);
    }

    /**
     * The Q8_0 row at byte {@code row} times {@code x[xi, xi + columns)}: per block, the lane-wise sum of {@code q·x}
     * over its values (in two halves, so that two chains of additions run at once), then times the block's scale d
     * and added to the row's sum. Every step is inline here: a helper that C2 compiled on its own first would not be
     * inlined again, and each vector passed to it would become an object.
     */
    private static float q8Row(MemorySegment w, long row, int columns, float[] x, int xi) {
        FloatVector sum = FloatVector.zero(FLOATS);
        int blocks = columns / BLOCK;
        for (int b = 0; b < blocks; b++) {
            long at = row + (long) b * Q8_BYTES;
            int xj = xi + b * BLOCK;
            FloatVector s0 = FloatVector.zero(FLOATS);
            FloatVector s1 = s0;
            for (int k = 0; k < BLOCK; k += 2 * LANES) {
                FloatVector q0;
                FloatVector q1;
                if (PARTS == 1) {
                    q0 = (FloatVector) ByteVector.fromMemorySegment(BYTES, w, at + SCALE_BYTES + k, ORDER)
                            .convertShape(B2F, FLOATS, 0);
                    q1 = (FloatVector) ByteVector.fromMemorySegment(BYTES, w, at + SCALE_BYTES + k + LANES, ORDER)
                            .convertShape(B2F, FLOATS, 0);
                } else {
                    ByteVector q = ByteVector.fromMemorySegment(BYTES, w, at + SCALE_BYTES + k, ORDER);
                    q0 = (FloatVector) q.convertShape(B2F, FLOATS, 0);
                    q1 = (FloatVector) q.convertShape(B2F, FLOATS, 1);
                }
                s0 = q0.fma(FloatVector.fromArray(FLOATS, x, xj + k), s0);
                s1 = q1.fma(FloatVector.fromArray(FLOATS, x, xj + k + LANES), s1);
            }
            sum = s0.add(s1).fma(FloatVector.broadcast(FLOATS, Float.float16ToFloat(w.get(HALF, at))), sum);
        }
        return sum(sum);
    }

    /**
     * The Q4_0 row at byte {@code row} times {@code x[xi, xi + columns)}, as {@link #q8Row} computes it with each value
     * {@code nibble − 8}: the low nibbles of a block's 16 bytes are its elements 0 to 15 (summed in one half), the high
     * ones 16 to 31 (in the other). The bytes widen to ints, where the nibbles come out with one native operation
     * each; byte lanes have no shift instruction on AVX2.
     */
    private static float q4Row(MemorySegment w, long row, int columns, float[] x, int xi) {
        FloatVector sum = FloatVector.zero(FLOATS);
        int blocks = columns / BLOCK;
        for (int b = 0; b < blocks; b++) {
            long at = row + (long) b * Q4_BYTES;
            int xj = xi + b * BLOCK;
            FloatVector s0 = FloatVector.zero(FLOATS);
            FloatVector s1 = s0;
            for (int k = 0; k < BLOCK / 2; k += BYTE_STEP) {
                ByteVector packed = ByteVector.fromMemorySegment(BYTES, w, at + SCALE_BYTES + k, ORDER);
                for (int part = 0; part < PARTS; part++) {
                    IntVector bytes = (IntVector) packed.convertShape(ZERO_EXTEND_B2I, INTS, part);
                    FloatVector low = (FloatVector) bytes.and(0x0F).sub(8).convert(I2F, 0);
                    FloatVector high =
                            (FloatVector) bytes.lanewise(LSHR, 4).sub(8).convert(I2F, 0);
                    int xk = xj + k + part * LANES;
                    s0 = low.fma(FloatVector.fromArray(FLOATS, x, xk), s0);
                    s1 = high.fma(FloatVector.fromArray(FLOATS, x, xk + BLOCK / 2), s1);
                }
            }
            sum = s0.add(s1).fma(FloatVector.broadcast(FLOATS, Float.float16ToFloat(w.get(HALF, at))), sum);
        }
        return sum(sum);
    }

    /**
     * The F32, F16 or BF16 row at byte {@code row} times {@code x[xi, xi + columns)}: whole vectors alternately into
     * two sums, the last partial vector masked into the first.
     */
    private static float elementRow(WeightFormat format, MemorySegment w, long row, int columns, float[] x, int xi) {
        int bytes = format.bytesPerBlock();
        int pairEnd = columns - columns % (2 * LANES);
        FloatVector s0 = FloatVector.zero(FLOATS);
        FloatVector s1 = s0;
        for (int j = 0; j < pairEnd; j += 2 * LANES) {
            long at = row + (long) j * bytes;
            s0 = elements(format, w, at).fma(FloatVector.fromArray(FLOATS, x, xi + j), s0);
            s1 = elements(format, w, at + (long) LANES * bytes)
                    .fma(FloatVector.fromArray(FLOATS, x, xi + j + LANES), s1);
        }
        for (int j = pairEnd; j < columns; j += LANES) {
            int count = Math.min(LANES, columns - j);
            VectorMask<Float> lanes = FLOATS.indexInRange(0, count);
            s0 = elements(format, w, row + (long) j * bytes, count)
                    .fma(FloatVector.fromArray(FLOATS, x, xi + j, lanes), s0);
        }
        return sum(s0.add(s1));
    }

    /** The lanes' sum in {@link Simd#sum}'s fixed order. */
    private static float sum(FloatVector v) {
        return LANES == Simd.LANES ? Simd.sum(v) : Simd.sumAnyWidth(v);
    }

    /** The binary16 scale of the block at byte {@code at}, in every lane. */
    private static FloatVector scale(MemorySegment w, long at) {
        return FloatVector.broadcast(FLOATS, Float.float16ToFloat(w.get(HALF, at)));
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
     * makes subnormal halves normal floats. An all-ones exponent (infinity, NaN) scales to at least 2¹⁶, above every
     * finite half, and is given the float's all-ones exponent, keeping the significand bits: a NaN keeps its payload
     * as it is (x86's conversion instruction, which {@link Float#float16ToFloat} compiles to, also sets the quiet bit).
     */
    static FloatVector halfToFloat(ShortVector halves) {
        IntVector h = (IntVector) halves.convertShape(ZERO_EXTEND_S2I, INTS, 0);
        FloatVector scaled =
                h.and(0x7FFF).lanewise(LSHL, 13).reinterpretAsFloats().mul(0x1p112f);
        // Non-negative floats order as their bits do: 0x47800000 is 2¹⁶.
        IntVector bits = scaled.reinterpretAsInts();
        bits = bits.blend(bits.or(0x7F800000), bits.compare(VectorOperators.GE, 0x47800000));
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
                    decodeBlock(format == WeightFormat.Q4_0, data, block, scale(data, block), dst, j);
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

    /** The 32 values of the block at byte {@code at} into {@code dst[j, j + 32)}, times d: {@code d·q}, exact in float. */
    private static void decodeBlock(boolean q4, MemorySegment w, long at, FloatVector d, float[] dst, int j) {
        for (int k = 0; k < (q4 ? BLOCK / 2 : BLOCK); k += BYTE_STEP) {
            ByteVector bytes = ByteVector.fromMemorySegment(BYTES, w, at + SCALE_BYTES + k, ORDER);
            for (int part = 0; part < PARTS; part++) {
                int to = j + k + part * LANES;
                if (q4) {
                    widen(bytes.and((byte) 0x0F).sub((byte) 8), part).mul(d).intoArray(dst, to);
                    widen(bytes.lanewise(LSHR, 4).sub((byte) 8), part).mul(d).intoArray(dst, to + BLOCK / 2);
                } else {
                    widen(bytes, part).mul(d).intoArray(dst, to);
                }
            }
        }
    }

    /** Part {@code part} of signed bytes as floats. */
    private static FloatVector widen(ByteVector values, int part) {
        return (FloatVector) values.convertShape(B2F, FLOATS, part);
    }
}
