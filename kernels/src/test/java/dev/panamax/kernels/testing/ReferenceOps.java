package dev.panamax.kernels.testing;

/**
 * Plain float64 versions of the transformer ops, forward and backward, one row (or vector) at a time: the yardstick
 * for the fast kernels and, through finite differences, for their backward formulas. They follow the kernels'
 * conventions (masked columns, fully masked rows, ignored targets) so that tests compare like with like.
 */
public final class ReferenceOps {
    private ReferenceOps() {}

    /**
     * Softmax of {@code scale·x} over the first {@code visible} entries; the rest, and every entry of a row with no
     * visible entry or only -∞ ones, are 0.
     *
     * @param x the row
     * @param scale factor applied to x
     * @param visible how many leading entries are not masked
     * @return the probabilities, as long as x
     */
    public static double[] softmax(double[] x, double scale, int visible) {
        double[] y = new double[x.length];
        double max = max(x, scale, visible);
        if (max == Double.NEGATIVE_INFINITY) {
            return y;
        }
        double sum = 0;
        for (int j = 0; j < visible; j++) {
            y[j] = Math.exp(scale * x[j] - max);
            sum += y[j];
        }
        for (int j = 0; j < visible; j++) {
            y[j] /= sum;
        }
        return y;
    }

    /**
     * Log-softmax of {@code scale·x} over the first {@code visible} entries; -∞ for the rest and for rows with no
     * visible or only -∞ entries.
     *
     * @param x the row
     * @param scale factor applied to x
     * @param visible how many leading entries are not masked
     * @return the log-probabilities, as long as x
     */
    public static double[] logSoftmax(double[] x, double scale, int visible) {
        double[] y = new double[x.length];
        java.util.Arrays.fill(y, Double.NEGATIVE_INFINITY);
        double max = max(x, scale, visible);
        if (max == Double.NEGATIVE_INFINITY) {
            return y;
        }
        double sum = 0;
        for (int j = 0; j < visible; j++) {
            sum += Math.exp(scale * x[j] - max);
        }
        double log = Math.log(sum);
        for (int j = 0; j < visible; j++) {
            y[j] = scale * x[j] - max - log;
        }
        return y;
    }

    /** The largest {@code scale·x} over the first {@code visible} entries; NaN if any is NaN. */
    private static double max(double[] x, double scale, int visible) {
        double max = Double.NEGATIVE_INFINITY;
        for (int j = 0; j < visible; j++) {
            max = Math.max(max, scale * x[j]);
        }
        return max;
    }

    /**
     * The gradient of softmax: {@code dx = scale·y⊙(dy - Σ y⊙dy)} over the visible entries, 0 elsewhere.
     *
     * @param y the softmax output
     * @param dy the upstream gradient
     * @param scale the forward's scale
     * @param visible how many leading entries are not masked
     * @return dx
     */
    public static double[] softmaxBackward(double[] y, double[] dy, double scale, int visible) {
        double dot = 0;
        for (int j = 0; j < visible; j++) {
            dot += y[j] * dy[j];
        }
        double[] dx = new double[y.length];
        for (int j = 0; j < visible; j++) {
            dx[j] = scale * y[j] * (dy[j] - dot);
        }
        return dx;
    }

    /**
     * The gradient of log-softmax: {@code dx = scale·(dy - exp(y)·Σ dy)} over the visible entries, 0 elsewhere.
     *
     * @param y the log-softmax output
     * @param dy the upstream gradient
     * @param scale the forward's scale
     * @param visible how many leading entries are not masked
     * @return dx
     */
    public static double[] logSoftmaxBackward(double[] y, double[] dy, double scale, int visible) {
        double sum = 0;
        for (int j = 0; j < visible; j++) {
            sum += dy[j];
        }
        double[] dx = new double[y.length];
        for (int j = 0; j < visible; j++) {
            dx[j] = scale * (dy[j] - Math.exp(y[j]) * sum);
        }
        return dx;
    }

    /**
     * One row's cross-entropy loss, {@code log Σ exp(x) - x[target]}, computed stably.
     *
     * @param logits the row
     * @param target the target class
     * @return the loss
     */
    public static double crossEntropy(double[] logits, int target) {
        double max = max(logits, 1, logits.length);
        double sum = 0;
        for (double x : logits) {
            sum += Math.exp(x - max);
        }
        return max + Math.log(sum) - logits[target];
    }

    /**
     * The gradient of one row's cross-entropy loss, weighted: {@code weight·(softmax(x) - onehot(target))}.
     *
     * @param logits the row
     * @param target the target class
     * @param weight the row's weight in the loss (1/count for a mean)
     * @return the gradient with respect to the logits
     */
    public static double[] crossEntropyBackward(double[] logits, int target, double weight) {
        double[] d = softmax(logits, 1, logits.length);
        d[target] -= 1;
        for (int j = 0; j < d.length; j++) {
            d[j] *= weight;
        }
        return d;
    }

