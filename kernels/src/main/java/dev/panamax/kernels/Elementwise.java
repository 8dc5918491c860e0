package dev.panamax.kernels;

import static dev.panamax.kernels.Simd.LANES;
import static dev.panamax.kernels.Simd.load;
import static dev.panamax.kernels.Simd.store;
import static dev.panamax.kernels.Simd.tail;
import static dev.panamax.kernels.Simd.vectorEnd;

import java.lang.foreign.MemorySegment;
import jdk.incubator.vector.VectorMask;

/** Elementwise vector operations. */
public final class Elementwise {
    private Elementwise() {}

    /** {@code x *= alpha} over {@code n} floats from {@code xi}. */
    static void scaleRun(int n, float alpha, MemorySegment x, long xi) {
        int end = vectorEnd(n);
        for (int j = 0; j < end; j += LANES) {
            store(load(x, xi + j).mul(alpha), x, xi + j);
        }
        if (end < n) {
            VectorMask<Float> m = tail(end, n);
            store(load(x, xi + end, m).mul(alpha), x, xi + end, m);
        }
    }
}
