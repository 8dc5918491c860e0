package dev.panamax.kernels.testing;

import org.junit.jupiter.api.function.Executable;

/**
 * A call that bad arguments must make fail, with the exception it must throw and a part of that exception's message:
 * one row of the tables that {@link Agreement#assertAllRejected} checks.
 *
 * @param type the exception type
 * @param message a part of the expected message
 * @param call the rejected call
 */
public record Rejection(Class<? extends RuntimeException> type, String message, Executable call) {
    /**
     * A call that must throw an {@link IllegalArgumentException}.
     *
     * @param message a part of the expected message
     * @param call the rejected call
     * @return the row
     */
    public static Rejection illegalArgument(String message, Executable call) {
        return new Rejection(IllegalArgumentException.class, message, call);
    }

    /**
     * A call that must throw an {@link IndexOutOfBoundsException}.
     *
     * @param message a part of the expected message
     * @param call the rejected call
     * @return the row
     */
    public static Rejection outOfBounds(String message, Executable call) {
        return new Rejection(IndexOutOfBoundsException.class, message, call);
    }

    /**
     * A call that must throw a {@link NullPointerException}.
     *
     * @param message a part of the expected message
     * @param call the rejected call
     * @return the row
     */
    public static Rejection nullArgument(String message, Executable call) {
        return new Rejection(NullPointerException.class, message, call);
    }

    /**
     * A call that must throw an {@link IllegalStateException}.
     *
     * @param message a part of the expected message
     * @param call the rejected call
     * @return the row
     */
    public static Rejection illegalState(String message, Executable call) {
        return new Rejection(IllegalStateException.class, message, call);
    }

    @Override
    public String toString() {
        return type.getSimpleName() + " «" + message + "»";
    }
}
