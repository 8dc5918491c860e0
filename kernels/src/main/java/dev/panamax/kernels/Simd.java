package dev.panamax.kernels;

import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorShape;
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
