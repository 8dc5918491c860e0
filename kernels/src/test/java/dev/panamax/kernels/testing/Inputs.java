package dev.panamax.kernels.testing;

import java.util.SplittableRandom;

/** Seeded random inputs: a test that fails fails the same way on every run and every machine. */
public final class Inputs {
    private Inputs() {}

    /**
     * Returns floats drawn uniformly from {@code [low, high)}.
     *
     * @param seed the seed; the same seed gives the same values
     * @param length how many
     * @param low the smallest value
     * @param high the bound above every value
     * @return a new array
     */
    public static float[] uniform(long seed, int length, float low, float high) {
        SplittableRandom random = new SplittableRandom(seed);
        float[] values = new float[length];
        for (int i = 0; i < length; i++) {
            values[i] = (float) (low + (high - low) * random.nextDouble());
        }
        return values;
    }

    /**
     * Returns normally distributed floats with mean 0.
     *
     * @param seed the seed; the same seed gives the same values
     * @param length how many
     * @param deviation the standard deviation
     * @return a new array
     */
    public static float[] gaussian(long seed, int length, double deviation) {
        SplittableRandom random = new SplittableRandom(seed);
        float[] values = new float[length];
        for (int i = 0; i < length; i++) {
            // Box-Muller on two uniforms; 1 - u keeps the logarithm's argument in (0, 1].
            double radius = Math.sqrt(-2 * Math.log(1 - random.nextDouble()));
            values[i] = (float) (deviation * radius * Math.cos(2 * Math.PI * random.nextDouble()));
        }
        return values;
    }

    /**
     * Returns a seed derived from a name, so that each test case gets its own stream of values.
     *
     * @param name what the values are for, e.g. the test and case
     * @return a seed
     */
    public static long seed(String name) {
        long hash = 0xcbf29ce484222325L;
        for (int i = 0; i < name.length(); i++) {
            hash = (hash ^ name.charAt(i)) * 0x100000001b3L;
        }
        return hash;
    }
}
