package dev.panamax.kernels;

import java.lang.foreign.MemorySegment;
import java.util.Objects;

/** Argument checks shared by the kernels' entry points; each names the argument, its value and the bound it broke. */
final class Checks {
    /** The most elements a Java array is sure to hold: JVMs may refuse lengths within a few of the int range's end. */
    static final int MAX_ARRAY_LENGTH = Integer.MAX_VALUE - 8;

    private Checks() {}

    static void nonNegative(String name, long value) {
        if (value < 0) {
            throw new IllegalArgumentException(name + " (" + value + ") must be >= 0");
        }
    }

    /** Checks two sizes, in order, as {@link #nonNegative(String, long)} does each. */
    static void nonNegative(String name, long value, String name2, long value2) {
        nonNegative(name, value);
        nonNegative(name2, value2);
    }

    /** Checks three sizes, in order, as {@link #nonNegative(String, long)} does each. */
    static void nonNegative(String name, long value, String name2, long value2, String name3, long value3) {
        nonNegative(name, value, name2, value2);
        nonNegative(name3, value3);
    }

    static <T> T notNull(String name, T value) {
        return Objects.requireNonNull(value, () -> name + " must not be null");
    }

    /** Checks two arguments, in order, as {@link #notNull(String, Object)} does each. */
    static void notNull(String name, Object value, String name2, Object value2) {
        notNull(name, value);
        notNull(name2, value2);
    }

    /**
     * Checks a row-major matrix's leading dimension: it must cover a stored row of {@code cols} elements (and be at
     * least 1, as in BLAS).
     */
    static void leadingDimension(String name, int ld, String colsName, int cols, String operand) {
        if (ld < Math.max(1, cols)) {
            throw new IllegalArgumentException(name + " (" + ld + ") must be >= "
                    + (cols >= 1 ? colsName + " (" + cols + ")" : "1") + " for " + operand);
        }
    }

    /** Elements spanned by a row-major {@code rows × cols} matrix with leading dimension {@code ld}. */
    static long matrixExtent(long rows, long cols, long ld) {
        return rows == 0 || cols == 0 ? 0 : (rows - 1) * ld + cols;
    }

    /**
     * Elements spanned by {@code count} matrices of {@code extent} elements, {@code stride} (at least 0) apart; {@code
     * Long.MAX_VALUE} when that does not fit a long, which no array or segment holds.
     */
    static long batchExtent(long extent, long stride, int count) {
        if (count == 0 || extent == 0) {
            return 0;
        }
        return saturatedSum(saturatedProduct(count - 1L, stride), extent);
    }

    /** {@code a·b} for a, b at least 0, or {@code Long.MAX_VALUE} where it overflows. */
    static long saturatedProduct(long a, long b) {
        return b != 0 && a > Long.MAX_VALUE / b ? Long.MAX_VALUE : a * b;
    }

    /** {@code a + b} for a, b at least 0, or {@code Long.MAX_VALUE} where it overflows. */
    static long saturatedSum(long a, long b) {
        return a > Long.MAX_VALUE - b ? Long.MAX_VALUE : a + b;
    }

    /** Checks that {@code [offset, offset + extent)} lies inside an array of {@code length} floats. */
    static void range(String name, long length, String offsetName, long offset, long extent, String what) {
        range(name, length, "floats", offsetName, offset, extent, what);
    }

    private static void range(
            String name, long length, String unit, String offsetName, long offset, long extent, String what) {
        if (offset < 0) {
            throw new IndexOutOfBoundsException(offsetName + " (" + offset + ") must be >= 0");
        }
        // Compared as extent > length - offset: offset + extent may overflow a long.
        if (extent > length - offset) {
            throw new IndexOutOfBoundsException(name + " holds " + length + " " + unit + ", but " + what + " needs "
                    + (extent == Long.MAX_VALUE ? "more than a long counts" : extent) + " from " + offsetName + " ("
                    + offset + ")"
                    + (extent > Long.MAX_VALUE - offset ? "" : ", up to index " + (offset + extent - 1)));
        }
    }

    static void range(String name, MemorySegment segment, String offsetName, long offset, long extent, String what) {
        range(name, usable(name, segment, extent).byteSize() / Float.BYTES, offsetName, offset, extent, what);
    }

