package dev.panamax.model.backend;

import dev.panamax.cuda.Cublas;
import dev.panamax.cuda.Cuda;
import dev.panamax.cuda.CudaKernel;
import dev.panamax.cuda.CudaModule;
import dev.panamax.cuda.CudaStream;
import dev.panamax.cuda.DeviceBuffer;
import dev.panamax.cuda.DeviceMemory;
import dev.panamax.cuda.Dim3;
import dev.panamax.cuda.ElementType;
import dev.panamax.kernels.AdamW;
import dev.panamax.kernels.QuantizedMatrix;
import dev.panamax.kernels.Rope;
import dev.panamax.kernels.WeightFormat;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.ref.WeakReference;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.function.Consumer;
import java.util.function.Function;
import java.util.function.LongFunction;

/**
 * The {@link Backend} on a CUDA device: a GPU, or the emulated device that runs the same CUDA C kernels on the CPU
 * (see cuda-bindings' README). Weights are uploaded once (a segment passed twice while its memory is alive, such as
 * tied embeddings, is one device copy; see {@link #weights(MemorySegment, int, int)}); activations stay on the device; products go through {@link Cublas} at the {@link MatmulPrecision}
 * chosen when the backend is created (FP32 by default; TF32 through {@code CUBLAS_COMPUTE_32F_FAST_TF32}; BF16 as
 * operands rounded by the {@code to_bfloat16} kernel into {@code cublasGemmEx} with FP32 accumulation; on the emulated
 * device, cuBLAS's contract served by the kernels module's GEMM on the same rounded inputs) and every other operation through Panamax's kernels in
 * {@code transformer.cu}. All work is queued in order on one stream; only the calls that bring values to the host
 * ({@link #read}, {@link #argmax}, the loss of {@link #crossEntropy(Tensor, int[], int, Tensor, float)}, {@link
 * #countCorrect}, {@link #sumOfSquares}, {@link StepTotals#read()}) and {@link #weights} (whose source must have been
 * read when it returns) wait for it. Uploads from host arrays (token ids, the embedding backward's token groups,
 * {@link #write}, rotary tables) are copied into a ring of pinned host memory and from there asynchronously, each
 * followed by an event: the host waits only to reuse ring memory that a queued copy has yet to read. A training step
 * keeps its losses, correct counts, gradient norm and clipping factor on the device ({@link #stepTotals}, {@link
 * #clipGradients}, AdamW reading the factor there) and reads them once at its end; {@link #traffic()} counts the
 * copies each way and the host's waits.
 *
 * <p>Every operation of the interface runs on the device, forward and backward. The embedding table (and its
 * gradient) must start at its buffer's first element: a view of later rows is refused, since the kernels take no
 * offset. Reductions have a fixed order (no
 * float atomics), so a run gives the same bits every time on the same device; losses and argmaxes come back to the
 * host as a float per row (losses summed there in row order), a sum of squares as its total.
 *
 * <p>Attention gives finite outputs and gradients for finite inputs at any magnitude, as the kernels module's {@code
 * Attention} does on the CPU: values near float's limit through accumulators kept as half a weighted mean and a
 * recomputed {@code dS}; a query whose scores leave float's range (the float pass gives it no weight, or a result that
 * is not finite) is computed again in double on the device, its output and log-sum-exp rounded once (the log-sum-exp
 * ±∞ where it is beyond float's range), and the backward computes in double the queries whose log-sum-exp is infinite
 * or at least 2²⁰ in magnitude, and those whose float score with a key they see is not finite although their inputs
 * are ({@code q·k} overflowed, as ∞ - ∞, while the log-sum-exp may be moderate). Such queries are rare and slow; the
 * others do not pay for them.
 *
 * <p>Weights in GGML's block formats ({@link #weights(QuantizedMatrix)}: Q8_0, Q4_0, F16, BF16) stay in their format
 * on the device, as the file's bytes: a product runs {@code quantized_matvec} on {@value #MATVEC_ROWS} rows of
 * activations per pass while those passes move fewer bytes than dequantizing (see {@link #quantizedMatmul}), beyond
 * that dequantizes the weights a slice of rows at a time into floats for cuBLAS, and an embedding lookup dequantizes
 * the rows it reads. They serve inference only:
 * training needs float32 weights.
 *
 * <p>A backend belongs to the device it was created on: each call makes that device the calling thread's current one.
 * It is for one thread at a time (its scratch buffers and kernel cache are not shared safely); work from several
 * threads needs a backend each.
 *
 * <p>Tensors are allocated against the device's free memory: one that would not fit is refused with the sizes before
 * anything is allocated, and a model or trainer checks all it will need (weights, cache or training state, activations)
 * before its first tensor ({@link #requireMemory}); a model also counts the scratch memory its forward passes grow,
 * which it reserves when built ({@link #forwardScratchBytes}, {@link #reserveForwardScratch}).
 */
public final class CudaBackend implements Backend {
    private static final String KERNELS = "dev/panamax/cuda/ptx/transformer.ptx";

    /** The scope of memory that is never freed through an arena, such as {@code MemorySegment.ofAddress} views. */
    private static final MemorySegment.Scope GLOBAL_SCOPE = MemorySegment.NULL.scope();

    /** Threads of an elementwise kernel's block, and the most a row-reduction kernel uses. */
    private static final int BLOCK = 256;

    /** The grid's y extent that row-wise kernels stride over: CUDA's limit on gridDim.y. */
    private static final int MAX_GRID_ROWS = 65535;

    private static final int ATTENTION_WARPS = 4;
    private static final int ATTENTION_TILE = 32;

    /**
     * Floats per (row, head) of a query's statistics in double and its flag saying whether it is computed so: {@code
     * ATTENTION_EXACT_STATS} in transformer.cu.
     */
    private static final int ATTENTION_EXACT_STATS = 7;

    /**
     * The fewest keys a split attention gives a block: two tiles, below which a split's fixed work (staging its query,
     * writing a partial softmax that the combine reads back) outweighs its keys.
     */
    private static final int MIN_SPLIT_KEYS = 64;

    /**
     * Blocks per multiprocessor a split attention aims for: as many as fit at once even at the widest heads (75 KB of
     * shared memory each, of an H100's 227 KB), so a decode is one full wave, of which whole-tile chunks keep at least
     * two per multiprocessor.
     */
    private static final int SPLIT_BLOCKS_PER_MULTIPROCESSOR = 3;

    /** The most query heads of one key/value group a split attention block takes (8 warps). */
    private static final int SPLIT_HEADS_MAX = 8;

    /** At most this many key splits per query and head, so that the partial softmaxes stay small on long contexts. */
    private static final int MAX_KEY_SPLITS = 1024;

    /** The most activation rows {@code quantized_matvec} takes: {@code MATVEC_ROWS} in transformer.cu. */
    private static final int MATVEC_ROWS = 8;

    /** Warps per block of {@code quantized_matvec}, one output row each. */
    private static final int MATVEC_WARPS = 4;

    /** The most floats of weights a product with many rows dequantizes at once (16 MiB). */
    private static final long DEQUANTIZED_FLOATS = 1L << 22;

    /** The widest head {@code attention_forward} keeps in registers (8 floats per lane). */
    static final int MAX_HEAD_DIM = 256;

    /** Blocks of a grid-stride kernel: enough to fill any GPU, few enough for the emulator. */
    private static final long MAX_FLAT_BLOCKS = 4096;

    /** Elements per block of the sum of squares' partial sums. */
    private static final int SQUARES_SPAN = 4096;

    /** Rows per partial column sum in a norm's weight gradients: {@code NORM_ROWS_SPAN} in transformer.cu. */
    private static final int NORM_ROWS_SPAN = 64;

    /** Token ids travel as floats (launches pass float buffers), exact below this. */
    private static final int MAX_EXACT_ID = 1 << 24;

    /**
     * The floats of pinned host memory that uploads from Java arrays go through (1 MiB): many steps' token ids in
     * flight, larger uploads in pieces of half.
     */
    private static final long UPLOAD_RING_FLOATS = 1 << 18;

    /** The fewest elements a scratch buffer is allocated with, so that small requests do not regrow it. */
    private static final long MIN_SCRATCH = 64;

    private final boolean emulated;
    private final MatmulPrecision precision;
    private final long emulatorSeed;
    private final int gpu;
    private final String kind;
    private final long capacityBytes;

    /** The device's multiprocessors, which size a split attention's launch ({@link #keySplit}). */
    private final int multiprocessors;

    private final CudaModule module;
    private final Map<String, CudaKernel> kernels = new HashMap<>();
    private final CudaStream stream;
    private final Cublas cublas;
    private final List<DeviceBuffer> buffers = new ArrayList<>();

    /** The staging of uploads from Java arrays; created by the first. */
    private UploadRing uploads;

    private final Map<WeightSource, Upload> uploaded = new HashMap<>();
    private long allocatedBytes;
    private DeviceBuffer tokens;
    private DeviceBuffer ones;

    /** Whether every element of {@link #ones} holds 1: false from its allocation until its upload succeeds. */
    private boolean onesFilled;

    private DeviceBuffer rowResults;
    private DeviceBuffer attentionDelta;

    /** The per-split softmaxes of a split attention, before {@code attention_combine}; grown on demand. */
    private DeviceBuffer attentionPartials;

    /** Quantized weights dequantized for a product with many rows; grown on demand. */
    private DeviceBuffer dequantized;

    /** A norm backward's per-span column sums, before {@code norm_backward_weights} adds them; grown on demand. */
    private DeviceBuffer normPartials;

    /** Each row's argmax column, for a training step's correct count; grown on demand. */
    private DeviceBuffer bestColumns;

    /** The current training step's totals ({@link DeviceStepTotals}); grown on demand. */
    private DeviceBuffer stepValues;

    private long stepGeneration;

    /** The two operands of a BF16 product, rounded; grown on demand. */
    private final DeviceBuffer[] bfloat16Operands = new DeviceBuffer[2];

    private boolean closed;

    private CudaBackend(boolean emulated, long emulatorSeed, int gpu, long capacityBytes, MatmulPrecision precision) {
        this.emulated = emulated;
        this.precision = Objects.requireNonNull(precision, "precision");
        this.emulatorSeed = emulatorSeed;
        this.gpu = gpu;
        this.kind = emulated ? "emulated" : "cuda " + Cuda.device(gpu).name();
        this.capacityBytes = capacityBytes;
        onDevice();
        CudaModule loadedModule = null;
        CudaStream createdStream = null;
        Cublas createdHandle = null;
        try {
            loadedModule = CudaModule.load(KERNELS);
            createdStream = CudaStream.create();
            createdHandle = Cublas.create();
            createdHandle.setStream(createdStream);
            this.module = loadedModule;
            this.multiprocessors = loadedModule.limits().multiprocessors();
            this.stream = createdStream;
            this.cublas = createdHandle;
        } catch (RuntimeException | Error e) {
            for (AutoCloseable created : new AutoCloseable[] {createdHandle, createdStream, loadedModule}) {
                if (created != null) {
                    try {
                        created.close();
                    } catch (Exception closing) {
                        e.addSuppressed(closing);
                    }
                }
            }
            throw e;
        }
    }

