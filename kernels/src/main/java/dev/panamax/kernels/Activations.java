package dev.panamax.kernels;

import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandle;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.MethodType;

/**
 * The transformer's activation functions over {@code n} contiguous floats, forward and backward: the {@link
 * Activation}s GELU (tanh approximation and exact) and SiLU, and SwiGLU ({@code ActivationMath.silu(gate)⊙up}, Llama's gated
 * feed-forward). GELU's tanh form is computed as the equal {@code x·sigmoid(2u)}, which has no cancellation; the exact
 * form's erfc is a Chebyshev fit of relative error below 1.2e-7 (Numerical Recipes' {@code erfcc}), evaluated in
 * float: within {@code 2e-6 + 2ε·x²} of {@code |y|} relative (ε the float epsilon; 2e-6 for {@code |x| < 5}, up to
 * about 2e-5 at {@code |x|} near 13, where the float rounding of x² dominates), as the tests check it.
 *
 * <p>Backward kernels take the forward's input (not its output) and the upstream gradient and overwrite the input
 * gradient: {@code dx = dy⊙f'(x)}. Outputs may be the same storage as an input (same offset) to work in place, as
 * each parameter's documentation says; other overlaps throw {@link IllegalArgumentException}. NaN
 * propagates; forward, +∞ maps to +∞ and -∞ to NaN for GELU (as {@code 0.5·x·(1 + tanh)} does) and SiLU; backward,
 * inputs beyond ±100 (infinities included) get the derivative's limit, 1 or 0. Results whose true value is a
 * normal float are normal floats; smaller ones may be flushed to zero. The exponentials are {@code VectorMath.exp}
 * (within 2 ulp). Offsets count floats; arguments are checked before anything is written;
 * large arrays are split over the threads of {@link Parallelism} (results do not depend on the split).
 */
public final class Activations {
    // The lines (see Line) the kernels of this class stage their segment operands through, one per operand role.
    private static final ThreadLocal<Line> X_LINE = Line.perThread();
    private static final ThreadLocal<Line> Y_LINE = Line.perThread();
    private static final ThreadLocal<Line> GATE_LINE = Line.perThread();
    private static final ThreadLocal<Line> UP_LINE = Line.perThread();
    private static final ThreadLocal<Line> DY_LINE = Line.perThread();
    private static final ThreadLocal<Line> DGATE_LINE = Line.perThread();
    private static final ThreadLocal<Line> DUP_LINE = Line.perThread();

    static {
        VectorApi.require(); // before FORWARD_LOOPS, whose lookup links the vector loops
    }

    /**
     * Each activation's forward loop, by ordinal, called through a method handle that C2 cannot inline: an array
     * element is no constant to it. Called directly from one dispatch, every loop seen there was inlined into it, and
     * two loops with an exponential each exceed C2's inlining budget, so the second one's vector operations would be
     * left as calls, far slower.
     */
    private static final MethodHandle[] FORWARD_LOOPS = forwardLoops();

    private Activations() {}

    /**
     * {@code y = f(x)} on arrays.
     *
     * @param function the activation
     * @param n number of elements, at least 0
     * @param x the input
     * @param xOffset index of x's first element
     * @param y the output; may be x itself
     * @param yOffset index of y's first element
     */
    public static void forward(Activation function, int n, float[] x, int xOffset, float[] y, int yOffset) {
        forward(function, n, Checks.wrap("x", x), xOffset, Checks.wrap("y", y), yOffset);
    }

    /**
     * {@code y = f(x)} on memory segments; as {@link #forward(Activation, int, float[], int, float[], int)}.
     *
     * @param function the activation
     * @param n number of elements, at least 0
     * @param x the input
     * @param xOffset index (in floats) of x's first element
     * @param y the output; may be x itself; must be writable
     * @param yOffset index (in floats) of y's first element
     */
    public static void forward(
            Activation function, int n, MemorySegment x, long xOffset, MemorySegment y, long yOffset) {
        Checks.notNull("function", function);
        Checks.inPlaceOrSeparate(n, x, xOffset, y, yOffset);
        Operand xs = Operand.of(x);
        Operand ys = Operand.of(y);
        Rows.forEachSpan(n, Parallelism.shareable(x, y), Line.staged(xs, ys), (from, to) -> {
            int count = to - from;
            Line xl = X_LINE.get().read(xs, xOffset + from, count);
            Line yl = Y_LINE.get().write(ys, yOffset + from, count);
            try {
                FORWARD_LOOPS[function.ordinal()].invokeExact(count, xl.array, xl.offset, yl.array, yl.offset);
            } catch (RuntimeException | Error e) {
                throw e;
            } catch (Throwable t) {
                // invokeExact declares Throwable; the loops throw nothing checked.
                throw new IllegalStateException(t);
            }
            yl.commit();
        });
    }

