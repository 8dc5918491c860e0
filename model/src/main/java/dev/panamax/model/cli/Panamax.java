package dev.panamax.model.cli;

import dev.panamax.kernels.Parallelism;
import dev.panamax.model.backend.Backend;
import dev.panamax.model.backend.CpuBackend;
import dev.panamax.model.backend.MatmulPrecision;
import dev.panamax.model.io.GgmlType;
import dev.panamax.model.io.GgufFile;
import dev.panamax.model.io.GgufLlama;
import dev.panamax.model.io.GgufValue;
import dev.panamax.model.nn.ModelConfig;
import dev.panamax.model.nn.ModelConfig.Architecture;
import java.io.IOException;
import java.io.InputStream;
import java.io.PrintStream;
import java.io.UncheckedIOException;
import java.lang.module.InvalidModuleDescriptorException;
import java.lang.module.ModuleDescriptor;
import java.net.URI;
import java.net.URL;
import java.nio.file.AccessDeniedException;
import java.nio.file.DirectoryNotEmptyException;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.FileSystemException;
import java.nio.file.NoSuchFileException;
import java.nio.file.NotDirectoryException;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.EnumMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.stream.Collectors;

/**
 * The {@code panamax} command line: {@code generate} text or token ids from a model, measure its {@code perplexity},
 * {@code train} one, {@code quantize} it to a GGUF file, {@code tokenize} text, print a model's {@code info}, or run
 * the kernel {@code demo}. Each command's options are a table ({@link Command}) from which
 * its parser, messages and {@code --help} text are made.
 */
public final class Panamax {
    static final Command DEMO = new Command(
            "demo",
            List.of(),
            "check each kernel on a small problem and time it next to plain Java",
            "Runs SGEMM, SGEMV, softmax and fused attention on a small problem each, checks every result against"
                    + " a reference loop, and times it next to the plain-Java loop it replaces: after a warm-up, in"
                    + " batches until three in a row agree within 10% (a rate that has not settled after 5 s, as on a"
                    + " busy machine, prints as unsettled). With --backend other than cpu, runs the same problems"
                    + " through the model's Backend operations (matmul, softmax, attention) on that backend, each"
                    + " checked the same way and timed next to the CPU backend, until its result is back on the host.",
            List.of(Command.THREADS, Command.BACKEND));
    /** The model of {@code info}, spelled as the other commands spell theirs, in place of the FILE operand. */
    static final Option INFO_MODEL = Option.text("--model", "FILE", "the model, instead of the FILE operand")
            .shortName("-m");

    static final Command INFO = new Command(
            "info",
            List.of("[FILE]"),
            "print a model's configuration and parameter count",
            "Prints the configuration and parameter count of a llama2.c checkpoint, a GGUF file (with its"
                    + " tensors' types and its tokenizer), a GPT-2 directory or a directory panamax train wrote,"
                    + " given as FILE or with -m/--model as the other commands take it.",
            List.of(INFO_MODEL));

    /** Every command, in the order the usage lists them. */
    static final List<Command> COMMANDS = List.of(
            GenerateCommand.COMMAND,
            PerplexityCommand.COMMAND,
            TrainCommand.COMMAND,
            QuantizeCommand.COMMAND,
            TokenizeCommand.COMMAND,
            INFO,
            DEMO);

    private Panamax() {}

    /**
     * Runs a command and exits with its status: 0 on success, 1 when a file could not be used or a check failed, 2 on
     * a usage error.
     *
     * @param args the command and its options
     */
    public static void main(String[] args) {
        System.exit(run(args, System.out, System.err));
    }

    static int run(String[] args, PrintStream out, PrintStream err) {
        if (args.length == 0) {
            err.print(usage());
            return 2;
        }
        try {
            switch (args[0]) {
                case "help", "--help", "-h" -> {
                    out.print(args.length > 1 ? command(args[1]).help() : usage());
                    return 0;
                }
                case "--version" -> {
                    out.println("panamax " + version());
                    return 0;
                }
                default -> {
                    Command command = command(args[0]);
                    CommandLine line = CommandLine.parse(command, Arrays.copyOfRange(args, 1, args.length));
                    if (line.help()) {
                        out.print(command.help());
                        return 0;
                    }
                    return run(command, line, out, err);
                }
            }
        } catch (UsageException e) {
            err.println("panamax: " + e.getMessage());
            err.println(
                    e.command() == null
                            ? "run 'panamax help' for the commands"
                            : e.command().usage() + "\nrun 'panamax "
                                    + e.command().name() + " --help' for its options");
            return 2;
        } catch (IOException
                | UncheckedIOException
                | IllegalArgumentException
                | IllegalStateException
                | ArithmeticException e) {
            // A file that is missing, unreadable or malformed, or a value the library refused: one line, no usage.
            err.println("panamax: " + message(e));
            return 1;
        } catch (OutOfMemoryError e) {
            // The last resort: the checks before each large allocation estimate, and one that fell short (or a heap
            // that other threads filled meanwhile) still ends in one line, not a stack trace.
            err.println(outOfMemory(args[0], e));
            return 1;
        }
    }

