package dev.panamax.cuda;

/**
 * The device a stream, event, buffer, module or cuBLAS handle belongs to: the emulated device, or a GPU by ordinal.
 *
 * @param emulated whether it is the emulated device
 * @param ordinal the GPU's ordinal; 0 for the emulated device (other values only in tests of these checks); -1 for a
 *     zero-length GPU buffer, which holds no memory and goes with every GPU
 */
record Device(boolean emulated, int ordinal) {
    /**
     * Throws {@link IllegalArgumentException} unless {@code value}, an argument on {@code device}, can be used with
     * {@code user} on {@code userDevice}: the one check of streams, events and buffers against what they are given to.
     * The driver would fail such a call with an unspecific status, run it on the wrong device, or (memory of another
     * GPU) fault asynchronously with an error that stays for the process.
     *
     * @param name names the argument, e.g. {@code stream} or {@code argument 0 of vector_add (const float*)}
     * @param user what the argument is given to, e.g. {@code Cublas}
     */
    static void requireSame(String name, Object value, Device device, Object user, Device userDevice) {
        boolean same = device.emulated == userDevice.emulated
                && (device.ordinal == userDevice.ordinal || device.ordinal < 0 || userDevice.ordinal < 0);
        if (!same) {
            throw mismatch(name, value, device, user, userDevice);
        }
    }

    /** The exception of {@link #requireSame}, for a check with its own rule of which devices go together. */
    static IllegalArgumentException mismatch(String name, Object value, Device device, Object user, Device userDevice) {
        return new IllegalArgumentException(
                name + " (" + value + ") is on " + device + ", but " + user + " is on " + userDevice);
    }

    @Override
    public String toString() {
        if (emulated) {
            return ordinal == 0 ? "the emulated device" : "emulated device " + ordinal;
        }
        return ordinal < 0 ? "a GPU" : "GPU " + ordinal;
    }
}
