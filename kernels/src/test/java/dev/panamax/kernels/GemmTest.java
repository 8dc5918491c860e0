package dev.panamax.kernels;

import static dev.panamax.kernels.Transpose.NO_TRANSPOSE;
import static dev.panamax.kernels.Transpose.TRANSPOSE;
import static dev.panamax.kernels.testing.Agreement.assertAllRejected;
import static dev.panamax.kernels.testing.Agreement.assertRejected;
import static dev.panamax.kernels.testing.Rejection.illegalArgument;
import static dev.panamax.kernels.testing.Rejection.nullArgument;
import static dev.panamax.kernels.testing.Rejection.outOfBounds;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.panamax.kernels.testing.Agreement;
import dev.panamax.kernels.testing.Inputs;
import dev.panamax.kernels.testing.ReferenceBlas;
import dev.panamax.kernels.testing.Rejection;
import dev.panamax.kernels.testing.Tolerance;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.management.ManagementFactory;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import java.util.stream.Stream;
import jdk.incubator.vector.VectorShape;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * SGEMM against the float64 reference. Tolerance per element: {@code (k + 3)·2⁻²⁴·(|alpha|·Σ|a||b| + |beta|·|c|)},
 * the classical rounding-error bound of a length-k float dot product plus the alpha/beta updates (see {@link
 * ReferenceBlas.Result#bounds}).
 */
@Tag("species")
class GemmTest {
    private static final int[] SIZES = {0, 1, 2, 7, 15, 16, 17, 31, 33, 63, 65, 127, 129, 257};
    private static final float[] ALPHAS = {0, 1, -0.5f, 2};
    private static final float[] BETAS = {0, 1, 0.5f};
    private static final int DEFAULT_THREADS = Parallelism.threads();

    /** One product: shapes, scalars, padding of each leading dimension beyond its minimum, and offsets. */
    record Case(
            Transpose transA,
            Transpose transB,
            int m,
            int n,
            int k,
            float alpha,
            float beta,
            int padA,
            int padB,
            int padC,
            int offsetA,
            int offsetB,
            int offsetC) {
        int lda() {
            return Math.max(1, transA == TRANSPOSE ? m : k) + padA;
        }

        int ldb() {
            return Math.max(1, transB == TRANSPOSE ? k : n) + padB;
        }

        int ldc() {
            return Math.max(1, n) + padC;
        }

        /** Storage with the matrix, its offset and a few trailing floats, so that over-reads and over-writes show. */
        int aLength() {
            return offsetA + (int) extent(transA == TRANSPOSE ? k : m, transA == TRANSPOSE ? m : k, lda()) + 3;
        }

        int bLength() {
            return offsetB + (int) extent(transB == TRANSPOSE ? n : k, transB == TRANSPOSE ? k : n, ldb()) + 3;
        }

        int cLength() {
            return offsetC + (int) extent(m, n, ldc()) + 3;
        }

        /** Runs the product through sgemm's array form. */
        void sgemm(float[] a, float[] b, float[] c) {
            Gemm.sgemm(transA, transB, m, n, k, alpha, a, offsetA, lda(), b, offsetB, ldb(), beta, c, offsetC, ldc());
        }

        /** Runs the product through sgemm's segment form. */
        void sgemm(MemorySegment a, MemorySegment b, MemorySegment c) {
            Gemm.sgemm(transA, transB, m, n, k, alpha, a, offsetA, lda(), b, offsetB, ldb(), beta, c, offsetC, ldc());
        }

        /** Scalars, paddings and offsets for {@link #on}, on a placeholder product. */
        static Case settings(
                float alpha, float beta, int padA, int padB, int padC, int offsetA, int offsetB, int offsetC) {
            return new Case(
                    NO_TRANSPOSE, NO_TRANSPOSE, 0, 0, 0, alpha, beta, padA, padB, padC, offsetA, offsetB, offsetC);
        }

        /** This case's scalars, paddings and offsets on another product: transposes and a shape {m, n, k}. */
        Case on(Transpose transA, Transpose transB, int[] shape) {
            return new Case(
                    transA, transB, shape[0], shape[1], shape[2], alpha, beta, padA, padB, padC, offsetA, offsetB,
                    offsetC);
        }

        static long extent(int rows, int cols, int ld) {
            return rows == 0 || cols == 0 ? 0 : (long) (rows - 1) * ld + cols;
        }

        @Override
        public String toString() {
            return transA + "·" + transB + " m=" + m + " n=" + n + " k=" + k + " alpha=" + alpha + " beta=" + beta
                    + " pads=" + padA + "/" + padB + "/" + padC + " offsets=" + offsetA + "/" + offsetB + "/"
                    + offsetC;
        }
    }

    @AfterEach
    void restoreThreads() {
        Parallelism.setThreads(DEFAULT_THREADS);
    }

    static Stream<Case> shapes() {
        SplittableRandom random = new SplittableRandom(Inputs.seed("GemmTest.shapes"));
        List<Case> cases = new ArrayList<>();
        int counter = 0;
        for (Transpose transA : Transpose.values()) {
            for (Transpose transB : Transpose.values()) {
                for (int size : SIZES) {
                    cases.add(randomCase(random, transA, transB, size, size, size, counter++));
                }
                for (int i = 0; i < 30; i++) {
                    cases.add(randomCase(random, transA, transB, pick(random), pick(random), pick(random), counter++));
                }
            }
        }
        return cases.stream();
    }

    /** The settings' scalars, paddings and offsets on every shape {m, n, k} and every pair of transposes. */
    private static List<Case> everyShape(int[][] shapes, Case settings) {
        List<Case> cases = new ArrayList<>();
        for (int[] shape : shapes) {
            for (Transpose transA : Transpose.values()) {
                for (Transpose transB : Transpose.values()) {
                    cases.add(settings.on(transA, transB, shape));
                }
            }
        }
        return cases;
    }

    private static int pick(SplittableRandom random) {
        return SIZES[random.nextInt(SIZES.length)];
    }

    private static Case randomCase(
            SplittableRandom random, Transpose transA, Transpose transB, int m, int n, int k, int counter) {
        return new Case(
                transA,
                transB,
                m,
                n,
                k,
                ALPHAS[counter % ALPHAS.length],
                BETAS[counter % BETAS.length],
                random.nextInt(4),
                random.nextInt(4),
                random.nextInt(4),
                random.nextInt(6),
                random.nextInt(6),
                random.nextInt(6));
    }

    @ParameterizedTest
    @MethodSource("shapes")
    void matchesTheReference(Case c) {
        checkAgainstReference(c, inputs(c, "a"), inputs(c, "b"), inputs(c, "c"));
    }

    @Test
    void productsOnAPackedAOrBMatchTheDriverBitForBit() {
        // GemmDriver.runPacked takes an A or a B packed once for several products (attention's query tiles and key
        // and value tiles), a B also from a wider product than its own; it must give run's bits.
        int m = 37;
        int k = 70;
        int wide = 128;
        for (boolean transB : new boolean[] {false, true}) {
            for (float beta : new float[] {0f, 1f}) {
                float[] a = Inputs.uniform(1, m * k, -1, 1);
                float[] b = Inputs.uniform(2, k * wide, -1, 1);
                Product widest = operands(transB, m, wide, k, beta, a, b, new float[m * wide]);
                GemmDriver.PackedB packedB = new GemmDriver.PackedB();
                packedB.pack(widest, wide);
                GemmDriver.PackedA packedA = new GemmDriver.PackedA();
                packedA.pack(widest);
                for (int n : new int[] {44, wide}) {
                    float[] expected = Inputs.uniform(3, m * wide, -1, 1);
                    float[] start = expected.clone();
                    Product product = operands(transB, m, n, k, beta, a, b, expected);
                    assertTrue(GemmDriver.singleBlock(product));
                    GemmDriver.run(product, false);
                    for (int given = 1; given <= 3; given++) {
                        GemmDriver.PackedA givenA = (given & 1) != 0 ? packedA : null;
                        GemmDriver.PackedB givenB = (given & 2) != 0 ? packedB : null;
                        float[] actual = start.clone();
                        GemmDriver.runPacked(operands(transB, m, n, k, beta, a, b, actual), givenA, givenB);
                        String name = "transB " + transB + ", beta " + beta + ", n " + n + ", A packed "
                                + (givenA != null) + ", B packed " + (givenB != null);
                        for (int i = 0; i < expected.length; i++) {
                            assertEquals(
                                    Float.floatToRawIntBits(expected[i]), Float.floatToRawIntBits(actual[i]), name);
                        }
                    }
                }
            }
        }
    }

    /** {@code C = 0.7·A·op(B) + beta·C} with A {@code m × k}, B stored {@code k × 128} or {@code 128 × k}, C 128 wide. */
    private static Product operands(boolean transB, int m, int n, int k, float beta, float[] a, float[] b, float[] c) {
        return new Product(
                false, transB, m, n, k, 0.7f, Matrix.of(a, k), Matrix.of(b, transB ? k : 128), beta, Matrix.of(c, 128));
    }

    @Test
    void everyAlphaAndBetaOnEveryPath() {
        // The last shape's depth spans two packed slices: the second adds onto what the first wrote.
        int[][] shapes = {
            {17, 33, 65}, {1, 65, 31}, {65, 1, 17}, {1, 1, 9}, {5, 4, 0}, {40, 300, 270}, {9, 50, GemmDriver.KC + 37}
        };
        for (float alpha : ALPHAS) {
            for (float beta : BETAS) {
                for (Case c : everyShape(shapes, Case.settings(alpha, beta, 1, 2, 3, 1, 2, 3))) {
                    checkAgainstReference(c, inputs(c, "a"), inputs(c, "b"), inputs(c, "c"));
                }
            }
        }
    }

    @Test
    void nanAndInfinityInAOrBPropagate() {
        int[][] shapes = {{33, 35, 37}, {1, 40, 33}, {40, 1, 33}, {300, 290, 280}};
        for (Case c : everyShape(shapes, Case.settings(1.5f, 0.5f, 0, 1, 0, 0, 0, 2))) {
            float[] a = inputs(c, "a");
            float[] b = inputs(c, "b");
            a[a.length / 3] = Float.NaN;
            a[a.length / 2] = Float.POSITIVE_INFINITY;
            b[b.length / 4] = Float.NEGATIVE_INFINITY;
            b[b.length / 2] = Float.POSITIVE_INFINITY;
            checkAgainstReference(c, a, b, inputs(c, "c"));
        }
    }

    @Test
    void nanInCDoesNotSurviveBetaZero() {
        int[][] shapes = {{33, 35, 37}, {1, 40, 33}, {40, 1, 33}, {9, 9, 0}};
        for (int[] shape : shapes) {
            for (float alpha : new float[] {0, 1}) {
                Case c = new Case(NO_TRANSPOSE, TRANSPOSE, shape[0], shape[1], shape[2], alpha, 0, 0, 0, 0, 0, 0, 0);
                float[] cValues = new float[c.cLength()];
                Arrays.fill(cValues, Float.NaN);
                float[] result = checkAgainstReference(c, inputs(c, "a"), inputs(c, "b"), cValues);
                for (int i = 0; i < c.m() * c.n(); i++) {
                    assertTrue(Float.isFinite(result[i / c.n() * c.ldc() + i % c.n()]), c + " element " + i);
                }
            }
        }
    }

    @Test
    void arraysHeapSegmentsAndNativeSegmentsAgreeBitForBit() {
        int[][] shapes = {{70, 90, 300}, {200, 210, 190}, {1, 500, 300}, {500, 1, 300}};
        for (Case c : everyShape(shapes, Case.settings(0.75f, 0.5f, 3, 1, 2, 5, 3, 1))) {
            float[] a = inputs(c, "a");
            float[] b = inputs(c, "b");
            float[] c0 = inputs(c, "c");
            float[] viaArrays = c0.clone();
            c.sgemm(a, b, viaArrays);
            float[] viaHeap = c0.clone();
            c.sgemm(MemorySegment.ofArray(a), MemorySegment.ofArray(b), MemorySegment.ofArray(viaHeap));
            assertArrayEquals(viaArrays, viaHeap, c + " heap segment");
            // A slice of a larger array: the segment starts 5 floats into its array.
            float[] shifted = new float[b.length + 5];
            System.arraycopy(b, 0, shifted, 5, b.length);
            float[] viaSlice = c0.clone();
            MemorySegment bSlice = MemorySegment.ofArray(shifted).asSlice(5L * Float.BYTES);
            c.sgemm(MemorySegment.ofArray(a), bSlice, MemorySegment.ofArray(viaSlice));
            assertArrayEquals(viaArrays, viaSlice, c + " sliced heap segment");
            // Heap segments over byte arrays, two bytes in: not float arrays, nor float-aligned.
            MemorySegment cBytes = bytesHolding(c0);
            c.sgemm(bytesHolding(a), bytesHolding(b), cBytes);
            assertArrayEquals(viaArrays, cBytes.toArray(ValueLayout.JAVA_FLOAT_UNALIGNED), c + " byte segment");
            for (Arena arena : new Arena[] {Arena.ofShared(), Arena.ofConfined()}) {
                try (arena) {
                    MemorySegment as = arena.allocateFrom(ValueLayout.JAVA_FLOAT, a);
                    MemorySegment bs = arena.allocateFrom(ValueLayout.JAVA_FLOAT, b);
                    MemorySegment cs = arena.allocateFrom(ValueLayout.JAVA_FLOAT, c0);
                    c.sgemm(as, bs, cs);
                    assertArrayEquals(viaArrays, cs.toArray(ValueLayout.JAVA_FLOAT), c + " native segment");
                }
            }
        }
    }

    /** The floats in a heap segment over a byte array that starts two bytes into the array. */
    private static MemorySegment bytesHolding(float[] values) {
        MemorySegment segment =
                MemorySegment.ofArray(new byte[values.length * Float.BYTES + 2]).asSlice(2);
        MemorySegment.copy(values, 0, segment, ValueLayout.JAVA_FLOAT_UNALIGNED, 0, values.length);
        return segment;
    }

    @Test
    void everyThreadCountGivesTheSameBits() {
        int[][] shapes = {
            {300, 257, 300},
            {1, 3000, 700},
            {3000, 1, 700},
            {64, 768, 600},
            {70, 150, 2 * GemmDriver.KC + 5},
            // Many cells per thread, cut inside the packed blocks: 152-row cells hold 64-row blocks and a 24-row one.
            {520, 700, 64},
            {130, 1030, 40}
        };
        for (Case c : everyShape(shapes, Case.settings(1, 0.5f, 0, 3, 0, 0, 1, 0))) {
            float[] a = inputs(c, "a");
            float[] b = inputs(c, "b");
            float[] c0 = inputs(c, "c");
            Agreement.assertThreadIndependent(c.toString(), () -> {
                float[] result = c0.clone();
                c.sgemm(a, b, result);
                return new float[][] {result};
            });
        }
    }

    @Test
    void sgemvMatchesTheReferenceAndIsThreadIndependent() {
        // Decode's shapes among them: 768 × 768 projections and a classifier of many short rows.
        int[][] shapes = {{0, 5}, {5, 0}, {1, 1}, {7, 9}, {33, 1000}, {1000, 33}, {700, 2000}, {768, 768}, {3001, 288}};
        for (int[] shape : shapes) {
            for (Transpose trans : Transpose.values()) {
                int m = shape[0];
                int n = shape[1];
                int lda = n + 3;
                int xLength = trans == TRANSPOSE ? m : n;
                int yLength = trans == TRANSPOSE ? n : m;
                String name = "sgemv " + trans + " " + m + "×" + n;
                float[] a = Inputs.uniform(Inputs.seed(name + "a"), 2 + m * lda, -1, 1);
                float[] x = Inputs.uniform(Inputs.seed(name + "x"), 1 + xLength, -1, 1);
                float[] y0 = Inputs.uniform(Inputs.seed(name + "y"), 4 + yLength, -1, 1);
                // y = alpha·op(A)·x + beta·y is the product of op(A) (yLength × xLength) and a column x.
                ReferenceBlas.Result expected = ReferenceBlas.gemm(
                        trans == TRANSPOSE, false, yLength, 1, xLength, -0.5, a, 2, lda, x, 1, 1, 0.5, y0, 4, 1);
                Agreement.assertThreadIndependent(name, () -> {
                    float[] y = y0.clone();
                    Gemm.sgemv(trans, m, n, -0.5f, a, 2, lda, x, 1, 0.5f, y, 4);
                    Tolerance.assertClose(
                            name,
                            yLength,
                            i -> expected.values()[i],
                            i -> y[4 + i],
                            i -> expected.bounds(xLength)[i],
                            i -> "element " + i);
                    assertArrayEquals(Arrays.copyOf(y0, 4), Arrays.copyOf(y, 4), name + " wrote before yOffset");
                    return new float[][] {y};
                });
            }
        }
    }

    @Test
    void stridedBatchedEqualsALoopOfProducts() {
        int m = 17;
        int n = 33;
        int k = 65;
        for (Transpose transA : Transpose.values()) {
            for (Transpose transB : Transpose.values()) {
                int lda = transA == TRANSPOSE ? m : k;
                int ldb = transB == TRANSPOSE ? k : n;
                int batch = 5;
                long strideA = (long) m * k + 7;
                float[] a = Inputs.uniform(Inputs.seed("batched a"), (int) (batch * strideA), -1, 1);
                float[] b = Inputs.uniform(Inputs.seed("batched b"), k * n, -1, 1);
                // C interleaved within rows, as [m, batch, n]: ldc = batch·n, strideC = n.
                int ldc = batch * n;
                float[] c0 = Inputs.uniform(Inputs.seed("batched c"), m * ldc, -1, 1);
                float[] batched = c0.clone();
                Gemm.sgemmStridedBatched(
                        transA, transB, m, n, k, 1.25f, a, 0, lda, strideA, b, 0, ldb, 0, 0.5f, batched, 0, ldc, n,
                        batch);
                float[] looped = c0.clone();
                for (int i = 0; i < batch; i++) {
                    Gemm.sgemm(
                            transA,
                            transB,
                            m,
                            n,
                            k,
                            1.25f,
                            a,
                            (int) (i * strideA),
                            lda,
                            b,
                            0,
                            ldb,
                            0.5f,
                            looped,
                            i * n,
                            ldc);
                }
                assertArrayEquals(looped, batched, transA + "·" + transB);
                ReferenceBlas.Result expected = ReferenceBlas.gemm(
                        transA == TRANSPOSE,
                        transB == TRANSPOSE,
                        m,
                        n,
                        k,
                        1.25,
                        a,
                        (int) (3 * strideA),
                        lda,
                        b,
                        0,
                        ldb,
                        0.5,
                        c0,
                        3 * n,
                        ldc);
                Tolerance.assertClose(
                        "batch 3",
                        m * n,
                        i -> expected.values()[i],
                        i -> batched[3 * n + i / n * ldc + i % n],
                        i -> expected.bounds(k)[i],
                        i -> "element " + i);
            }
        }
    }

    @Test
    void largeBatchesOfSmallProductsMatchTheLoop() {
        // Twelve heads of 256×64·64×256, the attention-score shape: many products per task.
        int batch = 12;
        int t = 256;
        int d = 64;
        float[] q = Inputs.uniform(Inputs.seed("heads q"), batch * t * d, -1, 1);
        float[] kMatrix = Inputs.uniform(Inputs.seed("heads k"), batch * t * d, -1, 1);
        float[] scores = new float[batch * t * t];
        Gemm.sgemmStridedBatched(
                NO_TRANSPOSE,
                TRANSPOSE,
                t,
                t,
                d,
                0.125f,
                q,
                0,
                d,
                (long) t * d,
                kMatrix,
                0,
                d,
                (long) t * d,
                0,
                scores,
                0,
                t,
                (long) t * t,
                batch);
        float[] looped = new float[batch * t * t];
        for (int i = 0; i < batch; i++) {
            Gemm.sgemm(
                    NO_TRANSPOSE,
                    TRANSPOSE,
                    t,
                    t,
                    d,
                    0.125f,
                    q,
                    i * t * d,
                    d,
                    kMatrix,
                    i * t * d,
                    d,
                    0,
                    looped,
                    i * t * t,
                    t);
        }
        assertArrayEquals(looped, scores);
    }

    /** sgemm's bad arguments, each on A and B of 20 zeros and C of 20 floats, with alpha 1 and beta 0. */
    @ParameterizedTest
    @CsvSource(delimiter = '|', textBlock = """
            NO_TRANSPOSE | NO_TRANSPOSE | -1 | 2 | 2  | 0 | 2 | 0  | 2 | 0 | 2 | java.lang.IllegalArgumentException  | m (-1) must be >= 0
            NO_TRANSPOSE | NO_TRANSPOSE | 2  | 2 | -3 | 0 | 2 | 0  | 2 | 0 | 2 | java.lang.IllegalArgumentException  | k (-3) must be >= 0
            NO_TRANSPOSE | NO_TRANSPOSE | 2  | 2 | 4  | 0 | 3 | 0  | 2 | 0 | 2 | java.lang.IllegalArgumentException  | lda (3) must be >= k (4) for a non-transposed A
            TRANSPOSE    | NO_TRANSPOSE | 2  | 2 | 4  | 0 | 1 | 0  | 2 | 0 | 2 | java.lang.IllegalArgumentException  | lda (1) must be >= m (2) for a transposed A
            NO_TRANSPOSE | NO_TRANSPOSE | 2  | 2 | 2  | 0 | 2 | 0  | 1 | 0 | 2 | java.lang.IllegalArgumentException  | ldb (1) must be >= n (2) for a non-transposed B
            NO_TRANSPOSE | NO_TRANSPOSE | 2  | 0 | 2  | 0 | 2 | 0  | 1 | 0 | 0 | java.lang.IllegalArgumentException  | ldc (0) must be >= 1 for C
            NO_TRANSPOSE | NO_TRANSPOSE | 4  | 2 | 5  | 1 | 5 | 0  | 2 | 0 | 2 | java.lang.IndexOutOfBoundsException | a holds 20 floats, but A needs 20 from aOffset (1)
            NO_TRANSPOSE | NO_TRANSPOSE | 4  | 5 | 1  | 0 | 1 | 0  | 5 | 3 | 5 | java.lang.IndexOutOfBoundsException | c holds 20 floats, but C needs 20 from cOffset (3)
            NO_TRANSPOSE | NO_TRANSPOSE | 2  | 2 | 2  | 0 | 2 | -1 | 2 | 0 | 2 | java.lang.IndexOutOfBoundsException | bOffset (-1) must be >= 0
                         | NO_TRANSPOSE | 2  | 2 | 2  | 0 | 2 | 0  | 2 | 0 | 2 | java.lang.NullPointerException      | transA must not be null
            """)
    void badSgemmArgumentsAreRejectedBeforeAnythingIsWritten(
            Transpose transA,
            Transpose transB,
            int m,
            int n,
            int k,
            int aOffset,
            int lda,
            int bOffset,
            int ldb,
            int cOffset,
            int ldc,
            Class<? extends RuntimeException> type,
            String message) {
        float[] a = new float[20];
        float[] b = new float[20];
        float[] c = Inputs.uniform(1, 20, -1, 1);
        Executable call =
                () -> Gemm.sgemm(transA, transB, m, n, k, 1, a, aOffset, lda, b, bOffset, ldb, 0, c, cOffset, ldc);
        assertAllRejected(List.of(new Rejection(type, message, call)), c);
    }

    @Test
    void badArgumentsAreRejectedBeforeAnythingIsWritten() {
        float[] a = new float[20];
        float[] b = new float[20];
        float[] c = Inputs.uniform(1, 20, -1, 1);
        MemorySegment readOnly = MemorySegment.ofArray(new float[20]).asReadOnly();
        MemorySegment segment = MemorySegment.ofArray(a);
        MemorySegment cSegment = MemorySegment.ofArray(c);
        Transpose n = NO_TRANSPOSE;
        List<Rejection> rows = List.of(
                nullArgument("b must not be null", () -> Gemm.sgemm(n, n, 2, 2, 2, 1, a, 0, 2, null, 0, 2, 0, c, 0, 2)),
                illegalArgument(
                        "strideC (3) makes the C matrices overlap",
                        () -> Gemm.sgemmStridedBatched(n, n, 2, 2, 2, 1, a, 0, 2, 4, b, 0, 2, 0, 0, c, 0, 2, 3, 2)),
                illegalArgument(
                        "strideA (-4) must be >= 0",
                        () -> Gemm.sgemmStridedBatched(n, n, 2, 2, 2, 1, a, 0, 2, -4, b, 0, 2, 0, 0, c, 0, 2, 4, 2)),
                outOfBounds(
                        "A needs 24 from aOffset (0)",
                        () -> Gemm.sgemmStridedBatched(n, n, 2, 2, 2, 1, a, 0, 2, 4, b, 0, 2, 0, 0, c, 0, 2, 4, 6)),
                illegalArgument("lda (2) must be >= n (3) for A", () -> Gemm.sgemv(n, 2, 3, 1, a, 0, 2, b, 0, 0, c, 0)),
                outOfBounds(
                        "x holds 20 floats, but x needs 3 from xOffset (18)",
                        () -> Gemm.sgemv(n, 2, 3, 1, a, 0, 3, b, 18, 0, c, 0)),
                illegalArgument("c is read-only", () -> twoByTwoIntoC(segment, readOnly, 0)),
                outOfBounds(
                        "c holds 20 floats, but C needs 4 from cOffset (17)",
                        () -> twoByTwoIntoC(segment, cSegment, 17)),
                // Extents past a long: a batch stride or an offset so large that the end wraps around must not pass.
                outOfBounds(
                        "c holds 20 floats, but C needs more than a long counts from cOffset (0)",
                        () -> Gemm.sgemmStridedBatched(
                                n, n, 2, 2, 2, 1, a, 0, 2, 0, b, 0, 2, 0, 0, c, 0, 2, Long.MAX_VALUE, 2)),
                outOfBounds(
                        "c holds 20 floats, but C needs 4 from cOffset (" + (Long.MAX_VALUE - 1) + ")",
                        () -> twoByTwoIntoC(segment, cSegment, Long.MAX_VALUE - 1)));
        assertAllRejected(rows, c);
    }

    @Test
    void outputSharingAnInputIsRejectedButSideBySideMatricesAreNot() {
        // X is 4 × 8: A in its columns 0-3, B (4 × 2) in columns 4-5, C (4 × 2) in columns 6-7. None shares an element.
        float[] x = Inputs.uniform(5, 32, -1, 1);
        float[] expected = new float[8];
        for (int i = 0; i < 4; i++) {
            for (int j = 0; j < 2; j++) {
                double sum = 0;
                for (int p = 0; p < 4; p++) {
                    sum += (double) x[i * 8 + p] * x[p * 8 + 4 + j];
                }
                expected[i * 2 + j] = (float) sum;
            }
        }
        Gemm.sgemm(NO_TRANSPOSE, NO_TRANSPOSE, 4, 2, 4, 1, x, 0, 8, x, 4, 8, 0, x, 6, 8);
        for (int i = 0; i < 4; i++) {
            for (int j = 0; j < 2; j++) {
                assertEquals(expected[i * 2 + j], x[i * 8 + 6 + j], 1e-5f, "C[" + i + "][" + j + "]");
            }
        }
        float[] y = Inputs.uniform(6, 32, -1, 1);
        Transpose n = NO_TRANSPOSE;
        Transpose t = TRANSPOSE;
        // Interleaved batches with one pitch (the one-step path): C's second matrix (column 3) meets A's (columns 3-4).
        Executable oneStep = () -> Gemm.sgemmStridedBatched(n, n, 4, 1, 2, 1, y, 0, 8, 3, y, 6, 8, 0, 0, y, 2, 8, 1, 2);
        // Batches: C's second matrix (from 24) lands on A, reused by stride 0 for both; its first (from 20) does not.
        Executable reused =
                () -> Gemm.sgemmStridedBatched(n, n, 1, 2, 2, 1, y, 24, 2, 0, y, 8, 2, 0, 0, y, 20, 2, 4, 2);
        List<Rejection> rows = List.of(
                // C over columns 3-4: column 3 is also A's.
                illegalArgument(
                        "c (from cOffset 3) shares memory with a (from aOffset 0): the output must not overlap an input",
                        () -> Gemm.sgemm(n, n, 4, 2, 4, 1, y, 0, 8, y, 4, 8, 0, y, 3, 8)),
                // C over a transposed A (stored 4 × 4 in columns 0-3, so C's columns 3-4 meet its column 3).
                sharing("c", 3, "a", 0, () -> Gemm.sgemm(t, n, 4, 2, 4, 1, y, 0, 8, y, 4, 8, 0, y, 3, 8)),
                sharing("c", 2, "a", 0, oneStep),
                // C in place over B, transposed or not.
                sharing("c", 4, "b", 4, () -> Gemm.sgemm(n, t, 4, 2, 4, 1, y, 0, 8, y, 4, 8, 0, y, 4, 8)),
                sharing("c", 20, "a", 24, reused),
                // GEMV: y over x.
                sharing("y", 10, "x", 8, () -> Gemm.sgemv(n, 2, 4, 1, y, 0, 4, y, 8, 0, y, 10)));
        assertAllRejected(rows, y);
        // Interleaved batches with one pitch that do not meet: A in columns 0-1 and 3-4, C in columns 2 and 5.
        Gemm.sgemmStridedBatched(NO_TRANSPOSE, NO_TRANSPOSE, 4, 1, 2, 1, y, 0, 8, 3, y, 6, 8, 0, 0, y, 2, 8, 3, 2);
        // Nothing is read with alpha 0, so nothing can be overwritten before it is read.
        Gemm.sgemm(NO_TRANSPOSE, NO_TRANSPOSE, 4, 2, 4, 0, y, 0, 8, y, 4, 8, 0, y, 3, 8);
    }

    /** A call rejected because its output shares memory with one of its inputs, each named with its offset. */
    private static Rejection sharing(
            String output, long outputOffset, String input, long inputOffset, Executable call) {
        return illegalArgument(
                output + " (from " + output + "Offset " + outputOffset + ") shares memory with " + input + " (from "
                        + input + "Offset " + inputOffset + ")",
                call);
    }

    /** A 2×2 product of a (as A and as B, 2 columns each) into c at cOffset, with ldc 2. */
    private static void twoByTwoIntoC(MemorySegment ab, MemorySegment c, long cOffset) {
        Gemm.sgemm(NO_TRANSPOSE, NO_TRANSPOSE, 2, 2, 2, 1, ab, 0, 2, ab, 0, 2, 0, c, cOffset, 2);
    }

    @Test
    void closedAndOtherThreadsSegmentsAreRejected() throws InterruptedException {
        MemorySegment a = MemorySegment.ofArray(new float[4]);
        MemorySegment closed;
        try (Arena arena = Arena.ofConfined()) {
            closed = arena.allocate(4 * Float.BYTES);
        }
        assertRejected(
                IllegalStateException.class,
                "c's memory segment is closed",
                () -> Gemm.sgemm(NO_TRANSPOSE, NO_TRANSPOSE, 2, 2, 1, 1, a, 0, 1, a, 0, 2, 0, closed, 0, 2));
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment mine = arena.allocate(4 * Float.BYTES);
            RuntimeException[] thrown = new RuntimeException[1];
            Thread other = new Thread(() -> {
                try {
                    Gemm.sgemm(NO_TRANSPOSE, NO_TRANSPOSE, 2, 2, 1, 1, a, 0, 1, a, 0, 2, 0, mine, 0, 2);
                } catch (RuntimeException e) {
                    thrown[0] = e;
                }
            });
            other.start();
            other.join();
            assertTrue(thrown[0] instanceof WrongThreadException, () -> "thrown: " + thrown[0]);
            assertTrue(
                    thrown[0].getMessage().contains("c's memory segment is confined to another thread"),
                    thrown[0].getMessage());
        }
    }

    /**
     * The cut of y into a matrix-vector product's tasks, down to vectors of 2³¹ - 1 elements: every element in exactly
     * one run, in order. From 2³⁰ + 1 elements on one thread (so also in any confined arena), the task count wrapped
     * around to a negative number, no task ran, and y stayed unwritten.
     */
    @Test
    void matrixVectorTasksCoverEveryElementUpToTheIntRange() {
        Parallelism.setThreads(1);
        for (int length : new int[] {1, 63, 1000, (1 << 30) + 1, Integer.MAX_VALUE - 3, Integer.MAX_VALUE}) {
            for (int tasks : new int[] {1, 2, 3, 64}) {
                for (int unit : new int[] {4, 16}) {
                    String name = "length " + length + ", tasks " + tasks + ", unit " + unit;
                    long[] next = {0};
                    Gemv.forEachRun(length, tasks, unit, (from, to) -> {
                        assertEquals(next[0], from, name);
                        assertTrue(
                                to > from && (to == length || (to - from) % unit == 0), name + ": " + from + "-" + to);
                        next[0] = to;
                    });
                    assertEquals(length, next[0], name);
                }
            }
        }
    }

    /**
     * The last 1500 columns of a transposed matrix-vector product 2³¹ - 1 wide, seen through a window: the offsets put
     * those columns of A and y on small native buffers, so that only they are touched, and the column blocks end at
     * {@link Integer#MAX_VALUE} without their start wrapping. Exact: small integers, whose products and sums a float
     * holds.
     */
    @Test
    void transposedColumnBlocksEndAtTheEndOfTheIntRange() {
        int rows = 3, width = 1500;
        int from = Integer.MAX_VALUE - width;
        float[] a = smallIntegers(rows * width, "window a");
        float[] x = smallIntegers(rows, "window x");
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment as = arena.allocateFrom(ValueLayout.JAVA_FLOAT, a);
            MemorySegment ys = arena.allocate(ValueLayout.JAVA_FLOAT, width);
            // Element (i, c) of A is at aOffset + i·lda + c, and y's element c at yOffset + c.
            Gemv.transposed(rows, from, Integer.MAX_VALUE, 1f, as, -(long) from, width, x, 0f, ys, -(long) from, 1);
            for (int c = 0; c < width; c++) {
                float expected = 0;
                for (int i = 0; i < rows; i++) {
                    expected += a[i * width + c] * x[i];
                }
                assertEquals(expected, ys.getAtIndex(ValueLayout.JAVA_FLOAT, c), "column " + (from + c));
            }
        }
    }

    /**
     * The last 100 rows and 600 columns of a product whose C is 2³¹ - 1 square, seen through a window: the offsets put
     * those rows of A, columns of B and elements of C on small native buffers, so that only they are touched, and the
     * row and column blocks end at {@link Integer#MAX_VALUE} without their starts wrapping. Exact: small integers.
     */
    @Test
    void blocksEndAtTheEndOfTheIntRange() {
        int rows = 100, columns = 600, k = 3;
        int m0 = Integer.MAX_VALUE - rows, n0 = Integer.MAX_VALUE - columns;
        float[] a = smallIntegers(rows * k, "window a");
        float[] b = smallIntegers(k * columns, "window b");
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment cs = arena.allocate(ValueLayout.JAVA_FLOAT, (long) rows * columns);
            // Element (i, j) of a Matrix is at offset + i·ld + j: these offsets put (m0, 0) of A, (0, n0) of B and
            // (m0, n0) of C at index 0 of their buffers.
            Product o = new Product(
                    false,
                    false,
                    Integer.MAX_VALUE,
                    Integer.MAX_VALUE,
                    k,
                    1f,
                    new Matrix(arena.allocateFrom(ValueLayout.JAVA_FLOAT, a), -(long) m0 * k, k),
                    new Matrix(arena.allocateFrom(ValueLayout.JAVA_FLOAT, b), -(long) n0, columns),
                    0f,
                    new Matrix(cs, -(long) m0 * columns - n0, columns));
            GemmDriver.block(o, m0, Integer.MAX_VALUE, n0, Integer.MAX_VALUE);
            for (int i = 0; i < rows; i++) {
                for (int j = 0; j < columns; j++) {
                    float expected = 0;
                    for (int p = 0; p < k; p++) {
                        expected += a[i * k + p] * b[p * columns + j];
                    }
                    assertEquals(
                            expected,
                            cs.getAtIndex(ValueLayout.JAVA_FLOAT, (long) i * columns + j),
                            "row " + (m0 + i) + ", column " + (n0 + j));
                }
            }
        }
    }

    /**
     * A small product on a fresh thread allocates little, on arrays and on native memory with a transposed B (whose
     * edges are staged): the packing buffers are sized to the product, not to the largest blocks the driver takes.
     */
    @Test
    void aSmallProductOnAFreshThreadAllocatesLittle() throws InterruptedException {
        // Wider than the hardware, vectors are emulated with objects: allocation then says nothing.
        Assumptions.assumeTrue(
                Simd.FLOATS.vectorBitSize() <= VectorShape.preferredShape().vectorBitSize(),
                "vector width " + Simd.FLOATS.vectorBitSize() + " is emulated on this machine");
        float[] a = {1, 2, 3, 4};
        float[] b = {5, 6, 7, 8};
        MemorySegment as = Arena.ofAuto().allocateFrom(ValueLayout.JAVA_FLOAT, a);
        MemorySegment bs = Arena.ofAuto().allocateFrom(ValueLayout.JAVA_FLOAT, b);
        MemorySegment cs = Arena.ofAuto().allocate(ValueLayout.JAVA_FLOAT, 4);
        Runnable products = () -> {
            Gemm.sgemm(NO_TRANSPOSE, NO_TRANSPOSE, 2, 2, 2, 1f, a, 0, 2, b, 0, 2, 0f, new float[4], 0, 2);
            Gemm.sgemm(NO_TRANSPOSE, TRANSPOSE, 2, 2, 2, 1f, as, 0, 2, bs, 0, 2, 0f, cs, 0, 2);
        };
        products.run(); // classes initialised, code compiled as far as it gets
        com.sun.management.ThreadMXBean threads = (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();
        long[] allocated = new long[1];
        Thread fresh = Thread.ofPlatform().start(() -> {
            long before = threads.getCurrentThreadAllocatedBytes();
            products.run();
            allocated[0] = threads.getCurrentThreadAllocatedBytes() - before;
        });
        fresh.join();
        assertTrue(allocated[0] < 256 * 1024, "two 2 × 2 × 2 products allocated " + allocated[0] + " bytes");
        assertEquals(17f, cs.getAtIndex(ValueLayout.JAVA_FLOAT, 0), "row 0 of A times row 0 of B");
    }

    /**
     * A matrix-vector product's copy of x is kept for the thread's next call up to 16 MiB and let go above it, so that
     * a thread does not hold the copy of the longest x it has seen.
     */
    @Test
    void aCopyOfXAboveTheCapIsNotKept() {
        int n = 5 << 20;
        float[] a = new float[n];
        float[] x = new float[n];
        Gemm.sgemv(NO_TRANSPOSE, 1, 1 << 20, 1f, a, 0, 1 << 20, x, 0, 0f, new float[1], 0);
        assertTrue(Gemv.X.retained() >= 1 << 20, "x of 4 MiB kept: " + Gemv.X.retained());
        Gemm.sgemv(NO_TRANSPOSE, 1, n, 1f, a, 0, n, x, 0, 0f, new float[1], 0);
        assertEquals(0, Gemv.X.retained(), "x of 20 MiB let go");
    }

    /** Integers in [-4, 4], seeded by {@code name}. */
    private static float[] smallIntegers(int length, String name) {
        float[] values = Inputs.uniform(Inputs.seed(name), length, -4, 4);
        for (int i = 0; i < values.length; i++) {
            values[i] = Math.round(values[i]);
        }
        return values;
    }

    @Test
    void parallelismRejectsZeroThreads() {
        IllegalArgumentException thrown = assertThrows(IllegalArgumentException.class, () -> Parallelism.setThreads(0));
        assertEquals("threads (0) must be >= 1", thrown.getMessage());
    }

    private static float[] inputs(Case c, String which) {
        int length =
                switch (which) {
                    case "a" -> c.aLength();
                    case "b" -> c.bLength();
                    default -> c.cLength();
                };
        return Inputs.uniform(Inputs.seed(c + which), length, -1, 1);
    }

    /** Runs the case, compares C with the reference and checks that nothing outside C changed; returns C's storage. */
    private static float[] checkAgainstReference(Case c, float[] a, float[] b, float[] c0) {
        ReferenceBlas.Result expected = ReferenceBlas.gemm(
                c.transA() == TRANSPOSE,
                c.transB() == TRANSPOSE,
                c.m(),
                c.n(),
                c.k(),
                c.alpha(),
                a,
                c.offsetA(),
                c.lda(),
                b,
                c.offsetB(),
                c.ldb(),
                c.beta(),
                c0,
                c.offsetC(),
                c.ldc());
        float[] result = c0.clone();
        c.sgemm(a, b, result);
        int n = c.n();
        int ldc = c.ldc();
        int offset = c.offsetC();
        double[] bounds = expected.bounds(c.k());
        Tolerance.assertClose(
                c.toString(),
                c.m() * n,
                i -> expected.values()[i],
                i -> result[offset + i / n * ldc + i % n],
                i -> bounds[i],
                i -> "row " + i / n + ", column " + i % n);
        for (int i = 0; i < result.length; i++) {
            int inMatrix = i - offset;
            boolean insideC = inMatrix >= 0 && inMatrix / ldc < c.m() && inMatrix % ldc < n;
            if (!insideC) {
                assertEquals(
                        Float.floatToRawIntBits(c0[i]),
                        Float.floatToRawIntBits(result[i]),
                        c + ": wrote outside C at index " + i);
            }
        }
        return Arrays.copyOfRange(result, offset, result.length);
    }
}
