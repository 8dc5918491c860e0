package dev.panamax.cuda;

/**
 * A library version.
 *
 * @param major the major version
 * @param minor the minor version
 * @param patch the patch level (0 where the library reports none, as the CUDA runtime and driver do)
 */
public record Version(int major, int minor, int patch) {
    /**
     * Decodes CUDA's {@code 1000·major + 10·minor} version numbers, e.g. 13000 → 13.0.0.
     *
     * @param encoded the number {@code cudaRuntimeGetVersion} or {@code cudaDriverGetVersion} reports
     * @return the version
     */
    static Version ofCuda(int encoded) {
        return new Version(encoded / 1000, encoded % 1000 / 10, 0);
    }

    @Override
    public String toString() {
        return major + "." + minor + "." + patch;
    }
}
