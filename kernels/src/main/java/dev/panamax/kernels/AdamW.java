package dev.panamax.kernels;

import java.lang.foreign.MemorySegment;

/**
 * One step of the AdamW optimiser (Adam with decoupled weight decay, Loshchilov &amp; Hutter) on {@code n} contiguous
 * parameters, updating the parameters and both moment estimates in place.
 *
 * <p>For each element, with {@code t = step}:
 *
 * <pre>
 * g     = grad·gradScale
 * m     = beta1·m + (1 - beta1)·g
 * v     = beta2·v + (1 - beta2)·g²
 * mHat  = m / (1 - beta1ᵗ)
 * vHat  = v / (1 - beta2ᵗ)
 * param = param - learningRate·(mHat / (√vHat + epsilon) + weightDecay·param)
 * </pre>
 *
 * <p>The weight decay is applied to the parameter as it was before the step, as in llm.c. The two bias corrections are
 * computed once per call in double and rounded to float as reciprocal factors. {@code gradScale} multiplies the
 * gradient as it is read, so that global-norm gradient clipping (see {@link Elementwise#sumOfSquares(int,
 * MemorySegment, long)}) needs no pass of its own over the gradients.
 *
 * <p>A NaN gradient makes its element's moments and parameter NaN; an infinite one makes its moments infinite and its
 * parameter NaN (∞/∞); other elements are not affected. Offsets count floats; param, m and v must not overlap one
 * another or grad (checked). Arguments are checked before anything is written; large vectors are split over the
 * threads of {@link Parallelism}, and each element is computed the same way whatever the split, so results are
 * bit-identical for every thread count.
 */
public final class AdamW {
    // The lines (see Line) the kernels of this class stage their segment operands through, one per operand role.
    private static final ThreadLocal<Line> PARAM_LINE = Line.perThread();
    private static final ThreadLocal<Line> GRADIENT_LINE = Line.perThread();
    private static final ThreadLocal<Line> M_LINE = Line.perThread();
    private static final ThreadLocal<Line> V_LINE = Line.perThread();

    static {
        VectorApi.require(); // a missing --add-modules flag is named before the first kernel fails to link
    }

    private AdamW() {}

    /**
     * One AdamW step on arrays.
     *
     * @param n number of parameters, at least 0
     * @param learningRate the step size, finite and at least 0
     * @param beta1 decay of the first-moment estimate, in {@code [0, 1)}
     * @param beta2 decay of the second-moment estimate, in {@code [0, 1)}
     * @param epsilon added to {@code √vHat}, finite and greater than 0
     * @param weightDecay decoupled weight decay, finite and at least 0
     * @param step the number of this step, counting from 1 (for the bias corrections)
     * @param gradScale factor applied to every gradient as it is read (1 for none), finite
     * @param param the parameters, updated in place
     * @param paramOffset index of param's first element
     * @param grad the gradients
     * @param gradOffset index of grad's first element
     * @param m the first-moment estimates, updated in place
     * @param mOffset index of m's first element
     * @param v the second-moment estimates, updated in place
     * @param vOffset index of v's first element
     * @throws IllegalArgumentException if a scalar argument is out of its range, or two of the vectors overlap
     * @throws IndexOutOfBoundsException if a vector does not hold {@code n} floats from its offset
     */
    public static void update(
            int n,
            float learningRate,
            float beta1,
            float beta2,
            float epsilon,
            float weightDecay,
            int step,
            float gradScale,
            float[] param,
            int paramOffset,
            float[] grad,
            int gradOffset,
            float[] m,
            int mOffset,
            float[] v,
            int vOffset) {
        update(
                n,
                learningRate,
                beta1,
                beta2,
                epsilon,
                weightDecay,
                step,
                gradScale,
                Checks.wrap("param", param),
                paramOffset,
                Checks.wrap("grad", grad),
                gradOffset,
                Checks.wrap("m", m),
                mOffset,
                Checks.wrap("v", v),
                vOffset);
    }

