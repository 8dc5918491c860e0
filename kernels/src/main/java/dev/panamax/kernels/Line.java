package dev.panamax.kernels;

import static dev.panamax.kernels.Simd.FLOAT;

import java.lang.foreign.MemorySegment;

/**
 * A run of floats of a kernel {@link Operand} seen as an array slice, {@link #array} from {@link #offset}: the
 * operand's own array in place, or for a segment a copy in this line's buffer.
 *
 * <p>Kernels compute on arrays only. C2 compiles array vector access to tight loops, while segment vector access kept
 * bounds and liveness checks inside loops with large bodies (softmax's exponential), compiled heap segments slowly,
 * and once it had seen heap and native segments at one JDK call site compiled both slowly, process-wide. The price is
 * on native memory: the copies in and out do not overlap with the computation, so over data in DRAM the memory-bound
 * ops run slower on native segments than on arrays (the ops benchmark measures both).
 *
 * <p>A line is one buffer per thread: each kernel names the lines it holds at once as constants of its own, one per
 * operand role ({@code private static final ThreadLocal<Line> X = Line.perThread();}), so two operands held together
 * never share a buffer, and no rule ties one kernel's lines to another's. A line is done with when its kernel returns.
 */
final class Line {
    /** The array holding the run. */
    float[] array;
    /** The index of the run's first float in {@link #array}. */
    int offset;

    private float[] buffer = new float[0];
    /** The segment to copy the buffer back to on {@link #commit}, or null. */
    private MemorySegment target;

    private long targetIndex;
    private int count;

    private Line() {}

    /** Whether any of the operands (null ones aside) is a segment, whose runs are copied. */
    static boolean staged(Operand... operands) {
        for (Operand operand : operands) {
            if (operand != null && operand.array == null) {
                return true;
            }
        }
        return false;
    }

    /** A line for each thread that asks, for a kernel's constant naming one operand role. */
    static ThreadLocal<Line> perThread() {
        return ThreadLocal.withInitial(Line::new);
    }

    /** Points this line at floats {@code [index, index + count)} of {@code operand}, to be read only. */
    Line read(Operand operand, long index, int count) {
        point(operand, index, count, true);
        target = null;
        return this;
    }

    /**
     * Points this line at floats {@code [index, index + count)} of {@code operand}, to be written (and read back only
     * after being written); {@link #commit} publishes them.
     */
    Line write(Operand operand, long index, int count) {
        point(operand, index, count, false);
        return this;
    }

    /** As {@link #write}, for a run whose old values are read first (an accumulation or an in-place update). */
    Line update(Operand operand, long index, int count) {
        point(operand, index, count, true);
        return this;
    }

    /** Copies a segment's run back from the buffer; nothing for an array, which was written in place. */
    void commit() {
        if (target != null) {
            MemorySegment.copy(buffer, 0, target, FLOAT, targetIndex * Float.BYTES, count);
        }
    }

    private void point(Operand operand, long index, int count, boolean load) {
        if (operand.array != null) {
            array = operand.array;
            offset = operand.arrayBase + Math.toIntExact(index);
            target = null;
            return;
        }
        if (buffer.length < count) {
            buffer = new float[count];
        }
        array = buffer;
        offset = 0;
        target = operand.segment;
        targetIndex = index;
        this.count = count;
        if (load) {
            MemorySegment.copy(operand.segment, FLOAT, index * Float.BYTES, buffer, 0, count);
        }
    }
}
