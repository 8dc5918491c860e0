package dev.panamax.cuda;

import static dev.panamax.cuda.ffi.CudaFfi.C_FLOAT;
import static dev.panamax.cuda.ffi.CudaFfi.C_INT;

import dev.panamax.cuda.ffi.CudaFfi;
import dev.panamax.cuda.spi.HostGemm;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Path;
import java.util.Optional;

/**
 * A cuBLAS handle ({@code cublasCreate_v2}) and the matrix products on it, with the kernels module's conventions:
 * matrices are <b>row-major</b>, {@code C = alpha·op(A)·op(B) + beta·C} with A stored {@code m × k} ({@code k × m} when
 * transposed), B {@code k × n} ({@code n × k}) and C {@code m × n}. Each operand is a {@link Matrix}: its buffer, the
 * index of its element (0, 0), its leading dimension, whether the product uses it transposed and, for the strided
 * batches, the distance between its matrices. cuBLAS is column-major; the handle computes {@code Cᵀ =
 * op(B)ᵀ·op(A)ᵀ} instead, which has the same memory image, so nothing is copied or transposed.
 *
 * <p>Arguments are checked before anything reaches cuBLAS: negative sizes and too-small leading dimensions throw
 * {@link IllegalArgumentException}, matrices past the end of their buffer {@link IndexOutOfBoundsException}, a closed
 * buffer or handle {@link IllegalStateException}. Offsets and strides count elements; the messages name an operand's
 * fields as cuBLAS names its arguments ({@code aOffset}, {@code lda}, {@code strideA} for A). Products are queued on the
 * handle's stream (see {@link #setStream(CudaStream)}) and run asynchronously, except the host-array {@link
 * #sgemm(Transpose, Transpose, int, int, int, float, float[], int, int, float[], int, int, float, float[], int, int)},
 * which returns with the result. Alpha and beta are floats on the host. A handle may be used by one thread at a time.
 *
 * <p>libcublas is found like libcudart (system property {@code panamax.cuda.cublas}, {@code CUDA_HOME}, the loader
 * path, the usual install locations; sonames 13, 12, 11). On a machine that cannot run cuBLAS (no libcublas, or a file
 * there that is not one, no libcudart, no driver, no device) {@link #create()} throws {@link
 * CudaUnavailableException} with the reason, every time, so that a caller can fall back to the CPU.
 *
 * <p>On the emulated device ({@link Cuda#useEmulatedDevice()}) a handle needs neither libcublas nor a GPU: each product
 * makes the same column-major call it makes to cuBLAS, served on the host by a {@link HostGemm} (found with the {@link
 * java.util.ServiceLoader}; {@code dev.panamax.model} provides one over the kernels module's {@code Gemm}), on the
 * emulated device's buffers and streams; FP16 and BF16 inputs are widened exactly and accumulated in FP32 whatever the
 * math mode. A handle takes only buffers and streams of its own device: mixing the emulated device and a GPU, or
 * passing a buffer or stream created on another GPU than the one current when the handle was created, throws {@link
 * IllegalArgumentException}.
 */
public final class Cublas implements AutoCloseable {
    /** cuBLAS's math modes ({@code cublasMath_t}): which shortcuts cuBLAS may take. */
    public enum MathMode {
        /** Tensor cores where the precision allows them, FP32 products in FP32 ({@code CUBLAS_DEFAULT_MATH}). */
        DEFAULT(CudaFfi.CUBLAS_DEFAULT_MATH()),
        /** The prescribed compute type and no reductions at lower precision ({@code CUBLAS_PEDANTIC_MATH}). */
        PEDANTIC(CudaFfi.CUBLAS_PEDANTIC_MATH()),
        /** FP32 products on TF32 tensor cores ({@code CUBLAS_TF32_TENSOR_OP_MATH}): faster, about 10 bits of mantissa. */
        TF32_TENSOR_OP(CudaFfi.CUBLAS_TF32_TENSOR_OP_MATH());

        private final int value;