    /**
     * A backend on the calling thread's current GPU, bounded by the device's free memory.
     *
     * @return the backend
     * @throws dev.panamax.cuda.CudaUnavailableException when CUDA cannot run here, with the reason
     */
    public static CudaBackend onGpu() {
        return onGpu(MatmulPrecision.FP32);
    }

    /**
     * A backend on the calling thread's current GPU whose products round their inputs as {@code precision} says.
     *
     * @param precision the products' precision
     * @return the backend
     * @throws dev.panamax.cuda.CudaUnavailableException when CUDA cannot run here, with the reason
     */
    public static CudaBackend onGpu(MatmulPrecision precision) {
        return new CudaBackend(false, 0, Cuda.currentDevice(), Long.MAX_VALUE, precision);
    }

    /**
     * A backend on the emulated device, which runs blocks and threads in index order; tensors are bounded by the
     * emulated device's free memory ({@link Cuda#EMULATED_MEMORY_PROPERTY}). The emulated device becomes the calling
     * thread's current device.
     *
     * @return the backend
     * @throws dev.panamax.cuda.CudaUnavailableException when the emulated device cannot run here, with the reason
     */
    public static CudaBackend emulated() {
        return emulated(0, Long.MAX_VALUE);
    }

    /**
     * A backend on the emulated device with a bound on the memory its tensors take (as well as the device's free
     * memory), as if it were alone on a GPU of that size. The emulated device becomes the calling thread's current
     * device.
     *
     * @param scheduleSeed 0 for index order; otherwise the seed of a shuffled order of blocks and threads, which must
     *     not change any result
     * @param capacityBytes the device memory tensors may take, at least 0; {@link Long#MAX_VALUE} for no bound but the
     *     device's
     * @return the backend
     * @throws dev.panamax.cuda.CudaUnavailableException when the emulated device cannot run here, with the reason
     */
    public static CudaBackend emulated(long scheduleSeed, long capacityBytes) {
        return emulated(scheduleSeed, capacityBytes, MatmulPrecision.FP32);
    }

    /**
     * {@link #emulated(long, long)} with products that round their inputs as {@code precision} says, as cuBLAS does
     * on a GPU (see {@link MatmulPrecision}).
     *
     * @param scheduleSeed 0 for index order; otherwise the seed of a shuffled order of blocks and threads
     * @param capacityBytes the device memory tensors may take, at least 0; {@link Long#MAX_VALUE} for no bound but the
     *     device's
     * @param precision the products' precision
     * @return the backend
     * @throws dev.panamax.cuda.CudaUnavailableException when the emulated device cannot run here, with the reason
     */
    public static CudaBackend emulated(long scheduleSeed, long capacityBytes, MatmulPrecision precision) {
        if (capacityBytes < 0) {
            throw new IllegalArgumentException("capacityBytes (" + capacityBytes + ") must be >= 0");
        }
        Cuda.useEmulatedDevice(scheduleSeed);
        return new CudaBackend(true, scheduleSeed, -1, capacityBytes, precision);
    }

    @Override
    public String kind() {
        return kind;
    }

    @Override
    public MatmulPrecision precision() {
        return precision;
    }

    /**
     * Whether this backend runs on the emulated device.
     *
     * @return true on the emulated device, false on a GPU
     */
    public boolean isEmulated() {
        return emulated;
    }

    /**
     * The bytes of device memory this backend's tensors take.
     *
     * @return the bytes allocated
     */
    public long allocatedBytes() {
        return allocatedBytes;
    }

    /**
     * The traffic between host and device on a backend's stream, for tests and profiles that bound a unit of work's
     * round trips.
     *
     * @param copiesToDevice copies from host memory (token ids, weights, written tensors)
     * @param copiesToHost copies to host memory, each of which waits for the work queued before it
     * @param synchronizations explicit waits for the stream
     * @param streamWaits waits for all the work queued on the stream that copies into Java arrays make ({@link
     *     CudaStream#stagingWaits()}): one per copy to the host into an array; uploads from arrays make none
     * @param uploadWaits waits of uploads from Java arrays for earlier copies still reading the staging memory they
     *     reuse (only when more is in flight than the staging ring holds)
     */
    public record Traffic(
            long copiesToDevice, long copiesToHost, long synchronizations, long streamWaits, long uploadWaits) {
        /**
         * The traffic since an earlier reading.
         *
         * @param earlier a reading of the same backend
         * @return the differences
         */
        public Traffic since(Traffic earlier) {
            return new Traffic(
                    copiesToDevice - earlier.copiesToDevice,
                    copiesToHost - earlier.copiesToHost,
                    synchronizations - earlier.synchronizations,
                    streamWaits - earlier.streamWaits,
                    uploadWaits - earlier.uploadWaits);
        }
    }

    /**
     * The traffic between host and device on this backend's stream so far.
     *
     * @return the counts since the backend was created
     */
    public Traffic traffic() {
        return new Traffic(
                stream.copiesToDevice(),
                stream.copiesToHost(),
                stream.synchronizations(),
                stream.stagingWaits(),
                uploads == null ? 0 : uploads.waits());
    }

    /** A matrix at {@code offset} (in floats) of a device buffer, rows {@code ld} floats apart. */
    private record DeviceTensor(CudaBackend owner, DeviceBuffer buffer, long offset, int rows, int cols, int ld)
            implements Tensor {
        @Override
        public Tensor rows(int from, int count) {
            Objects.checkFromIndexSize(from, count, rows);
            return new DeviceTensor(owner, buffer, offset + (long) from * ld, count, cols, ld);
        }

        @Override
        public Tensor columns(int from, int count) {
            Objects.checkFromIndexSize(from, count, cols);
            return new DeviceTensor(owner, buffer, offset + from, rows, count, ld);
        }

        boolean dense() {
            return ld == cols || rows <= 1;
        }

        long size() {
            return (long) rows * cols;
        }

        @Override
        public String toString() {
            return "CUDA tensor " + rows + " × " + cols + (dense() ? "" : " (row stride " + ld + ")");
        }
    }

    /**
     * A weight segment by its address, size, shape and format; an {@link Upload} also names the scope it belonged to.
     */
    private record WeightSource(long address, long byteSize, int rows, int cols, WeightFormat format) {}

    /**
     * A matrix in one of GGML's block formats on the device: the file's bytes in a buffer of 16-bit units, row r at
     * unit {@code offset + r·rowUnits()}.
     */
    private record DeviceQuantized(
            CudaBackend owner, DeviceBuffer buffer, long offset, WeightFormat format, int rows, int cols)
            implements Tensor {
        long rowUnits() {
            return format.rowBytes(cols) / Short.BYTES;
        }

        @Override
        public Tensor rows(int from, int count) {
            Objects.checkFromIndexSize(from, count, rows);
            return new DeviceQuantized(owner, buffer, offset + from * rowUnits(), format, count, cols);
        }

        @Override
        public Tensor columns(int from, int count) {
            throw new UnsupportedOperationException(
                    "a " + format + " matrix has no column views (its rows are blocks)");
        }

        @Override
        public String toString() {
            return "CUDA " + format + " tensor " + rows + " × " + cols;
        }
    }

    /**
     * An uploaded weight segment: its scope, weakly (the cache must not keep an automatic arena's memory alive), and
     * the device tensor.
     */
    private record Upload(WeakReference<MemorySegment.Scope> scope, Tensor tensor) {}

    /** Rotary tables on the device, {@code [maxPositions, headDim]} each, as the CPU's {@link Rope} builds them. */
    private record DeviceRotary(
            CudaBackend owner, DeviceBuffer cos, DeviceBuffer sin, int headDim, int maxPositions, Rope.Pairing pairing)
            implements Rotary {}

    @Override
    public Tensor allocate(int rows, int cols) {
        TensorChecks.shape(rows, cols);
        onDevice();
        DeviceTensor t = new DeviceTensor(
                this, newBuffer((long) rows * cols, "a " + rows + " × " + cols + " tensor"), 0, rows, cols, cols);
        zero(t);
        return t;
    }

    /**
     * Copies the weights to the device, once for the same memory passed again (tied embeddings): a later call returns
     * the earlier tensor when its segment has the same address, size and shape and belongs to the same scope, still
     * alive, so memory freed and reused at that address by other weights is uploaded anew. Segments of the global
     * scope (whose memory's lifetime cannot be told) and heap segments are uploaded every time. Values rewritten in
     * place in memory that stays alive are not seen by a later call: weights are read-only while their tensor is used.
     */
    @Override
    public Tensor weights(MemorySegment floats, int rows, int cols) {
        TensorChecks.weights(floats, rows, cols);
        return upload(floats, WeightFormat.F32, rows, cols, b -> new DeviceTensor(this, b, 0, rows, cols, cols));
    }

    /**
     * Copies the matrix's bytes to the device as they are, once for the same memory passed again, as {@link
     * #weights(MemorySegment, int, int)} does; an F32 matrix becomes an ordinary tensor.
     */
    @Override
    public Tensor weights(QuantizedMatrix matrix) {
        Objects.requireNonNull(matrix, "matrix");
        MemorySegment bytes = matrix.data().asSlice(matrix.byteOffset(), matrix.byteSize());
        if (matrix.format() == WeightFormat.F32) {
            return weights(bytes, matrix.rows(), matrix.columns());
        }
        return upload(
                bytes,
                matrix.format(),
                matrix.rows(),
                matrix.columns(),
                b -> new DeviceQuantized(this, b, 0, matrix.format(), matrix.rows(), matrix.columns()));
    }

    /** The upload and its cache behind both {@code weights} methods: the segment's bytes into a new buffer. */
    private Tensor upload(
            MemorySegment data, WeightFormat format, int rows, int cols, Function<DeviceBuffer, Tensor> tensor) {
        onDevice();
        WeightSource source = new WeightSource(data.address(), data.byteSize(), rows, cols, format);
        MemorySegment.Scope scope = data.scope();
        boolean cached = data.isNative() && !scope.equals(GLOBAL_SCOPE);
        Upload known = cached ? uploaded.get(source) : null;
        if (known != null && known.scope().get() == scope && scope.isAlive()) {
            return known.tensor();
        }
        ElementType type = format == WeightFormat.F32 ? ElementType.FLOAT : ElementType.HALF;
        long count = data.byteSize() / type.byteSize();
        DeviceBuffer buffer = newBuffer(
                type, count, rows + " × " + cols + (format == WeightFormat.F32 ? "" : " " + format) + " weights");
        try (Arena staging = Arena.ofConfined()) {
            // CUDA copies only from native memory; a heap segment goes through a native copy.
            MemorySegment host =
                    data.isNative() ? data : staging.allocate(data.byteSize()).copyFrom(data);
            buffer.copyFromAsync(0, host, count, stream);
            // The segment may be a caller's temporary, and the staging copy is freed here: the copy must be done.
            stream.synchronize();
        }
        Tensor t = tensor.apply(buffer);
        if (cached) {
            uploaded.put(source, new Upload(new WeakReference<>(scope), t));
        }
        return t;
    }

