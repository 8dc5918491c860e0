package dev.panamax.kernels;

/**
 * One call of attention as its forward and backward pass it around: the sizes, the scale and causal flag, the views
 * (the gradients' null in a forward), and the call's number, which keys the packed tile caches so that packed tiles
 * never outlive the call they are from.
 *
 * @param shape the sizes
 * @param scale the scores' factor
 * @param causal whether query i sees only keys {@code j <= i + (tk - tq)}
 * @param q queries
 * @param k keys
 * @param v values
 * @param mask the additive mask, or null
 * @param o the output (the forward's) or the saved output (the backward's)
 * @param lse the log-sum-exps, or null in a forward that does not write them
 * @param dO the gradient with respect to O; null in a forward
 * @param dQ the gradient with respect to Q; null in a forward
 * @param dK the gradient with respect to K; null in a forward
 * @param dV the gradient with respect to V; null in a forward
 * @param number the call's number
 */
record AttentionCall(
        Attention.Shape shape,
        float scale,
        boolean causal,
        TensorView q,
        TensorView k,
        TensorView v,
        TensorView mask,
        TensorView o,
        TensorView lse,
        TensorView dO,
        TensorView dQ,
        TensorView dK,
        TensorView dV,
        long number) {
    /** Whether the pool's workers may access every view's storage. */
    boolean shareable() {
        for (TensorView view : new TensorView[] {q, k, v, mask, o, lse, dO, dQ, dK, dV}) {
            if (view != null && !Parallelism.shareable(view.data())) {
                return false;
            }
        }
        return true;
    }
}
