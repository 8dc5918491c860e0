package dev.panamax.kernels;

import java.lang.foreign.MemorySegment;

/**
 * Single-precision matrix products with BLAS semantics, row-major: {@code C = alpha·op(A)·op(B) + beta·C}.
 *
 * <p>Every entry point exists for {@code float[]} with an offset and for {@link MemorySegment} (heap or native) with
 * an offset; offsets, strides and leading dimensions count floats, as in BLAS. {@code op(A)} is {@code m × k}, {@code
 * op(B)} is {@code k × n}, C is {@code m × n}; a matrix stored row-major with leading dimension {@code ld} has element
 * {@code (i, j)} at {@code offset + i·ld + j}.
 *
 * <ul>
 *   <li>{@code beta == 0} means C is not read: NaN or Inf already in C does not survive.
 *   <li>{@code k == 0} or {@code alpha == 0} means {@code C = beta·C}, and A and B are not read.
 *   <li>{@code m == 0} or {@code n == 0} does nothing.
 *   <li>{@code m == 1} or {@code n == 1} runs as a matrix-vector product.
 * </ul>
 *
 * <p>Arguments are checked before anything is written: negative sizes and too-small leading dimensions throw {@link
 * IllegalArgumentException}, extents past the end of an array or segment throw {@link IndexOutOfBoundsException}; the
 * message names the argument, its value and the bound; a closed segment, or one confined to another thread, throws
 * what accessing it would ({@link IllegalStateException}, {@link WrongThreadException}). C (GEMV's y) must share no
 * float with A or B (A or x) where they are read; that is checked element by element, so matrices side by side in one
 * buffer are fine, and a shared element throws {@link IllegalArgumentException}. Large products use the threads of
 * {@link Parallelism}, with results bit-identical for every thread count. Segments of a confined arena are processed
 * on the calling thread.
 */
public final class Gemm {
    /** Products of a batch up to this many multiply-adds may each run whole on one thread. */
    private static final long BATCH_SHARED_MAX_MACS = 1L << 26;

    private Gemm() {}

    static {
        VectorApi.require(); // a missing --add-modules flag is named before the first kernel fails to link
    }

    /**
     * {@code C = alpha·op(A)·op(B) + beta·C} on arrays.
     *
     * @param transA whether A is used transposed
     * @param transB whether B is used transposed
     * @param m rows of op(A) and C
     * @param n columns of op(B) and C
     * @param k columns of op(A), rows of op(B)
     * @param alpha scale of the product
     * @param a A, stored {@code m × k} (or {@code k × m} when transposed)
     * @param aOffset index of A's first element in {@code a}
     * @param lda leading dimension of A: at least its stored row length
     * @param b B, stored {@code k × n} (or {@code n × k} when transposed)
     * @param bOffset index of B's first element in {@code b}
     * @param ldb leading dimension of B
     * @param beta scale of C's old value; 0 means C is not read
     * @param c C, {@code m × n}
     * @param cOffset index of C's first element in {@code c}
     * @param ldc leading dimension of C: at least {@code n}
     */
    public static void sgemm(
            Transpose transA,
            Transpose transB,
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
            float beta,
            float[] c,
            int cOffset,
            int ldc) {
        sgemmStridedBatched(
                transA, transB, m, n, k, alpha, a, aOffset, lda, 0, b, bOffset, ldb, 0, beta, c, cOffset, ldc, 0, 1);
    }

    /**
     * {@code C = alpha·op(A)·op(B) + beta·C} on memory segments; as {@link #sgemm(Transpose, Transpose, int, int,
     * int, float, float[], int, int, float[], int, int, float, float[], int, int)}, with offsets in floats.
     *
     * @param transA whether A is used transposed
     * @param transB whether B is used transposed
     * @param m rows of op(A) and C
     * @param n columns of op(B) and C
     * @param k columns of op(A), rows of op(B)
     * @param alpha scale of the product
     * @param a A, stored {@code m × k} (or {@code k × m} when transposed)
     * @param aOffset index (in floats) of A's first element in {@code a}
     * @param lda leading dimension of A
     * @param b B, stored {@code k × n} (or {@code n × k} when transposed)
     * @param bOffset index (in floats) of B's first element in {@code b}
     * @param ldb leading dimension of B
     * @param beta scale of C's old value; 0 means C is not read
     * @param c C, {@code m × n}; must be writable
     * @param cOffset index (in floats) of C's first element in {@code c}
     * @param ldc leading dimension of C: at least {@code n}
     */
    public static void sgemm(
            Transpose transA,
            Transpose transB,
            int m,
            int n,
            int k,
            float alpha,
            MemorySegment a,
            long aOffset,
            int lda,
            MemorySegment b,
            long bOffset,
            int ldb,
            float beta,
            MemorySegment c,
            long cOffset,
            int ldc) {
        sgemmStridedBatched(
                transA, transB, m, n, k, alpha, a, aOffset, lda, 0, b, bOffset, ldb, 0, beta, c, cOffset, ldc, 0, 1);
    }