    /**
     * Checks that {@code [offset, offset + extent)} lies inside the bytes of a segment; its accessibility is checked
     * where a kernel reads it ({@link #usable}).
     */
    static void byteRange(
            String name, MemorySegment segment, String offsetName, long offset, long extent, String what) {
        range(name, notNull(name, segment).byteSize(), "bytes", offsetName, offset, extent, what);
    }

    static void intRange(String name, MemorySegment segment, String offsetName, long offset, long extent, String what) {
        range(name, usable(name, segment, extent).byteSize() / Integer.BYTES, "ints", offsetName, offset, extent, what);
    }

    /**
     * The segment, checked to be open and accessible from this thread when the kernel will touch {@code extent > 0}
     * of its elements: a closed or another thread's segment would otherwise fail at its first access, after the
     * kernel had written part of its output. The exceptions are those the segment's own accesses would throw.
     */
    static MemorySegment usable(String name, MemorySegment segment, long extent) {
        notNull(name, segment);
        if (extent == 0) {
            return segment;
        }
        if (!segment.scope().isAlive()) {
            throw new IllegalStateException(name + "'s memory segment is closed (its arena was closed)");
        }
        if (!segment.isAccessibleBy(Thread.currentThread())) {
            throw new WrongThreadException(name + "'s memory segment is confined to another thread than "
                    + Thread.currentThread().getName());
        }
        return segment;
    }

    static void finite(String name, float value) {
        if (!Float.isFinite(value)) {
            throw new IllegalArgumentException(name + " (" + value + ") must be finite");
        }
    }

    static void positive(String name, double value) {
        if (!(value > 0) || Double.isInfinite(value)) {
            throw new IllegalArgumentException(name + " (" + value + ") must be finite and > 0");
        }
    }

    static void positive(String name, float value) {
        if (!(value > 0) || Float.isInfinite(value)) {
            throw new IllegalArgumentException(name + " (" + value + ") must be finite and > 0");
        }
    }

    static void nonNegative(String name, float value) {
        if (!(value >= 0) || Float.isInfinite(value)) {
            throw new IllegalArgumentException(name + " (" + value + ") must be finite and >= 0");
        }
    }

    /**
     * Checks a row-major {@code rows × cols} operand named {@code name}, at {@code nameOffset} with leading dimension
     * {@code ld}: the leading dimension covers a row, the rows lie inside the segment, and the segment is writable
     * when the kernel writes there.
     */
    static void matrix(
            String name,
            MemorySegment segment,
            long offset,
            int rows,
            int cols,
            String ldName,
            int ld,
            boolean written) {
        matrix(name, segment, offset, rows, "cols", cols, ldName, ld, written);
    }

    /** {@link #matrix(String, MemorySegment, long, int, int, String, int, boolean)} with the row length's own name. */
    static void matrix(
            String name,
            MemorySegment segment,
            long offset,
            int rows,
            String colsName,
            int cols,
            String ldName,
            int ld,
            boolean written) {
        leadingDimension(ldName, ld, colsName, cols, name);
        range(name, segment, name + "Offset", offset, matrixExtent(rows, cols, ld), name);
        if (written) {
            writable(name, segment);
        }
    }

    /** Checks a vector of {@code length} floats named {@code name} at {@code nameOffset}. */
    static void vector(String name, MemorySegment segment, long offset, long length, boolean written) {
        range(name, segment, name + "Offset", offset, length, name);
        if (written) {
            writable(name, segment);
        }
    }

    /**
     * Checks that two vectors of {@code n} floats, at {@code aOffset} of a and {@code bOffset} of b, share no memory: a
     * kernel that writes one while it reads or writes the other would otherwise give a silently wrong answer.
     */
    static void disjoint(
            String aName, MemorySegment a, long aOffset, String bName, MemorySegment b, long bOffset, long n) {
        Strided first = Strided.vector(aName, a, aOffset, n);
        Strided second = Strided.vector(bName, b, bOffset, n);
        if (n == 0 || !mayShare(first, second)) {
            return;
        }
        // Sharing memory, the two have comparable addresses (native, or offsets into one array).
        long shared = (Math.min(first.matrixAddress(0), second.matrixAddress(0))
                        + n * Float.BYTES
                        - Math.max(first.matrixAddress(0), second.matrixAddress(0)))
                / Float.BYTES;
        throw new IllegalArgumentException(aName + " (from " + aName + "Offset " + aOffset + ") and " + bName
                + " (from " + bName + "Offset " + bOffset + ") share " + shared + " of their " + n
                + " floats; they must not overlap");
    }

