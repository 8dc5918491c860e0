package dev.panamax.model.cli;

/**
 * A command line that cannot run as typed: an unknown command or option, a missing or malformed value, or a value out
 * of its bounds. {@link Panamax} prints the message and the command's usage line and exits with status 2; problems
 * with files are {@link java.io.IOException}s instead, reported in one line with status 1.
 */
final class UsageException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    /** The command whose usage to show, or null for the top-level usage. */
    private final transient Command command;

    UsageException(Command command, String message) {
        super(message);
        this.command = command;
    }

    Command command() {
        return command;
    }
}
