package dev.panamax.model.backend;

/**
 * A tensor that would not fit in the device's memory, refused before anything was allocated: the message says what
 * was asked for, how many bytes it needs and how many are left.
 */
public final class DeviceMemoryException extends IllegalStateException {
    private static final long serialVersionUID = 1L;

    /**
     * An exception with its message.
     *
     * @param message what did not fit, the bytes needed and the bytes left
     */
    public DeviceMemoryException(String message) {
        super(message);
    }
}