    /**
     * An operand laid out as {@code batches} matrices of {@code rows × cols} floats, rows {@code ld} and matrices
     * {@code batchStride} apart, from float {@code offset} of its segment: what {@link #unshared} compares.
     */
    record Strided(
            String name,
            String offsetName,
            MemorySegment segment,
            long offset,
            long rows,
            long cols,
            long ld,
            long batchStride) {
        /** Named after its argument; its offset after the argument's {@code nameOffset}. */
        Strided(String name, MemorySegment segment, long offset, long rows, long cols, long ld, long batchStride) {
            this(name, name + "Offset", segment, offset, rows, cols, ld, batchStride);
        }

        long extent(int batches) {
            return batchExtent(matrixExtent(rows, cols, ld), batchStride, batches);
        }

        /** One row-major matrix, {@code rows × cols} with leading dimension ld. */
        static Strided matrix(String name, MemorySegment segment, long offset, long rows, long cols, long ld) {
            return new Strided(name, segment, offset, rows, cols, ld, 0);
        }

        /** One vector of n floats; null when the segment is (an optional output left out). */
        static Strided vector(String name, MemorySegment segment, long offset, long n) {
            return segment == null ? null : new Strided(name, segment, offset, 1, n, Math.max(1, n), 0);
        }

        /** Byte address of batch i's first element; heap segments' addresses count from their array's start. */
        long matrixAddress(int i) {
            return segment.address() + (offset + i * batchStride) * Float.BYTES;
        }
    }

    /**
     * Checks that {@code written} and {@code read}, each {@code batches} matrices already checked to fit their segments,
     * share no float: a kernel that writes one while reading the other would give a silently wrong answer. Exact, not
     * a comparison of extents, so that matrices interleaved in one buffer (columns side by side) pass. Costs nothing
     * when the extents do not overlap; otherwise a step for each pair of matrices that might meet (one per row when
     * their leading dimensions differ).
     */
    static void unshared(Strided written, Strided read, int batches) {
        unshared(written, batches, read, batches);
    }

    /** {@link #unshared(Strided, Strided, int)} for operands with their own numbers of matrices. */
    static void unshared(Strided written, int writtenBatches, Strided read, int readBatches) {
        if (writtenBatches == 0
                || readBatches == 0
                || written.rows() == 0
                || written.cols() == 0
                || read.rows() == 0
                || read.cols() == 0) {
            return;
        }
        if (!extentsOverlap(written, writtenBatches, read, readBatches)) {
            return;
        }
        long readBytes = matrixExtent(read.rows(), read.cols(), read.ld()) * Float.BYTES;
        long writtenBytes = matrixExtent(written.rows(), written.cols(), written.ld()) * Float.BYTES;
        long readStride = read.batchStride() * Float.BYTES;
        for (int i = 0; i < writtenBatches; i++) {
            long from = written.matrixAddress(i);
            long first = 0;
            long last = readBatches - 1;
            if (readStride == 0) {
                last = 0;
            } else {
                first = Math.max(first, Math.floorDiv(from - readBytes - read.matrixAddress(0), readStride) + 1);
                last = Math.min(last, Math.ceilDiv(from + writtenBytes - read.matrixAddress(0), readStride) - 1);
            }
            for (long j = first; j <= last; j++) {
                if (rowsMeet(written, from, read, read.matrixAddress((int) j))) {
                    throw new IllegalArgumentException(written.name() + " (from " + written.offsetName() + " "
                            + written.offset() + ") shares memory with " + read.name() + " (from " + read.offsetName()
                            + " " + read.offset() + "): the output must not overlap an input");
                }
            }
        }
    }

