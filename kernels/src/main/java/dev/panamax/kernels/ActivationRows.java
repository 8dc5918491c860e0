package dev.panamax.kernels;

import static dev.panamax.kernels.Simd.FLOATS;
import static dev.panamax.kernels.Simd.LANES;
import static dev.panamax.kernels.Simd.tail;
import static dev.panamax.kernels.Simd.vectorEnd;
import static jdk.incubator.vector.FloatVector.fromArray;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorMask;

/**
 * {@link Activations}' loops over a run of floats on arrays, one per activation and direction, kept apart from that
 * public class so that it loads without the Vector API and can name the missing flag ({@link VectorApi}).
 */
final class ActivationRows {
    private ActivationRows() {}

    // One loop per activation and direction, holding only that activation's math: C2 stops inlining our methods once
    // a compilation has parsed NodeCountInliningCutoff nodes, a loop over all three gets there, and a call left behind
    // boxes its vectors. One exponential alone parses to over half that budget, so what comes after one must be
    // @ForceInline JDK methods, which the cutoff does not stop: the loops load and store with fromArray and intoArray,
    // not Simd's helpers, and the math broadcasts its 1s itself.

    static void geluTanhForward(int n, float[] x, int xi, float[] y, int yi) {
        int end = vectorEnd(n);
        for (int j = 0; j < end; j += LANES) {
            ActivationMath.geluTanh(fromArray(FLOATS, x, xi + j)).intoArray(y, yi + j);
        }
        if (end < n) {
            VectorMask<Float> m = tail(end, n);
            ActivationMath.geluTanh(fromArray(FLOATS, x, xi + end, m)).intoArray(y, yi + end, m);
        }
    }

    static void geluForward(int n, float[] x, int xi, float[] y, int yi) {
        int end = vectorEnd(n);
        for (int j = 0; j < end; j += LANES) {
            ActivationMath.gelu(fromArray(FLOATS, x, xi + j)).intoArray(y, yi + j);
        }
        if (end < n) {
            VectorMask<Float> m = tail(end, n);
            ActivationMath.gelu(fromArray(FLOATS, x, xi + end, m)).intoArray(y, yi + end, m);
        }
    }

    static void siluForward(int n, float[] x, int xi, float[] y, int yi) {
        int end = vectorEnd(n);
        for (int j = 0; j < end; j += LANES) {
            ActivationMath.silu(fromArray(FLOATS, x, xi + j)).intoArray(y, yi + j);
        }
        if (end < n) {
            VectorMask<Float> m = tail(end, n);
            ActivationMath.silu(fromArray(FLOATS, x, xi + end, m)).intoArray(y, yi + end, m);
        }
    }

    static void geluTanhBackward(int n, float[] x, int xi, float[] dy, int dyi, float[] dx, int dxi) {
        int end = vectorEnd(n);
        for (int j = 0; j < end; j += LANES) {
            FloatVector d = ActivationMath.geluTanhDerivative(ActivationMath.clamp(fromArray(FLOATS, x, xi + j)));
            d.mul(fromArray(FLOATS, dy, dyi + j)).intoArray(dx, dxi + j);
        }
        if (end < n) {
            VectorMask<Float> m = tail(end, n);
            FloatVector d = ActivationMath.geluTanhDerivative(ActivationMath.clamp(fromArray(FLOATS, x, xi + end, m)));
            d.mul(fromArray(FLOATS, dy, dyi + end, m)).intoArray(dx, dxi + end, m);
        }
    }

    static void geluBackward(int n, float[] x, int xi, float[] dy, int dyi, float[] dx, int dxi) {
        int end = vectorEnd(n);
        for (int j = 0; j < end; j += LANES) {
            FloatVector d = ActivationMath.geluDerivative(ActivationMath.clamp(fromArray(FLOATS, x, xi + j)));
            d.mul(fromArray(FLOATS, dy, dyi + j)).intoArray(dx, dxi + j);
        }
        if (end < n) {
            VectorMask<Float> m = tail(end, n);
            FloatVector d = ActivationMath.geluDerivative(ActivationMath.clamp(fromArray(FLOATS, x, xi + end, m)));
            d.mul(fromArray(FLOATS, dy, dyi + end, m)).intoArray(dx, dxi + end, m);
        }
    }

    static void siluBackward(int n, float[] x, int xi, float[] dy, int dyi, float[] dx, int dxi) {
        int end = vectorEnd(n);
        for (int j = 0; j < end; j += LANES) {
            FloatVector d = ActivationMath.siluDerivative(ActivationMath.clamp(fromArray(FLOATS, x, xi + j)));
            d.mul(fromArray(FLOATS, dy, dyi + j)).intoArray(dx, dxi + j);
        }
        if (end < n) {
            VectorMask<Float> m = tail(end, n);
            FloatVector d = ActivationMath.siluDerivative(ActivationMath.clamp(fromArray(FLOATS, x, xi + end, m)));
            d.mul(fromArray(FLOATS, dy, dyi + end, m)).intoArray(dx, dxi + end, m);
        }
    }

    static void swigluForwardRun(int n, float[] gate, int gi, float[] up, int ui, float[] y, int yi) {
        int end = vectorEnd(n);
        for (int j = 0; j < end; j += LANES) {
            FloatVector u = fromArray(FLOATS, up, ui + j);
            ActivationMath.silu(fromArray(FLOATS, gate, gi + j)).mul(u).intoArray(y, yi + j);
        }
        if (end < n) {
            VectorMask<Float> m = tail(end, n);
            FloatVector u = fromArray(FLOATS, up, ui + end, m);
            ActivationMath.silu(fromArray(FLOATS, gate, gi + end, m)).mul(u).intoArray(y, yi + end, m);
        }
    }

    static void swigluBackwardRun(
            int n,
            float[] gate,
            int gi,
            float[] up,
            int ui,
            float[] dy,
            int dyi,
            float[] dgate,
            int dgi,
            float[] dup,
            int dui) {
        int end = vectorEnd(n);
        for (int j = 0; j < end; j += LANES) {
            FloatVector g = fromArray(FLOATS, gate, gi + j);
            FloatVector d = fromArray(FLOATS, dy, dyi + j);
            FloatVector u = fromArray(FLOATS, up, ui + j);
            d.mul(u).mul(ActivationMath.siluDerivative(ActivationMath.clamp(g))).intoArray(dgate, dgi + j);
            d.mul(ActivationMath.silu(g)).intoArray(dup, dui + j);
        }
        if (end < n) {
            VectorMask<Float> m = tail(end, n);
            FloatVector g = fromArray(FLOATS, gate, gi + end, m);
            FloatVector d = fromArray(FLOATS, dy, dyi + end, m);
            FloatVector u = fromArray(FLOATS, up, ui + end, m);
            d.mul(u).mul(ActivationMath.siluDerivative(ActivationMath.clamp(g))).intoArray(dgate, dgi + end, m);
            d.mul(ActivationMath.silu(g)).intoArray(dup, dui + end, m);
        }
    }
}
