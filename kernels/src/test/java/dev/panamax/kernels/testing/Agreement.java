package dev.panamax.kernels.testing;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import dev.panamax.kernels.Parallelism;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.List;
import java.util.function.Consumer;
import java.util.function.Supplier;
import org.junit.jupiter.api.function.Executable;

/**
 * Checks every kernel owes beyond accuracy: its array and segment forms give the same bits, on heap and native
 * segments alike (a confined arena's too); its result does not depend on the thread count; bad arguments are
 * rejected with the documented exception and message.
 */
public final class Agreement {
    private Agreement() {}

    /** A kernel call on memory segments, which may allocate further segments (e.g. of ints) in {@code arena}. */
    @FunctionalInterface
    public interface SegmentCall {
        /**
         * Runs the call.
         *
         * @param segments the operands, in the order of the arrays given to {@link #assertFormsAgree}
         * @param arena where to allocate any other operand
         */
        void run(MemorySegment[] segments, Arena arena);
    }

    /**
     * Runs a kernel on copies of {@code operands} through its array form, then through its segment form on heap
     * segments and on native segments of a shared and a confined arena, and asserts that every operand ends up with
     * the same bits.
     *
     * @param what what is compared, named in a failure
     * @param operands the arrays the kernel reads and writes (not modified)
     * @param arrays the call on arrays
     * @param segments the same call on segments
     */
    public static void assertFormsAgree(
            String what, float[][] operands, Consumer<float[][]> arrays, SegmentCall segments) {
        float[][] expected = copy(operands);
        arrays.accept(expected);
        float[][] heap = copy(operands);
        MemorySegment[] heapSegments = new MemorySegment[heap.length];
        for (int i = 0; i < heap.length; i++) {
            heapSegments[i] = MemorySegment.ofArray(heap[i]);
        }
        try (Arena arena = Arena.ofConfined()) {
            segments.run(heapSegments, arena);
        }
        for (int i = 0; i < heap.length; i++) {
            assertArrayEquals(expected[i], heap[i], what + ": operand " + i + " on a heap segment");
        }
        for (Arena arena : new Arena[] {Arena.ofShared(), Arena.ofConfined()}) {
            try (arena) {
                MemorySegment[] natives = new MemorySegment[operands.length];
                for (int i = 0; i < operands.length; i++) {
                    natives[i] = arena.allocateFrom(ValueLayout.JAVA_FLOAT, operands[i]);
                }
                assertSegmentsAgree(what, "a native segment", expected, natives, segments, arena);
            }
        }
        // Kernels use a heap segment's float[] in place, from the float the segment starts at; heap segments over
        // other arrays are copied like native memory.
        MemorySegment[] slices = new MemorySegment[operands.length];
        MemorySegment[] bytes = new MemorySegment[operands.length];
        for (int i = 0; i < operands.length; i++) {
            float[] padded = new float[operands[i].length + 1];
            System.arraycopy(operands[i], 0, padded, 1, operands[i].length);
            slices[i] = MemorySegment.ofArray(padded).asSlice(Float.BYTES);
            bytes[i] = MemorySegment.ofArray(new byte[operands[i].length * Float.BYTES]);
            MemorySegment.copy(operands[i], 0, bytes[i], ValueLayout.JAVA_FLOAT_UNALIGNED, 0, operands[i].length);
        }
        try (Arena arena = Arena.ofConfined()) {
            assertSegmentsAgree(what, "a slice of a float[]", expected, slices, segments, arena);
            assertSegmentsAgree(what, "a segment over a byte[]", expected, bytes, segments, arena);
        }
    }

    private static void assertSegmentsAgree(
            String what, String kind, float[][] expected, MemorySegment[] operands, SegmentCall call, Arena arena) {
        call.run(operands, arena);
        for (int i = 0; i < operands.length; i++) {
            assertArrayEquals(
                    expected[i],
                    operands[i].toArray(ValueLayout.JAVA_FLOAT_UNALIGNED),
                    what + ": operand " + i + " on " + kind);
        }
    }