    /**
     * Whether the spans of floats two operands cover overlap. Compared by address where the memory is known to be the
     * same (native, or one array): slicing the segments to ask them costs more than the rest of a small kernel call.
     */
    private static boolean extentsOverlap(Strided a, int aBatches, Strided b, int bBatches) {
        MemorySegment x = a.segment();
        MemorySegment y = b.segment();
        if (x.isNative() != y.isNative()) {
            return false;
        }
        // A read-only heap segment does not give its array: ask the segments themselves.
        if (!x.isNative() && (x.heapBase().isEmpty() || y.heapBase().isEmpty())) {
            return x.asSlice(a.offset() * Float.BYTES, a.extent(aBatches) * Float.BYTES)
                    .asOverlappingSlice(y.asSlice(b.offset() * Float.BYTES, b.extent(bBatches) * Float.BYTES))
                    .isPresent();
        }
        if (!x.isNative() && x.heapBase().get() != y.heapBase().get()) {
            return false;
        }
        long aStart = a.matrixAddress(0);
        long bStart = b.matrixAddress(0);
        return aStart < bStart + b.extent(bBatches) * Float.BYTES && bStart < aStart + a.extent(aBatches) * Float.BYTES;
    }

    /** Whether the floats two single-matrix operands span overlap: a quick test before an exact one. */
    static boolean mayShare(Strided a, Strided b) {
        return extentsOverlap(a, 1, b, 1);
    }

    /** {@link #unshared} of one output against each input that is given (a null input is skipped). */
    static void separate(Strided output, Strided... inputs) {
        if (output == null) {
            return;
        }
        for (Strided input : inputs) {
            if (input != null) {
                unshared(output, input, 1);
            }
        }
    }

    /** Checks vectors x (read) and y (written) of {@code n} floats: y is x itself or shares no float with it. */
    static void inPlaceOrSeparate(int n, MemorySegment x, long xOffset, MemorySegment y, long yOffset) {
        nonNegative("n", n);
        vector("x", x, xOffset, n, false);
        vector("y", y, yOffset, n, true);
        inPlaceOrSeparate(Strided.vector("y", y, yOffset, n), Strided.vector("x", x, xOffset, n));
    }

    /**
     * The output is the input itself (same first element and, over several rows, leading dimension: the kernel works in
     * place, reading each element before writing it), or shares no float with it. A partial overlap would read values
     * already overwritten.
     */
    static void inPlaceOrSeparate(Strided output, Strided input) {
        if (output.matrixAddress(0) == input.matrixAddress(0) && (output.ld() == input.ld() || output.rows() <= 1)) {
            // Equal addresses in different memory (two arrays, each from its start) share nothing either.
            return;
        }
        unshared(output, input, 1);
    }

    /** Whether a row of the written matrix at byte address w meets a row of the read one at r. */
    private static boolean rowsMeet(Strided written, long w, Strided read, long r) {
        long readRow = read.ld() * Float.BYTES;
        long readWidth = read.cols() * Float.BYTES;
        if (written.ld() == read.ld()) {
            // One pitch for both (matrices interleaved in one buffer): written row i and read row k meet when
            // d = (w - r) + (i - k)·pitch lies in (-written width, read width), for some i - k in (-read rows, written
            // rows). A step, not one per row.
            long writtenWidth = written.cols() * Float.BYTES;
            long first = Math.max(1 - read.rows(), Math.floorDiv(-writtenWidth - (w - r), readRow) + 1);
            long last = Math.min(written.rows() - 1, Math.ceilDiv(readWidth - (w - r), readRow) - 1);
            return first <= last;
        }
        for (long i = 0; i < written.rows(); i++) {
            long from = w + i * written.ld() * Float.BYTES;
            long to = from + written.cols() * Float.BYTES;
            // Rows k of the read matrix with r + k·readRow < to and r + k·readRow + readWidth > from.
            long first = Math.max(0, Math.floorDiv(from - readWidth - r, readRow) + 1);
            long last = Math.min(read.rows() - 1, Math.ceilDiv(to - r, readRow) - 1);
            if (first <= last) {
                return true;
            }
        }
        return false;
    }

    /** A heap segment over a caller's array, so that array and segment entry points share one implementation. */
    static MemorySegment wrap(String name, float[] array) {
        return MemorySegment.ofArray(notNull(name, array));
    }

    static MemorySegment wrap(String name, int[] array) {
        return MemorySegment.ofArray(notNull(name, array));
    }

    static void writable(String name, MemorySegment segment) {
        if (segment.isReadOnly()) {
            throw new IllegalArgumentException(name + " is read-only, but the kernel writes its result there");
        }
    }
}
