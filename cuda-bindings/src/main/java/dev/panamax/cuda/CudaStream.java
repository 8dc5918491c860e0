package dev.panamax.cuda;

import dev.panamax.cuda.ffi.CudaFfi;
import java.lang.foreign.MemorySegment;

/**
 * A CUDA stream: a queue of device work that runs in order, concurrently with other streams. Created non-blocking
 * ({@code cudaStreamNonBlocking}): it does not wait for the legacy default stream. Close it when done; use after close
 * throws {@link IllegalStateException}.
 *
 * <p>On the emulated device ({@link Cuda#useEmulatedDevice()}) work queued on a stream runs before the call that
 * queued it returns, so a stream is always done; its {@link #handle()} is NULL.
 */
public final class CudaStream implements AutoCloseable {
    private final MemorySegment handle;
    private final boolean emulated;
    private final Ownership ownership;

    private CudaStream(MemorySegment handle, boolean emulated) {
        this.handle = handle;
        this.emulated = emulated;
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
            return new CudaStream(MemorySegment.NULL, true);
        }
        Cuda.requireAvailable();
        return new CudaStream(
                Cuda.create(
                        slot -> CudaFfi.cudaStreamCreateWithFlags(slot, CudaFfi.cudaStreamNonBlocking()),
                        "cudaStreamCreateWithFlags"),
                false);
    }

    /** Whether the stream belongs to the emulated device. */
    boolean isEmulated() {
        return emulated;
    }

    /**
     * The native {@code cudaStream_t}, for passing to other FFM code; valid until {@link #close()}.
     *
     * @return the handle
     */
    public MemorySegment handle() {
        ownership.ensureOpen();
        return handle;
    }

    /** Waits until all work queued on this stream has finished ({@code cudaStreamSynchronize}). */
    public void synchronize() {
        if (emulated) {
            ownership.ensureOpen();
            return;
        }
        Cuda.check("cudaStreamSynchronize", CudaFfi.cudaStreamSynchronize(handle()));
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
        return Cuda.done("cudaStreamQuery", CudaFfi.cudaStreamQuery(handle()));
    }

    /**
     * Makes work queued on this stream from now on wait until {@code event} has happened ({@code
     * cudaStreamWaitEvent}); the host does not wait.
     *
     * @param event an event recorded on any stream
     */
    public void waitFor(CudaEvent event) {
        MemorySegment eventHandle = Arguments.present("event", event).handle();
        if (event.isEmulated() != emulated) {
            throw new IllegalArgumentException(
                    "event and stream belong to different devices: one is the emulated " + "device, one a GPU");
        }
        if (emulated) {
            ownership.ensureOpen();
            return;
        }
        Cuda.check("cudaStreamWaitEvent", CudaFfi.cudaStreamWaitEvent(handle(), eventHandle, 0));
    }

    /** Destroys the stream ({@code cudaStreamDestroy}) after its queued work; later calls are no-ops. */
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
