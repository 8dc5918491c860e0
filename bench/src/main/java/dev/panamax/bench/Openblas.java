package dev.panamax.bench;

import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import org.bytedeco.javacpp.Loader;
import org.bytedeco.javacpp.Pointer;
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

    /**
     * {@code C = alpha·A·op(B)} (row-major, beta = 0) by {@code cblas_sgemm} on Java arrays in place: called through
     * FFM as a critical function with heap access, so OpenBLAS reads and writes the very arrays a Panamax call on them
     * would, with no copy (the JVM holds its garbage collection until the call returns). Offsets count floats.
     *
     * @param transposeB whether op(B) is Bᵀ ({@code B} then {@code n × k})
     */
    static void sgemm(
            boolean transposeB,
            int m,
            int n,
            int k,
            float alpha,
            float[] a,
            int aOffset,
            int lda,
            float[] b,
            int bOffset,
            int ldb,
            float[] c,
            int cOffset,
            int ldc) {
        try {
            Heap.SGEMM.invokeExact(
                    openblas.CblasRowMajor,
                    openblas.CblasNoTrans,
                    transposeB ? openblas.CblasTrans : openblas.CblasNoTrans,
                    m,
                    n,
                    k,
                    alpha,
                    MemorySegment.ofArray(a).asSlice((long) Float.BYTES * aOffset),
                    lda,
                    MemorySegment.ofArray(b).asSlice((long) Float.BYTES * bOffset),
                    ldb,
                    0f,
                    MemorySegment.ofArray(c).asSlice((long) Float.BYTES * cOffset),
                    ldc);
        } catch (Throwable e) {
            throw new IllegalStateException("cblas_sgemm failed", e);
        }
    }

    /** The handle, made once the library is loaded. */
    private static final class Heap {
        static final MethodHandle SGEMM = sgemm();

        private static MethodHandle sgemm() {
            Loader.load(openblas.class);
            Pointer address = Loader.addressof("cblas_sgemm");
            if (address == null) {
                throw new IllegalStateException("OpenBLAS's library exports no cblas_sgemm");
            }
            ValueLayout.OfInt integer = ValueLayout.JAVA_INT;
            ValueLayout.OfFloat real = ValueLayout.JAVA_FLOAT;
            ValueLayout pointer = ValueLayout.ADDRESS;
            FunctionDescriptor signature = FunctionDescriptor.ofVoid(
                    integer, integer, integer, integer, integer, integer, real, pointer, integer, pointer, integer,
                    real, pointer, integer);
            return Linker.nativeLinker()
                    .downcallHandle(
                            MemorySegment.ofAddress(address.address()), signature, Linker.Option.critical(true));
        }
    }
}
