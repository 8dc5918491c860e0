package dev.panamax.model.io;

import java.util.Arrays;
import java.util.Optional;

/**
 * One metadata value of a GGUF file, with the type the file gave it. Scalars are held as {@code Long} (every integer
 * type; a {@code UINT64} above {@code Long.MAX_VALUE} keeps its bits), {@code Float}, {@code Double}, {@code Boolean}
 * or {@code String}; arrays as {@code long[]}, {@code float[]}, {@code double[]}, {@code boolean[]}, {@code String[]}
 * or, for arrays of arrays, {@code GgufValue[]}, with their element type in {@link #elementType()}.
 *
 * @param type the value's type
 * @param elementType the elements' type for an array, null otherwise
 * @param value the value, as above
 */
public record GgufValue(Type type, Type elementType, Object value) {

    /** GGUF's metadata value types, by their id in the file. */
    public enum Type {
        /** 8-bit unsigned integer. */
        UINT8(1),
        /** 8-bit signed integer. */
        INT8(1),
        /** 16-bit unsigned integer. */
        UINT16(2),
        /** 16-bit signed integer. */
        INT16(2),
        /** 32-bit unsigned integer. */
        UINT32(4),
        /** 32-bit signed integer. */
        INT32(4),
        /** IEEE float32. */
        FLOAT32(4),
        /** One byte, 0 or 1. */
        BOOL(1),
        /** A UTF-8 string: uint64 length and bytes. */
        STRING(8),
        /** An array: element type, uint64 count, elements. */
        ARRAY(12),
        /** 64-bit unsigned integer. */
        UINT64(8),
        /** 64-bit signed integer. */
        INT64(8),
        /** IEEE float64. */
        FLOAT64(8);

        private final int minimumBytes;

        Type(int minimumBytes) {
            this.minimumBytes = minimumBytes;
        }

        /**
         * Returns the fewest bytes a value of this type takes in a file, which bounds how many a file can hold.
         *
         * @return the bytes
         */
        public int minimumBytes() {
            return minimumBytes;
        }

        /**
         * Returns whether this is one of the integer types.
         *
         * @return true for UINT8 to INT64
         */
        public boolean isInteger() {
            return switch (this) {
                case UINT8, INT8, UINT16, INT16, UINT32, INT32, UINT64, INT64 -> true;
                default -> false;
            };
        }

        /**
         * Returns the type with a GGUF id.
         *
         * @param id the id (the declaration order, 0 to 12)
         * @return the type, empty if the id is unknown
         */
        public static Optional<Type> byId(long id) {
            return id >= 0 && id < values().length ? Optional.of(values()[(int) id]) : Optional.empty();
        }
    }

    /**
     * A string value.
     *
     * @param value the string
     * @return the value
     */
    public static GgufValue of(String value) {
        return new GgufValue(Type.STRING, null, value);
    }

    /**
     * A {@code UINT32} value.
     *
     * @param value the value, in {@code [0, 2^32)}
     * @return the value
     */
    public static GgufValue uint32(long value) {
        return new GgufValue(Type.UINT32, null, value);
    }

    /**
     * A {@code FLOAT32} value.
     *
     * @param value the value
     * @return the value
     */
    public static GgufValue of(float value) {
        return new GgufValue(Type.FLOAT32, null, value);
    }

    /**
     * A {@code BOOL} value.
     *
     * @param value the value
     * @return the value
     */
    public static GgufValue of(boolean value) {
        return new GgufValue(Type.BOOL, null, value);
    }

    /**
     * An array of strings.
     *
     * @param values the strings
     * @return the value
     */
    public static GgufValue of(String[] values) {
        return new GgufValue(Type.ARRAY, Type.STRING, values.clone());
    }

    /**
     * An array of {@code FLOAT32}.
     *
     * @param values the values
     * @return the value
     */
    public static GgufValue of(float[] values) {
        return new GgufValue(Type.ARRAY, Type.FLOAT32, values.clone());
    }

    /**
     * An array of {@code INT32}.
     *
     * @param values the values
     * @return the value
     */
    public static GgufValue of(int[] values) {
        return new GgufValue(
                Type.ARRAY, Type.INT32, Arrays.stream(values).asLongStream().toArray());
    }

    /**
     * Returns the number of elements of an array, 1 for a scalar.
     *
     * @return the count
     */
    public int length() {
        return switch (value) {
            case long[] a -> a.length;
            case float[] a -> a.length;
            case double[] a -> a.length;
            case boolean[] a -> a.length;
            case Object[] a -> a.length;
            default -> 1;
        };
    }

    /**
     * Describes the value briefly for listings: a scalar in full (a long string excerpted), an array as its element
     * type and length.
     *
     * @return the description
     */
    public String describe() {
        if (type == Type.ARRAY) {
            return "[" + elementType.name().toLowerCase(java.util.Locale.ROOT) + " × " + length() + "]";
        }
        if (type == Type.STRING) {
            return '"' + ModelFormatException.excerpt((String) value) + '"';
        }
        if (type == Type.UINT64 && (Long) value < 0) {
            return Long.toUnsignedString((Long) value);
        }
        return String.valueOf(value);
    }
}
