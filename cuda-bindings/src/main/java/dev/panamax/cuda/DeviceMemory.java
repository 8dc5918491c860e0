package dev.panamax.cuda;

import java.util.Locale;

/**
 * The memory of the calling thread's current device, as {@code cudaMemGetInfo} reports it (on the emulated device, its
 * configured size less what its buffers hold).
 *
 * @param freeBytes bytes that can still be allocated (on a GPU, what the driver reports free: other processes' and
 *     contexts' allocations are not in it)
 * @param totalBytes the device's memory in bytes
 */
public record DeviceMemory(long freeBytes, long totalBytes) {
    @Override
    public String toString() {
        return String.format(Locale.ROOT, "%.1f MiB free of %.1f MiB", freeBytes / 1048576.0, totalBytes / 1048576.0);
    }
}