    /**
     * Runs {@code call} with 1, 2 and 3 threads and asserts that every result array has the same bits, any NaN taken
     * for any other: a NaN's sign and payload may follow the JIT's state (interpreted or compiled vector operations)
     * rather than the thread count.
     *
     * @param what what is compared, named in a failure
     * @param call runs the kernel on fresh copies of its inputs and returns what it wrote
     */
    public static void assertThreadIndependent(String what, Supplier<float[][]> call) {
        assertThreadIndependent(what, call, false);
    }

    /**
     * As {@link #assertThreadIndependent(String, Supplier)}, with each NaN's sign and payload compared too: for kernels
     * that write {@link Float#NaN} itself rather than the NaN their arithmetic gives.
     *
     * @param what what is compared, named in a failure
     * @param call runs the kernel on fresh copies of its inputs and returns what it wrote
     */
    public static void assertThreadIndependentToTheBit(String what, Supplier<float[][]> call) {
        assertThreadIndependent(what, call, true);
    }

    private static void assertThreadIndependent(String what, Supplier<float[][]> call, boolean raw) {
        int saved = Parallelism.threads();
        try {
            Parallelism.setThreads(1);
            float[][] first = call.get();
            for (int threads = 2; threads <= 3; threads++) {
                Parallelism.setThreads(threads);
                float[][] result = call.get();
                for (int i = 0; i < first.length; i++) {
                    String name = what + ": result " + i + " with " + threads + " threads";
                    if (raw) {
                        assertSameBits(first[i], result[i], name);
                    } else {
                        assertArrayEquals(first[i], result[i], name);
                    }
                }
            }
        } finally {
            Parallelism.setThreads(saved);
        }
    }

    /**
     * Asserts that two arrays hold the same bits: unlike {@code assertArrayEquals} on floats, which takes every NaN for
     * every other, a NaN must have the same sign and payload.
     *
     * @param expected the expected values
     * @param actual the values compared with them
     * @param what what is compared, named in a failure
     */
    private static void assertSameBits(float[] expected, float[] actual, String what) {
        assertEquals(expected.length, actual.length, what + ": length");
        for (int i = 0; i < expected.length; i++) {
            int want = Float.floatToRawIntBits(expected[i]);
            int got = Float.floatToRawIntBits(actual[i]);
            if (want != got) {
                fail(what + ": element " + i + " is 0x" + Integer.toHexString(got) + " (" + actual[i] + "), not 0x"
                        + Integer.toHexString(want) + " (" + expected[i] + ")");
            }
        }
    }

    /**
     * Asserts that {@code call} throws {@code type} with a message containing {@code message}.
     *
     * @param type the exception type
     * @param message a part of the expected message
     * @param call the rejected call
     */
    public static void assertRejected(Class<? extends RuntimeException> type, String message, Executable call) {
        assertRejected(new Rejection(type, message, call));
    }

    private static void assertRejected(Rejection row) {
        RuntimeException thrown = assertThrows(row.type(), row.call(), row::toString);
        assertTrue(
                thrown.getMessage().contains(row.message()),
                () -> "expected «" + row.message() + "» in «" + thrown.getMessage() + "»");
    }

    /**
     * Asserts that every call of a table throws the exception its row names, with a message containing the row's
     * message, and that none of them changed {@code unwritten}: bad arguments are rejected before anything is written.
     *
     * @param rows the rejected calls
     * @param unwritten arrays the calls may write to
     */
    public static void assertAllRejected(List<Rejection> rows, float[]... unwritten) {
        float[][] before = copy(unwritten);
        for (Rejection row : rows) {
            assertRejected(row);
            for (int i = 0; i < unwritten.length; i++) {
                assertArrayEquals(before[i], unwritten[i], "operand " + i + " was written by the rejected call " + row);
            }
        }
    }

    /**
     * Deep copies of float arrays.
     *
     * @param arrays the arrays
     * @return new arrays with the same contents
     */
    public static float[][] copy(float[][] arrays) {
        float[][] copies = new float[arrays.length][];
        for (int i = 0; i < arrays.length; i++) {
            copies[i] = arrays[i].clone();
        }
        return copies;
    }
}
