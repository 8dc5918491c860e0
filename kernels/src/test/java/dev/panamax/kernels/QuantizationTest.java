package dev.panamax.kernels;

import static dev.panamax.kernels.testing.Agreement.assertAllRejected;
import static dev.panamax.kernels.testing.Rejection.illegalArgument;
import static dev.panamax.kernels.testing.Rejection.outOfBounds;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.panamax.kernels.testing.Inputs;
import dev.panamax.kernels.testing.Rejection;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;

/**
 * The encoders against GGML's rules re-derived here in double arithmetic (each float operation of GGML's reference
 * code is one exactly rounded double operation followed by a rounding to float, which gives the float result), the
 * decoders against the formats' definitions, and the binary16 and bfloat16 conversions over all 65536 patterns.
 */
@Tag("species")
class QuantizationTest {
    private static final ValueLayout.OfShort HALF = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    /** Every binary16 pattern through the vector decoder of F16 rows, against the JDK's scalar conversion. */
    @Test
    void halfDecodingIsExactForAllPatterns() {
        short[] all = everyPattern();
        float[] decoded = decodeRow(WeightFormat.F16, all);
        for (int i = 0; i < all.length; i++) {
            float expected = Float.float16ToFloat((short) i);
            String what = "half 0x" + Integer.toHexString(i);
            if (Float.isNaN(expected)) {
                // A NaN keeps its sign and payload (the JDK's compiled conversion, x86's instruction, also sets the
                // quiet bit; its interpreted one does not).
                int nan = (i & 0x8000) << 16 | 0x7F800000 | (i & 0x3FF) << 13;
                assertEquals(nan, Float.floatToRawIntBits(decoded[i]), what);
                // The scalar conversion makes it quiet, whichever of the JDK's conversions ran.
                assertEquals(nan | 0x0040_0000, Float.floatToRawIntBits(Quantization.halfToFloat((short) i)), what);
                continue;
            }
            assertEquals(Float.floatToRawIntBits(expected), Float.floatToRawIntBits(decoded[i]), what);
            assertEquals(
                    Float.floatToRawIntBits(expected), Float.floatToRawIntBits(Quantization.halfToFloat((short) i)));
        }
    }

    /** Every bfloat16 pattern through the vector decoder and the scalar one: the float with those upper 16 bits. */
    @Test
    void bfloat16DecodingIsExactForAllPatterns() {
        short[] all = everyPattern();
        float[] decoded = decodeRow(WeightFormat.BF16, all);
        for (int i = 0; i < all.length; i++) {
            int expected = i << 16;
            assertEquals(expected, Float.floatToRawIntBits(decoded[i]), "bfloat16 0x" + Integer.toHexString(i));
            assertEquals(expected, Float.floatToRawIntBits(Quantization.bfloat16ToFloat((short) i)));
        }
    }

    /** All 65536 16-bit patterns, in order. */
    private static short[] everyPattern() {
        short[] all = new short[65536];
        for (int i = 0; i < all.length; i++) {
            all[i] = (short) i;
        }
        return all;
    }

    private static float[] decodeRow(WeightFormat format, short[] values) {
        MemorySegment data = MemorySegment.ofArray(new byte[values.length * 2 + 1]);
        for (int i = 0; i < values.length; i++) {
            data.set(HALF, 1 + 2L * i, values[i]);
        }
        float[] row = new float[values.length + 2];
        Quantization.dequantizeRow(new QuantizedMatrix(format, data, 1, 1, values.length), 0, row, 2);
        return Arrays.copyOfRange(row, 2, row.length);
    }

