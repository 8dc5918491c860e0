package dev.panamax.bench;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.LocalDateTime;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import org.openjdk.jmh.results.format.ResultFormatType;
import org.openjdk.jmh.runner.Runner;
import org.openjdk.jmh.runner.options.CommandLineOptionException;
import org.openjdk.jmh.runner.options.CommandLineOptions;
import org.openjdk.jmh.runner.options.Options;
import org.openjdk.jmh.runner.options.OptionsBuilder;

/**
 * Runs benchmark suites and renders their results: {@code bench/run SUITE[:METHODS]... [-- JMH options]}, where
 * METHODS is a regular expression over the suite's benchmark methods (e.g. {@code gemm:panamax|openblas}), or {@code
 * bench/run report FILE.json} to render an earlier run again. Each suite writes {@code SUITE-TIMESTAMP.json} (JMH's own format),
 * {@code .md} (a table of rates and ratios to the peers) and {@code .png} (a chart) into the results folder.
 */
public final class Bench {
    /** The suites by name; each class also has a static {@code workload} method {@link Report} calls. */
    static final Map<String, Class<?>> SUITES = new LinkedHashMap<>();

    static {
        SUITES.put("gemm", GemmBench.class);
        SUITES.put("gemv", GemvBench.class);
        SUITES.put("downcall", DowncallBench.class);
        SUITES.put("ops", OpsBench.class);
        SUITES.put("attention", AttentionBench.class);
        SUITES.put("decode", AttentionDecodeBench.class);
        SUITES.put("generate", GenerateBench.class);
        SUITES.put("train", TrainBench.class);
        SUITES.put("emulator", EmulatorBench.class);
        SUITES.put("quant", QuantBench.class);
    }

    private Bench() {}

    private static String suite(String name) {
        return name.contains(":") ? name.substring(0, name.indexOf(':')) : name;
    }

    /**
     * Runs the named suites.
     *
     * @param args suite names or {@code all}, then optionally {@code --} and JMH command-line options
     * @throws Exception if JMH or writing the results fails
     */
    public static void main(String[] args) throws Exception {
        int split = Arrays.asList(args).indexOf("--");
        List<String> names = new ArrayList<>(Arrays.asList(split < 0 ? args : Arrays.copyOf(args, split)));
        String[] jmhArgs = split < 0 ? new String[0] : Arrays.copyOfRange(args, split + 1, args.length);
        Path results = Path.of(System.getProperty("panamax.results", "bench/results"));
        if (names.size() == 2 && names.get(0).equals("report")) {
            Path json = Path.of(names.get(1));
            System.out.println(Report.render(json));
            return;
        }
        if (names.isEmpty() || names.contains("help")) {
            System.out.println("usage: bench/run SUITE[:METHODS]... [-- JMH options]   (suites: all, "
                    + String.join(", ", SUITES.keySet()) + ")\n       bench/run report FILE.json");
            return;
        }
        if (names.equals(List.of("all"))) {
            names = new ArrayList<>(SUITES.keySet());
        }
        for (String name : names) {
            if (!SUITES.containsKey(suite(name))) {
                throw new IllegalArgumentException(
                        "unknown suite '" + name + "'; the suites are: all, " + String.join(", ", SUITES.keySet()));
            }
        }
        Files.createDirectories(results);
        String stamp = LocalDateTime.now().format(DateTimeFormatter.ofPattern("yyyyMMdd-HHmmss", Locale.ROOT));
        for (String name : names) {
            String suite = suite(name);
            String methods = name.contains(":") ? name.substring(name.indexOf(':') + 1) : ".*";
            Path json = resultFile(results, suite, stamp);
            Options options = options(suite, methods, json, jmhArgs);
            new Runner(options).run();
            System.out.println(Report.render(json));
        }
    }

    /**
     * The JSON file of one suite's run, {@code SUITE-TIMESTAMP.json}, or {@code SUITE-TIMESTAMP-N.json} with the first
     * N from 2 whose file does not exist yet, so that a suite named twice in one call keeps both runs (the first has
     * written its file when the second starts).
     */
    static Path resultFile(Path results, String suite, String stamp) {
        Path json = results.resolve(suite + "-" + stamp + ".json");
        for (int n = 2; Files.exists(json); n++) {
            json = results.resolve(suite + "-" + stamp + "-" + n + ".json");
        }
        return json;
    }

    /**
     * The JMH options of one suite's run: its benchmark methods matching {@code methods}, results as JSON to {@code
     * json}, the command line's options, and the flags every fork needs in front of the fork's arguments.
     */
    static Options options(String suite, String methods, Path json, String[] jmhArgs)
            throws CommandLineOptionException {
        CommandLineOptions given = new CommandLineOptions(jmhArgs);
        // Prepended, so that a suite's own @Fork(jvmArgsAppend) and a -jvmArgsAppend given after -- stay in force; the
        // builder's list replaces a -jvmArgsPrepend given there, which is therefore added to it.
        List<String> forkArguments = new ArrayList<>(List.of(
                "--add-modules=jdk.incubator.vector",
                "--enable-native-access=ALL-UNNAMED",
                "--sun-misc-unsafe-memory-access=allow",
                "-Djava.awt.headless=true"));
        if (given.getJvmArgsPrepend().hasValue()) {
            forkArguments.addAll(given.getJvmArgsPrepend().get());
        }
        return new OptionsBuilder()
                .parent(given)
                .include("^" + SUITES.get(suite).getName().replace(".", "\\.") + "\\.(" + methods + ")$")
                .resultFormat(ResultFormatType.JSON)
                .result(json.toString())
                .jvmArgsPrepend(forkArguments.toArray(String[]::new))
                .build();
    }
}
