package dev.panamax.cuda;

import dev.panamax.cuda.ffi.CudaFfi;
import java.lang.foreign.MemorySegment;

/**
 * A CUDA stream: a queue of device work that runs in order, concurrently with other streams. Created blocking ({@code
 * cudaStreamDefault}), so it is ordered with the legacy default stream, which the synchronous copies of {@link
 * DeviceBuffer}, and launches and cuBLAS calls given no stream, use: work on the legacy default stream waits for the
 * work queued before it on every blocking stream of the device, and work queued later on this stream waits for it.
 * Close it when done; use after close throws {@link IllegalStateException}.
 *
 * <p>The stream counts the copies between host and device queued on it, its synchronizations and the waits of the
 * copies through staging memory ({@link #copiesToDevice()}, {@link #copiesToHost()}, {@link #synchronizations()},
 * {@link #stagingWaits()}), so that a test can bound the host round trips of a unit of work. A stream is for one thread at a time.
 *
 * <p>A stream belongs to the device current when it was created: launches, asynchronous copies, cuBLAS handles and
 * event records refuse a stream of another device with {@link IllegalArgumentException} naming both devices (only
 * {@link #waitFor(CudaEvent)} takes an event of another GPU, which CUDA synchronizes across devices).
 *
 * <p>On the emulated device ({@link Cuda#useEmulatedDevice()}) work queued on a stream runs before the call that
 * queued it returns, so a stream is always done.
 */
public final class CudaStream implements AutoCloseable {
    /**
     * {@code cudaStreamDefault} (0, not among the generated constants): a stream that the legacy default stream
     * synchronizes with, so that a synchronous copy never reads results this stream has not finished.
     */
    private static final int BLOCKING = 0;

    private final MemorySegment handle;
    private final Device device;
    private final boolean emulated;
    private final Ownership ownership;
    private long copiesToDevice;
    private long copiesToHost;
    private long synchronizations;
    private long stagingWaits;

    private CudaStream(MemorySegment handle, Device device) {
        this.handle = handle;
        this.device = device;
        this.emulated = device.emulated();
        this.ownership = new Ownership(emulated ? "emulated CudaStream" : "CudaStream");
    }

    /**
     * Creates a stream on the calling thread's current device.
     *
     * @return the new stream
     * @throws IllegalStateException when CUDA is not available
     * @throws CudaException when the runtime fails
     */
    public static CudaStream create() {
        if (EmulatedDevice.isSelected()) {
            return createEmulated(0);
        }
        Cuda.requireAvailable();
        Device device = new Device(false, Cuda.currentDevice());
        return new CudaStream(
                Cuda.create(slot -> CudaFfi.cudaStreamCreateWithFlags(slot, BLOCKING), "cudaStreamCreateWithFlags"),
                device);
    }

    /**
     * A stream of the emulated device that reports {@code ordinal} as its device: 0, the emulated device's only one,
     * except in tests of the checks that refuse a stream of another device.
     */
    static CudaStream createEmulated(int ordinal) {
        return new CudaStream(MemorySegment.NULL, new Device(true, ordinal));
    }

    /** The device the stream was created on. */
    Device device() {
        return device;
    }

    /** Waits until all work queued on this stream has finished ({@code cudaStreamSynchronize}). */
    public void synchronize() {
        synchronizations++;
        awaitQueued();
    }

    /** {@code cudaStreamSynchronize}, with the stream held so that a close on another thread waits for it. */
    private void awaitQueued() {
        if (emulated) {
            ownership.ensureOpen();
            return;
        }
        ownership.acquire();
        try {
            Cuda.check("cudaStreamSynchronize", CudaFfi.cudaStreamSynchronize(handle));
        } finally {
            ownership.release();
        }
    }

    /**
     * Waits until the work queued on this stream has finished, as {@link #synchronize()} does, for a copy through
     * staging memory that must have run before the staging memory is read or freed; not counted as a synchronization.
     */
    void awaitStaging() {
        stagingWaits++;
        awaitQueued();
    }