    /**
     * Checks against the device's free memory ({@code cudaMemGetInfo}, or the emulated device's) and, where this
     * backend was given a smaller bound, that bound less what its tensors already take.
     */
    @Override
    public void requireMemory(String purpose, long bytes) {
        ensureOpen();
        if (capacityBytes != Long.MAX_VALUE) {
            long available = Math.max(0, capacityBytes - allocatedBytes);
            if (bytes > available) {
                throw new InsufficientMemoryException(
                        purpose,
                        bytes,
                        available,
                        "device memory (the device's " + InsufficientMemoryException.bytes(capacityBytes)
                                + " less what this backend holds)");
            }
        }
        onDevice();
        DeviceMemory memory = Cuda.memory();
        if (bytes > memory.freeBytes()) {
            throw new InsufficientMemoryException(
                    purpose,
                    bytes,
                    memory.freeBytes(),
                    "device memory (free on " + deviceName() + ", which has "
                            + InsufficientMemoryException.bytes(memory.totalBytes()) + ")");
        }
    }

    /** With BF16 products, the two operands' rounded copies ({@link #toBfloat16}); nothing otherwise. */
    @Override
    public long productScratchBytes(long largestOperand) {
        return precision == MatmulPrecision.BF16
                ? new MemorySize().add(largestOperand, 1).bytes() // two bfloat16 copies: the bytes of one float copy
                : 0;
    }

    /**
     * The scratch buffers a forward pass grows on demand, at their largest for {@code shape}: the token ids of a batch,
     * the partial softmaxes of a split attention over the most keys, the largest slice of weights a product with a
     * batch's rows dequantizes, and with BF16 products the two rounded operands.
     */
    @Override
    public long forwardScratchBytes(ForwardShape shape) {
        long bytes = 0;
        for (Reservation r : forwardScratch(shape)) {
            bytes = bytes > Long.MAX_VALUE - r.bytes() ? Long.MAX_VALUE : bytes + r.bytes();
        }
        return bytes;
    }

    /** Grows each scratch buffer {@link #forwardScratchBytes} counts to its size for {@code shape}. */
    @Override
    public void reserveForwardScratch(ForwardShape shape) {
        onDevice();
        for (Reservation r : forwardScratch(shape)) {
            if (r.count > 0) {
                r.grow.apply(r.count);
            }
        }
    }

    /** A scratch buffer at the size a forward pass may grow it to: the method that grows it, its type and size. */
    private record Reservation(LongFunction<DeviceBuffer> grow, ElementType type, long count) {
        /** What the buffer takes once grown: a scratch buffer has at least {@code MIN_SCRATCH} elements. */
        long bytes() {
            long elements = count == 0 ? 0 : Math.max(count, MIN_SCRATCH);
            return elements > Long.MAX_VALUE / type.byteSize() ? Long.MAX_VALUE : elements * type.byteSize();
        }
    }

    private List<Reservation> forwardScratch(ForwardShape shape) {
        Objects.requireNonNull(shape, "shape");
        List<Reservation> reservations = new ArrayList<>();
        reservations.add(new Reservation(this::idBuffer, ElementType.FLOAT, shape.rows()));
        long partials = 0;
        for (int queries = 1; queries <= Math.min(ATTENTION_WARPS, shape.rows()); queries++) {
            int splits = plannedSplits(
                    shape.positions(), splitBlocks(queries, shape.heads(), shape.kvHeads(), 1), multiprocessors);
            if (splits > 1) {
                partials = Math.max(partials, partialsFloats(queries, shape.heads(), splits, shape.headDim()));
            }
        }
        reservations.add(new Reservation(this::partialsBuffer, ElementType.FLOAT, partials));
        long dequantizedFloats = 0;
        for (BlockWeights w : shape.blockWeights()) {
            if (w.format() != WeightFormat.F32
                    && w.rows() > 0
                    && w.cols() > 0
                    && !matvecPays(w.format(), shape.rows())) {
                dequantizedFloats = Math.max(dequantizedFloats, (long) dequantizedRows(w.rows(), w.cols()) * w.cols());
            }
        }
        reservations.add(new Reservation(this::dequantizedBuffer, ElementType.FLOAT, dequantizedFloats));
        if (precision == MatmulPrecision.BF16) {
            for (int slot = 0; slot < bfloat16Operands.length; slot++) {
                int operand = slot;
                reservations.add(new Reservation(
                        count -> bfloat16Operand(operand, count), ElementType.BFLOAT16, shape.largestOperand()));
            }
        }
        return reservations;
    }

    /** Weights and rotary tables are copied to the device. */
    @Override
    public boolean copiesWeights() {
        return true;
    }

    /** A device buffer of {@code floats}, refused with the sizes when it would take the device past its memory. */
    private DeviceBuffer newBuffer(long floats, String what) {
        return newBuffer(ElementType.FLOAT, floats, what);
    }

    /**
     * A scratch buffer of at least {@code count} elements: {@code current} when it is large enough, else a new one (of
     * at least {@value #MIN_SCRATCH}) that replaces it, the old one freed first, so a scratch buffer takes only its largest size. The
     * stream is drained before the free, since work queued on it may still read the old buffer and the runtime does
     * not promise that {@code cudaFree} waits for it. {@code field} is set to null once the old
     * buffer is freed and to the new one once allocated, so a failed allocation never leaves it naming a freed buffer.
     */
    private DeviceBuffer scratch(
            DeviceBuffer current, Consumer<DeviceBuffer> field, ElementType type, long count, String what) {
        if (current != null && current.length() >= count) {
            return current;
        }
        if (current != null) {
            stream.synchronize();
            field.accept(null);
            buffers.remove(current);
            allocatedBytes -= current.byteSize();
            current.close();
        }
        DeviceBuffer grown = newBuffer(type, Math.max(count, MIN_SCRATCH), what);
        field.accept(grown);
        return grown;
    }

    private DeviceBuffer newBuffer(ElementType type, long count, String what) {
        long bytes = count * type.byteSize();
        requireMemory(what, bytes);
        DeviceBuffer buffer = DeviceBuffer.allocate(type, count);
        buffers.add(buffer);
        allocatedBytes += bytes;
        return buffer;
    }

    @Override
    public Rotary rotary(int headDim, int maxPositions, double theta) {
        return rotary(headDim, maxPositions, theta, Rope.Pairing.ADJACENT);
    }

    /**
     * Rotary tables with either pairing the CPU's {@link Rope} supports, so that {@link #rope} rotates as {@link
     * Rope#forward} does; the Backend contract asks only for llama2.c's adjacent pairs, and a loader of Hugging Face
     * Llama checkpoints would use the halves.
     */
    Rotary rotary(int headDim, int maxPositions, double theta, Rope.Pairing pairing) {
        Rope rope = new Rope(headDim, maxPositions, theta, pairing);
        // The CPU's own rotation of unit vectors gives its tables exactly: for a pair (a, b), rotating (1, 0) leaves
        // (cos, sin) of the first and second element, and rotating (0, 1) leaves (sin, cos); no second copy of the
        // angle arithmetic to drift from it.
        int size = Math.multiplyExact(maxPositions, headDim);
        float[] firstUnit = new float[size];
        float[] secondUnit = new float[size];
        int half = headDim / 2;
        for (int p = 0; p < maxPositions; p++) {
            for (int k = 0; k < half; k++) {
                int first = pairing == Rope.Pairing.ADJACENT ? 2 * k : k;
                firstUnit[p * headDim + first] = 1;
                secondUnit[p * headDim + first + (pairing == Rope.Pairing.ADJACENT ? 1 : half)] = 1;
            }
        }
        float[] fromFirst = new float[size];
        float[] fromSecond = new float[size];
        rope.forward(maxPositions, 1, 0, firstUnit, 0, headDim, fromFirst, 0, headDim);
        rope.forward(maxPositions, 1, 0, secondUnit, 0, headDim, fromSecond, 0, headDim);
        float[] cos = new float[size];
        float[] sin = new float[size];
        for (int i = 0; i < size; i++) {
            boolean first = firstUnit[i] == 1;
            cos[i] = first ? fromFirst[i] : fromSecond[i];
            sin[i] = first ? fromSecond[i] : fromFirst[i];
        }
        onDevice();
        DeviceBuffer cosBuffer = newBuffer(size, "rotary cosines");
        DeviceBuffer sinBuffer = newBuffer(size, "rotary sines");
        uploadArray(cos, 0, size, cosBuffer, 0);
        uploadArray(sin, 0, size, sinBuffer, 0);
        return new DeviceRotary(this, cosBuffer, sinBuffer, headDim, maxPositions, pairing);
    }

    @Override
    public void matmul(Tensor x, Tensor w, Layout layout, Tensor bias, Tensor y) {
        if (w instanceof DeviceQuantized q && q.owner == this) {
            quantizedMatmul(device("x", x), q, layout, bias, device("y", y));
            return;
        }
        DeviceTensor a = device("x", x);
        DeviceTensor b = device("w", w);
        DeviceTensor c = device("y", y);
        TensorChecks.Widths widths = TensorChecks.matmul(a, b, layout, c);
        int in = widths.in();
        int out = widths.out();
        float beta = 0;
        if (bias != null) {
            DeviceTensor d = device("bias", bias);
            TensorChecks.biasRow("bias", d, out);
            launchRows("broadcast_row", c.rows, c.cols, d.buffer, d.offset, c, c.rows, c.cols);
            beta = 1;
        }
        gemm(false, layout == Layout.OUT_IN, a.rows, out, in, a, b, beta, c);
    }

