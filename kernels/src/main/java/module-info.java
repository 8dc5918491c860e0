/**
 * Panamax CPU kernels: matrix products, softmax, normalisation, activations and attention on the Vector API.
 *
 * <p>The Vector API is still an incubator module: programs on the class path must run with {@code --add-modules
 * jdk.incubator.vector} (see {@link dev.panamax.kernels.VectorApi}); on the module path this module's {@code requires}
 * brings it in.
 */
module dev.panamax.kernels {
    requires jdk.incubator.vector;

    exports dev.panamax.kernels;
}
