package dev.panamax.kernels;

/**
 * Checks that the JVM was started with the Vector API, which Panamax's kernels are written on.
 *
 * <p>The Vector API is the incubator module {@code jdk.incubator.vector}, which a program on the class path gets only
 * with {@code --add-modules jdk.incubator.vector} (a program on the module path gets it through the kernels' {@code
 * requires}). Without it the first kernel call would fail with a bare {@code NoClassDefFoundError:
 * jdk/incubator/vector/Vector}; {@link Gemm}, {@link Parallelism} and the model's backend call {@link #require()}
 * when they are first used, so the error names the missing flag instead. Other kernel classes fail while the JVM
 * links them, before any of their code can run, so they still give the bare error when they are the first Panamax
 * class a program uses.
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