    /**
     * The waits for this stream's queued work that the copies from and to {@code float[]} through pageable staging
     * memory make (see {@link DeviceBuffer}), not counted among the {@link #synchronizations()}: for tests and profiles
     * that bound how often the host waits for the device.
     *
     * @return the count since the stream was created
     */
    public long stagingWaits() {
        return stagingWaits;
    }

    /** Counts a copy between host memory and a device buffer queued on this stream. */
    void countCopy(boolean toDevice) {
        if (toDevice) {
            copiesToDevice++;
        } else {
            copiesToHost++;
        }
    }

    /**
     * The copies from host memory to device buffers queued on this stream so far, for tests and profiles that bound
     * the traffic of a unit of work; those from arrays wait for the stream (see {@link DeviceBuffer}).
     *
     * @return the count since the stream was created
     */
    public long copiesToDevice() {
        return copiesToDevice;
    }

    /**
     * The copies from device buffers to host memory queued on this stream so far; each waits for the work queued
     * before it, so this also counts the times the host waited for the device, with {@link #synchronizations()}.
     *
     * @return the count since the stream was created
     */
    public long copiesToHost() {
        return copiesToHost;
    }

    /**
     * The calls to {@link #synchronize()} so far.
     *
     * @return the count since the stream was created
     */
    public long synchronizations() {
        return synchronizations;
    }

    /**
     * Whether all work queued on this stream has finished, without waiting ({@code cudaStreamQuery}).
     *
     * @return true when the stream is idle
     */
    public boolean isDone() {
        if (emulated) {
            ownership.ensureOpen();
            return true;
        }
        ownership.acquire();
        try {
            return Cuda.done("cudaStreamQuery", CudaFfi.cudaStreamQuery(handle));
        } finally {
            ownership.release();
        }
    }

    /**
     * Makes work queued on this stream from now on wait until {@code event} has happened ({@code
     * cudaStreamWaitEvent}); the host does not wait.
     *
     * @param event an event recorded on any stream, of this stream's GPU or another (but not of the emulated device
     *     for a GPU's stream, nor the reverse)
     */
    public void waitFor(CudaEvent event) {
        Arguments.present("event", event).ensureOpen();
        // cudaStreamWaitEvent waits across GPUs; only the emulated device and a GPU cannot wait for each other.
        if (event.device().emulated() != emulated) {
            throw Device.mismatch("event", event, event.device(), this, device);
        }
        if (emulated) {
            ownership.ensureOpen();
            return;
        }
        try (Ownership.Held _ = Ownership.hold(ownership, event.ownership())) {
            Cuda.check("cudaStreamWaitEvent", CudaFfi.cudaStreamWaitEvent(handle, event.heldHandle(), 0));
        }
    }

    /** The native {@code cudaStream_t}, for a caller that holds the stream ({@link Ownership#hold}). */
    MemorySegment heldHandle() {
        return handle;
    }

    /** Whether {@link #close()} has been called. */
    boolean isClosed() {
        return ownership.isClosed();
    }

    /** Throws {@link IllegalStateException} when the stream is closed. */
    void ensureOpen() {
        ownership.ensureOpen();
    }

    /** The stream's open/closed state and uses, for {@link Ownership#hold}. */
    Ownership ownership() {
        return ownership;
    }

    /**
     * Destroys the stream ({@code cudaStreamDestroy}) after its queued work; later calls are no-ops. A call using the
     * stream on another thread (a copy, launch, product or synchronization) is waited for first.
     */
    @Override
    public void close() {
        if (ownership.close() && !emulated) {
            Cuda.check("cudaStreamDestroy", CudaFfi.cudaStreamDestroy(handle));
        }
    }

    @Override
    public String toString() {
        return ownership.toString();
    }
}
