package dev.panamax.model.io;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;

/** File channel loops that the writers share: a single read or write call may transfer fewer bytes than asked. */
final class Channels {
    private static final int CHUNK_BYTES = 1 << 22;

    private Channels() {}

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