        MathMode(int value) {
            this.value = value;
        }
    }

    /**
     * How {@link #gemmEx} computes ({@code cublasComputeType_t}), chosen per call so that a lower precision is never
     * silent.
     */
    public enum ComputeType {
        /** FP32 products and accumulation ({@code CUBLAS_COMPUTE_32F}); any input type. */
        FP32(CudaFfi.CUBLAS_COMPUTE_32F()),
        /**
         * FP32 inputs rounded to TF32 (10 explicit mantissa bits) for tensor cores, FP32 accumulation ({@code
         * CUBLAS_COMPUTE_32F_FAST_TF32}); A and B must be {@link ElementType#FLOAT}. The emulated device rounds to
         * nearest even.
         */
        FP32_FAST_TF32(CudaFfi.CUBLAS_COMPUTE_32F_FAST_TF32());

        private final int value;

        ComputeType(int value) {
            this.value = value;
        }
    }

    /** The four cuBLAS products behind this class's methods. */
    private enum Product {
        SGEMM("cublasSgemm_v2"),
        SGEMM_STRIDED_BATCHED("cublasSgemmStridedBatched"),
        GEMM_EX("cublasGemmEx"),
        GEMM_STRIDED_BATCHED_EX("cublasGemmStridedBatchedEx");

        private final String call;

        Product(String call) {
            this.call = call;
        }

        boolean mixedPrecision() {
            return this == GEMM_EX || this == GEMM_STRIDED_BATCHED_EX;
        }

        boolean batched() {
            return this == SGEMM_STRIDED_BATCHED || this == GEMM_STRIDED_BATCHED_EX;
        }
    }

    /**
     * A row-major matrix operand of a product, in a device buffer: element (i, j) of the stored matrix is {@code
     * buffer[offset + i·ld + j]}, and in a strided batch the next matrix starts {@code stride} elements after the
     * previous one. A product checks it against its shape: the leading dimension against the stored row length, every
     * element of the batch inside the buffer, the buffer's element type and device.
     *
     * @param buffer the device buffer holding the matrix (or the batch)
     * @param offset index of element (0, 0) of the (first) matrix in {@code buffer}
     * @param ld leading dimension: elements between the starts of consecutive stored rows, at least the stored row
     *     length
     * @param transpose whether the product uses the matrix transposed; C is written as stored, so only A and B may be
     * @param stride elements between consecutive matrices of a strided batch, at least 0 (0 reuses one matrix for A or
     *     B); the unbatched products ignore it
     */
    public record Matrix(DeviceBuffer buffer, long offset, int ld, Transpose transpose, long stride) {
        /**
         * Checks that the buffer and the transpose are given.
         *
         * @throws NullPointerException when {@code buffer} or {@code transpose} is null
         */
        public Matrix {
            Arguments.present("buffer", buffer);
            Arguments.present("transpose", transpose);
        }

        /**
         * A matrix used as stored, not part of a batch.
         *
         * @param buffer the device buffer holding it
         * @param offset index of its element (0, 0) in {@code buffer}
         * @param ld its leading dimension
         * @return the operand
         */
        public static Matrix of(DeviceBuffer buffer, long offset, int ld) {
            return new Matrix(buffer, offset, ld, Transpose.NO_TRANSPOSE, 0);
        }

        /**
         * The same matrix, used transposed.
         *
         * @return the operand
         */
        public Matrix transposed() {
            return new Matrix(buffer, offset, ld, Transpose.TRANSPOSE, stride);
        }

        /**
         * The first matrix of a strided batch whose matrices are {@code stride} elements apart.
         *
         * @param stride elements between consecutive matrices
         * @return the operand
         */
        public Matrix strided(long stride) {
            return new Matrix(buffer, offset, ld, transpose, stride);
        }
    }

    /** The low bits of {@code cublasMath_t} that hold the mode; the higher ones are flags. */
    private static final int MODE_MASK = 0xF;

    /** The native {@code cublasHandle_t}; null on the emulated device. */
    private final MemorySegment handle;

