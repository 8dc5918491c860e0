/**
 * Panamax CPU kernels: matrix products, softmax, normalisation, activations and attention on the Vector API.
 *
 * <p>Callers must run with {@code --add-modules jdk.incubator.vector}: the Vector API is still an incubator module.
 */
module dev.panamax.kernels {
    requires jdk.incubator.vector;

    exports dev.panamax.kernels;
}
