package dev.panamax.cuda;

import dev.panamax.cuda.ffi.CudaFfi;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

/**
 * Device memory holding {@link #length()} elements of one {@link ElementType}, allocated with {@code cudaMalloc} on
 * the calling thread's current device and freed by {@link #close()}.
 *
 * <p>Copies name elements by index and are bounds-checked before anything reaches the driver. Copies from and to
 * {@code float[]} convert to and from the element type through native staging memory; copies from and to a {@link
 * MemorySegment} move the elements' bytes as they are, and need a native segment (heap memory cannot be passed to the
 * runtime). The synchronous copies run on the legacy default stream, after the work queued before them on every
 * {@link CudaStream} of the device (streams are created blocking) and before the work queued on them later; those
 * between host and device return when the data is in place, and the device-to-device one may return before it has
 * run. The asynchronous ones are queued on a stream:
 * from a segment, the segment must stay valid and unchanged until the stream has run the copy (use a {@link
 * PinnedBuffer} for copies that overlap with other work); from and to arrays they wait for the stream until the copy
 * has run (the staging memory is pageable, for which CUDA does not promise that an asynchronous copy has run when it
 * returns), which makes them ordered with the stream's work but not overlapped with the host. The stream must belong
 * to the buffer's device: one of another device is refused with {@link IllegalArgumentException}, as it would not
 * order the copy with the work on the buffer's device.
 *
 * <p>A zero-length buffer holds no device memory and needs no runtime. Use after close throws {@link
 * IllegalStateException}; a second close does nothing.
 *
 * <p>On the emulated device ({@link Cuda#useEmulatedDevice()}) the buffer is host memory, filled with 0xFF bytes (NaN
 * as floats) when allocated so that reading what was never written shows; copies behave as on a GPU, the asynchronous
 * ones complete before they return, and kernels' accesses are checked against the buffer's bounds.
 */
public final class DeviceBuffer implements AutoCloseable {
    private final ElementType type;
    private final long length;
    private final long address;
    private final Ownership ownership;

    /** The device the memory was allocated on: ordinal 0 on the emulated device, -1 for a zero-length GPU buffer. */
    private final Device device;

    /** On the emulated device: the memory, and the arena that frees it (null for a zero-length buffer); else null. */
    private final MemorySegment emulated;

    private final Arena emulatedArena;

    private DeviceBuffer(ElementType type, long length, long address, int ordinal) {
        this(type, length, address, new Device(false, ordinal), null, null);
    }

    private DeviceBuffer(
            ElementType type, long length, long address, Device device, MemorySegment emulated, Arena emulatedArena) {
        this.type = type;
        this.length = length;
        this.address = address;
        this.device = device;
        this.emulated = emulated;
        this.emulatedArena = emulatedArena;
        this.ownership =
                new Ownership((emulated == null ? "" : "emulated ") + "DeviceBuffer(" + type + " × " + length + ")");
    }

    /**
     * Allocates device memory for {@code length} elements; its contents are undefined.
     *
     * @param type the element type
     * @param length the number of elements, at least 0
     * @return the buffer
     * @throws IllegalStateException when CUDA is not available (and {@code length > 0})
     * @throws CudaException when the runtime fails, e.g. {@code cudaErrorMemoryAllocation} (on the emulated device,
     *     past {@link Cuda#EMULATED_MEMORY_PROPERTY})
     */
    public static DeviceBuffer allocate(ElementType type, long length) {
        long bytes = Arguments.byteSize(type, length);
        if (EmulatedDevice.isSelected()) {
            return allocateEmulated(type, length, 0);
        }
        if (bytes == 0) {
            return new DeviceBuffer(type, 0, 0, -1);
        }
        Cuda.requireAvailable();
        int device = Cuda.currentDevice();
        long address = Cuda.create(slot -> CudaFfi.cudaMalloc(slot, bytes), "cudaMalloc")
                .address();
        return new DeviceBuffer(type, length, address, device);
    }