    @Override
    public void matmulBackward(
            Tensor x, Tensor w, Layout layout, Tensor dy, Tensor dx, boolean accumulate, Tensor dw, Tensor dbias) {
        DeviceTensor a = device("x", x);
        DeviceTensor b = device("w", w);
        DeviceTensor g = device("dy", dy);
        DeviceTensor gw = device("dw", dw);
        TensorChecks.Widths widths = TensorChecks.matmulBackward(a, b, layout, g, gw);
        boolean outIn = layout == Layout.OUT_IN;
        int in = widths.in();
        int out = widths.out();
        int m = a.rows;
        if (dx != null) {
            DeviceTensor gx = device("dx", dx);
            TensorChecks.sameShape("dx", gx, "x", a);
            // dx = dy·W for W [out, in]; dy·Wᵀ for W [in, out].
            gemm(false, !outIn, m, in, out, g, b, accumulate ? 1f : 0f, gx);
        }
        // dW += dyᵀ·x for W [out, in]; xᵀ·dy for W [in, out].
        gemm(true, false, gw.rows, gw.cols, m, outIn ? g : a, outIn ? a : g, 1f, gw);
        if (dbias != null) {
            DeviceTensor gb = device("dbias", dbias);
            TensorChecks.biasRow("dbias", gb, out);
            // The column sums of dy as a product with a row of ones: cuBLAS's fixed order, no atomics.
            gemm(false, false, 1, out, m, ones(m), g, 1f, gb);
        }
    }

    /**
     * {@code y = x·Wᵀ} for weights in a block format: {@code quantized_matvec} on {@value #MATVEC_ROWS} rows of x at a
     * time, reading the weights once per {@value #MATVEC_ROWS} rows, while those passes move fewer bytes than a
     * dequantization (4 bytes written and read again per weight); more rows go through cuBLAS on the weights
     * dequantized {@link #DEQUANTIZED_FLOATS} floats of rows at a time, at the backend's precision.
     */
    private void quantizedMatmul(DeviceTensor x, DeviceQuantized w, Layout layout, Tensor bias, DeviceTensor y) {
        TensorChecks.quantizedMatmul(x, w.format, w.rows, w.cols, layout, bias, y);
        if (x.rows == 0 || w.rows == 0) {
            return;
        }
        onDevice();
        if (w.cols == 0) {
            zero(y);
            return;
        }
        if (matvecPays(w.format, x.rows)) {
            for (int first = 0; first < x.rows; first += MATVEC_ROWS) {
                int rows = Math.min(MATVEC_ROWS, x.rows - first);
                launch(
                        "quantized_matvec",
                        Dim3.of(Math.ceilDiv(w.rows, MATVEC_WARPS)),
                        Dim3.of(MATVEC_WARPS * 32),
                        0,
                        w.buffer,
                        w.offset,
                        w.rowUnits(),
                        formatCode(w.format),
                        w.rows,
                        w.cols,
                        (DeviceTensor) x.rows(first, rows),
                        rows,
                        (DeviceTensor) y.rows(first, rows));
            }
            return;
        }
        int slice = dequantizedRows(w.rows, w.cols);
        DeviceBuffer floats = dequantizedBuffer((long) slice * w.cols);
        for (int first = 0; first < w.rows; first += slice) {
            int rows = Math.min(slice, w.rows - first);
            DeviceTensor part = new DeviceTensor(this, floats, 0, rows, w.cols, w.cols);
            dequantize(w, null, first, part);
            gemm(false, true, x.rows, rows, w.cols, x, part, 0f, (DeviceTensor) y.columns(first, rows));
        }
    }

    /**
     * Whether {@code quantized_matvec}'s passes over {@code rows} rows of activations, each reading the weights' blocks,
     * move fewer bytes than dequantizing them once (4 bytes written and read again per weight).
     */
    private static boolean matvecPays(WeightFormat format, int rows) {
        long passes = Math.ceilDiv(rows, MATVEC_ROWS);
        long blockBytes = format.bytesPerBlock();
        return passes * blockBytes < (long) Float.BYTES * 2 * format.blockLength() + blockBytes;
    }

    /** The weight rows a product dequantizes at a time: {@link #DEQUANTIZED_FLOATS} floats of them, at least one. */
    private static int dequantizedRows(int rows, int cols) {
        return Math.clamp(DEQUANTIZED_FLOATS / cols, 1, rows);
    }

    private DeviceBuffer dequantizedBuffer(long floats) {
        return scratch(
                dequantized, b -> dequantized = b, ElementType.FLOAT, floats, "weights dequantized for a product");
    }

    /** Rows of quantized weights into floats: row {@code r} of out is weight row ids[r], or first + r without ids. */
    private void dequantize(DeviceQuantized w, DeviceBuffer ids, int first, DeviceTensor out) {
        launchRows(
                "dequantize_rows",
                out.rows,
                out.cols,
                w.buffer,
                w.offset,
                w.rowUnits(),
                formatCode(w.format),
                ids == null ? out.buffer : ids,
                ids == null ? 0 : 1,
                first,
                out,
                out.rows,
                out.cols);
    }

    /** The format's number in {@code transformer.cu} ({@code FORMAT_Q8_0} ...). */
    private static int formatCode(WeightFormat format) {
        return switch (format) {
            case Q8_0 -> 0;
            case Q4_0 -> 1;
            case F16 -> 2;
            case BF16 -> 3;
            case F32 -> throw new IllegalArgumentException("F32 weights are ordinary tensors");
        };
    }

    /** A {@code [1, count]} row of ones, grown on demand; every element of the buffer is set, not only count. */
    private DeviceTensor ones(int count) {
        if (ones == null || ones.length() < count) {
            scratch(ones, b -> ones = b, ElementType.FLOAT, count, "a row of " + count + " ones");
            onesFilled = false;
        }
        if (!onesFilled) {
            // The whole allocation (at least 64), since a later, longer row that fits it skips this fill.
            float[] values = new float[Math.toIntExact(ones.length())];
            java.util.Arrays.fill(values, 1f);
            uploadArray(values, 0, values.length, ones, 0);
            onesFilled = true;
        }
        return new DeviceTensor(this, ones, 0, 1, count, count);
    }

    /**
     * Row-major {@code C = op(A)·op(B) + beta·C} ({@code m × n}, inner size k) through cuBLAS ({@link Cublas} takes
     * row-major operands and makes the column-major call itself).
     */
    private void gemm(
            boolean transA,
            boolean transB,
            int m,
            int n,
            int k,
            DeviceTensor a,
            DeviceTensor b,
            float beta,
            DeviceTensor c) {
        if (m == 0 || n == 0) {
            return;
        }
        onDevice();
        if (precision != MatmulPrecision.BF16) {
            Cublas.ComputeType compute =
                    precision == MatmulPrecision.TF32 ? Cublas.ComputeType.FP32_FAST_TF32 : Cublas.ComputeType.FP32;
            cublas.gemmEx(
                    compute,
                    m,
                    n,
                    k,
                    1f,
                    operand(a.buffer, a.offset, a.ld, transA),
                    operand(b.buffer, b.offset, b.ld, transB),
                    beta,
                    operand(c.buffer, c.offset, c.ld, false));
            return;
        }
        // Stored shapes: A is m × k (k × m transposed), B k × n (n × k); each is rounded into a dense copy.
        int aRows = transA ? k : m;
        int aCols = transA ? m : k;
        int bRows = transB ? n : k;
        int bCols = transB ? k : n;
        DeviceBuffer a16 = toBfloat16(0, a, aRows, aCols);
        DeviceBuffer b16 = toBfloat16(1, b, bRows, bCols);
        cublas.gemmEx(
                Cublas.ComputeType.FP32,
                m,
                n,
                k,
                1f,
                operand(a16, 0, aCols, transA),
                operand(b16, 0, bCols, transB),
                beta,
                operand(c.buffer, c.offset, c.ld, false));
    }

    /** A product's operand; a leading dimension of 0 (an empty matrix) becomes the 1 cuBLAS requires. */
    private static Cublas.Matrix operand(DeviceBuffer buffer, long offset, int ld, boolean transposed) {
        Cublas.Matrix matrix = Cublas.Matrix.of(buffer, offset, Math.max(1, ld));
        return transposed ? matrix.transposed() : matrix;
    }

    /** {@code rows × cols} of {@code t} rounded to bfloat16 into the dense scratch operand {@code slot}. */
    private DeviceBuffer toBfloat16(int slot, DeviceTensor t, int rows, int cols) {
        DeviceBuffer operand = bfloat16Operand(slot, (long) rows * cols);
        launchRows("to_bfloat16", rows, cols, t.buffer, t.offset, t.ld, operand, rows, cols);
        return operand;
    }

    private DeviceBuffer bfloat16Operand(int slot, long count) {
        return scratch(
                bfloat16Operands[slot],
                b -> bfloat16Operands[slot] = b,
                ElementType.BFLOAT16,
                count,
                "a product's operand in bfloat16");
    }

    @Override
    public void rmsNorm(Tensor x, Tensor weight, float epsilon, Tensor y, Tensor rstd) {
        DeviceTensor in = device("x", x);
        DeviceTensor w = device("weight", weight);
        DeviceTensor out = device("y", y);
        TensorChecks.sameShape("y", out, "x", in);
        TensorChecks.same("weight.cols", w.cols, "x.cols", in.cols);
        DeviceTensor r = rstd == null ? null : rowStatistic("rstd", rstd, in.rows);
        if (in.rows == 0) {
            return;
        }
        launchRowBlocks(
                "rmsnorm_forward",
                in.rows,
                in.cols,
                in,
                w.buffer,
                w.offset,
                out,
                r == null ? out.buffer : r.buffer,
                r == null ? 0L : r.offset,
                r == null ? 0 : 1,
                in.rows,
                in.cols,
                epsilon);
    }

    @Override
    public void rmsNormBackward(Tensor x, Tensor weight, Tensor rstd, Tensor dy, Tensor dx, Tensor dweight) {
        DeviceTensor in = device("x", x);
        DeviceTensor w = device("weight", weight);
        DeviceTensor r = rowStatistic("rstd", rstd, in.rows);
        DeviceTensor g = device("dy", dy);
        DeviceTensor dIn = device("dx", dx);
        DeviceTensor dw = device("dweight", dweight);
        TensorChecks.normBackward(in, w, g, dIn, dw);
        normBackward(in, w, null, r, g, dIn, dw, null);
    }