    /**
     * Encoding to binary16 and bfloat16 against round-to-nearest-even computed from the neighbouring representable
     * values: every pattern's value, the midpoints between neighbours (the ties) and a float either side of them, and
     * random floats over the whole range.
     */
    @Test
    void encodingRoundsToNearestEven() {
        SplittableRandom random = new SplittableRandom(5);
        for (int i = 0; i < 65536; i++) {
            for (boolean bfloat : new boolean[] {false, true}) {
                float value = bfloat ? Float.intBitsToFloat(i << 16) : Float.float16ToFloat((short) i);
                if (Float.isNaN(value)) {
                    short encoded = bfloat ? Quantization.floatToBfloat16(value) : Quantization.floatToHalf(value);
                    float back = bfloat ? Quantization.bfloat16ToFloat(encoded) : Quantization.halfToFloat(encoded);
                    assertTrue(Float.isNaN(back), "NaN 0x" + Integer.toHexString(i) + " stays NaN");
                    continue;
                }
                checkRounding(bfloat, value);
                if (value >= 0 && !Float.isInfinite(value)) {
                    float next = bfloat ? Float.intBitsToFloat((i + 1) << 16) : Float.float16ToFloat((short) (i + 1));
                    float midpoint = (float) (((double) value + next) / 2);
                    checkRounding(bfloat, midpoint);
                    checkRounding(bfloat, Math.nextUp(midpoint));
                    checkRounding(bfloat, Math.nextDown(midpoint));
                    checkRounding(bfloat, -midpoint);
                }
            }
        }
        for (int i = 0; i < 200_000; i++) {
            float value = Float.intBitsToFloat(random.nextInt());
            if (!Float.isNaN(value)) {
                checkRounding(false, value);
                checkRounding(true, value);
            }
        }
    }

    /** The encoder's result is the representable value nearest {@code value}, the even one of two as near. */
    private static void checkRounding(boolean bfloat, float value) {
        short encoded = bfloat ? Quantization.floatToBfloat16(value) : Quantization.floatToHalf(value);
        double got = bfloat ? Quantization.bfloat16ToFloat(encoded) : Quantization.halfToFloat(encoded);
        double largest = bfloat ? 0x1.fep127 : 65504;
        // From the largest finite value plus half its ulp on, a value rounds to infinity.
        double overflow = bfloat ? 0x1.fep127 + 0x1p119 : 65520;
        String what = (bfloat ? "bfloat16" : "binary16") + " of " + value + " (0x"
                + Integer.toHexString(Float.floatToRawIntBits(value)) + ")";
        if (Math.abs(value) >= overflow) {
            assertEquals(Math.copySign(Double.POSITIVE_INFINITY, value), got, what);
            return;
        }
        assertTrue(Math.abs(got) <= largest, what + " gave " + got);
        double error = Math.abs(got - value);
        // Neighbours of the result, one pattern apart: neither may be nearer, and a tie goes to the even pattern.
        for (int step : new int[] {-1, 1}) {
            short neighbour = (short) (encoded + step);
            double other = bfloat ? Quantization.bfloat16ToFloat(neighbour) : Quantization.halfToFloat(neighbour);
            if (Double.isNaN(other) || Math.signum(other) * Math.signum(got) < 0) {
                continue;
            }
            double otherError = Math.abs(other - value);
            assertTrue(
                    error < otherError || (error == otherError && (encoded & 1) == 0),
                    what + " gave " + got + ", but " + other + " is as near or nearer");
        }
    }

    /** GGML's Q8_0 rule, in double: d = amax/127 rounded to float, id = 1/d, q = round(x·id) away from zero. */
    private static void referenceQ8(float[] x, int from, MemorySegment out, long at) {
        double amax = 0;
        for (int i = 0; i < 32; i++) {
            amax = Math.max(amax, Math.abs(x[from + i]));
        }
        float d = (float) (amax / 127);
        float id = d != 0 ? (float) (1.0 / d) : 0;
        out.set(HALF, at, Float.floatToFloat16(d));
        for (int i = 0; i < 32; i++) {
            double v = (float) ((double) x[from + i] * id);
            out.set(ValueLayout.JAVA_BYTE, at + 2 + i, (byte) (Math.signum(v) * Math.floor(Math.abs(v) + 0.5)));
        }
    }

