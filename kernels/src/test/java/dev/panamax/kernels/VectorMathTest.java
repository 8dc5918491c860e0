package dev.panamax.kernels;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/** The vector exponential against float64 {@link StrictMath#exp}, in units in the last place of the float result. */
@Tag("species")
class VectorMathTest {
    @Test
    void expIsWithinTwoUlpOverItsWholeRange() {
        // Every 97th float bit pattern between EXP_LOW and EXP_HIGH: about 11 million values, both signs.
        int count = 1 << 20;
        float[] values = new float[count];
        double worst = 0;
        float worstAt = 0;
        int filled = 0;
        for (int sign = 0; sign < 2; sign++) {
            float bound = sign == 0 ? VectorMath.EXP_HIGH : VectorMath.EXP_LOW;
            int top = Float.floatToRawIntBits(Math.abs(bound));
            for (int bits = 0; bits <= top; bits += 97) {
                float x = Float.intBitsToFloat(bits) * (sign == 0 ? 1 : -1);
                values[filled++] = x;
                if (filled == count || bits + 97 > top) {
                    float[] inputs = java.util.Arrays.copyOf(values, filled);
                    VectorMath.expShifted(values, 0, filled, 0f);
                    for (int i = 0; i < filled; i++) {
                        double exact = StrictMath.exp(inputs[i]);
                        double ulps = Math.abs(values[i] - exact) / Math.ulp((float) exact);
                        if (ulps > worst) {
                            worst = ulps;
                            worstAt = inputs[i];
                        }
                    }
                    filled = 0;
                }
            }
        }
        assertTrue(worst <= 2, "worst error " + worst + " ulp at x = " + worstAt);
    }

    @Test
    void specialValues() {
        float[] x = {Float.NEGATIVE_INFINITY, -1000f, -87.5f, 0f, -0f, 89f, Float.POSITIVE_INFINITY, Float.NaN, 1f};
        float sum = VectorMath.expShifted(x, 0, x.length, 0f);
        assertEquals(0f, x[0]);
        assertEquals(0f, x[1]);
        assertEquals(0f, x[2]);
        assertEquals(1f, x[3]);
        assertEquals(1f, x[4]);
        assertEquals(Float.POSITIVE_INFINITY, x[5]);
        assertEquals(Float.POSITIVE_INFINITY, x[6]);
        assertTrue(Float.isNaN(x[7]));
        assertEquals((float) Math.E, x[8], Math.ulp((float) Math.E));
        assertTrue(Float.isNaN(sum));
    }

    @Test
    void theSumCoversOnlyTheRangeAndTheShiftApplies() {
        float[] x = {9, 1, 2, 3, 9};
        float sum = VectorMath.expShifted(x, 1, 3, 3f);
        double expected = Math.exp(-2) + Math.exp(-1) + 1;
        assertEquals(expected, sum, 1e-6);
        assertEquals(9f, x[0]);
        assertEquals(9f, x[4]);
    }
}
