package dev.panamax.kernels;

/**
 * Float activations quantized as GGML's Q8_0 quantizes them, for the integer block products of {@link QuantizedRows}:
 * each run of 32 values of a token gets the scale {@code d = max|x| / 127} (a float, not binary16 as in a Q8_0 file,
 * so that huge activations keep their scale) and the values {@code v = x·(1/d)}, in double, rounded to the nearest
 * integer, ties to even, which lie in [-127, 127]. Every value is then within {@code d/2} of its activation (and within {@code 2⁻¹⁴²}
 * more where d is subnormal). A token with a NaN or an infinite activation cannot be quantized and is marked, so that
 * its product is computed from the floats. One instance per calling thread, refilled by each product; the workers of
 * the product only read it.
 */
final class ActivationBlocks {
    private static final ThreadLocal<ActivationBlocks> PER_THREAD = ThreadLocal.withInitial(ActivationBlocks::new);
    private static final int BLOCK = QuantizedRows.BLOCK;

    private short[] values = new short[0];
    private float[] scales = new float[0];
    private boolean[] finite = new boolean[0];

    private ActivationBlocks() {}

    /**
     * This thread's instance, holding {@code tokens} rows of {@code columns} (a multiple of 32) activations from
     * {@code x[xBase + t·ldx]}, quantized.
     */
    static ActivationBlocks quantize(float[] x, int xBase, int ldx, int tokens, int columns) {
        ActivationBlocks blocks = PER_THREAD.get();
        blocks.fit(tokens, columns);
        for (int t = 0; t < tokens; t++) {
            blocks.finite[t] = blocks.quantizeToken(x, xBase + t * ldx, columns, t * columns);
        }
        return blocks;
    }

    private void fit(int tokens, int columns) {
        int length = Math.multiplyExact(tokens, columns);
        if (values.length < length) {
            values = new short[length];
            scales = new float[length / BLOCK];
        }
        if (finite.length < tokens) {
            finite = new boolean[tokens];
        }
    }

    /** Quantizes one token's row into {@code values[to, to + columns)}; false if it holds a NaN or an infinity. */
    private boolean quantizeToken(float[] x, int from, int columns, int to) {
        for (int b = 0; b < columns; b += BLOCK) {
            float largest = 0;
            for (int i = from + b; i < from + b + BLOCK; i++) {
                largest = Math.max(largest, Math.abs(x[i]));
            }
            if (!Float.isFinite(largest)) {
                return false;
            }
            float d = largest / 127;
            scales[(to + b) / BLOCK] = d;
            // In double, the quotient is exact enough that rounding it gives the nearest value; a subnormal d may have
            // lost so much that max|x| / d passes 127, hence the clamp.
            double inverse = d == 0 ? 0 : 1.0 / d;
            for (int i = 0; i < BLOCK; i++) {
                double v = Math.rint(x[from + b + i] * inverse);
                values[to + b + i] = (short) Math.max(-127, Math.min(127, v));
            }
        }
        return true;
    }

    /** The quantized values, {@code columns} per token, token after token. */
    short[] values() {
        return values;
    }

    /** The scale of each block of 32 values, in the order of {@link #values}. */
    float[] scales() {
        return scales;
    }

    /** Whether token t's activations were all finite, and so quantized. */
    boolean finite(int t) {
        return finite[t];
    }
}
