package dev.panamax.cuda;

import dev.panamax.cuda.ffi.CudaFfi;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.concurrent.locks.LockSupport;

/**
 * Page-locked host memory ({@code cudaHostAlloc}) holding {@link #length()} elements of one {@link ElementType}: the
 * source or destination of {@link DeviceBuffer} copies that run asynchronously, overlapped with host work. Its
 * {@link #segment()} is readable and writable from Java until {@link #close()}, which frees it; after close, the
 * segment is no longer accessible (access throws {@link IllegalStateException}), and a second close does nothing.
 * On the emulated device ({@link Cuda#useEmulatedDevice()}) it is ordinary native memory.
 */
public final class PinnedBuffer implements AutoCloseable {
    private final ElementType type;
    private final long length;
    private final long address;
    private final Arena arena;
    private final MemorySegment segment;
    private final Ownership ownership;

    @SuppressWarnings("restricted")
    private PinnedBuffer(ElementType type, long length, long address) {
        this.type = type;
        this.length = length;
        this.address = address;
        this.arena = Arena.ofShared();
        this.segment = MemorySegment.ofAddress(address).reinterpret(length * type.byteSize(), arena, null);
        this.ownership = new Ownership("PinnedBuffer(" + type + " × " + length + ")");
    }

    /** On the emulated device: memory from its own arena, which close frees; {@code address} 0 says so. */
    private PinnedBuffer(ElementType type, long length, Arena arena) {
        this.type = type;
        this.length = length;
        this.address = 0;
        this.arena = arena;
        this.segment =
                arena.allocate(Math.max(1, length * type.byteSize()), 256).asSlice(0, length * type.byteSize());
        this.ownership = new Ownership("emulated PinnedBuffer(" + type + " × " + length + ")");
    }

    /**
     * Allocates pinned host memory for {@code length} elements; its contents are undefined.
     *
     * @param type the element type
     * @param length the number of elements, at least 0
     * @return the buffer
     * @throws IllegalStateException when CUDA is not available
     * @throws CudaException when the runtime fails
     */
    public static PinnedBuffer allocate(ElementType type, long length) {
        long bytes = Arguments.byteSize(type, length);
        if (EmulatedDevice.isSelected()) {
            return new PinnedBuffer(type, length, Arena.ofShared());
        }
        Cuda.requireAvailable();
        long address = Cuda.create(
                        slot -> CudaFfi.cudaHostAlloc(slot, bytes, CudaFfi.cudaHostAllocDefault()), "cudaHostAlloc")
                .address();
        return new PinnedBuffer(type, length, address);
    }

    /**
     * The element type.
     *
     * @return the type of every element
     */
    public ElementType type() {
        return type;
    }

    /**
     * The number of elements.
     *
     * @return the length given to {@link #allocate(ElementType, long)}
     */
    public long length() {
        return length;
    }

    /**
     * The memory, {@code length() · type().byteSize()} bytes, for {@link DeviceBuffer}'s segment copies and direct
     * access; inaccessible after {@link #close()}.
     *
     * @return the segment
     */
    public MemorySegment segment() {
        ownership.ensureOpen();
        return segment;
    }

    /**
     * Writes floats, converted to the element type.
     *
     * @param index the first element written
     * @param src the values
     * @param srcOffset the index of the first value copied
     * @param count the number of values
     */
    public void copyFrom(long index, float[] src, int srcOffset, int count) {
        Arguments.within("src", Arguments.present("src", src).length, "srcOffset", srcOffset, count);
        Arguments.within(toString(), length, "index", index, count);
        ownership.acquire();
        try {
            type.store(src, srcOffset, segment, index, count);
        } finally {
            ownership.release();
        }
    }

    /**
     * Reads elements as floats.
     *
     * @param index the first element read
     * @param dst receives the values
     * @param dstOffset the index of the first value written
     * @param count the number of values
     */
    public void copyTo(long index, float[] dst, int dstOffset, int count) {
        Arguments.within("dst", Arguments.present("dst", dst).length, "dstOffset", dstOffset, count);
        Arguments.within(toString(), length, "index", index, count);
        ownership.acquire();
        try {
            type.load(segment, index, dst, dstOffset, count);
        } finally {
            ownership.release();
        }
    }

    /**
     * Frees the memory ({@code cudaFreeHost}) after making {@link #segment()} inaccessible; later calls are no-ops.
     * Wait for the streams that copy from or to it first. A {@link #copyFrom} or {@link #copyTo} on another thread, or
     * a copy that is passing {@link #segment()} to the runtime, is waited for before the memory is freed.
     */
    @Override
    public void close() {
        if (ownership.close()) {
            closeArena();
            if (address == 0) {
                return;
            }
            Cuda.check("cudaFreeHost", CudaFfi.cudaFreeHost(MemorySegment.ofAddress(address)));
        }
    }

    /**
     * Closes the arena, retrying while a downcall on another thread holds {@link #segment()} (a shared arena refuses
     * to close then), so that the memory is never freed under a copy and never leaked.
     */
    private void closeArena() {
        while (true) {
            try {
                arena.close();
                return;
            } catch (IllegalStateException inUse) {
                if (!arena.scope().isAlive()) {
                    return;
                }
                LockSupport.parkNanos(100_000);
            }
        }
    }

    @Override
    public String toString() {
        return ownership.toString();
    }
}
