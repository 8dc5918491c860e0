package dev.panamax.cuda;

/**
 * What the CUDA runtime reports about one device.
 *
 * @param ordinal the device's number, from 0
 * @param name the product name, e.g. {@code NVIDIA H200}
 * @param totalMemory global memory in bytes
 * @param computeCapabilityMajor the compute capability's major number (9 for Hopper)
 * @param computeCapabilityMinor the compute capability's minor number
 * @param multiprocessors the number of streaming multiprocessors
 * @param l2CacheBytes the L2 cache size in bytes
 */
public record DeviceProperties(
        int ordinal,
        String name,
        long totalMemory,
        int computeCapabilityMajor,
        int computeCapabilityMinor,
        int multiprocessors,
        int l2CacheBytes) {

    @Override
    public String toString() {
        return "device " + ordinal + ": " + name + " (sm_" + computeCapabilityMajor + computeCapabilityMinor + ", "
                + multiprocessors + " SMs, " + (totalMemory >> 20) + " MiB, L2 " + (l2CacheBytes >> 10) + " KiB)";
    }
}