    /**
     * A batch of products, {@code C_i = alpha·op(A_i)·op(B_i) + beta·C_i} for {@code i < batchCount}, where {@code
     * X_i} starts at {@code xOffset + i·strideX}: the contract of cuBLAS's {@code cublasSgemmStridedBatched}, row-major.
     * A stride of 0 for A or B reuses one matrix for every product; the C matrices must not overlap.
     *
     * @param transA whether each A is used transposed
     * @param transB whether each B is used transposed
     * @param m rows of op(A) and C
     * @param n columns of op(B) and C
     * @param k columns of op(A), rows of op(B)
     * @param alpha scale of the products
     * @param a the A matrices
     * @param aOffset index of the first A's first element
     * @param lda leading dimension of each A
     * @param strideA distance between consecutive A matrices, at least 0
     * @param b the B matrices
     * @param bOffset index of the first B's first element
     * @param ldb leading dimension of each B
     * @param strideB distance between consecutive B matrices, at least 0
     * @param beta scale of the C matrices' old values; 0 means they are not read
     * @param c the C matrices
     * @param cOffset index of the first C's first element
     * @param ldc leading dimension of each C
     * @param strideC distance between consecutive C matrices: they must not overlap
     * @param batchCount number of products, at least 0
     */
    public static void sgemmStridedBatched(
            Transpose transA,
            Transpose transB,
            int m,
            int n,
            int k,
            float alpha,
            float[] a,
            int aOffset,
            int lda,
            long strideA,
            float[] b,
            int bOffset,
            int ldb,
            long strideB,
            float beta,
            float[] c,
            int cOffset,
            int ldc,
            long strideC,
            int batchCount) {
        sgemmStridedBatched(
                transA,
                transB,
                m,
                n,
                k,
                alpha,
                Checks.wrap("a", a),
                aOffset,
                lda,
                strideA,
                Checks.wrap("b", b),
                bOffset,
                ldb,
                strideB,
                beta,
                Checks.wrap("c", c),
                cOffset,
                ldc,
                strideC,
                batchCount);
    }

    /**
     * A batch of products on memory segments; as {@link #sgemmStridedBatched(Transpose, Transpose, int, int, int,
     * float, float[], int, int, long, float[], int, int, long, float, float[], int, int, long, int)}, with offsets in
     * floats.
     *
     * @param transA whether each A is used transposed
     * @param transB whether each B is used transposed
     * @param m rows of op(A) and C
     * @param n columns of op(B) and C
     * @param k columns of op(A), rows of op(B)
     * @param alpha scale of the products
     * @param a the A matrices
     * @param aOffset index (in floats) of the first A's first element
     * @param lda leading dimension of each A
     * @param strideA distance between consecutive A matrices, at least 0
     * @param b the B matrices
     * @param bOffset index (in floats) of the first B's first element
     * @param ldb leading dimension of each B
     * @param strideB distance between consecutive B matrices, at least 0
     * @param beta scale of the C matrices' old values; 0 means they are not read
     * @param c the C matrices; must be writable
     * @param cOffset index (in floats) of the first C's first element
     * @param ldc leading dimension of each C
     * @param strideC distance between consecutive C matrices: they must not overlap
     * @param batchCount number of products, at least 0
     */
    public static void sgemmStridedBatched(
            Transpose transA,
            Transpose transB,
            int m,
            int n,
            int k,
            float alpha,
            MemorySegment a,
            long aOffset,
            int lda,
            long strideA,
            MemorySegment b,
            long bOffset,
            int ldb,
            long strideB,
            float beta,
            MemorySegment c,
            long cOffset,
            int ldc,
            long strideC,
            int batchCount) {
        check(transA, transB, m, n, k, lda, strideA, ldb, strideB, ldc, strideC, batchCount);
        Checks.range("a", a, "aOffset", aOffset, aExtent(transA, m, k, lda, strideA, batchCount), "A");
        Checks.range("b", b, "bOffset", bOffset, bExtent(transB, n, k, ldb, strideB, batchCount), "B");
        Checks.range("c", c, "cOffset", cOffset, cExtent(m, n, ldc, strideC, batchCount), "C");
        Checks.writable("c", c);
        if (k > 0 && alpha != 0f) {
            // A and B are read: C must share no float with them.
            Checks.Strided cs = new Checks.Strided("c", c, cOffset, m, n, ldc, strideC);
            boolean ta = transA.transposed();
            boolean tb = transB.transposed();
            Checks.unshared(cs, new Checks.Strided("a", a, aOffset, ta ? k : m, ta ? m : k, lda, strideA), batchCount);
            Checks.unshared(cs, new Checks.Strided("b", b, bOffset, tb ? n : k, tb ? k : n, ldb, strideB), batchCount);
        }
        boolean shareable = Parallelism.shareable(a) && Parallelism.shareable(b) && Parallelism.shareable(c);
        Product first = new Product(
                transA.transposed(),
                transB.transposed(),
                m,
                n,
                k,
                alpha,
                new Matrix(a, aOffset, lda),
                new Matrix(b, bOffset, ldb),
                beta,
                new Matrix(c, cOffset, ldc));
        batched(first, strideA, strideB, strideC, batchCount, shareable);
    }