    /**
     * Layer normalisation of one row: {@code (x - mean)·rstd⊙w + b}.
     *
     * @param x the row
     * @param w the weight
     * @param b the bias
     * @param epsilon added to the variance
     * @return y
     */
    public static double[] layerNorm(double[] x, double[] w, double[] b, double epsilon) {
        double[] stats = layerNormStats(x, epsilon);
        double[] y = new double[x.length];
        for (int j = 0; j < x.length; j++) {
            y[j] = (x[j] - stats[0]) * stats[1] * w[j] + b[j];
        }
        return y;
    }

    /**
     * A row's mean and {@code rstd = 1/√(var + epsilon)}, with the biased variance.
     *
     * @param x the row
     * @param epsilon added to the variance
     * @return {mean, rstd}
     */
    public static double[] layerNormStats(double[] x, double epsilon) {
        double mean = 0;
        for (double v : x) {
            mean += v;
        }
        mean /= x.length;
        double variance = 0;
        for (double v : x) {
            variance += (v - mean) * (v - mean);
        }
        return new double[] {mean, 1 / Math.sqrt(variance / x.length + epsilon)};
    }

    /**
     * The gradients of layer normalisation for one row, given the forward's mean and rstd.
     *
     * @param x the row
     * @param w the weight
     * @param mean the row's mean
     * @param rstd the row's rstd
     * @param dy the upstream gradient
     * @return {dx, dweight, dbias} of this row
     */
    public static double[][] layerNormBackward(double[] x, double[] w, double mean, double rstd, double[] dy) {
        int n = x.length;
        double meanDnorm = 0;
        double meanDnormXhat = 0;
        for (int j = 0; j < n; j++) {
            double xhat = (x[j] - mean) * rstd;
            meanDnorm += dy[j] * w[j] / n;
            meanDnormXhat += dy[j] * w[j] * xhat / n;
        }
        double[][] result = new double[3][n];
        for (int j = 0; j < n; j++) {
            double xhat = (x[j] - mean) * rstd;
            result[0][j] = (dy[j] * w[j] - meanDnorm - xhat * meanDnormXhat) * rstd;
            result[1][j] = dy[j] * xhat;
            result[2][j] = dy[j];
        }
        return result;
    }

    /**
     * RMS normalisation of one row: {@code x·rstd⊙w}, {@code rstd = 1/√(mean(x²) + epsilon)}.
     *
     * @param x the row
     * @param w the weight
     * @param epsilon added to the mean square
     * @return y
     */
    public static double[] rmsNorm(double[] x, double[] w, double epsilon) {
        double rstd = rmsNormRstd(x, epsilon);
        double[] y = new double[x.length];
        for (int j = 0; j < x.length; j++) {
            y[j] = x[j] * rstd * w[j];
        }
        return y;
    }

    /**
     * A row's {@code 1/√(mean(x²) + epsilon)}.
     *
     * @param x the row
     * @param epsilon added to the mean square
     * @return rstd
     */
    public static double rmsNormRstd(double[] x, double epsilon) {
        double sum = 0;
        for (double v : x) {
            sum += v * v;
        }
        return 1 / Math.sqrt(sum / x.length + epsilon);
    }

    /**
     * The gradients of RMS normalisation for one row, given the forward's rstd.
     *
     * @param x the row
     * @param w the weight
     * @param rstd the row's rstd
     * @param dy the upstream gradient
     * @return {dx, dweight} of this row
     */
    public static double[][] rmsNormBackward(double[] x, double[] w, double rstd, double[] dy) {
        int n = x.length;
        double dot = 0;
        for (int j = 0; j < n; j++) {
            dot += dy[j] * w[j] * x[j];
        }
        double[][] result = new double[2][n];
        for (int j = 0; j < n; j++) {
            result[0][j] = rstd * dy[j] * w[j] - x[j] * rstd * rstd * rstd * dot / n;
            result[1][j] = dy[j] * x[j] * rstd;
        }
        return result;
    }

    /** √(2/π), the scale of GELU's tanh approximation. */
    private static final double GELU_SCALE = Math.sqrt(2 / Math.PI);

    /**
     * GELU, tanh approximation: {@code 0.5·x·(1 + tanh u)}, {@code u = √(2/π)(x + 0.044715x³)}, computed as the equal
     * {@code x / (1 + exp(-2u))} so that no cancellation hides tiny values.
     *
     * @param x the input
     * @return gelu(x)
     */
    public static double geluTanh(double x) {
        return x / (1 + Math.exp(-2 * GELU_SCALE * (x + 0.044715 * x * x * x)));
    }

