package dev.panamax.kernels.testing;

/**
 * Plain float64 matrix products with BLAS semantics (row-major), the yardstick for the fast kernels. Inputs are the
 * same floats the kernel sees; products and sums are exact to double precision, far below float's error.
 */
public final class ReferenceBlas {
    private ReferenceBlas() {}

    /** A reference result: the expected C and, per element, the scale its rounding error is measured against. */
    public record Result(double[] values, double[] magnitudes) {
        /**
         * Bounds for a float kernel that sums {@code terms} products per element: {@code (terms + 3)·ε·magnitude}, the
         * classical bound {@code γ_k·Σ|a||b|} for a length-k dot product, plus three roundings for the alpha and beta
         * updates, with ε float's unit roundoff.
         *
         * @param terms the length of each dot product (k)
         * @return the allowed absolute error per element
         */
        public double[] bounds(int terms) {
            double[] bounds = new double[magnitudes.length];
            for (int i = 0; i < bounds.length; i++) {
                bounds[i] = (terms + 3) * Tolerance.FLOAT_EPSILON * magnitudes[i];
            }
            return bounds;
        }
    }

    /**
     * {@code C = alpha·op(A)·op(B) + beta·C} in float64. A and B are not read when {@code k == 0} or {@code alpha ==
     * 0}; C is not read when {@code beta == 0}.
     *
     * @param transA whether A is stored transposed ({@code k × m})
     * @param transB whether B is stored transposed ({@code n × k})
     * @param m rows of C
     * @param n columns of C
     * @param k the inner dimension
     * @param alpha scale of the product
     * @param a A's storage
     * @param aOffset index of A's first element
     * @param lda leading dimension of A
     * @param b B's storage
     * @param bOffset index of B's first element
     * @param ldb leading dimension of B
     * @param beta scale of C's old value
     * @param c C's storage (read only)
     * @param cOffset index of C's first element
     * @param ldc leading dimension of C
     * @return the expected C, dense {@code m × n}, and the magnitudes {@code |alpha|·Σ|a||b| + |beta|·|c|}
     */
    public static Result gemm(
            boolean transA,
            boolean transB,
            int m,
            int n,
            int k,
            double alpha,
            float[] a,
            int aOffset,
            int lda,
            float[] b,
            int bOffset,
            int ldb,
            double beta,
            float[] c,
            int cOffset,
            int ldc) {
        double[] values = new double[m * n];
        double[] magnitudes = new double[m * n];
        for (int i = 0; i < m; i++) {
            for (int j = 0; j < n; j++) {
                double sum = 0;
                double magnitude = 0;
                if (alpha != 0) {
                    for (int p = 0; p < k; p++) {
                        double x = a[aOffset + (transA ? p * lda + i : i * lda + p)];
                        double y = b[bOffset + (transB ? j * ldb + p : p * ldb + j)];
                        sum += x * y;
                        magnitude += Math.abs(x * y);
                    }
                }
                double old = beta == 0 ? 0 : c[cOffset + i * ldc + j];
                values[i * n + j] = alpha * sum + (beta == 0 ? 0 : beta * old);
                magnitudes[i * n + j] = Math.abs(alpha) * magnitude + Math.abs(beta * old);
            }
        }
        return new Result(values, magnitudes);
    }
}