    /**
     * Memory of the emulated device that reports {@code device} as the ordinal it was allocated on: 0, the emulated
     * device's only one, except in tests of the checks that refuse memory of another device.
     */
    static DeviceBuffer allocateEmulated(ElementType type, long length, int device) {
        long bytes = Arguments.byteSize(type, length);
        if (bytes == 0) {
            return new DeviceBuffer(type, 0, 0, new Device(true, device), MemorySegment.NULL, null);
        }
        Arena arena = Arena.ofShared();
        MemorySegment memory = EmulatedDevice.allocate(arena, bytes);
        return new DeviceBuffer(type, length, memory.address(), new Device(true, device), memory, arena);
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
     * The size in bytes.
     *
     * @return {@code length() · type().byteSize()}
     */
    public long byteSize() {
        return length * type.byteSize();
    }

    /**
     * Copies floats into the buffer, converted to the element type, from index 0.
     *
     * @param src the values; all of them are copied
     */
    public void copyFrom(float[] src) {
        copyFrom(0, src, 0, Arguments.present("src", src).length);
    }

    /**
     * Copies floats into the buffer, converted to the element type.
     *
     * @param index the first element written
     * @param src the values
     * @param srcOffset the index of the first value copied
     * @param count the number of values
     */
    public void copyFrom(long index, float[] src, int srcOffset, int count) {
        transfer(true, index, src, srcOffset, count, null);
    }

    /**
     * Copies floats into the buffer, converted to the element type, on a stream: after the work queued before it on
     * the stream, and returning once the copy has run (it waits for the stream).
     *
     * @param index the first element written
     * @param src the values
     * @param srcOffset the index of the first value copied
     * @param count the number of values
     * @param stream the stream, of the buffer's device
     */
    public void copyFromAsync(long index, float[] src, int srcOffset, int count, CudaStream stream) {
        transfer(true, index, src, srcOffset, count, Arguments.present("stream", stream));
    }

    /**
     * Copies the whole buffer into floats.
     *
     * @param dst receives {@link #length()} values from index 0
     */
    public void copyTo(float[] dst) {
        Arguments.within("dst", Arguments.present("dst", dst).length, "0", 0, length);
        copyTo(0, dst, 0, (int) length);
    }

    /**
     * Copies elements out of the buffer into floats.
     *
     * @param index the first element read
     * @param dst receives the values
     * @param dstOffset the index of the first value written
     * @param count the number of values
     */
    public void copyTo(long index, float[] dst, int dstOffset, int count) {
        transfer(false, index, dst, dstOffset, count, null);
    }

    /**
     * Queues a copy of elements out of the buffer into floats on a stream; returns once {@code dst} is written, after
     * the work queued before it on the stream.
     *
     * @param index the first element read
     * @param dst receives the values
     * @param dstOffset the index of the first value written
     * @param count the number of values
     * @param stream the stream, of the buffer's device
     */
    public void copyToAsync(long index, float[] dst, int dstOffset, int count, CudaStream stream) {
        transfer(false, index, dst, dstOffset, count, Arguments.present("stream", stream));
    }

    /**
     * Copies elements' bytes from host memory into the buffer.
     *
     * @param index the first element written
     * @param src native memory holding at least {@code count} elements of {@link #type()} from its start
     * @param count the number of elements
     */
    public void copyFrom(long index, MemorySegment src, long count) {
        copy(true, index, src, count, null);
    }

    /**
     * Queues a copy of elements' bytes from host memory into the buffer on a stream; {@code src} must stay valid and
     * unchanged until the stream has run it.
     *
     * @param index the first element written
     * @param src native memory holding at least {@code count} elements of {@link #type()} from its start
     * @param count the number of elements
     * @param stream the stream, of the buffer's device
     */
    public void copyFromAsync(long index, MemorySegment src, long count, CudaStream stream) {
        copy(true, index, src, count, Arguments.present("stream", stream));
    }

    /**
     * Copies elements' bytes out of the buffer into host memory.
     *
     * @param index the first element read
     * @param dst native memory with room for {@code count} elements from its start
     * @param count the number of elements
     */
    public void copyTo(long index, MemorySegment dst, long count) {
        copy(false, index, dst, count, null);
    }

    /**
     * Queues a copy of elements' bytes out of the buffer into host memory on a stream; {@code dst} must stay valid
     * until the stream has run it.
     *
     * @param index the first element read
     * @param dst native memory with room for {@code count} elements from its start
     * @param count the number of elements
     * @param stream the stream, of the buffer's device
     */
    public void copyToAsync(long index, MemorySegment dst, long count, CudaStream stream) {
        copy(false, index, dst, count, Arguments.present("stream", stream));
    }

    /**
     * Copies elements from another device buffer of the same type ({@code cudaMemcpyDeviceToDevice}) on the legacy
     * default stream: after the work queued before it on any {@link CudaStream}, before the work queued later, and
     * possibly returning before it has run.
     *
     * @param index the first element written
     * @param src the source buffer
     * @param srcIndex the first element read
     * @param count the number of elements
     */
    public void copyFrom(long index, DeviceBuffer src, long srcIndex, long count) {
        Arguments.present("src", src);
        if (src.type != type) {
            throw new IllegalArgumentException("src holds " + src.type + ", this buffer " + type);
        }
        // cudaMemcpy copies between GPUs (unified addressing); only the emulated device and a GPU cannot meet.
        if (src.isEmulated() != isEmulated()) {
            throw Device.mismatch("src", src, src.device, this, device);
        }
        Arguments.within(src.toString(), src.length, "srcIndex", srcIndex, count);
        Arguments.within(toString(), length, "index", index, count);
        if (count == 0) {
            ownership.ensureOpen();
            src.ownership.ensureOpen();
            return;
        }
        // Both buffers are held for the copy, so that a close on another thread waits for it instead of freeing them.
        try (Ownership.Held _ = Ownership.hold(ownership, src.ownership)) {
            if (isEmulated()) {
                MemorySegment.copy(
                        src.emulated,
                        srcIndex * type.byteSize(),
                        emulated,
                        index * type.byteSize(),
                        count * type.byteSize());
            } else {
                Cuda.check(
                        "cudaMemcpy",
                        CudaFfi.cudaMemcpy(
                                heldPointer(index),
                                src.heldPointer(srcIndex),
                                count * type.byteSize(),
                                CudaFfi.cudaMemcpyDeviceToDevice()));
            }
        }
    }

    /**
     * Converts through native staging memory; a stream of null copies synchronously, and a stream's copy is waited for
     * before the staging memory is read or freed.
     */
    private void transfer(boolean toDevice, long index, float[] values, int offset, int count, CudaStream stream) {
        String name = toDevice ? "src" : "dst";
        Arguments.within(name, Arguments.present(name, values).length, name + "Offset", offset, count);
        Arguments.within(toString(), length, "index", index, count);
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment staging = arena.allocate((long) count * type.byteSize(), Float.BYTES);
            if (toDevice) {
                type.store(values, offset, staging, 0, count);
            }
            copy(toDevice, index, staging, count, stream);
            if (stream != null && count > 0) {
                // CUDA does not promise that an asynchronous copy with pageable memory has run when it returns.
                stream.awaitStaging();
            }
            if (!toDevice) {
                type.load(staging, 0, values, offset, count);
            }
        }
    }