    /** What serves the products on the emulated device; null for a GPU handle. */
    private final HostGemm<?> hostGemm;

    private final Ownership ownership;

    /** The device the handle was created on: ordinal 0 for the emulated device. */
    private final Device device;

    private CudaStream stream;

    /** The math mode of an emulated handle, which computes FP32 products in FP32 whatever the mode. */
    private MathMode emulatedMathMode = MathMode.DEFAULT;

    private Cublas(MemorySegment handle, HostGemm<?> hostGemm, int ordinal) {
        this.handle = handle;
        this.hostGemm = hostGemm;
        this.device = new Device(hostGemm != null, ordinal);
        this.ownership = new Ownership(hostGemm == null ? "Cublas" : "emulated Cublas");
    }

    /**
     * Creates a handle on the calling thread's current device, on the legacy default stream. On the emulated device
     * ({@link Cuda#useEmulatedDevice()}) the handle needs no libcublas: its products run on the host through a {@link
     * HostGemm} (see the module's README), on the emulated device's buffers.
     *
     * @return the handle
     * @throws CudaUnavailableException when libcublas is not found, or CUDA cannot run here ({@link
     *     Cuda#unavailableReason()}); on the emulated device, when no {@link HostGemm} is on the module or class path
     * @throws CublasException when cuBLAS fails on a machine that can run CUDA
     */
    public static Cublas create() {
        if (Cuda.isEmulatedDeviceCurrent()) {
            return new Cublas(null, EmulatedCublas.gemm(), 0);
        }
        Libraries.Cublas.FOUND.require();
        Cuda.requireAvailable();
        int device = Cuda.currentDevice();
        return new Cublas(Cuda.create(CudaFfi::cublasCreate_v2, "cublasCreate_v2", Cublas::check), null, device);
    }

    /** An emulated handle whose products {@code gemm} serves, for tests that need to see inside a product. */
    static Cublas emulated(HostGemm<?> gemm) {
        return new Cublas(null, Arguments.present("gemm", gemm), 0);
    }

    /**
     * Whether this handle belongs to the emulated device.
     *
     * @return true when it was created while the emulated device was the calling thread's current device
     */
    public boolean isEmulated() {
        return hostGemm != null;
    }

    /**
     * The libcublas file loaded.
     *
     * @return its path, or empty when none was found
     */
    public static Optional<Path> library() {
        return Libraries.Cublas.FOUND.path();
    }

    /**
     * The version of the loaded libcublas ({@code cublasGetProperty}); needs no driver or device.
     *
     * @return e.g. 11.11.3
     * @throws CudaUnavailableException when libcublas is not found
     */
    public static Version libraryVersion() {
        Libraries.Cublas.FOUND.require();
        return new Version(
                property(CudaFfi.MAJOR_VERSION()), property(CudaFfi.MINOR_VERSION()), property(CudaFfi.PATCH_LEVEL()));
    }

