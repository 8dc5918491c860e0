package dev.panamax.kernels;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.Arrays;
import java.util.SplittableRandom;
import jdk.incubator.vector.FloatVector;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/** {@link Simd}'s helpers, at every vector width. */
@Tag("species")
class SimdTest {
    /**
     * The lane sum is the fixed pairwise tree ((l0 + l1) + (l2 + l3)) + …, bit for bit, on lanes of mixed magnitudes
     * (where any other order rounds differently), signed zeros, infinities and NaN.
     */
    @Test
    void sumAddsTheFixedPairwiseTree() {
        SplittableRandom random = new SplittableRandom(5);
        float[] lanes = new float[Simd.LANES];
        float[] specials = {Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY, Float.NaN, -0f, Float.MAX_VALUE};
        for (int trial = 0; trial < 5000; trial++) {
            for (int i = 0; i < lanes.length; i++) {
                lanes[i] = (float) ((random.nextDouble() - 0.5) * Math.scalb(1.0, random.nextInt(-40, 40)));
            }
            if (trial % 10 == 0) {
                lanes[random.nextInt(lanes.length)] = specials[random.nextInt(specials.length)];
            }
            if (trial == 1) {
                Arrays.fill(lanes, -0f);
            }
            FloatVector v = FloatVector.fromArray(Simd.FLOATS, lanes, 0);
            assertEquals(
                    Float.floatToIntBits(tree(lanes, 0, lanes.length)),
                    Float.floatToIntBits(Simd.sum(v)),
                    () -> "lanes " + Arrays.toString(lanes));
        }
    }

    private static float tree(float[] lanes, int from, int count) {
        return count == 1 ? lanes[from] : tree(lanes, from, count / 2) + tree(lanes, from + count / 2, count / 2);
    }
}