    /** The one place host memory and this buffer exchange bytes; a stream of null copies synchronously. */
    private void copy(boolean toDevice, long index, MemorySegment host, long count, CudaStream stream) {
        String name = toDevice ? "src" : "dst";
        Arguments.within(toString(), length, "index", index, count);
        long bytes = count * type.byteSize();
        Arguments.hostSegment(name, host, bytes);
        if (!toDevice && host.isReadOnly()) {
            throw new IllegalArgumentException("dst is read-only");
        }
        ownership.ensureOpen();
        if (stream != null) {
            // A stream of another GPU would not order the copy with the work on this buffer's device.
            Device.requireSame("stream", stream, stream.device(), this, device);
            stream.ensureOpen();
        }
        if (bytes == 0) {
            return;
        }
        // The buffer and the stream are held for the copy, so that a close on another thread waits for it.
        try (Ownership.Held _ = Ownership.hold(ownership, stream == null ? null : stream.ownership())) {
            copyHeld(toDevice, index, host, bytes, stream);
        }
    }

    /** {@link #copy} once the buffer and the stream are held and the copy is not empty. */
    private void copyHeld(boolean toDevice, long index, MemorySegment host, long bytes, CudaStream stream) {
        if (stream != null) {
            stream.countCopy(toDevice);
        }
        if (isEmulated()) {
            long offset = index * type.byteSize();
            if (toDevice) {
                MemorySegment.copy(host, 0, emulated, offset, bytes);
            } else {
                MemorySegment.copy(emulated, offset, host, 0, bytes);
            }
            return;
        }
        MemorySegment device = heldPointer(index);
        MemorySegment dst = toDevice ? device : host;
        MemorySegment src = toDevice ? host : device;
        int kind = toDevice ? CudaFfi.cudaMemcpyHostToDevice() : CudaFfi.cudaMemcpyDeviceToHost();
        if (stream == null) {
            Cuda.check("cudaMemcpy", CudaFfi.cudaMemcpy(dst, src, bytes, kind));
        } else {
            Cuda.check("cudaMemcpyAsync", CudaFfi.cudaMemcpyAsync(dst, src, bytes, kind, stream.heldHandle()));
        }
    }

