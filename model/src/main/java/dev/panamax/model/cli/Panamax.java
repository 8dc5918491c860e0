package dev.panamax.model.cli;

import dev.panamax.kernels.Parallelism;
import java.io.PrintStream;
import java.util.Arrays;

/** The {@code panamax} command line: {@code panamax demo [--threads N]}. */
public final class Panamax {
    private static final String USAGE = """
            usage: panamax <command> [options]

            commands:
              demo [--threads N]   run each kernel on a small problem, check it and time it next to plain Java
              help                 show this text
            """;

    private Panamax() {}

    /**
     * Runs a command and exits with its status: 0 on success, 1 when a check failed, 2 on a usage error.
     *
     * @param args the command and its options
     */
    public static void main(String[] args) {
        System.exit(run(args, System.out, System.err));
    }

    static int run(String[] args, PrintStream out, PrintStream err) {
        if (args.length == 0 || args[0].equals("help") || args[0].equals("--help")) {
            out.print(USAGE);
            return args.length == 0 ? 2 : 0;
        }
        try {
            String[] options = Arrays.copyOfRange(args, 1, args.length);
            return switch (args[0]) {
                case "demo" -> {
                    applyThreads(options);
                    yield new Demo(out).run() ? 0 : 1;
                }
                default -> throw new IllegalArgumentException("unknown command '" + args[0] + "'");
            };
        } catch (IllegalArgumentException e) {
            err.println("panamax: " + e.getMessage());
            err.print(USAGE);
            return 2;
        }
    }

    private static void applyThreads(String[] options) {
        for (int i = 0; i < options.length; i++) {
            if (options[i].equals("--threads") && i + 1 < options.length) {
                try {
                    Parallelism.setThreads(Integer.parseInt(options[++i]));
                } catch (NumberFormatException e) {
                    throw new IllegalArgumentException("--threads (" + options[i] + ") must be a whole number >= 1");
                }
            } else {
                throw new IllegalArgumentException("unknown option '" + options[i] + "'");
            }
        }
    }
}
