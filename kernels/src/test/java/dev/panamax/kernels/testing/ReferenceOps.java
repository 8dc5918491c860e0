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
        double max = Double.NEGATIVE_INFINITY;
        for (double x : logits) {
            max = Math.max(max, x);
        }
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
