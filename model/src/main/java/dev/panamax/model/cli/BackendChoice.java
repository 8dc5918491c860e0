package dev.panamax.model.cli;

import dev.panamax.cuda.CudaUnavailableException;
import dev.panamax.model.backend.Backend;
import dev.panamax.model.backend.Backends;
import dev.panamax.model.backend.CpuBackend;
import java.io.PrintStream;
import java.util.Locale;

/** The {@code --backend} option of the commands that compute: its name checked first, the backend opened later. */
final class BackendChoice {
    private BackendChoice() {}

    /** The chosen name, lower-cased, checked before anything is read or computed. */
    static String name(CommandLine line) {
        String name = line.text(Command.BACKEND).toLowerCase(Locale.ROOT);
        if (!Backends.NAMES.contains(name)) {
            throw line.usage(line.typed(Command.BACKEND) + " (" + line.text(Command.BACKEND) + ") must be one of "
                    + String.join(", ", Backends.NAMES));
        }
        return name;
    }

    /**
     * Opens the backend; any but the CPU says on {@code err} which runs and why. A CUDA backend that cannot run here
     * is a usage error with the reason.
     *
     */
    static Backend open(CommandLine line, String name, PrintStream err) {
        if (name.equals("cpu")) {
            return new CpuBackend();
        }
        try {
            Backends.Selection selection = Backends.create(name);
            err.println(selection.description());
            return selection.backend();
        } catch (CudaUnavailableException e) {
            throw line.usage(line.typed(Command.BACKEND) + " " + name + ": CUDA cannot run here: " + e.reason());
        }
    }
}