    /**
     * The derivative of {@link #geluTanh}: {@code s + x·s·(1 - s)·2u'} with {@code s = sigmoid(2u)}.
     *
     * @param x the input
     * @return gelu'(x)
     */
    public static double geluTanhDerivative(double x) {
        double twoU = 2 * GELU_SCALE * (x + 0.044715 * x * x * x);
        double s = 1 / (1 + Math.exp(-twoU));
        double oneMinusS = 1 / (1 + Math.exp(twoU));
        return s + x * s * oneMinusS * 2 * GELU_SCALE * (1 + 3 * 0.044715 * x * x);
    }

    /**
     * GELU, exact: {@code x·Φ(x) = 0.5·x·erfc(-x/√2)}.
     *
     * @param x the input
     * @return gelu(x)
     */
    public static double gelu(double x) {
        return 0.5 * x * erfc(-x / Math.sqrt(2));
    }

    /**
     * The derivative of {@link #gelu}: {@code Φ(x) + x·φ(x)}.
     *
     * @param x the input
     * @return gelu'(x)
     */
    public static double geluDerivative(double x) {
        return 0.5 * erfc(-x / Math.sqrt(2)) + x * Math.exp(-0.5 * x * x) / Math.sqrt(2 * Math.PI);
    }

    /**
     * SiLU: {@code x·sigmoid(x)}.
     *
     * @param x the input
     * @return silu(x)
     */
    public static double silu(double x) {
        return x / (1 + Math.exp(-x));
    }

    /**
     * The derivative of SiLU: {@code s·(1 + x·(1 - s))}, with {@code 1 - s = sigmoid(-x)} computed directly.
     *
     * @param x the input
     * @return silu'(x)
     */
    public static double siluDerivative(double x) {
        double s = 1 / (1 + Math.exp(-x));
        return s * (1 + x / (1 + Math.exp(x)));
    }

    /**
     * The complementary error function to near double precision: a series without cancellation for |x| < 3 (where
     * erfc >= 2·10⁻⁵) and a continued fraction beyond, accurate in relative terms in the far tail.
     *
     * @param x the argument
     * @return erfc(x)
     */
    public static double erfc(double x) {
        if (Double.isNaN(x)) {
            return x;
        }
        if (x < 0) {
            return 2 - erfc(-x);
        }
        if (x < 3) {
            // erf(x) = 2/√π·exp(-x²)·Σ x·(2x²)ⁿ/(1·3·…·(2n+1)): positive terms only.
            double term = x;
            double sum = x;
            for (int n = 1; n < 200 && term > 1e-18 * sum; n++) {
                term *= 2 * x * x / (2 * n + 1);
                sum += term;
            }
            return 1 - 2 / Math.sqrt(Math.PI) * Math.exp(-x * x) * sum;
        }
        // erfc(x) = exp(-x²)/√π / (x + (1/2)/(x + 1/(x + (3/2)/(x + …)))), evaluated from the tail.
        double fraction = x;
        for (int k = 200; k >= 1; k--) {
            fraction = x + (k / 2.0) / fraction;
        }
        return Math.exp(-x * x) / Math.sqrt(Math.PI) / fraction;
    }

    /**
     * Rotary embedding of one head: each pair rotated by {@code sign·position·theta^(-2k/d)}.
     *
     * @param head the head's {@code d} values
     * @param position the token's position
     * @param theta the frequency base
     * @param halves pairs {@code (k, k + d/2)} when true, {@code (2k, 2k + 1)} when false
     * @param sign 1 for the forward rotation, -1 for its inverse (the backward)
     * @return the rotated head
     */
    public static double[] rope(double[] head, int position, double theta, boolean halves, double sign) {
        int d = head.length;
        double[] y = new double[d];
        for (int k = 0; k < d / 2; k++) {
            int a = halves ? k : 2 * k;
            int b = halves ? k + d / 2 : 2 * k + 1;
            double angle = sign * position * Math.pow(theta, -2.0 * k / d);
            y[a] = head[a] * Math.cos(angle) - head[b] * Math.sin(angle);
            y[b] = head[b] * Math.cos(angle) + head[a] * Math.sin(angle);
        }
        return y;
    }

    /**
     * A float array's elements {@code [offset, offset + length)} as doubles.
     *
     * @param values the floats
     * @param offset the first index
     * @param length how many
     * @return a new array
     */
    public static double[] toDouble(float[] values, int offset, int length) {
        double[] result = new double[length];
        for (int i = 0; i < length; i++) {
            result[i] = values[offset + i];
        }
        return result;
    }
}
