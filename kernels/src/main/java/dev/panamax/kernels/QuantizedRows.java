package dev.panamax.kernels;

import static jdk.incubator.vector.VectorOperators.B2F;
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
 * WeightFormat} to float vectors, and the dot product of one weight row with one activation row. Each row's dot
 * product is one fixed sequence of operations, whichever task computes it, so results do not depend on how rows are
 * split over threads. The activations stay floats: widening the weights' bytes to floats and multiplying there is cheaper
 * than quantizing x and multiplying bytes as integers, since the Vector API has no 8-bit dot-product instruction and
 * widened integer products need as many conversions.
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

    /** This thread's copy of activations staged out of a segment, which the workers only read. */
    static final Scratch STAGED = new Scratch();
    /**
     * This thread's slice of a panel of W decoded to floats, for the SGEMM: {@link GemmDriver#KC} columns of each row,
     * or a panel's one row whole ({@link #multiply}).
     */
    static final Scratch PANEL = new Scratch();

    /**
     * Tokens from which the weights are decoded to floats and multiplied by the SGEMM: a prompt's many tokens amortise
     * the decoding, and the SGEMM's register tiles reuse each weight across tokens, where a dot product per token
     * does not.
     */
    static final int DECODED_PANEL_TOKENS = 16;

    private QuantizedRows() {}

    /**
     * {@code y[t][r] = Σ_c W[r][c]·x[t][c]} for rows {@code [from, to)} and every token t: token t's activations at
     * {@code x[xBase + t·ldx]}, its results at float {@code yOffset + t·ldy + r} of y. Rows go in order, so the matrix
     * is read as one sequential stream, and each row stays in cache while every token uses it. From {@link
     * #DECODED_PANEL_TOKENS} tokens on, the rows are decoded to floats and multiplied by the SGEMM on the calling
     * thread, a slice of {@link GemmDriver#KC} columns at a time, each slice's product added to Y (beta 1 after the
     * first). The SGEMM itself reduces over k in slices of KC, adding each to C by the same {@code alpha·tile + 1·C},
     * so a product per slice gives each element of Y the same bits as one product over the whole rows, while the panel
     * holds KC floats of each row (256 KiB for {@link QuantizedProduct}'s 64 rows, which stay in L2 until packed). A
     * single row goes whole: the SGEMM takes it as a matrix-vector product, which reduces over all of k at once.
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
        if (tokens >= DECODED_PANEL_TOKENS) {
            int rows = to - from;
            int columns = w.columns();
            int width = rows == 1 ? columns : Math.min(columns, GemmDriver.KC);
            float[] panel = PANEL.take(rows * width);
            try {
                // At least one product, so that 0 columns still writes Y's zeros.
                int k0 = 0;
                do {
                    int kc = Math.min(width, columns - k0);
                    for (int r = from; r < to; r++) {
                        decodeRow(w, r, k0, kc, panel, (r - from) * kc);
                    }
                    GemmDriver.run(
                            new Product(
                                    false,
                                    true,
                                    tokens,
                                    rows,
                                    kc,
                                    1f,
                                    new Matrix(MemorySegment.ofArray(x), xBase + k0, ldx),
                                    new Matrix(MemorySegment.ofArray(panel), 0, kc),
                                    k0 == 0 ? 0f : 1f,
                                    new Matrix(y, yOffset + from, ldy)),
                            false);
                    k0 += kc;
                } while (k0 < columns);
            } finally {
                PANEL.release();
            }
            return;
        }
        MemorySegment data = w.data();
        long rowBytes = w.rowBytes();
        int columns = w.columns();
        WeightFormat format = w.format();
        boolean blocks = format.blockLength() == BLOCK;
        // With several tokens a block row's values are widened once, into this thread's arrays, and every token reads
        // the floats: the same operations on the same (exact) values as widening per token, so the same bits.
        WidenedRow widened = blocks && tokens > 1 ? WIDENED.get().fit(columns) : null;
        for (int r = from; r < to; r++) {
            long row = w.byteOffset() + r * rowBytes;
            if (widened != null) {
                widened.widen(w, r);
            }
            for (int t = 0; t < tokens; t++) {
                int xi = xBase + t * ldx;
                float dot;
                if (widened != null) {
                    dot = widened.dot(format == WeightFormat.Q4_0, columns, x, xi);
                } else {
                    dot = switch (format) {
                        case Q8_0 -> q8Row(data, row, columns, x, xi);
                        case Q4_0 -> q4Row(data, row, columns, x, xi);
                        case F32, F16, BF16 -> elementRow(format, data, row, columns, x, xi);
                    };
                }
                y.setAtIndex(Simd.FLOAT, yOffset + (long) t * ldy + r, dot);
            }
        }
    }

    private static final ThreadLocal<WidenedRow> WIDENED = ThreadLocal.withInitial(WidenedRow::new);

    /**
     * A Q8_0 or Q4_0 row widened to floats in column order: Q8_0's values q with their scales apart, Q4_0's decoded
     * weights {@code d·(nibble − 8)}.
     */
    private static final class WidenedRow {
        private float[] values = new float[0];
        private float[] scales = new float[0];

        WidenedRow fit(int columns) {
            if (values.length < columns) {
                values = new float[columns];
                scales = new float[columns / BLOCK];
            }
            return this;
        }

        /** Widens row r of w: Q4_0's weights as {@link #decodeRow} decodes them, Q8_0's values and scales apart. */
        void widen(QuantizedMatrix w, int r) {
            if (w.format() == WeightFormat.Q4_0) {
                decodeRow(w, r, 0, w.columns(), values, 0);
                return;
            }
            FloatVector one = FloatVector.broadcast(FLOATS, 1f);
            long row = w.byteOffset() + r * w.rowBytes();
            for (int b = 0; b < w.columns() / BLOCK; b++) {
                long at = row + b * Q8_BYTES;
                scales[b] = Float.float16ToFloat(w.data().get(HALF, at));
                decodeBlock(false, w.data(), at, one, values, b * BLOCK);
            }
        }

        /** The row times {@code x[xi, xi + columns)}, by exactly the operations of {@link #q8Row} or {@link #q4Row}. */
        float dot(boolean q4, int columns, float[] x, int xi) {
            float[] v = values;
            if (q4) {
                FloatVector low = FloatVector.zero(FLOATS);
                FloatVector high = low;
                for (int j = 0; j < columns; j += BLOCK) {
                    for (int k = 0; k < BLOCK / 2; k += LANES) {
                        low = FloatVector.fromArray(FLOATS, v, j + k)
                                .fma(FloatVector.fromArray(FLOATS, x, xi + j + k), low);
                        high = FloatVector.fromArray(FLOATS, v, j + k + BLOCK / 2)
                                .fma(FloatVector.fromArray(FLOATS, x, xi + j + k + BLOCK / 2), high);
                    }
                }
                return sum(low.add(high));
            }
            FloatVector sum = FloatVector.zero(FLOATS);
            for (int j = 0; j < columns; j += BLOCK) {
                FloatVector products =
                        FloatVector.fromArray(FLOATS, v, j).mul(FloatVector.fromArray(FLOATS, x, xi + j));
                for (int k = LANES; k < BLOCK; k += LANES) {
                    products = FloatVector.fromArray(FLOATS, v, j + k)
                            .fma(FloatVector.fromArray(FLOATS, x, xi + j + k), products);
                }
                sum = products.fma(FloatVector.broadcast(FLOATS, scales[j / BLOCK]), sum);
            }
            return sum(sum);
        }
    }

    /**
     * The Q8_0 row at byte {@code row} times {@code x[xi, xi + columns)}: per block, the lane-wise sum of {@code q·x}
     * over its values in one chain that starts with a multiply, then times the block's scale d and added to the row's
     * sum. A block's chain is short and independent of the other blocks', so the core overlaps them; starting it with
     * a multiply rather than two chains from zero spares a block one addition and two register copies.
     */
    private static float q8Row(MemorySegment w, long row, int columns, float[] x, int xi) {
        FloatVector sum = FloatVector.zero(FLOATS);
        int blocks = columns / BLOCK;
        for (int b = 0; b < blocks; b++) {
            long at = row + (long) b * Q8_BYTES;
            int xj = xi + b * BLOCK;
            FloatVector products = q8Values(w, at, 0).mul(FloatVector.fromArray(FLOATS, x, xj));
            for (int k = LANES; k < BLOCK; k += LANES) {
                products = q8Values(w, at, k).fma(FloatVector.fromArray(FLOATS, x, xj + k), products);
            }
            sum = products.fma(FloatVector.broadcast(FLOATS, Float.float16ToFloat(w.get(HALF, at))), sum);
        }
        return sum(sum);
    }

    /**
     * Values {@code [k, k + LANES)} of the Q8_0 block at byte {@code at}, as floats; with fewer lanes than {@link
     * #BYTE_STEP} bytes, part of the aligned load that holds them, so that no load reaches past the block.
     */
    private static FloatVector q8Values(MemorySegment w, long at, int k) {
        int part = (k / LANES) % PARTS;
        return widen(ByteVector.fromMemorySegment(BYTES, w, at + SCALE_BYTES + k - part * LANES, ORDER), part);
    }

    /**
     * The Q4_0 row at byte {@code row} times {@code x[xi, xi + columns)}: each weight decoded to {@code d·(nibble − 8)}
     * (exact in float), times its activation and added to one of two sums, the low nibbles' (a block's elements 0 to
     * 15) and the high nibbles' (16 to 31). Folding d into the weights takes the scale's multiply out of every block's
     * chain; with 16 lanes a block's 16 weights of each half are one lookup of its nibbles in the 16 decoded values
     * {@code d·(−8..7)}.
     */
    private static float q4Row(MemorySegment w, long row, int columns, float[] x, int xi) {
        FloatVector low = FloatVector.zero(FLOATS);
        FloatVector high = low;
        for (int b = 0; b < columns / BLOCK; b++) {
            long at = row + (long) b * Q4_BYTES;
            int xj = xi + b * BLOCK;
            float d = Float.float16ToFloat(w.get(HALF, at));
            if (LANES == BLOCK / 2) {
                IntVector decoded = NIBBLE_VALUES.mul(d).reinterpretAsInts();
                IntVector bytes = (IntVector) ByteVector.fromMemorySegment(BYTES, w, at + SCALE_BYTES, ORDER)
                        .convertShape(ZERO_EXTEND_B2I, INTS, 0);
                low = bytes.and(0x0F)
                        .selectFrom(decoded)
                        .reinterpretAsFloats()
                        .fma(FloatVector.fromArray(FLOATS, x, xj), low);
                high = bytes.lanewise(LSHR, 4)
                        .selectFrom(decoded)
                        .reinterpretAsFloats()
                        .fma(FloatVector.fromArray(FLOATS, x, xj + BLOCK / 2), high);
            } else {
                FloatVector scale = FloatVector.broadcast(FLOATS, d);
                for (int k = 0; k < BLOCK / 2; k += BYTE_STEP) {
                    ByteVector packed = ByteVector.fromMemorySegment(BYTES, w, at + SCALE_BYTES + k, ORDER);
                    for (int part = 0; part < PARTS; part++) {
                        int xk = xj + k + part * LANES;
                        low = q4Values(packed, false, part, scale).fma(FloatVector.fromArray(FLOATS, x, xk), low);
                        high = q4Values(packed, true, part, scale)
                                .fma(FloatVector.fromArray(FLOATS, x, xk + BLOCK / 2), high);
                    }
                }
            }
        }
        return sum(low.add(high));
    }

    /** The values of Q4_0's nibbles 0 to 15 before scaling, one per lane where a vector has 16 (unused otherwise). */
    private static final FloatVector NIBBLE_VALUES =
            FloatVector.fromArray(FLOATS, new float[] {-8, -7, -6, -5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5, 6, 7}, 0);

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

    /**
     * Decodes columns {@code [first, first + count)} of row {@code row} of w into {@code dst[from, from + count)}, each
     * element as the products decode it; for Q8_0 and Q4_0, first and count are whole blocks.
     */
    static void decodeRow(QuantizedMatrix w, int row, int first, int count, float[] dst, int from) {
        MemorySegment data = w.data();
        WeightFormat format = w.format();
        long at = w.byteOffset() + row * w.rowBytes() + (long) first / format.blockLength() * format.bytesPerBlock();
        switch (format) {
            case Q8_0, Q4_0 -> {
                for (int j = 0; j < count; j += BLOCK) {
                    long block = at + (long) (j / BLOCK) * format.bytesPerBlock();
                    decodeBlock(format == WeightFormat.Q4_0, data, block, scale(data, block), dst, from + j);
                }
            }
            case F32, F16, BF16 -> {
                int vectorEnd = count - count % LANES;
                int bytes = format.bytesPerBlock();
                for (int j = 0; j < vectorEnd; j += LANES) {
                    elements(format, data, at + (long) j * bytes).intoArray(dst, from + j);
                }
                if (vectorEnd < count) {
                    int tail = count - vectorEnd;
                    elements(format, data, at + (long) vectorEnd * bytes, tail)
                            .intoArray(dst, from + vectorEnd, FLOATS.indexInRange(0, tail));
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
                    q4Values(bytes, false, part, d).intoArray(dst, to);
                    q4Values(bytes, true, part, d).intoArray(dst, to + BLOCK / 2);
                } else {
                    widen(bytes, part).mul(d).intoArray(dst, to);
                }
            }
        }
    }

    /**
     * Part {@code part} of the weights in a Q4_0 block's packed bytes, decoded to {@code d·(nibble − 8)}: the low
     * nibbles (the block's first half) or the high ones (its second).
     */
    private static FloatVector q4Values(ByteVector packed, boolean highNibbles, int part, FloatVector d) {
        ByteVector nibbles = highNibbles ? packed.lanewise(LSHR, 4) : packed.and((byte) 0x0F);
        return widen(nibbles.sub((byte) 8), part).mul(d);
    }

    /** Part {@code part} of signed bytes as floats. */
    private static FloatVector widen(ByteVector values, int part) {
        return (FloatVector) values.convertShape(B2F, FLOATS, part);
    }
}