    private static int property(int type) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment value = arena.allocate(C_INT);
            check("cublasGetProperty", CudaFfi.cublasGetProperty(type, value));
            return value.get(C_INT, 0);
        }
    }

    /**
     * Queues this handle's products on a stream ({@code cublasSetStream_v2}).
     *
     * @param stream the stream, of the handle's device, or null for the legacy default stream
     * @throws IllegalArgumentException when the stream belongs to another device than the handle
     */
    public void setStream(CudaStream stream) {
        if (stream != null) {
            Device.requireSame("stream", stream, stream.device(), this, device);
        }
        if (isEmulated()) {
            // The emulated device runs work when it is queued, so its streams need nothing from the handle.
            ownership.ensureOpen();
            if (stream != null) {
                stream.ensureOpen();
            }
        } else {
            try (Ownership.Held _ = Ownership.hold(ownership, stream == null ? null : stream.ownership())) {
                check(
                        "cublasSetStream_v2",
                        CudaFfi.cublasSetStream_v2(handle, stream == null ? MemorySegment.NULL : stream.heldHandle()));
            }
        }
        this.stream = stream;
    }

    /**
     * Sets the math mode ({@code cublasSetMathMode}).
     *
     * @param mode the mode
     */
    public void setMathMode(MathMode mode) {
        Arguments.present("mode", mode);
        if (isEmulated()) {
            ownership.ensureOpen();
            emulatedMathMode = mode;
        } else {
            ownership.acquire();
            try {
                check("cublasSetMathMode", CudaFfi.cublasSetMathMode(handle, mode.value));
            } finally {
                ownership.release();
            }
        }
    }

    /**
     * The math mode ({@code cublasGetMathMode}).
     *
     * @return the mode, ignoring flag bits
     */
    public MathMode mathMode() {
        if (isEmulated()) {
            ownership.ensureOpen();
            return emulatedMathMode;
        }
        ownership.acquire();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment value = arena.allocate(C_INT);
            check("cublasGetMathMode", CudaFfi.cublasGetMathMode(handle, value));
            int mode = value.get(C_INT, 0) & MODE_MASK;
            for (MathMode candidate : MathMode.values()) {
                if (candidate.value == mode) {
                    return candidate;
                }
            }
            throw new IllegalStateException("cuBLAS reports math mode " + mode + ", which this class does not set");
        } finally {
            ownership.release();
        }
    }

    /**
     * FP32 {@code C = alpha·op(A)·op(B) + beta·C} on device buffers of {@link ElementType#FLOAT} ({@code
     * cublasSgemm_v2}).
     *
     * @param m rows of op(A) and C
     * @param n columns of op(B) and C
     * @param k columns of op(A), rows of op(B)
     * @param alpha scale of the product
     * @param a A, stored {@code m × k} (or {@code k × m} when transposed)
     * @param b B, stored {@code k × n} (or {@code n × k} when transposed)
     * @param beta scale of C's old value; 0 means C is not read
     * @param c C, {@code m × n}, as stored
     */
    public void sgemm(int m, int n, int k, float alpha, Matrix a, Matrix b, float beta, Matrix c) {
        product(Product.SGEMM, ComputeType.FP32, m, n, k, alpha, a, b, beta, c, 1);
    }

    /**
     * FP32 {@code C = alpha·op(A)·op(B) + beta·C} on host arrays, the same call as the kernels module's {@code
     * Gemm.sgemm}: copies the matrices' extents to the device, runs {@code cublasSgemm_v2} on the handle's stream and
     * copies C back before returning. For repeated products, keep the operands in {@link DeviceBuffer}s instead.
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
    public void sgemm(
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
        Shape shape = Shape.check(transA, transB, m, n, k, 1, lda, 0, ldb, 0, ldc, 0);
        Arguments.within("a", Arguments.present("a", a).length, "aOffset", aOffset, shape.extentA());
        Arguments.within("b", Arguments.present("b", b).length, "bOffset", bOffset, shape.extentB());
        Arguments.within("c", Arguments.present("c", c).length, "cOffset", cOffset, shape.extentC());
        ownership.ensureOpen();
        requireStreamOpen(stream);
        if (shape.empty()) {
            return;
        }
        try (DeviceBuffer da = upload(a, aOffset, shape.extentA());
                DeviceBuffer db = upload(b, bOffset, shape.extentB());
                DeviceBuffer dc = upload(c, cOffset, shape.extentC())) {
            sgemm(
                    m,
                    n,
                    k,
                    alpha,
                    new Matrix(da, 0, lda, transA, 0),
                    new Matrix(db, 0, ldb, transB, 0),
                    beta,
                    Matrix.of(dc, 0, ldc));
            if (stream == null) {
                dc.copyTo(0, c, cOffset, (int) shape.extentC());
            } else {
                dc.copyToAsync(0, c, cOffset, (int) shape.extentC(), stream);
            }
        }
    }

    /** A device copy of {@code extent} floats from {@code values[offset]}, queued on the handle's stream. */
    private DeviceBuffer upload(float[] values, int offset, long extent) {
        DeviceBuffer buffer = DeviceBuffer.allocate(ElementType.FLOAT, extent);
        try {
            if (stream == null) {
                buffer.copyFrom(0, values, offset, (int) extent);
            } else {
                buffer.copyFromAsync(0, values, offset, (int) extent, stream);
            }
            return buffer;
        } catch (RuntimeException e) {
            buffer.close();
            throw e;
        }
    }

    /**
     * A batch of FP32 products, {@code C_i = alpha·op(A_i)·op(B_i) + beta·C_i} for {@code i < batchCount}, where
     * {@code X_i} starts {@code i·x.stride()} elements after X's first element ({@code cublasSgemmStridedBatched}); the
     * kernels module's {@code Gemm.sgemmStridedBatched}. A stride of 0 for A or B reuses one matrix.
     *
     * @param m rows of op(A) and C
     * @param n columns of op(B) and C
     * @param k columns of op(A), rows of op(B)
     * @param alpha scale of the products
     * @param a the A matrices
     * @param b the B matrices
     * @param beta scale of the C matrices' old values; 0 means they are not read
     * @param c the C matrices, as stored; their stride must keep them from overlapping
     * @param batchCount number of products, at least 0
     */
    public void sgemmStridedBatched(
            int m, int n, int k, float alpha, Matrix a, Matrix b, float beta, Matrix c, int batchCount) {
        product(Product.SGEMM_STRIDED_BATCHED, ComputeType.FP32, m, n, k, alpha, a, b, beta, c, batchCount);
    }

    /**
     * Mixed-precision {@code C = alpha·op(A)·op(B) + beta·C} ({@code cublasGemmEx}): with {@link ComputeType#FP32}
     * ({@code CUBLAS_COMPUTE_32F}), A and B of one type ({@link ElementType#HALF} or {@link ElementType#BFLOAT16}, or
     * {@link ElementType#FLOAT}), products accumulated in FP32, C either {@link ElementType#FLOAT} or the type of A and
     * B; {@link ComputeType#FP32_FAST_TF32} takes FLOAT A and B and lets cuBLAS round them to TF32. Operands as in
     * {@link #sgemm(int, int, int, float, Matrix, Matrix, float, Matrix)}.
     *
     * @param compute how the product is computed
     * @param m rows of op(A) and C
     * @param n columns of op(B) and C
     * @param k columns of op(A), rows of op(B)
     * @param alpha scale of the product
     * @param a A, stored {@code m × k} (or {@code k × m} when transposed)
     * @param b B, stored {@code k × n} (or {@code n × k} when transposed)
     * @param beta scale of C's old value; 0 means C is not read
     * @param c C, {@code m × n}, as stored
     */
    public void gemmEx(
            ComputeType compute, int m, int n, int k, float alpha, Matrix a, Matrix b, float beta, Matrix c) {
        product(Product.GEMM_EX, Arguments.present("compute", compute), m, n, k, alpha, a, b, beta, c, 1);
    }

    /**
     * A batch of mixed-precision products ({@code cublasGemmStridedBatchedEx}): the types of {@link #gemmEx}, the
     * batch layout of {@link #sgemmStridedBatched}.
     *
     * @param m rows of op(A) and C
     * @param n columns of op(B) and C
     * @param k columns of op(A), rows of op(B)
     * @param alpha scale of the products
     * @param a the A matrices
     * @param b the B matrices
     * @param beta scale of the C matrices' old values; 0 means they are not read
     * @param c the C matrices, as stored; their stride must keep them from overlapping
     * @param batchCount number of products, at least 0
     */
    public void gemmExStridedBatched(
            int m, int n, int k, float alpha, Matrix a, Matrix b, float beta, Matrix c, int batchCount) {
        product(Product.GEMM_STRIDED_BATCHED_EX, ComputeType.FP32, m, n, k, alpha, a, b, beta, c, batchCount);
    }

    /** Checks and queues one of the four products, swapped to column-major: cuBLAS computes Cᵀ = op(B)ᵀ·op(A)ᵀ. */
    private void product(
            Product product,
            ComputeType compute,
            int m,
            int n,
            int k,
            float alpha,
            Matrix a,
            Matrix b,
            float beta,
            Matrix c,
            int batchCount) {
        Arguments.present("a", a);
        Arguments.present("b", b);
        Arguments.present("c", c);
        if (c.transpose() != Transpose.NO_TRANSPOSE) {
            throw new IllegalArgumentException("c.transpose() must be NO_TRANSPOSE: cuBLAS writes C as stored");
        }
        // An unbatched product reads one matrix of each operand, whatever its stride.
        long strideA = product.batched() ? a.stride() : 0;
        long strideB = product.batched() ? b.stride() : 0;
        long strideC = product.batched() ? c.stride() : 0;
        Transpose transA = a.transpose();
        Transpose transB = b.transpose();
        int lda = a.ld();
        int ldb = b.ld();
        int ldc = c.ld();
        Shape shape = Shape.check(transA, transB, m, n, k, batchCount, lda, strideA, ldb, strideB, ldc, strideC);
        DeviceBuffer da = a.buffer();
        DeviceBuffer db = b.buffer();
        DeviceBuffer dc = c.buffer();
        checkTypes(product.mixedPrecision(), da.type(), db.type(), dc.type());
        if (compute == ComputeType.FP32_FAST_TF32 && da.type() != ElementType.FLOAT) {
            throw new IllegalArgumentException(
                    "compute FP32_FAST_TF32 needs FLOAT A and B (cuBLAS rounds them to TF32 itself), got " + da.type());
        }
        long aOffset = a.offset();
        long bOffset = b.offset();
        long cOffset = c.offset();
        Arguments.within(da.toString(), da.length(), "aOffset", aOffset, shape.extentA());
        Arguments.within(db.toString(), db.length(), "bOffset", bOffset, shape.extentB());
        Arguments.within(dc.toString(), dc.length(), "cOffset", cOffset, shape.extentC());
        ownership.ensureOpen();
        sameDevice("a", da);
        sameDevice("b", db);
        sameDevice("c", dc);
        da.ensureOpen();
        db.ensureOpen();
        dc.ensureOpen();
        CudaStream queue = stream;
        requireStreamOpen(queue);
        if (shape.empty()) {
            return;
        }
        // The handle, its stream and the buffers are held until the product is queued (on the emulated device, until
        // it has run), so that a close on another thread waits for it instead of freeing them under cuBLAS.
        try (Ownership.Held _ = Ownership.hold(ownership);
                Ownership.Held _ = holdStream(queue);
                Ownership.Held _ = Ownership.hold(da.ownership(), db.ownership(), dc.ownership())) {
            if (isEmulated()) {
                // The same column-major call as on a GPU (Cᵀ = op(B)ᵀ·op(A)ᵀ), served on the host.
                EmulatedCublas.gemm(
                        hostGemm,
                        compute == ComputeType.FP32_FAST_TF32,
                        transB,
                        transA,
                        n,
                        m,
                        k,
                        alpha,
                        db.emulatedMemory(),
                        db.type(),
                        bOffset,
                        ldb,
                        strideB,
                        da.emulatedMemory(),
                        aOffset,
                        lda,
                        strideA,
                        beta,
                        dc.emulatedMemory(),
                        dc.type(),
                        cOffset,
                        ldc,
                        strideC,
                        batchCount);
                return;
            }
            MemorySegment h = handle;
            MemorySegment pa = da.heldPointer(aOffset);
            MemorySegment pb = db.heldPointer(bOffset);
            MemorySegment pc = dc.heldPointer(cOffset);
            int opA = operation(transA);
            int opB = operation(transB);
            int tA = da.type().cudaDataType();
            int tB = db.type().cudaDataType();
            int tC = dc.type().cudaDataType();
            int computeType = compute.value;
            int algo = CudaFfi.CUBLAS_GEMM_DEFAULT();
            try (Arena arena = Arena.ofConfined()) {
                MemorySegment al = arena.allocateFrom(C_FLOAT, alpha);
                MemorySegment be = arena.allocateFrom(C_FLOAT, beta);
                int status =
                        switch (product) {
                            case SGEMM ->
                                CudaFfi.cublasSgemm_v2(h, opB, opA, n, m, k, al, pb, ldb, pa, lda, be, pc, ldc);
                            case SGEMM_STRIDED_BATCHED ->
                                CudaFfi.cublasSgemmStridedBatched(
                                        h,
                                        opB,
                                        opA,
                                        n,
                                        m,
                                        k,
                                        al,
                                        pb,
                                        ldb,
                                        strideB,
                                        pa,
                                        lda,
                                        strideA,
                                        be,
                                        pc,
                                        ldc,
                                        strideC,
                                        batchCount);
                            case GEMM_EX ->
                                CudaFfi.cublasGemmEx(
                                        h,
                                        opB,
                                        opA,
                                        n,
                                        m,
                                        k,
                                        al,
                                        pb,
                                        tB,
                                        ldb,
                                        pa,
                                        tA,
                                        lda,
                                        be,
                                        pc,
                                        tC,
                                        ldc,
                                        computeType,
                                        algo);
                            case GEMM_STRIDED_BATCHED_EX ->
                                CudaFfi.cublasGemmStridedBatchedEx(
                                        h,
                                        opB,
                                        opA,
                                        n,
                                        m,
                                        k,
                                        al,
                                        pb,
                                        tB,
                                        ldb,
                                        strideB,
                                        pa,
                                        tA,
                                        lda,
                                        strideA,
                                        be,
                                        pc,
                                        tC,
                                        ldc,
                                        strideC,
                                        batchCount,
                                        computeType,
                                        algo);
                        };
                check(product.call, status);
            }
        }
    }

    /**
     * Throws {@link IllegalStateException} naming the stream when the one {@link #setStream} gave is closed: cuBLAS
     * would otherwise queue the product on a destroyed {@code cudaStream_t}.
     */
    private void requireStreamOpen(CudaStream queue) {
        if (queue != null && queue.isClosed()) {
            throw closedStream(queue, null);
        }
    }

    /** Holds the handle's stream for a product; a closed one is refused as {@link #requireStreamOpen} refuses it. */
    private Ownership.Held holdStream(CudaStream queue) {
        try {
            return Ownership.hold(queue == null ? null : queue.ownership());
        } catch (IllegalStateException e) {
            throw closedStream(queue, e);
        }
    }

    private IllegalStateException closedStream(CudaStream queue, IllegalStateException cause) {
        return new IllegalStateException(
                "the stream of " + this + " (" + queue + ", given to setStream) is closed: give setStream an open "
                        + "stream or null before the next product",
                cause);
    }

    /** Throws unless a buffer belongs to this handle's device: the emulated one, or the GPU it was created on. */
    private void sameDevice(String name, DeviceBuffer buffer) {
        Device.requireSame(name, buffer, buffer.device(), this, device);
    }

    private static int operation(Transpose transpose) {
        return transpose == Transpose.TRANSPOSE ? CudaFfi.CUBLAS_OP_T() : CudaFfi.CUBLAS_OP_N();
    }

    /**
     * Checks the element types of a product: all {@link ElementType#FLOAT} for the SGEMMs; for the mixed-precision
     * ones A and B of one type and C of that type or {@link ElementType#FLOAT}.
     */
    static void checkTypes(boolean mixedPrecision, ElementType a, ElementType b, ElementType c) {
        if (!mixedPrecision) {
            if (a != ElementType.FLOAT || b != ElementType.FLOAT || c != ElementType.FLOAT) {
                throw new IllegalArgumentException(
                        "sgemm needs FLOAT buffers, got A " + a + ", B " + b + ", C " + c + " (use gemmEx)");
            }
        } else if (a != b || (c != a && c != ElementType.FLOAT)) {
            throw new IllegalArgumentException("gemmEx needs A and B of one type and C of that type or FLOAT, got A "
                    + a + ", B " + b + ", C " + c);
        }
    }

    /**
     * The checked shape of a row-major (batched) product and the elements each operand spans.
     *
     * @param extentA elements from A's first element to its last, over the batch
     * @param extentB likewise for B
     * @param extentC likewise for C
     * @param empty whether the product writes nothing (m, n or the batch count is 0)
     */
    record Shape(long extentA, long extentB, long extentC, boolean empty) {
        /** Checks sizes, leading dimensions and strides; names the argument, its value and its bound. */
        static Shape check(
                Transpose transA,
                Transpose transB,
                int m,
                int n,
                int k,
                int batchCount,
                int lda,
                long strideA,
                int ldb,
                long strideB,
                int ldc,
                long strideC) {
            Arguments.present("transA", transA);
            Arguments.present("transB", transB);
            Arguments.atLeastZero("m", m);
            Arguments.atLeastZero("n", n);
            Arguments.atLeastZero("k", k);
            Arguments.atLeastZero("batchCount", batchCount);
            Arguments.atLeastZero("strideA", strideA);
            Arguments.atLeastZero("strideB", strideB);
            Arguments.atLeastZero("strideC", strideC);
            boolean ta = transA == Transpose.TRANSPOSE;
            boolean tb = transB == Transpose.TRANSPOSE;
            leadingDimension("lda", lda, ta ? "m" : "k", ta ? m : k, "A");
            leadingDimension("ldb", ldb, tb ? "k" : "n", tb ? k : n, "B");
            leadingDimension("ldc", ldc, "n", n, "C");
            long oneC = matrix(m, n, ldc);
            if (batchCount > 1 && strideC < oneC) {
                throw new IllegalArgumentException("strideC (" + strideC + ") must be >= the " + oneC
                        + " elements of one C, so that the C matrices do not overlap");
            }
            return new Shape(
                    batch(matrix(ta ? k : m, ta ? m : k, lda), strideA, batchCount),
                    batch(matrix(tb ? n : k, tb ? k : n, ldb), strideB, batchCount),
                    batch(oneC, strideC, batchCount),
                    m == 0 || n == 0 || batchCount == 0);
        }

        private static void leadingDimension(String name, int ld, String colsName, int cols, String operand) {
            if (ld < Math.max(1, cols)) {
                throw new IllegalArgumentException(name + " (" + ld + ") must be >= max(1, " + colsName + " (" + cols
                        + ")), the row length of " + operand);
            }
        }

        /** Elements spanned by a row-major {@code rows × cols} matrix with leading dimension {@code ld}. */
        private static long matrix(long rows, long cols, long ld) {
            return rows == 0 || cols == 0 ? 0 : (rows - 1) * ld + cols;
        }

        private static long batch(long extent, long stride, int count) {
            return count == 0 || extent == 0 ? 0 : Math.addExact(Math.multiplyExact(count - 1L, stride), extent);
        }
    }

    /**
     * Destroys the handle ({@code cublasDestroy_v2}); later calls are no-ops. A product or setting in progress on
     * another thread is waited for first.
     */
    @Override
    public void close() {
        if (ownership.close() && !isEmulated()) {
            check("cublasDestroy_v2", CudaFfi.cublasDestroy_v2(handle));
        }
    }

    @Override
    public String toString() {
        return ownership.toString();
    }

    /** Throws {@link CublasException} unless {@code status} is {@code CUBLAS_STATUS_SUCCESS}. */
    static void check(String call, int status) {
        if (status != CudaFfi.CUBLAS_STATUS_SUCCESS()) {
            throw new CublasException(
                    call,
                    status,
                    CudaFfi.cublasGetStatusName(status).getString(0),
                    CudaFfi.cublasGetStatusString(status).getString(0));
        }
    }
}
