package dev.panamax.cuda;

import static dev.panamax.cuda.Cublas.Shape.check;
import static dev.panamax.cuda.Transpose.NO_TRANSPOSE;
import static dev.panamax.cuda.Transpose.TRANSPOSE;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import org.junit.jupiter.api.Test;

/** cuBLAS without a GPU: the library loads and reports its version, handles fail cleanly, arguments are checked. */
class CublasTest {
    @Test
    void reportsTheLoadedLibrarysVersion() {
        NativeLibraries.requireCublas();
        Version version = Cublas.libraryVersion();
        assertEquals(NativeLibraries.sonameMajor(Libraries.Cublas.FOUND), version.major(), version::toString);
        assertTrue(version.minor() >= 0 && version.patch() >= 0, version::toString);
    }

    @Test
    void withoutDriverCreateThrowsTheUnavailableReasonEveryTime() {
        NativeLibraries.requireCublas();
        assumeTrue(!Cuda.isAvailable(), "CUDA is available here");
        String reason = Cuda.unavailableReason().orElseThrow();
        for (int i = 0; i < 3; i++) {
            CudaUnavailableException e = assertThrows(CudaUnavailableException.class, Cublas::create);
            assertEquals(reason, e.reason());
            assertEquals("CUDA cannot run here: " + reason, e.getMessage());
        }
    }

    @Test
    void shapeNamesTheBrokenArgument() {
        assertMessage(
                IllegalArgumentException.class,
                "m (-1) must be >= 0",
                () -> check(NO_TRANSPOSE, NO_TRANSPOSE, -1, 2, 3, 1, 3, 0, 2, 0, 2, 0));
        assertMessage(
                IllegalArgumentException.class,
                "lda (2) must be >= max(1, k (3)), the row length of A",
                () -> check(NO_TRANSPOSE, NO_TRANSPOSE, 2, 2, 3, 1, 2, 0, 2, 0, 2, 0));
        assertMessage(
                IllegalArgumentException.class,
                "lda (1) must be >= max(1, m (2)), the row length of A",
                () -> check(TRANSPOSE, NO_TRANSPOSE, 2, 2, 3, 1, 1, 0, 2, 0, 2, 0));
        assertMessage(
                IllegalArgumentException.class,
                "ldb (2) must be >= max(1, k (3)), the row length of B",
                () -> check(NO_TRANSPOSE, TRANSPOSE, 2, 2, 3, 1, 3, 0, 2, 0, 2, 0));
        assertMessage(
                IllegalArgumentException.class,
                "ldc (0) must be >= max(1, n (0)), the row length of C",
                () -> check(NO_TRANSPOSE, NO_TRANSPOSE, 2, 0, 3, 1, 3, 0, 1, 0, 0, 0));
        assertMessage(
                IllegalArgumentException.class,
                "strideB (-4) must be >= 0",
                () -> check(NO_TRANSPOSE, NO_TRANSPOSE, 2, 2, 3, 2, 3, 6, 2, -4, 2, 4));
        assertMessage(
                IllegalArgumentException.class,
                "strideC (3) must be >= the 4 elements of one C, so that the C matrices do not overlap",
                () -> check(NO_TRANSPOSE, NO_TRANSPOSE, 2, 2, 3, 2, 3, 6, 2, 6, 2, 3));
        assertThrows(NullPointerException.class, () -> check(null, NO_TRANSPOSE, 1, 1, 1, 1, 1, 0, 1, 0, 1, 0));
    }

    @Test
    void shapeSpansTheBatchWithLeadingDimensions() {
        // A 3×2 transposed (stored 2×3, ld 5): 1·5 + 3 = 8; B 2×4 (ld 4): 1·4 + 4 = 8; C 3×4 (ld 6): 2·6 + 4 = 16.
        Cublas.Shape one = check(TRANSPOSE, NO_TRANSPOSE, 3, 4, 2, 1, 5, 0, 4, 0, 6, 0);
        assertEquals(new Cublas.Shape(8, 8, 16, false), one);
        // Three of them: A every 10, B shared (stride 0), C every 16.
        Cublas.Shape three = check(TRANSPOSE, NO_TRANSPOSE, 3, 4, 2, 3, 5, 10, 4, 0, 6, 16);
        assertEquals(new Cublas.Shape(28, 8, 48, false), three);
        assertTrue(
                check(NO_TRANSPOSE, NO_TRANSPOSE, 0, 4, 2, 3, 2, 0, 4, 0, 4, 0).empty());
        assertTrue(
                check(NO_TRANSPOSE, NO_TRANSPOSE, 3, 4, 2, 0, 2, 0, 4, 0, 4, 0).empty());
    }

    @Test
    void operandsAreCheckedBeforeAnythingRuns() {
        assertMessage(NullPointerException.class, "buffer must not be null", () -> Cublas.Matrix.of(null, 0, 1));
        // A zero-length buffer and an emulated handle need neither a GPU nor the emulator.
        try (DeviceBuffer empty = DeviceBuffer.allocate(ElementType.FLOAT, 0);
                Cublas cublas = Cublas.emulated(new KernelsHostGemm())) {
            Cublas.Matrix matrix = Cublas.Matrix.of(empty, 0, 1);
            assertMessage(
                    IllegalArgumentException.class,
                    "c.transpose() must be NO_TRANSPOSE: cuBLAS writes C as stored",
                    () -> cublas.sgemm(0, 0, 0, 1f, matrix, matrix, 0f, matrix.transposed()));
            assertMessage(
                    NullPointerException.class,
                    "b must not be null",
                    () -> cublas.gemmEx(Cublas.ComputeType.FP32, 0, 0, 0, 1f, matrix, null, 0f, matrix));
            assertMessage(
                    IllegalArgumentException.class,
                    "lda (1) must be >= max(1, m (2)), the row length of A",
                    () -> cublas.sgemmStridedBatched(2, 1, 1, 1f, matrix.transposed(), matrix, 0f, matrix, 1));
        }
    }

    @Test
    void productsNeedMatchingElementTypes() {
        Cublas.checkTypes(false, ElementType.FLOAT, ElementType.FLOAT, ElementType.FLOAT);
        Cublas.checkTypes(true, ElementType.HALF, ElementType.HALF, ElementType.FLOAT);
        Cublas.checkTypes(true, ElementType.BFLOAT16, ElementType.BFLOAT16, ElementType.BFLOAT16);
        assertMessage(
                IllegalArgumentException.class,
                "sgemm needs FLOAT buffers, got A HALF, B FLOAT, C FLOAT (use gemmEx)",
                () -> Cublas.checkTypes(false, ElementType.HALF, ElementType.FLOAT, ElementType.FLOAT));
        assertMessage(
                IllegalArgumentException.class,
                "gemmEx needs A and B of one type and C of that type or FLOAT, got A HALF, B BFLOAT16, C FLOAT",
                () -> Cublas.checkTypes(true, ElementType.HALF, ElementType.BFLOAT16, ElementType.FLOAT));
        assertThrows(
                IllegalArgumentException.class,
                () -> Cublas.checkTypes(true, ElementType.HALF, ElementType.HALF, ElementType.BFLOAT16));
    }

    static <T extends Throwable> void assertMessage(Class<T> type, String message, Runnable call) {
        assertEquals(message, assertThrows(type, call::run).getMessage());
    }
}
