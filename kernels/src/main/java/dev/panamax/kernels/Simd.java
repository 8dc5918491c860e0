package dev.panamax.kernels;

import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorShuffle;
import jdk.incubator.vector.VectorSpecies;

/**
 * The vector species every kernel uses, fixed once per JVM so that C2 sees a constant.
 *
 * <p>It is {@link FloatVector#SPECIES_PREFERRED} unless the system property {@code panamax.vectorBits} (64, 128, 256
 * or 512) forces another width: tests use that to check the kernels at widths this machine does not prefer.
 */
final class Simd {
    static final VectorSpecies<Float> FLOATS = chooseSpecies(System.getProperty("panamax.vectorBits"));
    static final int LANES = FLOATS.length();
    static final ByteOrder ORDER = ByteOrder.nativeOrder();
    /** Scalar float access that tolerates any alignment a caller's segment slice may have. */
    static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED;

    private Simd() {}

    /** Lanes {@code [0, count - from)} of a tail that starts at {@code from}. */
    static VectorMask<Float> tail(int from, int count) {
        return FLOATS.indexInRange(from, count);
    }

    /** The end of the whole vectors in a run of {@code count} floats. */
    static int vectorEnd(int count) {
        return count - count % LANES;
    }

    /** Two floats in one long, to return both without an allocation: read them with {@link #first}, {@link #second}. */
    static long pair(float first, float second) {
        return (long) Float.floatToRawIntBits(first) << 32 | Integer.toUnsignedLong(Float.floatToRawIntBits(second));
    }

    /** The first float of a {@link #pair}. */
    static float first(long pair) {
        return Float.intBitsToFloat((int) (pair >>> 32));
    }

    /** The second float of a {@link #pair}. */
    static float second(long pair) {
        return Float.intBitsToFloat((int) pair);
    }

    /**
     * The sum of the lanes, added as a fixed pairwise tree: {@code ((l0 + l1) + (l2 + l3)) + …}. {@code reduceLanes}'
     * order differs between interpreted and compiled code, and a result must not depend on when the JIT got to it.
     * Each level adds every lane to the lane 1, 2, 4, then 8 places on, so lane 0 ends with the tree: a permute and an
     * add per level where extracting the lanes took an extract and an add per lane. The shuffles are constants, which
     * C2 needs to emit them as single permutes.
     */
    static float sum(FloatVector v) {
        if (LANES > 16) {
            // Wider vectors (SVE allows up to 64 floats): the same tree, through an array, slower but the same order.
            return pairwiseSum(v.toArray(), 0, LANES);
        }
        FloatVector tree = v.add(v.rearrange(NEXT_1));
        if (LANES >= 4) {
            tree = tree.add(tree.rearrange(NEXT_2));
        }
        if (LANES >= 8) {
            tree = tree.add(tree.rearrange(NEXT_4));
        }
        if (LANES >= 16) {
            tree = tree.add(tree.rearrange(NEXT_8));
        }
        return tree.lane(0);
    }

    private static final VectorShuffle<Float> NEXT_1 = VectorShuffle.fromOp(FLOATS, i -> (i + 1) % LANES);
    private static final VectorShuffle<Float> NEXT_2 = VectorShuffle.fromOp(FLOATS, i -> (i + 2) % LANES);
    private static final VectorShuffle<Float> NEXT_4 = VectorShuffle.fromOp(FLOATS, i -> (i + 4) % LANES);
    private static final VectorShuffle<Float> NEXT_8 = VectorShuffle.fromOp(FLOATS, i -> (i + 8) % LANES);

    /** {@link #sum} for a vector of any width: the same pairwise tree over its lanes. */
    static float sumAnyWidth(FloatVector v) {
        return v.length() == LANES ? sum(v) : pairwiseSum(v.toArray(), 0, v.length());
    }

    /** The sum of {@code count} (a power of two) floats from {@code from}, as {@link #sum}'s tree adds them. */
    private static float pairwiseSum(float[] lanes, int from, int count) {
        if (count == 1) {
            return lanes[from];
        }
        int half = count / 2;
        return pairwiseSum(lanes, from, half) + pairwiseSum(lanes, from + half, half);
    }

    /**
     * The lane-wise larger of {@code running} and {@code v}, a NaN lane of v leaving running as it is: a compare and a
     * blend, because {@code FloatVector.max} also orders NaN and -0 as {@code Math.max} does, which compiles to a
     * longer chain of instructions, loop-carried on a running maximum. Callers that must see NaN track it apart, off
     * that chain. Of -0 and +0 it keeps whichever came first, where {@code max} takes +0; a shift by either zero gives
     * the same exponentials.
     */
    static FloatVector maxSkippingNaN(FloatVector running, FloatVector v) {
        return running.blend(v, v.compare(VectorOperators.GT, running));
    }

    /** x where it is at most {@code bound}, else bound; NaN stays NaN. A compare and a blend: see {@link #maxSkippingNaN}. */
    static FloatVector atMost(FloatVector x, float bound) {
        return x.blend(bound, x.compare(VectorOperators.GT, bound));
    }

    /** x where it is at least {@code bound}, else bound; NaN stays NaN. */
    static FloatVector atLeast(FloatVector x, float bound) {
        return x.blend(bound, x.lt(bound));
    }

    /** The largest lane; NaN if any lane is NaN. Maximum is exact, so the reduction's order does not matter. */
    static float max(FloatVector v) {
        return v.reduceLanes(VectorOperators.MAX);
    }

    private static VectorSpecies<Float> chooseSpecies(String bits) {
        if (bits == null || bits.isBlank()) {
            return FloatVector.SPECIES_PREFERRED;
        }
        return switch (bits.trim()) {
            case "64" -> FloatVector.SPECIES_64;
            case "128" -> FloatVector.SPECIES_128;
            case "256" -> FloatVector.SPECIES_256;
            case "512" -> FloatVector.SPECIES_512;
            default ->
                throw new IllegalArgumentException("system property panamax.vectorBits (" + bits
                        + ") must be one of 64, 128, 256, 512; the preferred" + " width here is "
                        + VectorShape.preferredShape().vectorBitSize());
        };
    }
}
