package dev.panamax.model.cli;

import java.util.Locale;

/**
 * One command-line option: its spellings, the kind of value it takes with the bounds that value must keep, its default
 * and its help line. A command's options are a table of these, from which the parser, the validation messages and the
 * help text are all made, so that they cannot disagree.
 *
 * @param name the long spelling, e.g. {@code --top-p}
 * @param shortName the one-letter spelling, e.g. {@code -p}, or null
 * @param metavar what the help calls the value, e.g. {@code FILE}; null for a flag
 * @param kind the kind of value
 * @param low the least value a number may take
 * @param lowOpen whether {@code low} itself is excluded
 * @param high the greatest value a number may take
 * @param highOpen whether {@code high} itself is excluded
 * @param defaultValue the value used when the option is absent, as typed; null when it has none or it is computed
 * @param help what the option does, one sentence; the help text wraps it
 */
record Option(
        String name,
        String shortName,
        String metavar,
        Kind kind,
        double low,
        boolean lowOpen,
        double high,
        boolean highOpen,
        String defaultValue,
        String help) {

    /** The kinds of value an option takes. */
    enum Kind {
        /** No value: present or absent. */
        FLAG,
        /** Any text, e.g. a path or a prompt. */
        TEXT,
        /** A whole number in [low, high]. */
        WHOLE,
        /** A finite number between low and high, either bound included or not. */
        NUMBER
    }

    static Option flag(String name, String help) {
        return new Option(name, null, null, Kind.FLAG, 0, false, 0, false, null, help);
    }

    static Option text(String name, String metavar, String help) {
        return new Option(name, null, metavar, Kind.TEXT, 0, false, 0, false, null, help);
    }

    static Option whole(String name, String metavar, long low, long high, String help) {
        return new Option(name, null, metavar, Kind.WHOLE, low, false, high, false, null, help);
    }

    /** A whole number {@code >= low}, bounded above only by int's range. */
    static Option wholeFrom(String name, String metavar, long low, String help) {
        return whole(name, metavar, low, Integer.MAX_VALUE, help);
    }

    /** A number in [low, high], or (low, high] when {@code lowOpen}; infinite bounds mean any finite number. */
    static Option number(String name, String metavar, double low, boolean lowOpen, double high, String help) {
        return new Option(name, null, metavar, Kind.NUMBER, low, lowOpen, high, false, null, help);
    }

    /** A finite number {@code >= 0}. */
    static Option nonNegative(String name, String metavar, String help) {
        return number(name, metavar, 0, false, Double.POSITIVE_INFINITY, help);
    }

    /** A finite number {@code > 0}. */
    static Option positive(String name, String metavar, String help) {
        return number(name, metavar, 0, true, Double.POSITIVE_INFINITY, help);
    }

    /** A number in [low, high) (a decay factor that must stay below 1, say). */
    static Option numberBelow(String name, String metavar, double low, double high, String help) {
        return new Option(name, null, metavar, Kind.NUMBER, low, false, high, true, null, help);
    }

    Option shortName(String spelling) {
        return new Option(name, spelling, metavar, kind, low, lowOpen, high, highOpen, defaultValue, help);
    }

    Option defaultValue(String value) {
        return new Option(name, shortName, metavar, kind, low, lowOpen, high, highOpen, value, help);
    }

    /** A default that the code holds as a number, typed as {@link Float#toString} writes it. */
    Option defaultValue(float value) {
        return defaultValue(Float.toString(value));
    }

    /** A default that the code holds as a whole number. */
    Option defaultValue(int value) {
        return defaultValue(Integer.toString(value));
    }

    boolean takesValue() {
        return kind != Kind.FLAG;
    }

    /** Both spellings, as the help and the "given twice" message show them: {@code -p, --prompt}. */
    String spellings() {
        return shortName == null ? name : shortName + ", " + name;
    }

    /** What a value must be, for messages: {@code a whole number in [0, 512]}, {@code a number in (0, 1]}. */
    static String describe(Kind kind, double low, boolean lowOpen, double high, boolean highOpen) {
        boolean whole = kind == Kind.WHOLE;
        String noun = whole ? "a whole number" : "a finite number";
        boolean unboundedBelow = whole ? low <= Long.MIN_VALUE : low == Double.NEGATIVE_INFINITY;
        // A count bounded only by int's range reads better as ">= 1"; a larger value gets its own message.
        boolean unboundedAbove = whole ? high >= Integer.MAX_VALUE : high == Double.POSITIVE_INFINITY;
        if (unboundedBelow && unboundedAbove) {
            return noun;
        }
        if (unboundedAbove) {
            return noun + (lowOpen ? " > " : " >= ") + format(kind, low);
        }
        return noun + " in " + (lowOpen ? "(" : "[") + format(kind, low) + ", " + format(kind, high)
                + (highOpen ? ")" : "]");
    }

    private static String format(Kind kind, double value) {
        if (kind == Kind.WHOLE || value == Math.rint(value)) {
            return Long.toString((long) value);
        }
        return String.format(Locale.ROOT, "%s", value);
    }
}