    /**
     * {@code y = alpha·op(A)·x + beta·y} on arrays, with A stored {@code m × n}: without transpose x has {@code n}
     * elements and y has {@code m}; with it x has {@code m} and y has {@code n}.
     *
     * @param trans whether A is used transposed
     * @param m rows of A as stored
     * @param n columns of A as stored
     * @param alpha scale of the product
     * @param a A, {@code m × n}
     * @param aOffset index of A's first element
     * @param lda leading dimension of A: at least {@code n}
     * @param x the vector multiplied
     * @param xOffset index of x's first element
     * @param beta scale of y's old value; 0 means y is not read
     * @param y the result vector
     * @param yOffset index of y's first element
     */
    public static void sgemv(
            Transpose trans,
            int m,
            int n,
            float alpha,
            float[] a,
            int aOffset,
            int lda,
            float[] x,
            int xOffset,
            float beta,
            float[] y,
            int yOffset) {
        sgemv(
                trans,
                m,
                n,
                alpha,
                Checks.wrap("a", a),
                aOffset,
                lda,
                Checks.wrap("x", x),
                xOffset,
                beta,
                Checks.wrap("y", y),
                yOffset);
    }

    /**
     * {@code y = alpha·op(A)·x + beta·y} on memory segments; as {@link #sgemv(Transpose, int, int, float, float[],
     * int, int, float[], int, float, float[], int)}, with offsets in floats.
     *
     * @param trans whether A is used transposed
     * @param m rows of A as stored
     * @param n columns of A as stored
     * @param alpha scale of the product
     * @param a A, {@code m × n}
     * @param aOffset index (in floats) of A's first element
     * @param lda leading dimension of A: at least {@code n}
     * @param x the vector multiplied
     * @param xOffset index (in floats) of x's first element
     * @param beta scale of y's old value; 0 means y is not read
     * @param y the result vector; must be writable
     * @param yOffset index (in floats) of y's first element
     */
    public static void sgemv(
            Transpose trans,
            int m,
            int n,
            float alpha,
            MemorySegment a,
            long aOffset,
            int lda,
            MemorySegment x,
            long xOffset,
            float beta,
            MemorySegment y,
            long yOffset) {
        checkGemv(trans, m, n, lda);
        int xLength = trans.transposed() ? m : n;
        int yLength = trans.transposed() ? n : m;
        Checks.range("a", a, "aOffset", aOffset, Checks.matrixExtent(m, n, lda), "A");
        Checks.range("x", x, "xOffset", xOffset, xLength, "x");
        Checks.range("y", y, "yOffset", yOffset, yLength, "y");
        Checks.writable("y", y);
        if (alpha != 0f && xLength > 0) {
            // A and x are read: y must share no float with them.
            Checks.separate(
                    Checks.Strided.vector("y", y, yOffset, yLength),
                    Checks.Strided.matrix("a", a, aOffset, m, n, lda),
                    Checks.Strided.vector("x", x, xOffset, xLength));
        }
        boolean shareable = Parallelism.shareable(a) && Parallelism.shareable(x) && Parallelism.shareable(y);
        Gemv.run(
                trans.transposed(),
                m,
                n,
                alpha,
                new Matrix(a, aOffset, lda),
                new Matrix(x, xOffset, 1),
                beta,
                new Matrix(y, yOffset, 1),
                shareable);
    }

