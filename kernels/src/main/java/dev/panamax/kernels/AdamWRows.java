package dev.panamax.kernels;

import static dev.panamax.kernels.Simd.FLOATS;
import static dev.panamax.kernels.Simd.LANES;
import static dev.panamax.kernels.Simd.tail;
import static dev.panamax.kernels.Simd.vectorEnd;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorMask;

/**
 * {@link AdamW}'s step over a run of elements on arrays, kept apart from that public class so that it loads without
 * the Vector API and can name the missing flag ({@link VectorApi}).
 */
final class AdamWRows {
    private AdamWRows() {}

    /** The step over {@code n} elements from the given indices: whole vectors, then one masked tail. */
    static void run(
            int n,
            float learningRate,
            float beta1,
            float beta2,
            float epsilon,
            float weightDecay,
            float correction1,
            float correction2,
            float gradScale,
            float[] param,
            int pi,
            float[] grad,
            int gi,
            float[] m,
            int mi,
            float[] v,
            int vi) {
        FloatVector b1 = FloatVector.broadcast(FLOATS, beta1);
        FloatVector c1 = FloatVector.broadcast(FLOATS, 1 - beta1);
        FloatVector b2 = FloatVector.broadcast(FLOATS, beta2);
        FloatVector c2 = FloatVector.broadcast(FLOATS, 1 - beta2);
        FloatVector r1 = FloatVector.broadcast(FLOATS, correction1);
        FloatVector r2 = FloatVector.broadcast(FLOATS, correction2);
        FloatVector eps = FloatVector.broadcast(FLOATS, epsilon);
        FloatVector wd = FloatVector.broadcast(FLOATS, weightDecay);
        FloatVector negLr = FloatVector.broadcast(FLOATS, -learningRate);
        int end = vectorEnd(n);
        // One flat loop body, no helper methods: C2 intrinsifies the vector operations only where they are inlined,
        // and a helper it declined to inline would run on the Vector API's slow Java fallback.
        for (int j = 0; j < end; j += LANES) {
            FloatVector g = FloatVector.fromArray(FLOATS, grad, gi + j).mul(gradScale);
            FloatVector mNew =
                    g.fma(c1, FloatVector.fromArray(FLOATS, m, mi + j).mul(b1));
            FloatVector vNew =
                    g.mul(g).fma(c2, FloatVector.fromArray(FLOATS, v, vi + j).mul(b2));
            mNew.intoArray(m, mi + j);
            vNew.intoArray(v, vi + j);
            FloatVector p = FloatVector.fromArray(FLOATS, param, pi + j);
            FloatVector adam = mNew.mul(r1).div(vNew.mul(r2).sqrt().add(eps));
            p.mul(wd).add(adam).fma(negLr, p).intoArray(param, pi + j);
        }
        if (end < n) {
            VectorMask<Float> k = tail(end, n);
            FloatVector g = FloatVector.fromArray(FLOATS, grad, gi + end, k).mul(gradScale);
            FloatVector mNew =
                    g.fma(c1, FloatVector.fromArray(FLOATS, m, mi + end, k).mul(b1));
            FloatVector vNew = g.mul(g)
                    .fma(c2, FloatVector.fromArray(FLOATS, v, vi + end, k).mul(b2));
            mNew.intoArray(m, mi + end, k);
            vNew.intoArray(v, vi + end, k);
            FloatVector p = FloatVector.fromArray(FLOATS, param, pi + end, k);
            FloatVector adam = mNew.mul(r1).div(vNew.mul(r2).sqrt().add(eps));
            p.mul(wd).add(adam).fma(negLr, p).intoArray(param, pi + end, k);
        }
    }
}
