package dev.panamax.cuda;

/**
 * Three extents or indices, CUDA's {@code dim3}/{@code uint3}: a kernel launch's grid (blocks) and block (threads), or
 * the block and thread a {@link KernelFaultException} names.
 *
 * @param x the first, fastest-varying component
 * @param y the second
 * @param z the third
 */
public record Dim3(int x, int y, int z) implements java.io.Serializable {
    /**
     * One dimension: {@code (x, 1, 1)}.
     *
     * @param x the extent
     * @return the triple
     */
    public static Dim3 of(int x) {
        return new Dim3(x, 1, 1);
    }

    /**
     * Two dimensions: {@code (x, y, 1)}.
     *
     * @param x the first extent
     * @param y the second extent
     * @return the triple
     */
    public static Dim3 of(int x, int y) {
        return new Dim3(x, y, 1);
    }

    /**
     * The number of elements of a grid or block of these extents.
     *
     * @return {@code x · y · z}
     */
    public long volume() {
        return (long) x * y * z;
    }

    @Override
    public String toString() {
        return "(" + x + "," + y + "," + z + ")";
    }
}
