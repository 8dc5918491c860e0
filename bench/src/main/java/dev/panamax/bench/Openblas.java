package dev.panamax.bench;

import org.bytedeco.javacpp.Loader;
import org.bytedeco.openblas.global.openblas;
import org.bytedeco.openblas.presets.openblas_nolapack;

/** OpenBLAS as the suites use it: the library of {@code org.bytedeco:openblas}, bundled for this platform. */
final class Openblas {
    private Openblas() {}

    /**
     * Loads the library and sets its thread count, checked: a build without threading ignores the setting, and a
     * comparison at unequal thread counts would be no comparison.
     *
     * @param threads the threads OpenBLAS's calls use
     * @throws IllegalStateException if OpenBLAS runs another number of threads afterwards
     */
    static void load(int threads) {
        Loader.load(openblas.class);
        openblas_nolapack.blas_set_num_threads(threads);
        if (openblas_nolapack.blas_get_num_threads() != threads) {
            throw new IllegalStateException("OpenBLAS runs " + openblas_nolapack.blas_get_num_threads()
                    + " threads after openblas_set_num_threads(" + threads + ")");
        }
    }
}
