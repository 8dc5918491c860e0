package dev.panamax.kernels;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import jdk.incubator.vector.FloatVector;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * The vector exponential's error in ulps of the exact result, over every input it is specified for: all floats in
 * [-87.33, 88.37] (where eˣ is a normal float) are visited by bit pattern with a stride of 61 (≈ 35 million inputs,
 * every binade), plus all floats in [-1, 1] with a stride of 7; the non-positive half of that for the form the
 * softmax-shaped loops use ({@link RowMath#expSum}). The bound asserted is 2 ulp; the measured maximum is printed
 * (1.006 ulp, at x = 5.89, on AVX2 at the time of writing, the same at every width since only exact operations are
 * used).
 */
@Tag("species")
class VectorMathTest {
    private static final float LOW = -87.33f;
    private static final float HIGH = 88.37f;

    /** Floats passed to the function under test at a time: a multiple of every vector width. */
    private static final int BATCH = 4096;

    /** Fills {@code out} from {@code in}, {@link #BATCH} floats each. */
    private interface Lanes {
        void apply(float[] in, float[] out);
    }

    @Test
    void expIsWithinTwoUlpOverItsWholeRange() {
        assertWithinTwoUlp("VectorMath.exp", true, (in, out) -> {
            for (int i = 0; i < BATCH; i += Simd.LANES) {
                VectorMath.exp(FloatVector.fromArray(Simd.FLOATS, in, i)).intoArray(out, i);
            }
        });
    }

    @Test
    void expSumTermsAreWithinTwoUlpOverNonPositiveArguments() {
        assertWithinTwoUlp("RowMath.expSum", false, (in, out) -> RowMath.expSum(in.length, 1f, 0f, in, 0, out, 0));
    }

    /** Walks the floats described above (positive ones too when {@code positive}) through {@code exp} in batches. */
    private static void assertWithinTwoUlp(String name, boolean positive, Lanes exp) {
        Worst worst = new Worst();
        float[] in = new float[BATCH];
        float[] out = new float[BATCH];
        int filled = 0;
        // Negative floats by descending magnitude, then positive floats ascending: both as int bit patterns.
        int[][] ranges = {
            {Float.floatToRawIntBits(-0f), Float.floatToRawIntBits(LOW), 61},
            {0, positive ? Float.floatToRawIntBits(HIGH) : 0, 61},
            {Float.floatToRawIntBits(-0f), Float.floatToRawIntBits(-1f), 7},
            {0, positive ? Float.floatToRawIntBits(1f) : 0, 7}
        };
        for (int[] range : ranges) {
            for (long bits = range[0]; bits <= range[1]; bits += range[2]) {
                in[filled++] = Float.intBitsToFloat((int) bits);
                if (filled == BATCH) {
                    exp.apply(in, out);
                    worst.update(in, out, BATCH);
                    filled = 0;
                }
            }
        }
        // The last, partial batch, padded with an input already checked.
        Arrays.fill(in, filled, BATCH, in[0]);
        exp.apply(in, out);
        worst.update(in, out, filled);
        System.out.printf("%s: max error %.3f ulp at x = %s%n", name, worst.ulps, worst.at);
        assertTrue(worst.ulps <= 2, name + " error " + worst.ulps + " ulp at x = " + worst.at);
    }

    /** The largest error seen so far and its input. */
    private static final class Worst {
        double ulps;
        float at;

        void update(float[] in, float[] out, int count) {
            for (int i = 0; i < count; i++) {
                double error = VectorMathTest.ulps(in[i], out[i]);
                if (Double.isNaN(error)) {
                    error = Double.POSITIVE_INFINITY; // a NaN result is the worst error, not none
                }
                if (error > ulps) {
                    ulps = error;
                    at = in[i];
                }
            }
        }
    }

    /** |result - e^x| in units of the float ulp at e^x. */
    private static double ulps(float x, float result) {
        double exact = Math.exp(x);
        if (Double.isNaN(exact) || result == (float) exact) {
            // NaN for NaN, and the same infinity or zero where e^x leaves the float range: exact.
            return Double.isNaN(exact) == Float.isNaN(result) ? 0 : Double.POSITIVE_INFINITY;
        }
        return Math.abs(result - exact) / Math.ulp((float) exact);
    }

    /**
     * Every 251st bit pattern of the whole float range (both signs, subnormals, infinities and NaNs), then values at and
     * around the clamps: the two clamps must agree wherever the input is a number.
     */
    @Test
    void expIgnoringNaNIsExpBitForBitOnNumbers() {
        float[] edges = {
            0f,
            -0f,
            Float.MIN_VALUE,
            -Float.MIN_VALUE,
            Float.MAX_VALUE,
            -Float.MAX_VALUE,
            Float.POSITIVE_INFINITY,
            Float.NEGATIVE_INFINITY,
            88.5f,
            Math.nextUp(88.5f),
            Math.nextDown(88.5f),
            -88f,
            Math.nextUp(-88f),
            Math.nextDown(-88f),
            Float.NaN,
            Float.intBitsToFloat(0xffc00000),
            Float.intBitsToFloat(0x7f800001)
        };
        float[] in = new float[BATCH];
        float[] viaCompares = new float[BATCH];
        float[] viaIntegers = new float[BATCH];
        long bits = 0;
        boolean edgesDone = false;
        while (!edgesDone) {
            int count = 0;
            if (bits <= 0xffffffffL) {
                for (; count < BATCH && bits <= 0xffffffffL; count++, bits += 251) {
                    in[count] = Float.intBitsToFloat((int) bits);
                }
            } else {
                System.arraycopy(edges, 0, in, 0, edges.length);
                count = edges.length;
                edgesDone = true;
            }
            Arrays.fill(in, count, BATCH, 1f);
            for (int i = 0; i < BATCH; i += Simd.LANES) {
                FloatVector x = FloatVector.fromArray(Simd.FLOATS, in, i);
                VectorMath.exp(x).intoArray(viaCompares, i);
                VectorMath.expIgnoringNaN(x).intoArray(viaIntegers, i);
            }
            for (int i = 0; i < count; i++) {
                if (Float.isNaN(in[i])) {
                    assertTrue(!Float.isNaN(viaIntegers[i]), "a NaN lane gives a number");
                } else {
                    float x = in[i];
                    assertEquals(
                            Float.floatToRawIntBits(viaCompares[i]),
                            Float.floatToRawIntBits(viaIntegers[i]),
                            () -> "exp(" + x + ")");
                }
            }
        }
    }

    @Test
    void expSumTermsSaturateAndPropagate() {
        float[] in = {Float.NEGATIVE_INFINITY, -1e30f, -1e4f, -88f, -87.7f, Float.NaN, 0f, -0f, -1f};
        float[] expected = {0, 0, 0, 0, 0, Float.NaN, 1, 1, (float) Math.exp(-1)};
        float[] terms = new float[in.length];
        RowMath.expSum(in.length, 1f, 0f, in, 0, terms, 0);
        for (int i = 0; i < in.length; i++) {
            float bound = Float.isNaN(expected[i]) ? 0 : 2 * Math.ulp(expected[i]);
            assertEquals(expected[i], terms[i], bound, "exp(" + in[i] + ")");
        }
    }

    @Test
    void expSaturatesAndPropagates() {
        float[] in = {
            Float.NEGATIVE_INFINITY, -1e4f, -88f, -87.7f, 88.4f, 1e4f, Float.POSITIVE_INFINITY, Float.NaN, 0f, -0f, 1f
        };
        float[] expected = {
            0,
            0,
            0,
            0,
            Float.POSITIVE_INFINITY,
            Float.POSITIVE_INFINITY,
            Float.POSITIVE_INFINITY,
            Float.NaN,
            1,
            1,
            (float) Math.E
        };
        float[] out = new float[in.length];
        float[] lanes = new float[Simd.LANES];
        for (int i = 0; i < in.length; i++) {
            lanes[0] = in[i];
            out[i] =
                    VectorMath.exp(FloatVector.fromArray(Simd.FLOATS, lanes, 0)).lane(0);
        }
        for (int i = 0; i < in.length; i++) {
            float bound = Float.isFinite(expected[i]) ? 2 * Math.ulp(expected[i]) : 0;
            assertEquals(expected[i], out[i], bound, "exp(" + in[i] + ")");
        }
    }
}
