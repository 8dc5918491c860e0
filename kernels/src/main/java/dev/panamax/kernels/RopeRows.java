package dev.panamax.kernels;

import static dev.panamax.kernels.Simd.FLOATS;
import static dev.panamax.kernels.Simd.LANES;
import static dev.panamax.kernels.Simd.tail;
import static dev.panamax.kernels.Simd.vectorEnd;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorShuffle;

/**
 * {@link Rope}'s rotation of one head on arrays, for each pairing, kept apart from that public class so that it loads
 * without the Vector API and can name the missing flag ({@link VectorApi}).
 */
final class RopeRows {
    /** Swaps each pair of adjacent lanes: the partner of every element in the adjacent pairing. */
    private static final VectorShuffle<Float> SWAP_PAIRS = VectorShuffle.fromOp(Simd.FLOATS, i -> i ^ 1);

    private RopeRows() {}

    static void adjacent(int n, float sign, float[] c, float[] s, int t, float[] x, int xi, float[] y, int yi) {
        int end = vectorEnd(n);
        for (int j = 0; j < end; j += LANES) {
            FloatVector v = FloatVector.fromArray(FLOATS, x, xi + j);
            FloatVector cos = FloatVector.fromArray(FLOATS, c, t + j);
            FloatVector sin = FloatVector.fromArray(FLOATS, s, t + j);
            v.fma(cos, v.rearrange(SWAP_PAIRS).mul(sin).mul(sign)).intoArray(y, yi + j);
        }
        if (end < n) {
            VectorMask<Float> m = tail(end, n);
            FloatVector v = FloatVector.fromArray(FLOATS, x, xi + end, m);
            FloatVector cos = FloatVector.fromArray(FLOATS, c, t + end, m);
            FloatVector sin = FloatVector.fromArray(FLOATS, s, t + end, m);
            v.fma(cos, v.rearrange(SWAP_PAIRS).mul(sin).mul(sign)).intoArray(y, yi + end, m);
        }
    }

    static void halves(int half, float sign, float[] c, float[] s, int t, float[] x, int xi, float[] y, int yi) {
        int end = vectorEnd(half);
        for (int j = 0; j < end; j += LANES) {
            FloatVector a = FloatVector.fromArray(FLOATS, x, xi + j);
            FloatVector b = FloatVector.fromArray(FLOATS, x, xi + half + j);
            FloatVector cosA = FloatVector.fromArray(FLOATS, c, t + j);
            FloatVector sinA = FloatVector.fromArray(FLOATS, s, t + j);
            FloatVector cosB = FloatVector.fromArray(FLOATS, c, t + half + j);
            FloatVector sinB = FloatVector.fromArray(FLOATS, s, t + half + j);
            a.fma(cosA, b.mul(sinA).mul(sign)).intoArray(y, yi + j);
            b.fma(cosB, a.mul(sinB).mul(sign)).intoArray(y, yi + half + j);
        }
        if (end < half) {
            VectorMask<Float> m = tail(end, half);
            FloatVector a = FloatVector.fromArray(FLOATS, x, xi + end, m);
            FloatVector b = FloatVector.fromArray(FLOATS, x, xi + half + end, m);
            FloatVector cosA = FloatVector.fromArray(FLOATS, c, t + end, m);
            FloatVector sinA = FloatVector.fromArray(FLOATS, s, t + end, m);
            FloatVector cosB = FloatVector.fromArray(FLOATS, c, t + half + end, m);
            FloatVector sinB = FloatVector.fromArray(FLOATS, s, t + half + end, m);
            a.fma(cosA, b.mul(sinA).mul(sign)).intoArray(y, yi + end, m);
            b.fma(cosB, a.mul(sinB).mul(sign)).intoArray(y, yi + half + end, m);
        }
    }
}