    /** GGML's Q4_0 rule, in double: the first value of largest magnitude m, d = m/−8, q = min(15, ⌊x·id + 8.5⌋). */
    private static void referenceQ4(float[] x, int from, MemorySegment out, long at) {
        double m = 0;
        for (int i = 0; i < 32; i++) {
            if (Math.abs(x[from + i]) > Math.abs(m)) {
                m = x[from + i];
            }
        }
        float d = (float) (m / -8);
        float id = d != 0 ? (float) (1.0 / d) : 0;
        out.set(HALF, at, Float.floatToFloat16(d));
        for (int i = 0; i < 16; i++) {
            int low = (int) Math.min(15, Math.floor((float) ((float) ((double) x[from + i] * id) + 8.5)));
            int high = (int) Math.min(15, Math.floor((float) ((float) ((double) x[from + 16 + i] * id) + 8.5)));
            out.set(ValueLayout.JAVA_BYTE, at + 2 + i, (byte) (low | high << 4));
        }
    }

    @Test
    void blockEncodingFollowsGgml() {
        int rows = 7;
        int columns = 96;
        int ld = 100;
        for (WeightFormat format : new WeightFormat[] {WeightFormat.Q8_0, WeightFormat.Q4_0}) {
            for (float range : new float[] {1e-6f, 1, 3e3f, 3e4f}) {
                float[] src = Inputs.gaussian(Inputs.seed(format + " " + range), 3 + rows * ld, range);
                // A block of zeros, and one with a single non-zero value.
                Arrays.fill(src, 3 + ld, 3 + ld + 32, 0f);
                Arrays.fill(src, 3 + 2 * ld, 3 + 2 * ld + 32, 0f);
                src[3 + 2 * ld + 7] = -range;
                long rowBytes = format.rowBytes(columns);
                MemorySegment actual = MemorySegment.ofArray(new byte[(int) (5 + rows * rowBytes)]);
                MemorySegment expected = MemorySegment.ofArray(new byte[(int) (5 + rows * rowBytes)]);
                Quantization.quantize(format, MemorySegment.ofArray(src), 3, rows, columns, ld, actual, 5);
                for (int r = 0; r < rows; r++) {
                    for (int b = 0; b < columns / 32; b++) {
                        long at = 5 + r * rowBytes + (long) b * format.bytesPerBlock();
                        if (format == WeightFormat.Q8_0) {
                            referenceQ8(src, 3 + r * ld + 32 * b, expected, at);
                        } else {
                            referenceQ4(src, 3 + r * ld + 32 * b, expected, at);
                        }
                    }
                }
                assertArrayEquals(
                        expected.toArray(ValueLayout.JAVA_BYTE),
                        actual.toArray(ValueLayout.JAVA_BYTE),
                        format + " range " + range);
                // Decoding gives each value back within half a quantization step (Q8_0: d/2; Q4_0: |d|/2, but the
                // clamp at 15 may cost a whole step at the end of the range opposite m).
                QuantizedMatrix w = new QuantizedMatrix(format, actual, 5, rows, columns);
                float[] row = new float[columns];
                for (int r = 0; r < rows; r++) {
                    Quantization.dequantizeRow(w, r, row, 0);
                    for (int c = 0; c < columns; c++) {
                        int from = 3 + r * ld + c / 32 * 32;
                        double amax = 0;
                        for (int i = 0; i < 32; i++) {
                            amax = Math.max(amax, Math.abs(src[from + i]));
                        }
                        // The float scale, and the binary16 one stored: values are off by up to half a step (Q8_0) or
                        // a step (Q4_0, whose clamp at 15 costs up to a step at the end opposite m) of the float
                        // scale, plus 128 times the rounding of the scale to binary16.
                        double d = amax / (format == WeightFormat.Q8_0 ? 127 : 8);
                        double stored = Math.abs(Float.float16ToFloat(
                                actual.get(HALF, 5 + r * rowBytes + (c / 32) * (long) format.bytesPerBlock())));
                        double step = format == WeightFormat.Q8_0 ? 0.5 : 1;
                        double x = src[3 + r * ld + c];
                        assertTrue(
                                Math.abs(row[c] - x) <= step * d * (1 + 0x1p-20) + 128 * Math.abs(stored - d),
                                format + " row " + r + " column " + c + ": " + x + " decoded to " + row[c]);
                    }
                }
            }
        }
    }

