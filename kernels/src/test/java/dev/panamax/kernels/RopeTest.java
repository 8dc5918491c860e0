package dev.panamax.kernels;

import static dev.panamax.kernels.testing.Agreement.assertAllRejected;
import static dev.panamax.kernels.testing.Rejection.illegalArgument;
import static dev.panamax.kernels.testing.Rejection.nullArgument;
import static dev.panamax.kernels.testing.Rejection.outOfBounds;
import static dev.panamax.kernels.testing.Tolerance.FLOAT_EPSILON;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;

import dev.panamax.kernels.testing.Agreement;
import dev.panamax.kernels.testing.FiniteDifferences;
import dev.panamax.kernels.testing.Inputs;
import dev.panamax.kernels.testing.ReferenceOps;
import dev.panamax.kernels.testing.Rejection;
import dev.panamax.kernels.testing.Tolerance;
import java.util.List;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * RoPE against {@link ReferenceOps#rope}: each output is {@code a·cos ± b·sin} where the tables hold the float64
 * cos and sin rounded to float (ε each), then two roundings of the products and sum (the sign flip is exact): at most
 * {@code 3ε·(|a| + |b|) <= 6ε·max|x|} per element, at every position (the angles themselves are float64).
 */
@Tag("species")
class RopeTest {
    private static final double THETA = 10000;

    @ParameterizedTest
    @ValueSource(ints = {2, 4, 8, 14, 16, 18, 32, 64, 66, 128})
    void forwardAndBackwardMatchTheReference(int headDim) {
        for (Rope.Pairing pairing : Rope.Pairing.values()) {
            Rope rope = new Rope(headDim, 300, THETA, pairing);
            for (int heads : new int[] {1, 3}) {
                for (int position : new int[] {0, 7, 250}) {
                    check(rope, 5, heads, position, pairing + " d=" + headDim + " heads=" + heads + " pos=" + position);
                }
            }
        }
    }

    @Test
    void referenceBackwardMatchesFiniteDifferences() {
        for (boolean halves : new boolean[] {false, true}) {
            double[] x = ReferenceOps.toDouble(Inputs.uniform(Inputs.seed("fd rope"), 16, -2, 2), 0, 16);
            double[] dy = ReferenceOps.toDouble(Inputs.uniform(Inputs.seed("fd rope dy"), 16, -1, 1), 0, 16);
            FiniteDifferences.assertMatches(
                    "rope " + (halves ? "halves" : "adjacent"),
                    ReferenceOps.rope(dy, 37, THETA, halves, -1),
                    FiniteDifferences.gradient(v -> ReferenceOps.rope(v, 37, THETA, halves, 1), x, dy, 1e-6),
                    1e-6);
        }
    }

    @Test
    void inPlaceFormsAndThreadCountsAgree() {
        for (Rope.Pairing pairing : Rope.Pairing.values()) {
            Rope rope = new Rope(64, 1024, 500000, pairing);
            int rows = 1000;
            int cols = 12 * 64;
            float[] x = Inputs.uniform(Inputs.seed("forms"), rows * cols, -1, 1);
            float[] y = new float[rows * cols];
            rope.forward(rows, 12, 3, x, 0, cols, y, 0, cols);
            float[] inPlace = x.clone();
            rope.forward(rows, 12, 3, inPlace, 0, cols, inPlace, 0, cols);
            assertArrayEquals(y, inPlace, pairing + " in place");
            Agreement.assertFormsAgree(
                    "rope " + pairing,
                    new float[][] {x, new float[rows * cols], new float[rows * cols]},
                    a -> {
                        rope.forward(rows, 12, 3, a[0], 0, cols, a[1], 0, cols);
                        rope.backward(rows, 12, 3, a[1], 0, cols, a[2], 0, cols);
                    },
                    (s, arena) -> {
                        rope.forward(rows, 12, 3, s[0], 0, cols, s[1], 0, cols);
                        rope.backward(rows, 12, 3, s[1], 0, cols, s[2], 0, cols);
                    });
            Agreement.assertThreadIndependent("rope " + pairing, () -> {
                float[] out = new float[rows * cols];
                rope.backward(rows, 12, 3, x, 0, cols, out, 0, cols);
                return new float[][] {out};
            });
        }
    }

    @Test
    void badArgumentsAreRejected() {
        Rope rope = new Rope(8, 10, THETA, Rope.Pairing.ADJACENT);
        float[] x = new float[64];
        float[] y = Inputs.uniform(1, 64, -1, 1);
        List<Rejection> rows = List.of(
                illegalArgument("headDim (7) must be even and >= 2", () -> new Rope(7, 10, THETA, Rope.Pairing.HALVES)),
                illegalArgument("theta (0.0) must be finite and > 0", () -> new Rope(8, 10, 0, Rope.Pairing.HALVES)),
                nullArgument("pairing must not be null", () -> new Rope(8, 10, THETA, null)),
                outOfBounds(
                        "position (8) + rows (3) must be <= maxPositions (10)",
                        () -> rope.forward(3, 2, 8, x, 0, 16, y, 0, 16)),
                illegalArgument(
                        "ldy (15) must be >= heads·headDim (16) for y",
                        () -> rope.forward(3, 2, 0, x, 0, 16, y, 0, 15)),
                outOfBounds(
                        "dx holds 64 floats, but dx needs 64 from dxOffset (1), up to index 64",
                        () -> rope.backward(4, 2, 0, x, 0, 16, y, 1, 16)));
        assertAllRejected(rows, y);
    }

    private static void check(Rope rope, int rows, int heads, int position, String name) {
        int d = rope.headDim();
        int ld = heads * d + 3;
        float[] x = Inputs.uniform(Inputs.seed(name), 2 + rows * ld, -2, 2);
        float[] y = new float[1 + rows * ld];
        float[] dx = new float[1 + rows * ld];
        rope.forward(rows, heads, position, x, 2, ld, y, 1, ld);
        rope.backward(rows, heads, position, x, 2, ld, dx, 1, ld);
        boolean halves = rope.pairing() == Rope.Pairing.HALVES;
        for (int i = 0; i < rows; i++) {
            for (int h = 0; h < heads; h++) {
                int at = i * ld + h * d;
                double[] head = ReferenceOps.toDouble(x, 2 + at, d);
                double magnitude = 0;
                for (double v : head) {
                    magnitude = Math.max(magnitude, Math.abs(v));
                }
                double bound = 6 * FLOAT_EPSILON * magnitude;
                for (int sign : new int[] {1, -1}) {
                    double[] expected = ReferenceOps.rope(head, position + i, THETA, halves, sign);
                    float[] actual = sign > 0 ? y : dx;
                    Tolerance.assertClose(
                            name + (sign > 0 ? " forward" : " backward") + " row " + i + " head " + h,
                            d,
                            j -> expected[j],
                            j -> actual[1 + at + j],
                            j -> bound,
                            j -> "element " + j);
                }
            }
        }
    }
}