    /**
     * One AdamW step on memory segments; as {@link #update(int, float, float, float, float, float, int, float,
     * float[], int, float[], int, float[], int, float[], int)}.
     *
     * @param n number of parameters, at least 0
     * @param learningRate the step size, finite and at least 0
     * @param beta1 decay of the first-moment estimate, in {@code [0, 1)}
     * @param beta2 decay of the second-moment estimate, in {@code [0, 1)}
     * @param epsilon added to {@code √vHat}, finite and greater than 0
     * @param weightDecay decoupled weight decay, finite and at least 0
     * @param step the number of this step, counting from 1 (for the bias corrections)
     * @param gradScale factor applied to every gradient as it is read (1 for none), finite
     * @param param the parameters, updated in place; must be writable
     * @param paramOffset index (in floats) of param's first element
     * @param grad the gradients
     * @param gradOffset index (in floats) of grad's first element
     * @param m the first-moment estimates, updated in place; must be writable
     * @param mOffset index (in floats) of m's first element
     * @param v the second-moment estimates, updated in place; must be writable
     * @param vOffset index (in floats) of v's first element
     * @throws IllegalArgumentException if a scalar argument is out of its range, a written segment is read-only, or
     *     two of the vectors overlap
     * @throws IndexOutOfBoundsException if a vector does not hold {@code n} floats from its offset
     */
    public static void update(
            int n,
            float learningRate,
            float beta1,
            float beta2,
            float epsilon,
            float weightDecay,
            int step,
            float gradScale,
            MemorySegment param,
            long paramOffset,
            MemorySegment grad,
            long gradOffset,
            MemorySegment m,
            long mOffset,
            MemorySegment v,
            long vOffset) {
        Checks.nonNegative("n", n);
        Checks.nonNegative("learningRate", learningRate);
        unitInterval("beta1", beta1);
        unitInterval("beta2", beta2);
        Checks.positive("epsilon", epsilon);
        Checks.nonNegative("weightDecay", weightDecay);
        if (step < 1) {
            throw new IllegalArgumentException("step (" + step + ") must be >= 1");
        }
        Checks.finite("gradScale", gradScale);
        Checks.vector("param", param, paramOffset, n, true);
        Checks.vector("grad", grad, gradOffset, n, false);
        Checks.vector("m", m, mOffset, n, true);
        Checks.vector("v", v, vOffset, n, true);
        Checks.disjoint("param", param, paramOffset, "grad", grad, gradOffset, n);
        Checks.disjoint("param", param, paramOffset, "m", m, mOffset, n);
        Checks.disjoint("param", param, paramOffset, "v", v, vOffset, n);
        Checks.disjoint("m", m, mOffset, "grad", grad, gradOffset, n);
        Checks.disjoint("m", m, mOffset, "v", v, vOffset, n);
        Checks.disjoint("v", v, vOffset, "grad", grad, gradOffset, n);
        // 1 - betaᵗ > 0 for beta in [0, 1) and t >= 1; in double it stays accurate where betaᵗ is close to 1.
        float correction1 = (float) (1 / (1 - Math.pow(beta1, step)));
        float correction2 = (float) (1 / (1 - Math.pow(beta2, step)));
        Operand ps = Operand.of(param);
        Operand gs = Operand.of(grad);
        Operand ms = Operand.of(m);
        Operand vs = Operand.of(v);
        Rows.forEachSpan(n, Parallelism.shareable(param, grad, m, v), Line.staged(ps, gs, ms, vs), (from, to) -> {
            int count = to - from;
            Line pl = PARAM_LINE.get().update(ps, paramOffset + from, count);
            Line gl = GRADIENT_LINE.get().read(gs, gradOffset + from, count);
            Line ml = M_LINE.get().update(ms, mOffset + from, count);
            Line vl = V_LINE.get().update(vs, vOffset + from, count);
            AdamWRows.run(
                    count,
                    learningRate,
                    beta1,
                    beta2,
                    epsilon,
                    weightDecay,
                    correction1,
                    correction2,
                    gradScale,
                    pl.array,
                    pl.offset,
                    gl.array,
                    gl.offset,
                    ml.array,
                    ml.offset,
                    vl.array,
                    vl.offset);
            pl.commit();
            ml.commit();
            vl.commit();
        });
    }

    private static void unitInterval(String name, float value) {
        if (!(value >= 0 && value < 1)) {
            throw new IllegalArgumentException(name + " (" + value + ") must be in [0, 1)");
        }
    }
}