    /**
     * The weight (and bias) gradients first, since dx may overwrite dy, then dx; a null mean is RMSNorm's. The column
     * sums run over spans of rows in parallel, then over the spans in order, so the result has the same bits every run.
     */
    private void normBackward(
            DeviceTensor x,
            DeviceTensor w,
            DeviceTensor mean,
            DeviceTensor rstd,
            DeviceTensor dy,
            DeviceTensor dx,
            DeviceTensor dweight,
            DeviceTensor dbias) {
        if (x.rows == 0 || x.cols == 0) {
            return;
        }
        onDevice();
        int spans = (x.rows + NORM_ROWS_SPAN - 1) / NORM_ROWS_SPAN;
        DeviceBuffer partials = scratch(
                normPartials,
                b -> normPartials = b,
                ElementType.FLOAT,
                (dbias == null ? 1L : 2L) * spans * x.cols,
                "a norm's partial weight gradients");
        int columnBlocks = (x.cols + BLOCK - 1) / BLOCK;
        launch(
                "norm_backward_partials",
                Dim3.of(columnBlocks, Math.min(spans, MAX_GRID_ROWS)),
                Dim3.of(BLOCK),
                0,
                x,
                dy,
                mean == null ? rstd.buffer : mean.buffer,
                mean == null ? 0L : mean.offset,
                mean == null ? 0 : 1,
                rstd.buffer,
                rstd.offset,
                x.rows,
                x.cols,
                partials,
                spans,
                dbias == null ? 0 : 1);
        launch(
                "norm_backward_weights",
                Dim3.of(columnBlocks),
                Dim3.of(BLOCK),
                0,
                partials,
                spans,
                x.cols,
                dweight.buffer,
                dweight.offset,
                dbias == null ? dweight.buffer : dbias.buffer,
                dbias == null ? 0L : dbias.offset,
                dbias == null ? 0 : 1);
        launchRowBlocks(
                "norm_backward_input",
                x.rows,
                x.cols,
                x,
                w.buffer,
                w.offset,
                mean == null ? rstd.buffer : mean.buffer,
                mean == null ? 0L : mean.offset,
                mean == null ? 0 : 1,
                rstd.buffer,
                rstd.offset,
                dy,
                dx,
                x.rows,
                x.cols);
    }

    @Override
    public void layerNorm(Tensor x, Tensor weight, Tensor bias, float epsilon, Tensor y, Tensor mean, Tensor rstd) {
        DeviceTensor in = device("x", x);
        DeviceTensor w = device("weight", weight);
        DeviceTensor b = device("bias", bias);
        DeviceTensor out = device("y", y);
        TensorChecks.sameShape("y", out, "x", in);
        TensorChecks.same("weight.cols", w.cols, "x.cols", in.cols);
        TensorChecks.same("bias.cols", b.cols, "x.cols", in.cols);
        if ((mean == null) != (rstd == null)) {
            throw new IllegalArgumentException("mean and rstd must both be given or both be null on the CUDA backend");
        }
        DeviceTensor mu = mean == null ? null : rowStatistic("mean", mean, in.rows);
        DeviceTensor r = rstd == null ? null : rowStatistic("rstd", rstd, in.rows);
        if (in.rows == 0) {
            return;
        }
        launchRowBlocks(
                "layernorm_forward",
                in.rows,
                in.cols,
                in,
                w.buffer,
                w.offset,
                b.buffer,
                b.offset,
                out,
                mu == null ? out.buffer : mu.buffer,
                mu == null ? 0L : mu.offset,
                r == null ? out.buffer : r.buffer,
                r == null ? 0L : r.offset,
                mu == null ? 0 : 1,
                in.rows,
                in.cols,
                epsilon);
    }

    @Override
    public void layerNormBackward(
            Tensor x, Tensor weight, Tensor mean, Tensor rstd, Tensor dy, Tensor dx, Tensor dweight, Tensor dbias) {
        DeviceTensor in = device("x", x);
        DeviceTensor w = device("weight", weight);
        DeviceTensor mu = rowStatistic("mean", mean, in.rows);
        DeviceTensor r = rowStatistic("rstd", rstd, in.rows);
        DeviceTensor g = device("dy", dy);
        DeviceTensor dIn = device("dx", dx);
        DeviceTensor dw = device("dweight", dweight);
        DeviceTensor db = device("dbias", dbias);
        TensorChecks.normBackward(in, w, g, dIn, dw);
        TensorChecks.sameShape("dbias", db, "weight", w);
        normBackward(in, w, mu, r, g, dIn, dw, db);
    }

    /** A per-row statistic: one dense column of {@code rows} floats. */
    private DeviceTensor rowStatistic(String name, Tensor tensor, int rows) {
        DeviceTensor t = device(name, tensor);
        if (t.rows != rows || t.cols != 1 || !t.dense()) {
            throw new IllegalArgumentException(name + " (" + t.rows + " × " + t.cols + ", row stride " + t.ld
                    + ") must be a dense " + rows + " × 1 column");
        }
        return t;
    }

    @Override
    public void rope(Rotary rotary, Tensor x, int heads, int position) {
        rotate(rotary, device("x", x), heads, position, 1f);
    }

    @Override
    public void ropeBackward(Rotary rotary, Tensor dx, int heads, int position) {
        rotate(rotary, device("dx", dx), heads, position, -1f);
    }

    private void rotate(Rotary rotary, DeviceTensor x, int heads, int position, float sign) {
        if (!(rotary instanceof DeviceRotary r) || r.owner != this) {
            throw new IllegalArgumentException("rotary (" + rotary + ") must come from this backend");
        }
        if (heads < 0 || (long) heads * r.headDim != x.cols) {
            throw new IllegalArgumentException("heads (" + heads + ") × headDim (" + r.headDim
                    + ") must equal the tensor's columns (" + x.cols + ")");
        }
        if (position < 0 || (long) position + x.rows > r.maxPositions) {
            throw new IndexOutOfBoundsException("position (" + position + ") + rows (" + x.rows
                    + ") must be in [0, maxPositions (" + r.maxPositions + ")]");
        }
        int pairs = heads * (r.headDim / 2);
        if (x.rows == 0 || pairs == 0) {
            return;
        }
        launchRows(
                "rope_rotate",
                x.rows,
                pairs,
                x,
                x.rows,
                heads,
                r.headDim,
                position,
                r.cos,
                r.sin,
                r.pairing == Rope.Pairing.ADJACENT ? 0 : 1,
                sign);
    }

    @Override
    public void attention(
            Tensor q,
            Tensor keys,
            Tensor values,
            int heads,
            int kvHeads,
            int sequences,
            int position,
            Tensor out,
            Tensor lse) {
        DeviceTensor query = device("q", q);
        DeviceTensor k = device("keys", keys);
        DeviceTensor v = device("values", values);
        DeviceTensor o = device("out", out);
        TensorChecks.AttentionLayout a = TensorChecks.attention(query, k, v, heads, kvHeads, sequences, position, o);
        checkHeads(heads, kvHeads, a.headDim());
        DeviceTensor l = null;
        if (lse != null) {
            l = device("lse", lse);
            TensorChecks.same("lse.rows", l.rows, "q.rows", query.rows);
            TensorChecks.same("lse.cols", l.cols, "heads", heads);
        }
        if (a.queries() == 0 || a.headDim() == 0) {
            return;
        }
        onDevice();
        int hd = a.headDim();
        // The keys the last query sees: few queries over many keys (decoding) split the keys over blocks of one warp.
        int seen = position + a.queries();
        KeySplit keySplit = keySplit(seen, splitBlocks(a.queries(), heads, kvHeads, sequences), multiprocessors);
        boolean split = a.queries() <= ATTENTION_WARPS && keySplit.splits() > 1;
        int warps = split ? splitWarps(heads, kvHeads) : ATTENTION_WARPS;
        int keyChunk = split ? keySplit.chunk() : 0;
        int splits = split ? keySplit.splits() : 1;
        DeviceBuffer partials = split ? partialsBuffer(partialsFloats(query.rows, heads, splits, hd)) : o.buffer;
        float scale = (float) (1 / Math.sqrt(hd));
        int sharedFloats = ATTENTION_TILE * (hd + 1) + ATTENTION_TILE * hd + warps * (hd + ATTENTION_TILE);
        launch(
                "attention_forward",
                split
                        ? new Dim3(a.queries() * splits, heads / warps, sequences)
                        : new Dim3(Math.ceilDiv(a.queries(), warps), heads, sequences),
                Dim3.of(warps * 32),
                sharedFloats * Float.BYTES,
                query,
                k,
                v,
                o,
                l == null ? o.buffer : l.buffer,
                l == null ? 0L : l.offset,
                l == null ? 0 : l.ld,
                l == null ? 0 : 1,
                heads,
                kvHeads,
                hd,
                a.queries(),
                a.keys(),
                position,
                scale,
                splits,
                keyChunk,
                partials);
        if (split) {
            launch(
                    "attention_combine",
                    new Dim3(
                            Math.toIntExact(Math.ceilDiv((long) query.rows * heads, ATTENTION_WARPS)),
                            Math.ceilDiv(hd, ATTENTION_TILE),
                            1),
                    Dim3.of(ATTENTION_WARPS * 32),
                    ATTENTION_WARPS * splits * Float.BYTES,
                    partials,
                    splits,
                    heads,
                    hd,
                    (long) query.rows,
                    o,
                    l == null ? o.buffer : l.buffer,
                    l == null ? 0L : l.offset,
                    l == null ? 0 : l.ld,
                    l == null ? 0 : 1,
                    // What a query whose float softmax gives no weight is computed again from, in double.
                    query,
                    k,
                    v,
                    kvHeads,
                    a.queries(),
                    a.keys(),
                    position,
                    scale);
        }
    }

    /**
     * How a split attention divides its keys: {@code splits} blocks per query and head group, each taking {@code
     * chunk} keys (whole tiles; the last split takes the rest).
     *
     * @param splits the splits, 1 for none
     * @param chunk the keys per split
     */
    record KeySplit(int splits, int chunk) {}

    /**
     * The split of the {@code keys} keys a few queries' last one sees, where each split adds {@code blocksPerSplit}
     * blocks: splits enough for {@value #SPLIT_BLOCKS_PER_MULTIPROCESSOR} blocks per multiprocessor (a decode's one
     * block per head group and query would leave most of a GPU idle; whole tiles per split keep at least two where
     * there are 64 keys per planned split), but none allotted fewer than {@value #MIN_SPLIT_KEYS} keys, and at most
     * {@value #MAX_KEY_SPLITS}. It depends only on its arguments, so a device
     * gives the same bits every run; another device's chunking changes the results only by float rounding, within
     * attention's bound of 8(keys + headDim)ε of the values' magnitude.
     *
     * @param keys the keys the last query sees, at least 1
     * @param blocksPerSplit blocks each split launches, at least 1
     * @param multiprocessors the device's multiprocessors, at least 1
     * @return the split
     */
    static KeySplit keySplit(int keys, long blocksPerSplit, int multiprocessors) {
        int planned = plannedSplits(keys, blocksPerSplit, multiprocessors);
        int chunk = Math.ceilDiv(Math.ceilDiv(keys, planned), ATTENTION_TILE) * ATTENTION_TILE;
        return new KeySplit(Math.ceilDiv(keys, chunk), chunk);
    }