    /** Known blocks: Q8_0 of integers with amax 127 stores them exactly; Q4_0's stored values by hand. */
    @Test
    void knownBlocks() {
        float[] integers = new float[32];
        for (int i = 0; i < 32; i++) {
            integers[i] = i * 8 - 127;
        }
        integers[31] = 127;
        float[] decoded = roundTrip(WeightFormat.Q8_0, integers);
        assertArrayEquals(integers, decoded);
        float[] scaled = new float[32];
        for (int i = 0; i < 32; i++) {
            scaled[i] = integers[i] * 0x1p-10f;
        }
        assertArrayEquals(scaled, roundTrip(WeightFormat.Q8_0, scaled));
        // Q4_0: m = -8 gives d = 1; values -8..7 are stored exactly (x + 8.5 truncated), m itself as nibble 0.
        float[] small = new float[32];
        for (int i = 0; i < 32; i++) {
            small[i] = i % 16 - 8;
        }
        assertArrayEquals(small, roundTrip(WeightFormat.Q4_0, small));
        MemorySegment bytes = MemorySegment.ofArray(new byte[18]);
        Quantization.quantize(WeightFormat.Q4_0, MemorySegment.ofArray(small), 0, 1, 32, 32, bytes, 0);
        assertEquals(1f, Float.float16ToFloat(bytes.get(HALF, 0)));
        assertEquals(0x00, bytes.get(ValueLayout.JAVA_BYTE, 2));
        assertEquals((byte) 0xFF, bytes.get(ValueLayout.JAVA_BYTE, 17));
        // With m = +8, d = -1: -7 to 8 are exact, and -7.75 would need nibble 16, is clamped to 15 and decodes to -7,
        // as in GGML.
        float[] positive = new float[32];
        for (int i = 0; i < 32; i++) {
            positive[i] = i % 16 - 7;
        }
        positive[16] = -7.75f;
        float[] back = roundTrip(WeightFormat.Q4_0, positive);
        positive[16] = -7;
        // A zero decodes as d·0 = -0 (d is negative): equal to 0 within 0.
        assertArrayEquals(positive, back, 0f);
    }

    private static float[] roundTrip(WeightFormat format, float[] values) {
        MemorySegment bytes = MemorySegment.ofArray(new byte[(int) format.rowBytes(values.length)]);
        Quantization.quantize(format, MemorySegment.ofArray(values), 0, 1, values.length, values.length, bytes, 0);
        float[] back = new float[values.length];
        Quantization.dequantizeRow(new QuantizedMatrix(format, bytes, 0, 1, values.length), 0, back, 0);
        return back;
    }

    /** F32, F16 and BF16 encode every element, as the conversions do; F32 bit for bit. */
    @Test
    void elementFormatsEncodeEachValue() {
        float[] values = Inputs.gaussian(3, 37, 100);
        values[4] = Float.NaN;
        values[5] = Float.NEGATIVE_INFINITY;
        values[6] = 1e-42f;
        assertArrayEquals(values, roundTrip(WeightFormat.F32, values));
        float[] halves = roundTrip(WeightFormat.F16, values);
        float[] bfloats = roundTrip(WeightFormat.BF16, values);
        for (int i = 0; i < values.length; i++) {
            assertEquals(Float.float16ToFloat(Float.floatToFloat16(values[i])), halves[i], "F16 " + i);
            assertEquals(
                    Quantization.bfloat16ToFloat(Quantization.floatToBfloat16(values[i])), bfloats[i], "BF16 " + i);
        }
    }

