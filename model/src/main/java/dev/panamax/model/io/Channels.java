package dev.panamax.model.io;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;

/**
 * File channel helpers the readers and writers share: loops (a single read or write call may transfer fewer bytes than
 * asked) and the memory mapping of weights.
 */
final class Channels {
    private static final int CHUNK_BYTES = 1 << 22;

    private Channels() {}

    /**
     * Maps {@code size} bytes of a file from {@code offset}, read-only, for as long as {@code arena} is open, and
     * returns them as a plain native segment rather than the mapped segment the channel makes. The kernels' vector
     * loads compile to slower code once they have seen two segment classes, and a model reads mapped weights next to
     * native activations: a GEMV over mapped weights ran at 7-10 GB/s in that company, and at 10-15 over the same
     * mapping seen as native memory. The view is read-only and belongs to the same arena, so closing the arena still
     * unmaps the file and makes later access fail cleanly. Calls a restricted method: grant this module native access
     * ({@code --enable-native-access=dev.panamax.model}), or Java prints a warning on first use.
     */
    @SuppressWarnings("restricted") // a view of memory the arena already owns, read-only, with the arena's lifetime
    static MemorySegment mapWeights(FileChannel channel, long offset, long size, Arena arena) throws IOException {
        MemorySegment mapped = channel.map(FileChannel.MapMode.READ_ONLY, offset, size, arena);
        return MemorySegment.ofAddress(mapped.address())
                .reinterpret(mapped.byteSize(), arena, null)
                .asReadOnly();
    }

    static FileChannel create(Path file) throws IOException {
        return FileChannel.open(
                file, StandardOpenOption.CREATE, StandardOpenOption.WRITE, StandardOpenOption.TRUNCATE_EXISTING);
    }

    static void writeFully(FileChannel channel, ByteBuffer buffer) throws IOException {
        while (buffer.hasRemaining()) {
            channel.write(buffer);
        }
    }

    /** Writes a segment of any kind (native, mapped or on the heap) through a direct buffer, chunk by chunk. */
    static void write(FileChannel channel, MemorySegment segment) throws IOException {
        ByteBuffer chunk = ByteBuffer.allocateDirect((int) Math.min(CHUNK_BYTES, Math.max(1, segment.byteSize())));
        MemorySegment target = MemorySegment.ofBuffer(chunk);
        for (long offset = 0; offset < segment.byteSize(); offset += chunk.capacity()) {
            int n = (int) Math.min(chunk.capacity(), segment.byteSize() - offset);
            MemorySegment.copy(segment, offset, target, 0, n);
            writeFully(channel, chunk.clear().limit(n));
        }
    }

    static void readFully(FileChannel channel, ByteBuffer buffer, long position) throws IOException {
        while (buffer.hasRemaining()) {
            if (channel.read(buffer, position + buffer.position()) < 0) {
                throw new IOException("unexpected end of file"); // callers check the size first
            }
        }
    }
}