    /**
     * The gradient {@code dx = dy⊙f'(x)} on arrays, from the forward's input x.
     *
     * @param function the activation
     * @param n number of elements, at least 0
     * @param x the forward's input
     * @param xOffset index of x's first element
     * @param dy the gradient with respect to the output
     * @param dyOffset index of dy's first element
     * @param dx the gradient with respect to x, overwritten; may be dy or x itself
     * @param dxOffset index of dx's first element
     */
    public static void backward(
            Activation function, int n, float[] x, int xOffset, float[] dy, int dyOffset, float[] dx, int dxOffset) {
        backward(
                function,
                n,
                Checks.wrap("x", x),
                xOffset,
                Checks.wrap("dy", dy),
                dyOffset,
                Checks.wrap("dx", dx),
                dxOffset);
    }

    /**
     * The gradient {@code dx = dy⊙f'(x)} on memory segments; as {@link #backward(Activation, int, float[], int,
     * float[], int, float[], int)}.
     *
     * @param function the activation
     * @param n number of elements, at least 0
     * @param x the forward's input
     * @param xOffset index (in floats) of x's first element
     * @param dy the gradient with respect to the output
     * @param dyOffset index (in floats) of dy's first element
     * @param dx the gradient with respect to x, overwritten; may be dy or x itself; must be writable
     * @param dxOffset index (in floats) of dx's first element
     */
    public static void backward(
            Activation function,
            int n,
            MemorySegment x,
            long xOffset,
            MemorySegment dy,
            long dyOffset,
            MemorySegment dx,
            long dxOffset) {
        Checks.notNull("function", function);
        Rows.BinaryRun run =
                switch (function) {
                    case GELU_TANH -> ActivationRows::geluTanhBackward;
                    case GELU -> ActivationRows::geluBackward;
                    case SILU -> ActivationRows::siluBackward;
                };
        Rows.checkedSpans(n, "x", x, xOffset, "dy", dy, dyOffset, "dx", dx, dxOffset, run);
    }

    /**
     * SwiGLU on arrays: {@code y = ActivationMath.silu(gate)⊙up}.
     *
     * @param n number of elements, at least 0
     * @param gate the gate projection
     * @param gateOffset index of gate's first element
     * @param up the up projection
     * @param upOffset index of up's first element
     * @param y the output; may be gate or up itself
     * @param yOffset index of y's first element
     */
    public static void swigluForward(
            int n, float[] gate, int gateOffset, float[] up, int upOffset, float[] y, int yOffset) {
        swigluForward(
                n,
                Checks.wrap("gate", gate),
                gateOffset,
                Checks.wrap("up", up),
                upOffset,
                Checks.wrap("y", y),
                yOffset);
    }

    /**
     * SwiGLU on memory segments; as {@link #swigluForward(int, float[], int, float[], int, float[], int)}.
     *
     * @param n number of elements, at least 0
     * @param gate the gate projection
     * @param gateOffset index (in floats) of gate's first element
     * @param up the up projection
     * @param upOffset index (in floats) of up's first element
     * @param y the output; may be gate or up itself; must be writable
     * @param yOffset index (in floats) of y's first element
     */
    public static void swigluForward(
            int n,
            MemorySegment gate,
            long gateOffset,
            MemorySegment up,
            long upOffset,
            MemorySegment y,
            long yOffset) {
        Rows.checkedSpans(
                n, "gate", gate, gateOffset, "up", up, upOffset, "y", y, yOffset, ActivationRows::swigluForwardRun);
    }

    /**
     * The gradients of SwiGLU, on arrays: {@code dgate = dy⊙up⊙silu'(gate)}, {@code dup = dy⊙ActivationMath.silu(gate)}.
     *
     * @param n number of elements, at least 0
     * @param gate the forward's gate
     * @param gateOffset index of gate's first element
     * @param up the forward's up projection
     * @param upOffset index of up's first element
     * @param dy the gradient with respect to the output
     * @param dyOffset index of dy's first element
     * @param dgate the gate's gradient, overwritten; may be gate itself
     * @param dgateOffset index of dgate's first element
     * @param dup the up projection's gradient, overwritten; may be up or dy itself
     * @param dupOffset index of dup's first element
     */
    public static void swigluBackward(
            int n,
            float[] gate,
            int gateOffset,
            float[] up,
            int upOffset,
            float[] dy,
            int dyOffset,
            float[] dgate,
            int dgateOffset,
            float[] dup,
            int dupOffset) {
        swigluBackward(
                n,
                Checks.wrap("gate", gate),
                gateOffset,
                Checks.wrap("up", up),
                upOffset,
                Checks.wrap("dy", dy),
                dyOffset,
                Checks.wrap("dgate", dgate),
                dgateOffset,
                Checks.wrap("dup", dup),
                dupOffset);
    }