    /**
     * The splits {@link #keySplit} aims for: at least its count, which whole tiles may lower, and growing with {@code
     * keys}, so that the count at a context's length bounds the count at every shorter one.
     */
    static int plannedSplits(int keys, long blocksPerSplit, int multiprocessors) {
        long filling = Math.ceilDiv((long) SPLIT_BLOCKS_PER_MULTIPROCESSOR * multiprocessors, blocksPerSplit);
        return Math.clamp(Math.min(filling, Math.ceilDiv(keys, MIN_SPLIT_KEYS)), 1, MAX_KEY_SPLITS);
    }

    /** The blocks one key split of a split attention launches: a block per query and per {@link #splitWarps} heads. */
    private static long splitBlocks(int queries, int heads, int kvHeads, int sequences) {
        return (long) queries * (heads / splitWarps(heads, kvHeads)) * sequences;
    }

    /** A split block takes one query of as many heads of a key/value group as fit, sharing each staged tile. */
    private static int splitWarps(int heads, int kvHeads) {
        return largestDivisorAtMost(heads / kvHeads, SPLIT_HEADS_MAX);
    }

    /** The floats of the partial softmaxes of {@code rows} query rows: a half-mean, a maximum and a sum per split. */
    private static long partialsFloats(int rows, int heads, int splits, int headDim) {
        return (long) rows * heads * splits * (headDim + 2);
    }

    private DeviceBuffer partialsBuffer(long floats) {
        return scratch(
                attentionPartials,
                b -> attentionPartials = b,
                ElementType.FLOAT,
                floats,
                "attention's partial softmaxes");
    }

    /** The largest divisor of {@code n} (at least 1) that is at most {@code most}. */
    private static int largestDivisorAtMost(int n, int most) {
        for (int d = Math.min(n, most); d > 1; d--) {
            if (n % d == 0) {
                return d;
            }
        }
        return 1;
    }

    /** The grouping and head width the attention kernels handle (on the CPU, the kernels module checks its own). */
    private static void checkHeads(int heads, int kvHeads, int headDim) {
        if (kvHeads < 1 || heads % kvHeads != 0) {
            throw new IllegalArgumentException(
                    "kvHeads (" + kvHeads + ") must be >= 1 and divide heads (" + heads + ")");
        }
        if (headDim > MAX_HEAD_DIM) {
            throw new IllegalArgumentException(
                    "headDim (" + headDim + ") must be <= " + MAX_HEAD_DIM + " on the CUDA backend");
        }
    }

    @Override
    public void attentionBackward(
            Tensor q,
            Tensor keys,
            Tensor values,
            Tensor out,
            Tensor lse,
            Tensor dout,
            int heads,
            int kvHeads,
            int sequences,
            Tensor dq,
            Tensor dk,
            Tensor dv) {
        DeviceTensor query = device("q", q);
        DeviceTensor k = device("keys", keys);
        DeviceTensor v = device("values", values);
        DeviceTensor o = device("out", out);
        DeviceTensor l = device("lse", lse);
        DeviceTensor dO = device("dout", dout);
        DeviceTensor dQ = device("dq", dq);
        DeviceTensor dK = device("dk", dk);
        DeviceTensor dV = device("dv", dv);
        TensorChecks.AttentionLayout a =
                TensorChecks.attentionBackward(query, k, v, o, l, dO, heads, kvHeads, sequences, dQ, dK, dV);
        checkHeads(heads, kvHeads, a.headDim());
        int hd = a.headDim();
        if (a.queries() == 0 || hd == 0) {
            return;
        }
        onDevice();
        // D per (row, head), then what attention_backward_dq leaves for dkdv: whether it takes a query in double, and
        // that query's statistics.
        long deltaFloats = (long) query.rows * heads * (1 + ATTENTION_EXACT_STATS);
        scratch(attentionDelta, b -> attentionDelta = b, ElementType.FLOAT, deltaFloats, "attention's backward deltas");
        launchRows("attention_backward_delta", query.rows, heads, o, dO, query.rows, heads, hd, attentionDelta);
        float scale = (float) (1 / Math.sqrt(hd));
        int blocks = (a.queries() + ATTENTION_WARPS - 1) / ATTENTION_WARPS;
        int tileFloats = ATTENTION_TILE * (hd + 1);
        launch(
                "attention_backward_dq",
                new Dim3(blocks, heads, sequences),
                Dim3.of(ATTENTION_WARPS * 32),
                (2 * tileFloats + ATTENTION_WARPS * (2 * hd + ATTENTION_TILE)) * Float.BYTES,
                query,
                k,
                v,
                o,
                dO,
                l,
                attentionDelta,
                dQ,
                heads,
                kvHeads,
                hd,
                a.queries(),
                scale);
        launch(
                "attention_backward_dkdv",
                new Dim3(blocks, kvHeads, sequences),
                Dim3.of(ATTENTION_WARPS * 32),
                (2 * tileFloats + 2 * ATTENTION_TILE + ATTENTION_WARPS * (2 * hd + 2 * ATTENTION_TILE)) * Float.BYTES,
                query,
                k,
                v,
                o,
                dO,
                l,
                attentionDelta,
                dK,
                dV,
                heads,
                kvHeads,
                hd,
                a.queries(),
                scale);
    }

    @Override
    public void swiglu(Tensor gate, Tensor up, Tensor y) {
        DeviceTensor g = device("gate", gate);
        DeviceTensor u = device("up", up);
        DeviceTensor out = device("y", y);
        TensorChecks.sameShape("up", u, "gate", g);
        TensorChecks.sameShape("y", out, "gate", g);
        launchRows("swiglu_forward", g.rows, g.cols, g, u, out, g.rows, g.cols);
    }

    @Override
    public void swigluBackward(Tensor gate, Tensor up, Tensor dy, Tensor dgate, Tensor dup) {
        DeviceTensor g = device("gate", gate);
        DeviceTensor u = device("up", up);
        DeviceTensor d = device("dy", dy);
        DeviceTensor dg = device("dgate", dgate);
        DeviceTensor du = device("dup", dup);
        TensorChecks.swigluBackward(g, u, d, dg, du);
        dense(g, u, d, dg, du);
        launchFlat(
                "swiglu_backward",
                g.size(),
                g.buffer,
                g.offset,
                u.buffer,
                u.offset,
                d.buffer,
                d.offset,
                dg.buffer,
                dg.offset,
                du.buffer,
                du.offset,
                g.size());
    }

    @Override
    public void gelu(Tensor x, Tensor y) {
        DeviceTensor in = device("x", x);
        DeviceTensor out = device("y", y);
        TensorChecks.sameShape("y", out, "x", in);
        launchRows("gelu_forward", in.rows, in.cols, in, out, in.rows, in.cols);
    }

    @Override
    public void geluBackward(Tensor x, Tensor dy, Tensor dx) {
        DeviceTensor in = device("x", x);
        DeviceTensor d = device("dy", dy);
        DeviceTensor out = device("dx", dx);
        TensorChecks.sameShape("dy", d, "x", in);
        TensorChecks.sameShape("dx", out, "x", in);
        launchRows("gelu_backward", in.rows, in.cols, in, d, out, in.rows, in.cols);
    }

    @Override
    public void add(Tensor a, Tensor b, Tensor y) {
        DeviceTensor l = device("a", a);
        DeviceTensor r = device("b", b);
        DeviceTensor out = device("y", y);
        TensorChecks.sameShape("b", r, "a", l);
        TensorChecks.sameShape("y", out, "a", l);
        launchRows("add_matrix", l.rows, l.cols, l, r, out, l.rows, l.cols);
    }

    @Override
    public void embedding(int[] tokens, int offset, Tensor table, Tensor out) {
        if (table instanceof DeviceQuantized q && q.owner == this) {
            DeviceTensor o = device("out", out);
            TensorChecks.same("out.cols", o.cols, "table.cols", q.cols);
            DeviceBuffer ids = ids("tokens", tokens, offset, o.rows, "table.rows", q.rows);
            if (o.rows > 0 && o.cols > 0) {
                dequantize(q, ids, 0, o);
            }
            return;
        }
        DeviceTensor t = device("table", table);
        DeviceTensor o = device("out", out);
        TensorChecks.same("out.cols", o.cols, "table.cols", t.cols);
        if (!t.dense()) {
            throw new IllegalArgumentException("table (" + t + ") must be dense");
        }
        startsItsBuffer("table", t);
        DeviceBuffer ids = ids("tokens", tokens, offset, o.rows, "table.rows", t.rows);
        if (o.rows == 0 || o.cols == 0) {
            return;
        }
        launchRows("embedding_forward", o.rows, o.cols, ids, t.buffer, o, o.rows, o.cols);
    }

    @Override
    public void embeddingBackward(int[] tokens, int offset, Tensor dout, Tensor dtable) {
        DeviceTensor d = device("dout", dout);
        DeviceTensor t = device("dtable", dtable);
        TensorChecks.same("dout.cols", d.cols, "dtable.cols", t.cols);
        dense(t);
        startsItsBuffer("dtable", t);
        float[] ids = checkedIds("tokens", tokens, offset, d.rows, "dtable.rows", t.rows);
        if (d.rows == 0 || d.cols == 0) {
            return;
        }
        float[] groups = tokenGroups(ids);
        int groupCount = (groups.length - ids.length - 1) / 2;
        launchRows(
                "embedding_backward",
                groupCount,
                d.cols,
                uploadToIdBuffer(groups),
                d.rows,
                groupCount,
                d,
                t.buffer,
                t.cols);
    }

    /**
     * What {@code embedding_backward} reads, as floats: the rows grouped by token (each token's rows in increasing
     * order), then each group's token, then where each group starts among the rows, and the row count after the last.
     */
    static float[] tokenGroups(float[] ids) {
        long[] tokenThenRow = new long[ids.length];
        for (int i = 0; i < ids.length; i++) {
            tokenThenRow[i] = (long) ids[i] << 32 | i;
        }
        Arrays.sort(tokenThenRow);
        int groupCount = 0;
        for (int i = 0; i < ids.length; i++) {
            if (i == 0 || tokenThenRow[i] >>> 32 != tokenThenRow[i - 1] >>> 32) {
                groupCount++;
            }
        }
        float[] groups = new float[ids.length + 2 * groupCount + 1];
        int group = 0;
        for (int i = 0; i < ids.length; i++) {
            groups[i] = (int) tokenThenRow[i];
            if (i == 0 || tokenThenRow[i] >>> 32 != tokenThenRow[i - 1] >>> 32) {
                groups[ids.length + group] = tokenThenRow[i] >>> 32;
                groups[ids.length + groupCount + group] = i;
                group++;
            }
        }
        groups[ids.length + 2 * groupCount] = ids.length;
        return groups;
    }

