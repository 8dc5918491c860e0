package dev.panamax.model.cli;

import java.nio.file.InvalidPathException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * A command's arguments, parsed against its option table: options as {@code --name value}, {@code --name=value},
 * {@code -n value} or {@code -n=value}, flags alone, operands in between or after {@code --}. Values are checked against the table's bounds
 * when they are read, and every message names the option as the user typed it.
 */
final class CommandLine {
    private final Command command;
    private final Map<Option, String> values = new HashMap<>();
    private final Map<Option, String> typed = new HashMap<>();
    private final List<String> operands = new ArrayList<>();

    private CommandLine(Command command) {
        this.command = command;
    }

    /**
     * Parses a command's arguments.
     *
     * @param command the command
     * @param args its arguments, after the command's name
     * @return the parsed arguments; with {@code --help} among them, the operands are not checked
     * @throws UsageException for an unknown option, a missing value, a value given to a flag, an option given twice,
     *     or the wrong number of operands
     */
    static CommandLine parse(Command command, String[] args) {
        CommandLine line = new CommandLine(command);
        boolean onlyOperands = false;
        for (int i = 0; i < args.length; i++) {
            String arg = args[i];
            if (onlyOperands || !arg.startsWith("-") || arg.equals("-")) {
                line.operands.add(arg);
                continue;
            }
            if (arg.equals("--")) {
                onlyOperands = true;
                continue;
            }
            int equals = arg.indexOf('=');
            String spelling = equals < 0 ? arg : arg.substring(0, equals);
            Option option = command.option(spelling);
            if (option == null) {
                throw line.usage("unknown option '" + spelling + "'");
            }
            String value;
            if (!option.takesValue()) {
                if (equals >= 0) {
                    throw line.usage(spelling + " takes no value");
                }
                value = "";
            } else if (equals >= 0) {
                value = arg.substring(equals + 1);
            } else if (i + 1 < args.length) {
                value = args[++i];
            } else {
                throw line.usage(spelling + " needs a value (" + option.metavar() + ")");
            }
            if (line.values.put(option, value) != null) {
                throw line.usage(option.spellings().replace(", ", "/") + " is given twice");
            }
            line.typed.put(option, spelling);
        }
        if (!line.help() && line.operands.size() > command.operands().size()) {
            throw line.usage("unexpected argument '"
                    + line.operands.get(command.operands().size()) + "'");
        }
        if (!line.help() && line.operands.size() < command.requiredOperands()) {
            throw line.usage(command.name() + " needs "
                    + String.join(" ", command.operands().subList(0, command.requiredOperands())));
        }
        return line;
    }

    /** Whether {@code -h} or {@code --help} was given. */
    boolean help() {
        return values.containsKey(Command.HELP);
    }

    boolean has(Option option) {
        return values.containsKey(option);
    }

    /** The option as the user typed it ({@code -n} or {@code --max-tokens}), or its long name if not given. */
    String typed(Option option) {
        return typed.getOrDefault(option, option.name());
    }

    List<String> operands() {
        return operands;
    }

    /** The option's value as given, else its default (null if it has none). */
    String text(Option option) {
        return values.getOrDefault(option, option.defaultValue());
    }

    /** The option's value as a path, or null when absent and without default. */
    Path path(Option option) {
        String value = text(option);
        if (value == null) {
            return null;
        }
        try {
            return Path.of(value);
        } catch (InvalidPathException e) {
            throw usage(typed(option) + " (" + value + ") is not a valid path: " + e.getReason());
        }
    }

    /** The option's whole-number value (given, else its default) within the table's bounds. */
    long whole(Option option) {
        return whole(option, (long) option.low(), (long) option.high());
    }

    /** The option's whole-number value within bounds narrower than the table's, with the reason for them. */
    long whole(Option option, long low, long high, String why) {
        try {
            return whole(option, low, high);
        } catch (UsageException e) {
            throw usage(e.getMessage() + ": " + why);
        }
    }

    private long whole(Option option, long low, long high) {
        requireKind(option, Option.Kind.WHOLE);
        String value = text(option);
        String bounds = Option.describe(Option.Kind.WHOLE, low, false, high, false);
        long parsed;
        try {
            parsed = Long.parseLong(value.strip());
        } catch (NumberFormatException e) {
            throw usage(typed(option) + " (" + value + ") must be " + bounds);
        }
        if (parsed < low) {
            throw usage(typed(option) + " (" + value + ") must be " + bounds);
        }
        if (parsed > high) {
            throw usage(typed(option) + " (" + value + ") must be " + bounds
                    + (bounds.contains("[") ? "" : " and at most " + high));
        }
        return parsed;
    }

    /** The option's number value (given, else its default) within the table's bounds. */
    float number(Option option) {
        requireKind(option, Option.Kind.NUMBER);
        String value = text(option);
        float parsed;
        try {
            parsed = Float.parseFloat(value.strip());
        } catch (NumberFormatException e) {
            parsed = Float.NaN;
        }
        boolean aboveLow = option.lowOpen() ? parsed > option.low() : parsed >= option.low();
        boolean belowHigh = option.highOpen() ? parsed < option.high() : parsed <= option.high();
        if (!Float.isFinite(parsed) || !aboveLow || !belowHigh) {
            throw usage(typed(option) + " (" + value + ") must be "
                    + Option.describe(
                            Option.Kind.NUMBER, option.low(), option.lowOpen(), option.high(), option.highOpen()));
        }
        return parsed;
    }

    private void requireKind(Option option, Option.Kind kind) {
        if (option.kind() != kind || text(option) == null) {
            throw new IllegalStateException(option.name() + " is not a " + kind + " option with a value or default");
        }
    }

    /** A usage error of this command. */
    UsageException usage(String message) {
        return new UsageException(command, message);
    }
}