    /**
     * The gradients of SwiGLU on memory segments; as {@link #swigluBackward(int, float[], int, float[], int, float[],
     * int, float[], int, float[], int)}.
     *
     * @param n number of elements, at least 0
     * @param gate the forward's gate
     * @param gateOffset index (in floats) of gate's first element
     * @param up the forward's up projection
     * @param upOffset index (in floats) of up's first element
     * @param dy the gradient with respect to the output
     * @param dyOffset index (in floats) of dy's first element
     * @param dgate the gate's gradient, overwritten; must be writable
     * @param dgateOffset index (in floats) of dgate's first element
     * @param dup the up projection's gradient, overwritten; must be writable
     * @param dupOffset index (in floats) of dup's first element
     */
    public static void swigluBackward(
            int n,
            MemorySegment gate,
            long gateOffset,
            MemorySegment up,
            long upOffset,
            MemorySegment dy,
            long dyOffset,
            MemorySegment dgate,
            long dgateOffset,
            MemorySegment dup,
            long dupOffset) {
        Checks.nonNegative("n", n);
        Checks.vector("gate", gate, gateOffset, n, false);
        Checks.vector("up", up, upOffset, n, false);
        Checks.vector("dy", dy, dyOffset, n, false);
        Checks.vector("dgate", dgate, dgateOffset, n, true);
        Checks.vector("dup", dup, dupOffset, n, true);
        Checks.Strided gateView = Checks.Strided.vector("gate", gate, gateOffset, n);
        Checks.Strided upView = Checks.Strided.vector("up", up, upOffset, n);
        Checks.Strided dyView = Checks.Strided.vector("dy", dy, dyOffset, n);
        Checks.Strided dgateView = Checks.Strided.vector("dgate", dgate, dgateOffset, n);
        Checks.Strided dupView = Checks.Strided.vector("dup", dup, dupOffset, n);
        Checks.inPlaceOrSeparate(dgateView, gateView);
        Checks.separate(dgateView, upView, dyView);
        Checks.inPlaceOrSeparate(dupView, upView);
        Checks.inPlaceOrSeparate(dupView, dyView);
        Checks.separate(dupView, gateView, dgateView);
        Operand gates = Operand.of(gate);
        Operand ups = Operand.of(up);
        Operand dys = Operand.of(dy);
        Operand dgates = Operand.of(dgate);
        Operand dups = Operand.of(dup);
        Rows.forEachSpan(
                n,
                Parallelism.shareable(gate, up, dy, dgate, dup),
                Line.staged(gates, ups, dys, dgates, dups),
                (from, to) -> {
                    int count = to - from;
                    Line gl = GATE_LINE.get().read(gates, gateOffset + from, count);
                    Line ul = UP_LINE.get().read(ups, upOffset + from, count);
                    Line dyl = DY_LINE.get().read(dys, dyOffset + from, count);
                    Line dgl = DGATE_LINE.get().write(dgates, dgateOffset + from, count);
                    Line dul = DUP_LINE.get().write(dups, dupOffset + from, count);
                    ActivationRows.swigluBackwardRun(
                            count,
                            gl.array,
                            gl.offset,
                            ul.array,
                            ul.offset,
                            dyl.array,
                            dyl.offset,
                            dgl.array,
                            dgl.offset,
                            dul.array,
                            dul.offset);
                    dgl.commit();
                    dul.commit();
                });
    }

    /** {@link #FORWARD_LOOPS}: the switch is exhaustive, so a new activation does not compile without its loop. */
    private static MethodHandle[] forwardLoops() {
        Activation[] functions = Activation.values();
        MethodHandle[] loops = new MethodHandle[functions.length];
        MethodType type =
                MethodType.methodType(void.class, int.class, float[].class, int.class, float[].class, int.class);
        for (Activation function : functions) {
            String name =
                    switch (function) {
                        case GELU_TANH -> "geluTanhForward";
                        case GELU -> "geluForward";
                        case SILU -> "siluForward";
                    };
            try {
                loops[function.ordinal()] = MethodHandles.lookup().findStatic(ActivationRows.class, name, type);
            } catch (ReflectiveOperationException e) {
                throw new ExceptionInInitializerError(e);
            }
        }
        return loops;
    }
}