    /**
     * The line for a command that ran out of memory: for the heap, which command, the heap it had, and how to give it
     * more; for native memory, threads or an array past the VM's limit, where more heap would not help, the JVM's
     * reason.
     */
    static String outOfMemory(String command, OutOfMemoryError e) {
        String reason = String.valueOf(e.getMessage());
        if (!reason.equals("Java heap space") && !reason.equals("GC overhead limit exceeded")) {
            return "panamax: " + command + " ran out of memory: " + reason;
        }
        long mib = Math.ceilDiv(Runtime.getRuntime().maxMemory(), 1L << 20);
        return "panamax: " + command + " ran out of Java heap (-Xmx, about " + mib
                + " MiB here): run it with more, e.g. JDK_JAVA_OPTIONS=-Xmx" + 2 * mib + "m";
    }

    /** A failure's line: a file-system error that the JDK gave no reason for ends with what kind it is. */
    private static String message(Exception e) {
        if (e instanceof FileSystemException failure && failure.getReason() == null) {
            String kind =
                    switch (failure) {
                        case NoSuchFileException _ -> "no such file or directory";
                        case AccessDeniedException _ -> "permission denied";
                        case FileAlreadyExistsException _ -> "already exists";
                        case NotDirectoryException _ -> "not a directory";
                        case DirectoryNotEmptyException _ -> "directory not empty";
                        default -> "file system error";
                    };
            return failure.getMessage() + ": " + kind;
        }
        return e.getMessage();
    }

    private static int run(Command command, CommandLine line, PrintStream out, PrintStream err) throws IOException {
        // Set here, once, because the kernels' pool is process-wide and the process is the CLI's; without --threads
        // it keeps its default (all processors, or the panamax.threads property).
        if (line.has(Command.THREADS)) {
            Parallelism.setThreads((int) line.whole(Command.THREADS));
        }
        if (command == GenerateCommand.COMMAND) {
            return GenerateCommand.run(line, out, err);
        }
        if (command == TrainCommand.COMMAND) {
            return TrainCommand.run(line, out, err);
        }
        if (command == QuantizeCommand.COMMAND) {
            return QuantizeCommand.run(line, out);
        }
        if (command == PerplexityCommand.COMMAND) {
            return PerplexityCommand.run(line, out, err);
        }
        if (command == TokenizeCommand.COMMAND) {
            return TokenizeCommand.run(line, out);
        }
        if (command == INFO) {
            return info(infoModel(line), out);
        }
        String backendName = BackendChoice.name(line);
        if (backendName.equals("cpu")) {
            return new Demo(out).run() ? 0 : 1;
        }
        try (Backend backend = BackendChoice.open(line, backendName, MatmulPrecision.FP32, err)) {
            // auto without CUDA is the CPU backend, whose operations are the kernels demonstrated directly.
            boolean ok = backend instanceof CpuBackend
                    ? new Demo(out).run()
                    : new Demo(out).runOn(backend, backend.toString());
            return ok ? 0 : 1;
        }
    }

    private static Command command(String name) {
        for (Command command : COMMANDS) {
            if (command.name().equals(name)) {
                return command;
            }
        }
        throw new UsageException(null, "unknown command '" + name + "'");
    }

    /** The top-level usage: the commands, one line each. */
    static String usage() {
        StringBuilder usage = new StringBuilder("usage: panamax <command> [options]\n\ncommands:\n");
        for (Command command : COMMANDS) {
            usage.append(String.format(Locale.ROOT, "  %-10s %s\n", command.name(), command.summary()));
        }
        usage.append(String.format(Locale.ROOT, "  %-10s %s\n", "help", "show this text, or a command's options"));
        return usage.append("\nrun 'panamax <command> --help' for a command's options\n")
                .append("run 'panamax --version' for the version\n")
                .toString();
    }