    private static void checkGemv(Transpose trans, int m, int n, int lda) {
        Checks.notNull("trans", trans);
        Checks.nonNegative("m", m, "n", n);
        Checks.leadingDimension("lda", lda, "n", n, "A");
    }

    private static void check(
            Transpose transA,
            Transpose transB,
            int m,
            int n,
            int k,
            int lda,
            long strideA,
            int ldb,
            long strideB,
            int ldc,
            long strideC,
            int batchCount) {
        Checks.notNull("transA", transA, "transB", transB);
        Checks.nonNegative("m", m, "n", n, "k", k);
        Checks.nonNegative("batchCount", batchCount);
        if (transA.transposed()) {
            Checks.leadingDimension("lda", lda, "m", m, "a transposed A");
        } else {
            Checks.leadingDimension("lda", lda, "k", k, "a non-transposed A");
        }
        if (transB.transposed()) {
            Checks.leadingDimension("ldb", ldb, "k", k, "a transposed B");
        } else {
            Checks.leadingDimension("ldb", ldb, "n", n, "a non-transposed B");
        }
        Checks.leadingDimension("ldc", ldc, "n", n, "C");
        Checks.nonNegative("strideA", strideA, "strideB", strideB, "strideC", strideC);
        if (batchCount > 1 && m > 0 && n > 0 && !disjoint(m, n, ldc, strideC, batchCount)) {
            throw new IllegalArgumentException("strideC (" + strideC + ") makes the C matrices overlap: it must be"
                    + " >= (m - 1)·ldc + n (" + Checks.matrixExtent(m, n, ldc) + ") to stack them, or >= n (" + n
                    + ") with (batchCount - 1)·strideC + n <= ldc (" + ldc + ") to interleave them within rows");
        }
    }

    /** C matrices are disjoint when stacked one after another or interleaved side by side within each row. */
    private static boolean disjoint(int m, int n, int ldc, long strideC, int batchCount) {
        boolean stacked = strideC >= Checks.matrixExtent(m, n, ldc);
        boolean interleaved = strideC >= n && (batchCount - 1) * strideC + n <= ldc;
        return stacked || interleaved;
    }

    private static long aExtent(Transpose transA, int m, int k, int lda, long strideA, int batchCount) {
        long extent = transA.transposed() ? Checks.matrixExtent(k, m, lda) : Checks.matrixExtent(m, k, lda);
        return Checks.batchExtent(extent, strideA, batchCount);
    }

    private static long bExtent(Transpose transB, int n, int k, int ldb, long strideB, int batchCount) {
        long extent = transB.transposed() ? Checks.matrixExtent(n, k, ldb) : Checks.matrixExtent(k, n, ldb);
        return Checks.batchExtent(extent, strideB, batchCount);
    }

    private static long cExtent(int m, int n, int ldc, long strideC, int batchCount) {
        return Checks.batchExtent(Checks.matrixExtent(m, n, ldc), strideC, batchCount);
    }

    /** The products of a strided batch whose first product is {@code first}. */
    private static void batched(
            Product first, long strideA, long strideB, long strideC, int batchCount, boolean parallel) {
        // Small products in a batch go one per task, and so do mid-sized ones when there are enough of them to share
        // out evenly: splitting each would pay a hand-off per product, which small products do not repay. Large ones
        // are split inside each product instead.
        long macs = (long) first.m() * first.n() * first.k();
        boolean perProduct = parallel
                && batchCount > 1
                && macs * batchCount >= GemmDriver.PARALLEL_MIN_MACS
                && (macs < GemmDriver.PARALLEL_MIN_MACS
                        || macs < BATCH_SHARED_MAX_MACS && batchCount >= 4 * Parallelism.threads());
        if (perProduct) {
            Parallelism.forEach(batchCount, i -> GemmDriver.run(entry(first, i, strideA, strideB, strideC), false));
            return;
        }
        for (int i = 0; i < batchCount; i++) {
            GemmDriver.run(entry(first, i, strideA, strideB, strideC), parallel);
        }
    }

    /** Product {@code i} of a strided batch whose first product is {@code first}. */
    private static Product entry(Product first, int i, long strideA, long strideB, long strideC) {
        return new Product(
                first.transA(),
                first.transB(),
                first.m(),
                first.n(),
                first.k(),
                first.alpha(),
                first.a().shifted(i * strideA),
                first.b().shifted(i * strideB),
                first.beta(),
                first.c().shifted(i * strideC));
    }
}
