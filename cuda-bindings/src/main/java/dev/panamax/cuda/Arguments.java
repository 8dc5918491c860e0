package dev.panamax.cuda;

import java.lang.foreign.MemorySegment;
import java.util.Objects;

/** Argument checks of the safe layer; each message names the argument, its value and the bound it broke. */
final class Arguments {
    private Arguments() {}

    static <T> T present(String name, T value) {
        return Objects.requireNonNull(value, () -> name + " must not be null");
    }

    static long atLeastZero(String name, long value) {
        if (value < 0) {
            throw new IllegalArgumentException(name + " (" + value + ") must be >= 0");
        }
        return value;
    }

    /** Checks a buffer's type and length and returns its size in bytes, which must fit in a long. */
    static long byteSize(ElementType type, long length) {
        present("type", type);
        atLeastZero("length", length);
        long maxLength = Long.MAX_VALUE / type.byteSize();
        if (length > maxLength) {
            throw new IllegalArgumentException("length (" + length + ") × " + type.byteSize() + " bytes per " + type
                    + " element exceeds the largest byte count, " + Long.MAX_VALUE + ": length must be <= "
                    + maxLength);
        }
        return length * type.byteSize();
    }

    /** Checks that {@code [start, start + count)} lies in {@code [0, size)}; {@code what} names the range's owner. */
    static void within(String what, long size, String startName, long start, long count) {
        if (start < 0) {
            throw new IndexOutOfBoundsException(startName + " (" + start + ") must be >= 0");
        }
        atLeastZero("count", count);
        if (count > size - start) {
            throw new IndexOutOfBoundsException(what + " holds " + size + " elements, but " + count + " elements from "
                    + startName + " (" + start + ") reach index " + (start + count - 1));
        }
    }

    /** Checks a host segment for a copy: native (a downcall cannot take heap memory) and large enough. */
    static void hostSegment(String name, MemorySegment segment, long bytes) {
        present(name, segment);
        if (!segment.isNative()) {
            throw new IllegalArgumentException(name + " must be a native segment (e.g. from an Arena or a "
                    + "PinnedBuffer); CUDA cannot copy from or to heap memory");
        }
        if (segment.byteSize() < bytes) {
            throw new IndexOutOfBoundsException(
                    name + " holds " + segment.byteSize() + " bytes, but the copy needs " + bytes);
        }
    }
}
