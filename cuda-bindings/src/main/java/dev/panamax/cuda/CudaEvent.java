package dev.panamax.cuda;

import static dev.panamax.cuda.ffi.CudaFfi.C_FLOAT;

import dev.panamax.cuda.ffi.CudaFfi;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

/**
 * A CUDA event: a marker in a stream that the host or other streams can wait for, and that times the device work
 * between two of them. Close it when done; use after close throws {@link IllegalStateException}.
 *
 * <p>An event belongs to the device current when it was created: {@link #record(CudaStream)} refuses a stream of
 * another device, and {@link #elapsedMillis(CudaEvent)} an event of another device, with {@link
 * IllegalArgumentException} naming both devices; a stream of any GPU may {@linkplain CudaStream#waitFor(CudaEvent)
 * wait} for it.
 *
 * <p>On the emulated device ({@link Cuda#useEmulatedDevice()}) the work before an event has run when it is recorded,
 * so it has always happened, and its time is the host's clock at {@link #record}.
 */
public final class CudaEvent implements AutoCloseable {
    private final MemorySegment handle;
    private final Ownership ownership;
    private final Device device;
    private final boolean emulated;

    /** On the emulated device: whether it records time, and {@link System#nanoTime()} at the last record (or -1). */
    private final boolean timing;

    private volatile long recordedNanos = -1;

    private CudaEvent(MemorySegment handle, Device device, boolean timing) {
        this.handle = handle;
        this.device = device;
        this.emulated = device.emulated();
        this.timing = timing;
        this.ownership = new Ownership(emulated ? "emulated CudaEvent" : "CudaEvent");
    }

    /**
     * Creates an event on the calling thread's current device.
     *
     * @param timing whether the event records a time stamp for {@link #elapsedMillis(CudaEvent)}; events without
     *     one are cheaper to record and wait for ({@code cudaEventDisableTiming})
     * @return the new event
     * @throws IllegalStateException when CUDA is not available
     * @throws CudaException when the runtime fails
     */
    public static CudaEvent create(boolean timing) {
        if (EmulatedDevice.isSelected()) {
            return createEmulated(timing, 0);
        }
        Cuda.requireAvailable();
        Device device = new Device(false, Cuda.currentDevice());
        int flags = timing ? CudaFfi.cudaEventDefault() : CudaFfi.cudaEventDisableTiming();
        return new CudaEvent(
                Cuda.create(slot -> CudaFfi.cudaEventCreateWithFlags(slot, flags), "cudaEventCreateWithFlags"),
                device,
                timing);
    }

    /**
     * An event of the emulated device that reports {@code ordinal} as its device: 0, the emulated device's only one,
     * except in tests of the checks that refuse an event of another device.
     */
    static CudaEvent createEmulated(boolean timing, int ordinal) {
        return new CudaEvent(MemorySegment.NULL, new Device(true, ordinal), timing);
    }

    /** The device the event was created on. */
    Device device() {
        return device;
    }

    /** The native {@code cudaEvent_t}, for a caller that holds the event ({@link Ownership#hold}). */
    MemorySegment heldHandle() {
        return handle;
    }

    /** Throws {@link IllegalStateException} when the event is closed. */
    void ensureOpen() {
        ownership.ensureOpen();
    }

    /** The event's open/closed state and uses, for {@link Ownership#hold}. */
    Ownership ownership() {
        return ownership;
    }

    /**
     * Records the event at the current end of a stream's queue ({@code cudaEventRecord}).
     *
     * @param stream the stream, of the event's device
     * @throws IllegalArgumentException when the stream belongs to another device ({@code cudaEventRecord} fails then)
     */
    public void record(CudaStream stream) {
        Arguments.present("stream", stream).ensureOpen();
        Device.requireSame("stream", stream, stream.device(), this, device);
        if (emulated) {
            ownership.ensureOpen();
            recordedNanos = System.nanoTime();
            return;
        }
        try (Ownership.Held _ = Ownership.hold(ownership, stream.ownership())) {
            Cuda.check("cudaEventRecord", CudaFfi.cudaEventRecord(handle, stream.heldHandle()));
        }
    }

    /** Waits until the work before the recorded event has finished ({@code cudaEventSynchronize}). */
    public void synchronize() {
        if (emulated) {
            ownership.ensureOpen();
            return;
        }
        ownership.acquire();
        try {
            Cuda.check("cudaEventSynchronize", CudaFfi.cudaEventSynchronize(handle));
        } finally {
            ownership.release();
        }
    }

    /**
     * Whether the work before the recorded event has finished, without waiting ({@code cudaEventQuery}).
     *
     * @return true when the event has happened
     */
    public boolean isDone() {
        if (emulated) {
            ownership.ensureOpen();
            return true;
        }
        ownership.acquire();
        try {
            return Cuda.done("cudaEventQuery", CudaFfi.cudaEventQuery(handle));
        } finally {
            ownership.release();
        }
    }

    /**
     * The device time from {@code start} to this event, both recorded with timing and both happened ({@code
     * cudaEventElapsedTime}).
     *
     * @param start the earlier event, of this event's device
     * @return milliseconds, with a resolution of about half a microsecond
     * @throws IllegalArgumentException when {@code start} belongs to another device ({@code cudaEventElapsedTime}
     *     fails then)
     */
    public float elapsedMillis(CudaEvent start) {
        Arguments.present("start", start).ensureOpen();
        Device.requireSame("start", start, start.device, this, device);
        if (emulated) {
            return emulatedMillis(start);
        }
        try (Ownership.Held _ = Ownership.hold(ownership, start.ownership);
                Arena arena = Arena.ofConfined()) {
            MemorySegment millis = arena.allocate(C_FLOAT);
            Cuda.check("cudaEventElapsedTime", CudaFfi.cudaEventElapsedTime(millis, start.handle, handle));
            return millis.get(C_FLOAT, 0);
        }
    }

    private float emulatedMillis(CudaEvent start) {
        ownership.ensureOpen();
        for (CudaEvent event : new CudaEvent[] {start, this}) {
            if (!event.timing) {
                throw new IllegalStateException(event + " was created without timing");
            }
            if (event.recordedNanos < 0) {
                throw new IllegalStateException(event + " has not been recorded");
            }
        }
        return (recordedNanos - start.recordedNanos) / 1e6f;
    }

    /**
     * Destroys the event ({@code cudaEventDestroy}); later calls are no-ops. A call using the event on another thread
     * is waited for first.
     */
    @Override
    public void close() {
        if (ownership.close() && !emulated) {
            Cuda.check("cudaEventDestroy", CudaFfi.cudaEventDestroy(handle));
        }
    }

    @Override
    public String toString() {
        return ownership.toString();
    }
}