    @Override
    public float crossEntropy(Tensor logits, int[] targets, int offset, Tensor dlogits, float gradientScale) {
        DeviceTensor x = device("logits", logits);
        DeviceTensor d = dlogits == null ? null : device("dlogits", dlogits);
        if (d != null) {
            TensorChecks.sameShape("dlogits", d, "logits", x);
        }
        DeviceBuffer ids = ids("targets", targets, offset, x.rows, "logits.cols", x.cols);
        if (x.rows == 0) {
            return 0;
        }
        DeviceBuffer losses = queueCrossEntropy(x, d, ids, gradientScale);
        float[] perRow = new float[x.rows];
        losses.copyToAsync(0, perRow, 0, x.rows, stream);
        // Summed in row order: the same loss every run.
        double sum = 0;
        for (float loss : perRow) {
            sum += loss;
        }
        return (float) (sum / x.rows);
    }

    /** Queues the losses of the rows of x (and the gradient into d, if not null) into the per-row results. */
    private DeviceBuffer queueCrossEntropy(DeviceTensor x, DeviceTensor d, DeviceBuffer ids, float gradientScale) {
        DeviceBuffer losses = rowResults(x.rows);
        launchRowBlocks(
                "cross_entropy_rows",
                x.rows,
                x.cols,
                x,
                x.rows,
                x.cols,
                ids,
                d == null ? losses : d.buffer,
                d == null ? 0L : d.offset,
                d == null ? 0 : d.ld,
                d == null ? 0 : 1,
                gradientScale / x.rows,
                losses);
        return losses;
    }

    /** A training step's totals in device memory: {@code [norm, clip factor, (loss, correct) per micro-batch]}. */
    private final class DeviceStepTotals implements StepTotals {
        private final int microBatches;
        private final long generation;
        private boolean clipped;

        DeviceStepTotals(int microBatches, long generation) {
            this.microBatches = microBatches;
            this.generation = generation;
        }

        @Override
        public StepValues read() {
            current(this);
            float[] values = new float[2 + 2 * microBatches];
            onDevice();
            stepValues.copyToAsync(0, values, 0, values.length, stream);
            float[] losses = new float[microBatches];
            long[] correct = new long[microBatches];
            for (int i = 0; i < microBatches; i++) {
                losses[i] = values[2 + 2 * i];
                correct[i] = Float.floatToRawIntBits(values[3 + 2 * i]);
            }
            return new StepValues(losses, correct, clipped ? values[0] : Float.NaN);
        }

        CudaBackend owner() {
            return CudaBackend.this;
        }

        @Override
        public String toString() {
            return "step totals of " + CudaBackend.this;
        }
    }

    /** Totals of this backend's current step, checked to have micro-batch {@code microBatch}. */
    private DeviceStepTotals current(StepTotals totals, int microBatch) {
        DeviceStepTotals t = current(totals);
        Objects.checkIndex(microBatch, t.microBatches);
        return t;
    }

    private DeviceStepTotals current(StepTotals totals) {
        if (!(Objects.requireNonNull(totals, "totals") instanceof DeviceStepTotals t) || t.owner() != this) {
            throw new IllegalArgumentException("totals (" + totals + ") must come from this backend");
        }
        if (t.generation != stepGeneration) {
            throw new IllegalStateException("totals (" + totals + ") are from an earlier step: each stepTotals call"
                    + " starts anew in the same device memory");
        }
        ensureOpen();
        return t;
    }

    /** Starts a step's totals in device memory, zeroed: the host reads them once, at {@link StepTotals#read()}. */
    @Override
    public StepTotals stepTotals(int microBatches) {
        if (microBatches < 1) {
            throw new IllegalArgumentException("microBatches (" + microBatches + ") must be >= 1");
        }
        onDevice();
        int floats = 2 + 2 * microBatches;
        // Earlier totals end here, before their memory may be freed by the growth below.
        long generation = ++stepGeneration;
        scratch(stepValues, b -> stepValues = b, ElementType.FLOAT, floats, "a training step's totals");
        launchRows("zero_matrix", 1, floats, stepValues, 0L, floats, 1, floats);
        return new DeviceStepTotals(microBatches, generation);
    }

    /** Queues the correct count, then the loss and gradient, and their totals: nothing comes back to the host. */
    @Override
    public void crossEntropy(
            Tensor logits,
            int[] targets,
            int offset,
            Tensor dlogits,
            float gradientScale,
            StepTotals totals,
            int microBatch) {
        current(totals, microBatch);
        DeviceTensor x = device("logits", logits);
        DeviceTensor d = dlogits == null ? null : device("dlogits", dlogits);
        if (d != null) {
            TensorChecks.sameShape("dlogits", d, "logits", x);
        }
        checkArgmaxColumns(x);
        DeviceBuffer ids = ids("targets", targets, offset, x.rows, "logits.cols", x.cols);
        if (x.rows == 0) {
            return;
        }
        scratch(bestColumns, b -> bestColumns = b, ElementType.FLOAT, x.rows, "each row's argmax");
        launchRowBlocks("argmax_rows", x.rows, x.cols, x, x.rows, x.cols, bestColumns);
        DeviceBuffer losses = queueCrossEntropy(x, d, ids, gradientScale);
        launch(
                "step_totals",
                Dim3.of(1),
                Dim3.of(BLOCK),
                0,
                losses,
                bestColumns,
                ids,
                x.rows,
                stepValues,
                2 + 2 * microBatch);
    }

    /** The partial sums of every gradient into one buffer, then the norm and the clipping factor, on the device. */
    @Override
    public void clipGradients(List<Tensor> gradients, float maxNorm, StepTotals totals) {
        DeviceStepTotals t = current(totals);
        List<DeviceTensor> tensors = new ArrayList<>(gradients.size());
        long pairs = 0;
        for (Tensor g : gradients) {
            DeviceTensor d = device("gradient", g);
            tensors.add(d);
            pairs += squareBlocks(d);
        }
        if (pairs > Integer.MAX_VALUE / 2) {
            throw new IllegalArgumentException(
                    "gradients (" + pairs * SQUARES_SPAN + " values) are too many to sum" + " on the CUDA backend");
        }
        DeviceBuffer partials = rowResults((int) Math.max(1, 2 * pairs));
        long at = 0;
        for (DeviceTensor d : tensors) {
            long blocks = squareBlocks(d);
            if (blocks > 0) {
                launch(
                        "sum_of_squares_partials",
                        Dim3.of((int) blocks),
                        Dim3.of(BLOCK),
                        0,
                        d,
                        d.rows,
                        d.cols,
                        partials,
                        2 * at);
            }
            at += blocks;
        }
        launch("clip_gradients", Dim3.of(1), Dim3.of(BLOCK), 0, partials, (int) pairs, maxNorm, stepValues);
        t.clipped = true;
    }

    private static long squareBlocks(DeviceTensor t) {
        return (t.size() + SQUARES_SPAN - 1) / SQUARES_SPAN;
    }

    /** AdamW with the clipping factor {@link #clipGradients} left on the device; the kernel skips a non-finite one. */
    @Override
    public void adamw(Tensor param, Tensor grad, Tensor m, Tensor v, AdamWStep hyper, StepTotals totals) {
        DeviceStepTotals t = current(totals);
        if (!t.clipped) {
            throw new IllegalStateException("clipGradients must come before adamw with a step's totals");
        }
        queueAdamw(param, grad, m, v, hyper, stepValues);
    }

    @Override
    public int countCorrect(Tensor logits, int[] targets, int offset) {
        DeviceTensor x = device("logits", logits);
        Objects.checkFromIndexSize(offset, x.rows, Objects.requireNonNull(targets, "targets").length);
        float[] best = argmaxRows(x);
        int correct = 0;
        for (int i = 0; i < x.rows; i++) {
            if ((int) best[i] == targets[offset + i]) {
                correct++;
            }
        }
        return correct;
    }

    /** Each row's argmax column, read back. */
    private float[] argmaxRows(DeviceTensor x) {
        checkArgmaxColumns(x);
        float[] best = new float[x.rows];
        if (x.rows == 0) {
            return best;
        }
        DeviceBuffer result = rowResults(x.rows);
        launchRowBlocks("argmax_rows", x.rows, x.cols, x, x.rows, x.cols, result);
        result.copyToAsync(0, best, 0, x.rows, stream);
        return best;
    }

    private static void checkArgmaxColumns(DeviceTensor x) {
        if (x.cols < 1) {
            throw new IllegalArgumentException("cols (0) must be >= 1 for an argmax");
        }
        if (x.cols > MAX_EXACT_ID) {
            throw new IllegalArgumentException("cols (" + x.cols + ") must be <= " + MAX_EXACT_ID
                    + " on the CUDA backend, which returns columns as floats");
        }
    }

    /** A scratch buffer of at least {@code count} floats for per-row results, grown on demand. */
    private DeviceBuffer rowResults(int count) {
        onDevice();
        scratch(rowResults, b -> rowResults = b, ElementType.FLOAT, count, "per-row results");
        return rowResults;
    }

    @Override
    public void zero(Tensor tensor) {
        DeviceTensor t = device("tensor", tensor);
        launchRows("zero_matrix", t.rows, t.cols, t, t.rows, t.cols);
    }

    @Override
    public double sumOfSquares(Tensor tensor) {
        DeviceTensor t = device("tensor", tensor);
        long blocks = (t.size() + SQUARES_SPAN - 1) / SQUARES_SPAN;
        if (blocks == 0) {
            return 0;
        }
        if (blocks > Integer.MAX_VALUE / 2) {
            throw new IllegalArgumentException("tensor (" + t + ") is too large to sum on the CUDA backend");
        }
        DeviceBuffer partials = rowResults((int) (2 * blocks + 2));
        launch("sum_of_squares_partials", Dim3.of((int) blocks), Dim3.of(BLOCK), 0, t, t.rows, t.cols, partials, 0L);
        launch("squares_total", Dim3.of(1), Dim3.of(BLOCK), 0, partials, (int) blocks, partials, 2 * blocks);
        float[] total = new float[2];
        partials.copyToAsync(2 * blocks, total, 0, 2, stream);
        // The device's double total, as a float pair: the high part and the rest.
        return (double) total[0] + total[1];
    }

    @Override
    public void adamw(Tensor param, Tensor grad, Tensor m, Tensor v, AdamWStep hyper) {
        queueAdamw(param, grad, m, v, hyper, null);
    }