    /**
     * Frees the device memory ({@code cudaFree}, or the emulated device's); later calls are no-ops. A copy, launch or
     * cuBLAS product using the buffer on another thread is waited for before the memory is freed, and uses after this
     * call has begun throw {@link IllegalStateException}.
     */
    @Override
    public void close() {
        if (!ownership.close()) {
            return;
        }
        if (emulatedArena != null) {
            emulatedArena.close();
            EmulatedDevice.free(byteSize());
        } else if (emulated == null && address != 0) {
            Cuda.check("cudaFree", CudaFfi.cudaFree(MemorySegment.ofAddress(address)));
        }
    }

    /**
     * Whether the buffer is memory of the emulated device.
     *
     * @return true when it was allocated while the emulated device was the current one
     */
    public boolean isEmulated() {
        return emulated != null;
    }

    /**
     * The device the memory was allocated on (the calling thread's current device then): ordinal 0 on the emulated
     * device, -1 for a zero-length GPU buffer, which holds no memory of any device. A kernel or cuBLAS given memory of
     * another GPU would fault asynchronously, with an error that stays for the process, so users check it with {@link
     * Device#requireSame}.
     */
    Device device() {
        return device;
    }

    /** The buffer's open/closed state and uses, for {@link Ownership#hold}. */
    Ownership ownership() {
        return ownership;
    }

    /** The uses in progress, for tests. */
    long uses() {
        return ownership.uses();
    }

    /**
     * The device address of an element, for a caller that holds the buffer ({@link Ownership#hold}): a close on another
     * thread may have begun, but waits for the caller.
     */
    MemorySegment heldPointer(long index) {
        return MemorySegment.ofAddress(address + index * type.byteSize());
    }

    /**
     * The emulated device's memory of this buffer, for launches and emulated libraries, which hold the buffer ({@link
     * Ownership#hold}).
     */
    MemorySegment emulatedMemory() {
        if (emulated == null) {
            throw new IllegalStateException(this + " is GPU memory, not the emulated device's");
        }
        return emulated;
    }

    /** Throws {@link IllegalStateException} when the buffer is closed. */
    void ensureOpen() {
        ownership.ensureOpen();
    }

    /**
     * Whether {@link #close()} has been called.
     *
     * @return true once closed
     */
    public boolean isClosed() {
        return ownership.isClosed();
    }

    @Override
    public String toString() {
        return ownership.toString();
    }
}
