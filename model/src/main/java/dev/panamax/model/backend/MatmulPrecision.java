package dev.panamax.model.backend;

import java.util.Arrays;
import java.util.Locale;
import java.util.stream.Collectors;

/**
 * How a backend's matrix products round their inputs: an explicit choice, so a lower precision is never silent. The
 * other operations (norms, attention, softmax, optimizer) stay in FP32 whatever the choice.
 */
public enum MatmulPrecision {
    /** FP32 inputs and accumulation: the default, and the only precision of the CPU backend. */
    FP32,
    /**
     * Inputs rounded to TF32 (FP32's exponent, 10 explicit mantissa bits: unit roundoff 2⁻¹¹), products accumulated in
     * FP32: cuBLAS's {@code CUBLAS_COMPUTE_32F_FAST_TF32} on tensor cores.
     */
    TF32,
    /**
     * Inputs rounded to bfloat16 (7 explicit mantissa bits: unit roundoff 2⁻⁸) by a Panamax kernel, products
     * accumulated in FP32 into an FP32 result: {@code cublasGemmEx} with {@code CUDA_R_16BF} inputs.
     */
    BF16;

    /**
     * The name the command line and the trainer's state file use.
     *
     * @return {@code fp32}, {@code tf32} or {@code bf16}
     */
    public String spelling() {
        return name().toLowerCase(Locale.ROOT);
    }

    /**
     * The precision a name spells, in any case.
     *
     * @param name {@code fp32}, {@code tf32} or {@code bf16}
     * @return the precision
     * @throws IllegalArgumentException for any other name, listing the names
     */
    public static MatmulPrecision of(String name) {
        for (MatmulPrecision precision : values()) {
            if (precision.spelling().equalsIgnoreCase(name == null ? "" : name.strip())) {
                return precision;
            }
        }
        throw new IllegalArgumentException("precision (" + name + ") must be one of " + names());
    }

    /**
     * The names {@link #of} accepts.
     *
     * @return {@code fp32, tf32, bf16}
     */
    public static String names() {
        return Arrays.stream(values()).map(MatmulPrecision::spelling).collect(Collectors.joining(", "));
    }
}