    /** AdamW with {@code hyper.gradScale()}, or with the clipping factor at element 1 of {@code scaleSource}. */
    private void queueAdamw(Tensor param, Tensor grad, Tensor m, Tensor v, AdamWStep hyper, DeviceBuffer scaleSource) {
        DeviceTensor p = device("param", param);
        DeviceTensor g = device("grad", grad);
        DeviceTensor first = device("m", m);
        DeviceTensor second = device("v", v);
        TensorChecks.adamw(p, g, first, second);
        dense(p, g, first, second);
        // The CPU kernel with no elements checks the hyperparameters as the CPU backend does (bounds and messages).
        AdamW.update(
                0,
                hyper.learningRate(),
                hyper.beta1(),
                hyper.beta2(),
                hyper.epsilon(),
                hyper.weightDecay(),
                hyper.step(),
                hyper.gradScale(),
                new float[0],
                0,
                new float[0],
                0,
                new float[0],
                0,
                new float[0],
                0);
        launchFlat(
                "adamw_update",
                p.size(),
                p.buffer,
                p.offset,
                g.buffer,
                g.offset,
                first.buffer,
                first.offset,
                second.buffer,
                second.offset,
                p.size(),
                hyper.learningRate(),
                hyper.beta1(),
                hyper.beta2(),
                hyper.epsilon(),
                hyper.weightDecay(),
                (float) (1 / (1 - Math.pow(hyper.beta1(), hyper.step()))),
                (float) (1 / (1 - Math.pow(hyper.beta2(), hyper.step()))),
                hyper.gradScale(),
                scaleSource == null ? p.buffer : scaleSource,
                scaleSource == null ? 0 : 1);
    }

    @Override
    public void softmax(Tensor x, float temperature) {
        DeviceTensor t = device("x", x);
        TensorChecks.temperature(temperature);
        if (t.rows == 0) {
            return;
        }
        launchRowBlocks("softmax_rows", t.rows, t.cols, t, t.rows, t.cols, 1 / temperature);
    }

    @Override
    public int argmax(Tensor row) {
        DeviceTensor t = device("row", row);
        TensorChecks.same("row.rows", t.rows, "1", 1);
        return (int) argmaxRows(t)[0];
    }

    @Override
    public void read(Tensor tensor, float[] target) {
        DeviceTensor t = device("tensor", tensor);
        TensorChecks.hostArray("target", Objects.requireNonNull(target, "target").length, t);
        onDevice();
        if (t.dense()) {
            t.buffer.copyToAsync(t.offset, target, 0, (int) t.size(), stream);
            return;
        }
        for (int i = 0; i < t.rows; i++) {
            t.buffer.copyToAsync(t.offset + (long) i * t.ld, target, i * t.cols, t.cols, stream);
        }
    }

    @Override
    public void write(float[] source, Tensor tensor) {
        DeviceTensor t = device("tensor", tensor);
        TensorChecks.hostArray("source", Objects.requireNonNull(source, "source").length, t);
        onDevice();
        if (t.dense()) {
            uploadArray(source, 0, (int) t.size(), t.buffer, t.offset);
            return;
        }
        for (int i = 0; i < t.rows; i++) {
            uploadArray(source, i * t.cols, t.cols, t.buffer, t.offset + (long) i * t.ld);
        }
    }

    /** Frees every tensor, the cuBLAS handle, the stream and the kernels; later calls are no-ops. */
    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        RuntimeException failure = null;
        try {
            // cuBLAS's handle and the memory belong to this backend's device, which the closing thread may not have
            // current.
            onDevice();
        } catch (RuntimeException e) {
            failure = new IllegalStateException("closing the CUDA backend failed", e);
        }
        // The ring waits for the copies still reading its staging memory before freeing it, and before their targets
        // go.
        List<AutoCloseable> resources = new ArrayList<>();
        if (uploads != null) {
            resources.add(uploads);
        }
        resources.addAll(buffers);
        resources.add(cublas);
        resources.add(stream);
        resources.add(module);
        for (AutoCloseable resource : resources) {
            try {
                resource.close();
            } catch (Exception e) {
                if (failure == null) {
                    failure = new IllegalStateException("closing the CUDA backend failed", e);
                } else {
                    failure.addSuppressed(e);
                }
            }
        }
        buffers.clear();
        uploaded.clear();
        if (failure != null) {
            throw failure;
        }
    }

    @Override
    public String toString() {
        return "CUDA backend on " + deviceName()
                + (precision == MatmulPrecision.FP32 ? "" : ", " + precision + " products");
    }

    private String deviceName() {
        return emulated ? "the emulated device" : "GPU " + gpu;
    }

    private void ensureOpen() {
        if (closed) {
            throw new IllegalStateException(this + " is closed");
        }
    }

    /** Makes this backend's device the calling thread's current one (as cudaSetDevice), so any thread may call. */
    private void onDevice() {
        if (emulated) {
            if (!Cuda.isEmulatedDeviceCurrent()) {
                Cuda.useEmulatedDevice(emulatorSeed);
            }
        } else if (Cuda.isEmulatedDeviceCurrent() || Cuda.currentDevice() != gpu) {
            Cuda.setDevice(gpu);
        }
    }

    /**
     * Launches a kernel on the backend's stream; a {@link DeviceTensor} argument stands for the three parameters every
     * matrix operand of {@code transformer.cu} takes: its buffer, its offset and its row stride.
     */
    private void launch(String name, Dim3 grid, Dim3 block, int sharedMemoryBytes, Object... arguments) {
        List<Object> flat = new ArrayList<>(arguments.length + 8);
        for (Object argument : arguments) {
            if (argument instanceof DeviceTensor t) {
                flat.add(t.buffer);
                flat.add(t.offset);
                flat.add(t.ld);
            } else {
                flat.add(argument);
            }
        }
        kernel(name).launch(grid, block, sharedMemoryBytes, stream, flat.toArray());
    }

    private CudaKernel kernel(String name) {
        ensureOpen();
        return kernels.computeIfAbsent(name, module::kernel);
    }

    /** Threads for a block that reduces a row of {@code cols}: a power of two from 32 to {@link #BLOCK}. */
    private static int rowThreads(int cols) {
        return Math.clamp(Integer.highestOneBit(Math.max(1, cols - 1)) * 2L, 32, BLOCK);
    }

    /** An elementwise kernel over {@code rows × cols}: one thread per column, blocks striding over the rows. */
    private void launchRows(String name, int rows, int cols, Object... arguments) {
        if (rows == 0 || cols == 0) {
            return;
        }
        onDevice();
        launch(name, Dim3.of((cols + BLOCK - 1) / BLOCK, Math.min(rows, MAX_GRID_ROWS)), Dim3.of(BLOCK), 0, arguments);
    }

    /** A row-reduction kernel: one block per row, blocks striding over the rows. */
    private void launchRowBlocks(String name, int rows, int cols, Object... arguments) {
        onDevice();
        launch(name, Dim3.of(1, Math.min(rows, MAX_GRID_ROWS)), Dim3.of(rowThreads(cols)), 0, arguments);
    }

    /**
     * Uploads {@code count} ids from {@code values[offset]}, each checked to be in {@code [0, bound)}, as floats (exact
     * below 2^24) into the backend's id buffer, queued on the stream.
     */
    private DeviceBuffer ids(String name, int[] values, int offset, int count, String boundName, int bound) {
        return uploadToIdBuffer(checkedIds(name, values, offset, count, boundName, bound));
    }

    /** {@code count} ids from {@code values[offset]}, each checked to be in {@code [0, bound)}, as exact floats. */
    private static float[] checkedIds(String name, int[] values, int offset, int count, String boundName, int bound) {
        Objects.checkFromIndexSize(offset, count, Objects.requireNonNull(values, name).length);
        if (count >= MAX_EXACT_ID) {
            throw new IllegalArgumentException("the count of " + name + " (" + count + ") must be below " + MAX_EXACT_ID
                    + " on the CUDA backend, which passes ids and row numbers as floats");
        }
        float[] ids = new float[count];
        for (int i = 0; i < count; i++) {
            int id = values[offset + i];
            if (id < 0 || id >= bound) {
                throw new IllegalArgumentException(
                        name + "[" + (offset + i) + "] (" + id + ") must be in [0, " + boundName + " (" + bound + "))");
            }
            if (id >= MAX_EXACT_ID) {
                throw new IllegalArgumentException(name + "[" + (offset + i) + "] (" + id + ") must be below "
                        + MAX_EXACT_ID + " on the CUDA backend, which passes ids as floats");
            }
            ids[i] = id;
        }
        return ids;
    }

    /** Uploads whole floats (ids, row numbers) into the backend's id buffer, queued on the stream. */
    private DeviceBuffer uploadToIdBuffer(float[] values) {
        onDevice();
        uploadArray(values, 0, values.length, idBuffer(values.length), 0);
        return tokens;
    }

    /**
     * Queues a copy of {@code values[offset .. offset + count)} into {@code target} from element {@code index} through
     * the backend's ring of pinned staging memory, which waits only for earlier copies whose staging it reuses; the
     * array may be reused when this returns.
     */
    private void uploadArray(float[] values, int offset, int count, DeviceBuffer target, long index) {
        if (count == 0) {
            return;
        }
        onDevice();
        if (uploads == null) {
            uploads = UploadRing.onStream(UPLOAD_RING_FLOATS, stream);
        }
        uploads.upload(values, offset, count, target, index);
    }

    private DeviceBuffer idBuffer(long count) {
        return scratch(tokens, b -> tokens = b, ElementType.FLOAT, count, "token ids and row numbers");
    }

    /** A grid-stride kernel over {@code n} dense elements. */
    private void launchFlat(String name, long n, Object... arguments) {
        if (n == 0) {
            return;
        }
        onDevice();
        long blocks = Math.min((n + BLOCK - 1) / BLOCK, MAX_FLAT_BLOCKS);
        launch(name, Dim3.of((int) blocks), Dim3.of(BLOCK), 0, arguments);
    }

    /**
     * The embedding kernels index a table from its buffer's first element (they take no offset), so a view that starts
     * further in is refused rather than read or written at the wrong rows.
     */
    private static void startsItsBuffer(String name, DeviceTensor t) {
        if (t.offset != 0) {
            throw new IllegalArgumentException(name + " (" + t + ") starts at element " + t.offset
                    + " of its device buffer, but must start at element 0 on the CUDA backend, whose embedding kernels"
                    + " take no offset: pass a tensor of its own, not a view of a later row or column");
        }
    }

    /** Flat kernels take one run of floats: each operand must have no gaps between its rows. */
    private static void dense(DeviceTensor... tensors) {
        for (DeviceTensor t : tensors) {
            if (!t.dense()) {
                throw new IllegalArgumentException(t + " must be dense (row stride equal to its columns)");
            }
        }
    }

    private DeviceTensor device(String name, Tensor tensor) {
        if (tensor instanceof DeviceTensor t && t.owner == this) {
            ensureOpen();
            return t;
        }
        if (tensor instanceof DeviceQuantized q && q.owner == this) {
            throw new IllegalArgumentException(name + " (" + tensor + ") must be a float32 tensor: weights in "
                    + q.format + " serve only as the weights of matmul and the table of embedding");
        }
        throw new IllegalArgumentException(name + " (" + tensor + ") must be a tensor of this CudaBackend");
    }
}
