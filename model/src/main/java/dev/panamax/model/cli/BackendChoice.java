package dev.panamax.model.cli;

import dev.panamax.cuda.CudaUnavailableException;
import dev.panamax.model.backend.Backend;
import dev.panamax.model.backend.Backends;
import dev.panamax.model.backend.CpuBackend;
import dev.panamax.model.backend.MatmulPrecision;
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
     * The chosen {@code --precision}, checked before anything is read or computed, also against {@code --backend cpu},
     * which computes in FP32 only (so that {@code -n 0} checks it too).
     */
    static MatmulPrecision precision(CommandLine line) {
        MatmulPrecision precision;
        try {
            precision = MatmulPrecision.of(line.text(Command.PRECISION));
        } catch (IllegalArgumentException e) {
            throw line.usage(line.typed(Command.PRECISION) + " (" + line.text(Command.PRECISION) + ") must be one of "
                    + MatmulPrecision.names());
        }
        try {
            Backends.checkPrecision(name(line), precision);
        } catch (IllegalArgumentException e) {
            throw refused(line, precision, e);
        }
        return precision;
    }

    private static UsageException refused(CommandLine line, MatmulPrecision precision, IllegalArgumentException e) {
        return line.usage(line.typed(Command.PRECISION) + " " + precision.spelling() + ": " + e.getMessage());
    }

    /**
     * Opens the backend; any but the CPU at FP32 says on {@code err} which runs and why. A CUDA backend that cannot
     * run here, or a precision the chosen backend does not compute, is a usage error with the reason.
     */
    static Backend open(CommandLine line, String name, MatmulPrecision precision, PrintStream err) {
        if (name.equals("cpu") && precision == MatmulPrecision.FP32) {
            return new CpuBackend();
        }
        try {
            Backends.Selection selection = Backends.create(name, precision);
            err.println(selection.description());
            return selection.backend();
        } catch (CudaUnavailableException e) {
            throw line.usage(line.typed(Command.BACKEND) + " " + name + ": CUDA cannot run here: " + e.reason());
        } catch (IllegalArgumentException e) {
            throw refused(line, precision, e);
        }
    }
}
