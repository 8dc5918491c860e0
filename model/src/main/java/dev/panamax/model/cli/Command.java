package dev.panamax.model.cli;

import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A command of the {@code panamax} CLI as data: its name, operands, description and option table. The parser ({@link
 * CommandLine#parse}) and the help text both read the table.
 */
final class Command {
    /** Every command takes {@code -h}/{@code --help}. */
    static final Option HELP = Option.flag("--help", "show this help").shortName("-h");

    /**
     * The most {@link #THREADS} allows: above the hardware threads of today's largest machines, and the same on every
     * machine, so that a command line valid on one is valid on another; the kernels' pool never shrinks, so a larger
     * count would only hold that many idle platform threads.
     */
    static final int MAX_THREADS = 1024;

    /** The kernels' thread count, which every command that computes takes. */
    static final Option THREADS = Option.whole(
                    "--threads",
                    "N",
                    1,
                    MAX_THREADS,
                    "threads for the kernels, at most " + MAX_THREADS + " (default: all processors)")
            .shortName("-t");

    /** Where the model runs: {@link dev.panamax.model.backend.Backends#create} picks the backend by this name. */
    static final Option BACKEND = Option.text(
                    "--backend", "NAME", "auto, cpu, cuda (a GPU) or emulated (CUDA kernels on the CPU, slow)")
            .defaultValue("cpu");

    /** The matrix products' precision: {@link dev.panamax.model.backend.MatmulPrecision}, by name. */
    static final Option PRECISION = Option.text(
                    "--precision",
                    "P",
                    "matrix products: fp32, tf32 (inputs rounded to 10 mantissa bits) or bf16 (to 7 bits), FP32"
                            + " accumulation; tf32 and bf16 need a CUDA backend")
            .defaultValue("fp32");

    /** The width the help text is wrapped to. */
    private static final int WIDTH = 80;

    /** The help's option column never grows wider than this; longer spellings put their text on the next line. */
    private static final int MAX_OPTION_COLUMN = 26;

    private final String name;
    private final List<String> operands;
    private final String summary;
    private final String description;
    private final List<Option> options;
    private final Map<String, Option> bySpelling = new LinkedHashMap<>();

    /**
     * A command.
     *
     * @param name what the user types, e.g. {@code generate}
     * @param operands the names of its positional arguments (e.g. {@code FILE}), an optional one in brackets ({@code
     *     [FILE]}) after the required ones; empty for none
     * @param summary one line for the command list
     * @param description a paragraph for its help
     * @param options its options, in the order the help lists them; {@link #HELP} is added
     */
    Command(String name, List<String> operands, String summary, String description, List<Option> options) {
        this.name = name;
        this.operands = List.copyOf(operands);
        this.summary = summary;
        this.description = description;
        List<Option> all = new ArrayList<>(options);
        all.add(HELP);
        this.options = Collections.unmodifiableList(all);
        for (Option option : all) {
            for (String spelling : new String[] {option.name(), option.shortName()}) {
                if (spelling != null && bySpelling.put(spelling, option) != null) {
                    throw new IllegalArgumentException(name + ": option " + spelling + " is declared twice");
                }
            }
        }
    }

    String name() {
        return name;
    }

    List<String> operands() {
        return operands;
    }

    /** How many of the operands are required: those not in brackets. */
    int requiredOperands() {
        return (int)
                operands.stream().filter(operand -> !operand.startsWith("[")).count();
    }

    String summary() {
        return summary;
    }

    List<Option> options() {
        return options;
    }

    /** The option spelled so, long or short, or null. */
    Option option(String spelling) {
        return bySpelling.get(spelling);
    }

    /** The usage line: {@code usage: panamax generate [options]}. */
    String usage() {
        StringBuilder line = new StringBuilder("usage: panamax ").append(name).append(" [options]");
        for (String operand : operands) {
            line.append(' ').append(operand);
        }
        return line.toString();
    }

    /** The whole help: usage line, description, and one entry per option with its default. */
    String help() {
        StringBuilder help = new StringBuilder(usage()).append("\n\n");
        wrap(help, description, "", "");
        help.append("\noptions:\n");
        int column = 0;
        for (Option option : options) {
            column = Math.max(column, left(option).length() + 2);
        }
        column = Math.min(column, MAX_OPTION_COLUMN);
        for (Option option : options) {
            String left = left(option);
            String text =
                    option.help() + (option.defaultValue() == null ? "" : " (default: " + option.defaultValue() + ")");
            String indent = " ".repeat(column);
            if (left.length() + 2 > column) {
                help.append(left).append('\n');
                wrap(help, text, indent, indent);
            } else {
                wrap(help, text, left + " ".repeat(column - left.length()), indent);
            }
        }
        return help.toString();
    }

    /** The option's spellings as the help's left column shows them, long names aligned. */
    private static String left(Option option) {
        String spellings = option.shortName() == null ? "    " + option.name() : option.spellings();
        return "  " + spellings + (option.takesValue() ? " " + option.metavar() : "");
    }

    /** Appends {@code text} wrapped at {@link #WIDTH}, its first line after {@code first}, the others after {@code rest}. */
    private static void wrap(StringBuilder to, String text, String first, String rest) {
        StringBuilder line = new StringBuilder(first);
        boolean empty = true;
        for (String word : text.split(" ")) {
            if (!empty && line.length() + 1 + word.length() > WIDTH) {
                to.append(line).append('\n');
                line = new StringBuilder(rest);
                empty = true;
            }
            if (!empty) {
                line.append(' ');
            }
            line.append(word);
            empty = false;
        }
        to.append(line).append('\n');
    }
}
