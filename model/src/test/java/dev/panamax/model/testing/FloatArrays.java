package dev.panamax.model.testing;

import java.util.List;

/** Float arrays put end to end, as tests compare whole parameter sets or several outputs at once. */
public final class FloatArrays {
    private FloatArrays() {}

    /**
     * Returns the parts one after the other in a new array.
     *
     * @param parts the arrays, in order
     * @return their concatenation
     */
    public static float[] concat(List<float[]> parts) {
        int length = 0;
        for (float[] p : parts) {
            length += p.length;
        }
        float[] all = new float[length];
        int at = 0;
        for (float[] p : parts) {
            System.arraycopy(p, 0, all, at, p.length);
            at += p.length;
        }
        return all;
    }
}