    /**
     * Panamax's version: the one the build records in the {@code dev.panamax.model} module's descriptor (the compiler
     * plugin passes the project's version to javac as {@code --module-version}), so it is the same from the classes
     * directory, the jar and a jlinked image. On the class path the descriptor is read from the {@code
     * module-info.class} beside this class; failing that, the jar manifest's {@code Implementation-Version}.
     */
    static String version() {
        Module module = Panamax.class.getModule();
        Optional<String> version = module.isNamed() ? module.getDescriptor().rawVersion() : descriptorBesideThisClass();
        return version.or(() -> Optional.ofNullable(Panamax.class.getPackage().getImplementationVersion()))
                .orElse("(version unknown: this build recorded none)");
    }

    private static Optional<String> descriptorBesideThisClass() {
        String self = Panamax.class.getName().replace('.', '/') + ".class";
        URL url = Panamax.class.getResource("/" + self);
        if (url == null || !url.toString().endsWith(self)) {
            return Optional.empty();
        }
        String root = url.toString().substring(0, url.toString().length() - self.length());
        try (InputStream in = URI.create(root + "module-info.class").toURL().openStream()) {
            return ModuleDescriptor.read(in).rawVersion();
        } catch (IOException | IllegalArgumentException | InvalidModuleDescriptorException e) {
            return Optional.empty();
        }
    }

    /** The model {@code info} reads: its operand or its {@code -m}, exactly one of them. */
    private static String infoModel(CommandLine line) {
        if (line.operands().isEmpty() != line.has(INFO_MODEL)) {
            throw line.usage(
                    line.has(INFO_MODEL)
                            ? "give the model as FILE or as " + line.typed(INFO_MODEL) + " FILE, not both"
                            : "info needs FILE (or " + line.typed(INFO_MODEL) + " FILE)");
        }
        return line.has(INFO_MODEL) ? line.text(INFO_MODEL) : line.operands().getFirst();
    }

    private static int info(String file, PrintStream out) throws IOException {
        Path path = Path.of(file);
        if (ModelFiles.isGguf(path)) {
            try (GgufFile gguf = GgufFile.open(path)) {
                printConfig(file, GgufLlama.config(gguf), out);
                Map<GgmlType, Integer> types = new EnumMap<>(GgmlType.class);
                gguf.tensors().values().forEach(t -> types.merge(t.type(), 1, Integer::sum));
                out.printf(
                        Locale.ROOT,
                        "format:         GGUF version %d, %d metadata keys, %d tensors (%s)%n",
                        gguf.version(),
                        gguf.metadata().size(),
                        gguf.tensors().size(),
                        types.entrySet().stream()
                                .map(e -> e.getValue() + " " + e.getKey())
                                .collect(Collectors.joining(", ")));
                GgufValue tokenizer = gguf.metadata().get("tokenizer.ggml.model");
                GgufValue tokens = gguf.metadata().get("tokenizer.ggml.tokens");
                out.printf(
                        Locale.ROOT,
                        "tokenizer:      %s%n",
                        tokenizer == null
                                ? "none"
                                : tokenizer.describe() + (tokens == null ? "" : ", " + tokens.length() + " tokens"));
                return 0;
            }
        }
        try (ModelFiles.Model model = ModelFiles.open(path, "info")) {
            printConfig(file, model.config(), out);
            return 0;
        }
    }

    private static void printConfig(String file, ModelConfig c, PrintStream out) {
        boolean llama = c.architecture() == Architecture.LLAMA;
        out.printf(Locale.ROOT, "file:           %s%n", file);
        out.printf(Locale.ROOT, "architecture:   %s%n", llama ? "Llama" : "GPT-2");
        out.printf(Locale.ROOT, "dim:            %d%n", c.dim());
        out.printf(Locale.ROOT, "hidden dim:     %d%n", c.hiddenDim());
        out.printf(Locale.ROOT, "layers:         %d%n", c.layers());
        out.printf(
                Locale.ROOT,
                "heads:          %d (key/value heads %d, head size %d)%n",
                c.heads(),
                c.kvHeads(),
                c.headSize());
        out.printf(Locale.ROOT, "vocabulary:     %d%n", c.vocabSize());
        out.printf(Locale.ROOT, "context length: %d%n", c.seqLen());
        out.printf(Locale.ROOT, "norm epsilon:   %s%n", c.normEpsilon());
        if (llama) {
            out.printf(Locale.ROOT, "rope theta:     %s%n", c.ropeTheta());
        }
        out.printf(
                Locale.ROOT,
                "classifier:     %s%n",
                c.sharedClassifier() ? "shared with the token embedding" : "a matrix of its own");
        out.printf(Locale.ROOT, "parameters:     %,d (%.2f M)%n", c.parameterCount(), c.parameterCount() / 1e6);
    }
}
