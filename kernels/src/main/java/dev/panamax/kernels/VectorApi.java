package dev.panamax.kernels;

/**
 * Checks that the JVM was started with the Vector API, which Panamax's kernels are written on.
 *
 * <p>The Vector API is the incubator module {@code jdk.incubator.vector}, which a program on the class path gets only
 * with {@code --add-modules jdk.incubator.vector} (a program on the module path gets it through the kernels' {@code
 * requires}). Without it the first kernel call would fail with a bare {@code NoClassDefFoundError:
 * jdk/incubator/vector/Vector}. Instead every public kernel class calls {@link #require()} from its static initialiser
 * and holds no Vector API code itself (its loops are in package-private classes), so that the JVM can link it without
 * the module: whichever kernel a program calls first, the error names the missing flag. The types that are only passed
 * to kernels ({@link Transpose}, {@link Activation}, {@link TensorView}, {@link Attention.Shape}, {@link Rope.Pairing}, {@link WeightFormat},
 * {@link QuantizedMatrix})
 * load without the module; the model's backend calls {@link #require()} too.
 */
public final class VectorApi {
    /** The module that holds the Vector API. */
    public static final String MODULE = "jdk.incubator.vector";

    private static final String MISSING = "Panamax's kernels need the Vector API, which this JVM was started without:"
            + " add --add-modules " + MODULE + " to the java command line (in Maven, to Surefire's argLine and to"
            + " the arguments of exec:exec)";

    private VectorApi() {}

    /**
     * Returns normally when the Vector API can be loaded by the kernels.
     *
     * @throws NoClassDefFoundError when it cannot, with a one-line message naming the flag to add
     */
    public static void require() {
        try {
            Class.forName(MODULE + ".Vector", false, VectorApi.class.getClassLoader());
        } catch (ClassNotFoundException e) {
            NoClassDefFoundError error = new NoClassDefFoundError(MISSING);
            error.initCause(e);
            throw error;
        }
    }
}