    @Test
    void rejectsWhatTheFormatsCannotHold() {
        MemorySegment dst = MemorySegment.ofArray(new byte[64]);
        MemorySegment nan = blockWith(Float.NaN);
        MemorySegment infinite = blockWith(Float.POSITIVE_INFINITY);
        MemorySegment huge = blockWith(1e7f);
        MemorySegment shared = MemorySegment.ofArray(new float[64]);
        QuantizedMatrix w = new QuantizedMatrix(WeightFormat.Q8_0, dst, 0, 1, 32);
        WeightFormat q8 = WeightFormat.Q8_0;
        List<Rejection> rows = List.of(
                illegalArgument("src row 0, column 9 (NaN) must be finite", quantize(q8, nan, 1, 32, dst, 0)),
                illegalArgument(
                        "column 9 (Infinity) must be finite", quantize(WeightFormat.Q4_0, infinite, 1, 32, dst, 0)),
                illegalArgument("above binary16's largest, 65504", quantize(q8, huge, 1, 32, dst, 0)),
                illegalArgument("columns (31) must be a multiple of 32", quantize(q8, huge, 1, 31, dst, 0)),
                outOfBounds(
                        "dst holds 64 bytes, but 2 rows of Q8_0 needs 68",
                        quantize(q8, MemorySegment.ofArray(new float[64]), 2, 32, dst, 0)),
                illegalArgument("dst is read-only", quantize(q8, huge, 1, 32, dst.asReadOnly(), 0)),
                illegalArgument("shares memory with src", quantize(q8, shared, 1, 32, shared, 100)),
                outOfBounds(
                        "row (1) must be >= 0 and < w.rows() (1)",
                        () -> Quantization.dequantizeRow(w, 1, new float[32], 0)),
                outOfBounds("dst holds 31 floats", () -> Quantization.dequantizeRow(w, 0, new float[31], 0)));
        assertAllRejected(rows);
    }

    /**
     * A block the format cannot hold, in the last row, is rejected before anything is written: dst keeps every byte,
     * as the package promises of every argument check.
     */
    @Test
    void aBadLastBlockLeavesDstUntouched() {
        int rows = 3;
        int columns = 64;
        for (WeightFormat format : new WeightFormat[] {WeightFormat.Q8_0, WeightFormat.Q4_0}) {
            for (float bad : new float[] {Float.NaN, Float.NEGATIVE_INFINITY, 1e7f}) {
                float[] src = Inputs.uniform(Inputs.seed("bad last block"), rows * columns, -1, 1);
                src[rows * columns - 1] = bad;
                byte[] dst = new byte[(int) (rows * format.rowBytes(columns))];
                Arrays.fill(dst, (byte) 0x5A);
                byte[] before = dst.clone();
                assertAllRejected(List.of(illegalArgument(
                        "src row 2, ",
                        () -> Quantization.quantize(
                                format,
                                MemorySegment.ofArray(src),
                                0,
                                rows,
                                columns,
                                columns,
                                MemorySegment.ofArray(dst),
                                0))));
                assertArrayEquals(before, dst, format + " with " + bad + " in the last block");
            }
        }
    }

    /** Quantizes {@code rows} rows of {@code columns} floats, 32 apart from src's start, into dst. */
    private static Executable quantize(
            WeightFormat format, MemorySegment src, int rows, int columns, MemorySegment dst, long dstOffset) {
        return () -> Quantization.quantize(format, src, 0, rows, columns, 32, dst, dstOffset);
    }

    /** A block of 32 zeros but for {@code value} in column 9, as a heap segment. */
    private static MemorySegment blockWith(float value) {
        float[] block = new float[32];
        block[9] = value;
        return MemorySegment.ofArray(block);
    }
}
