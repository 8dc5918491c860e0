package dev.panamax.bench;

import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import dev.panamax.model.io.AtomicFiles;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import org.knowm.xchart.BitmapEncoder;
import org.knowm.xchart.CategoryChart;
import org.knowm.xchart.CategoryChartBuilder;

/**
 * Turns a JMH JSON result into a Markdown table and a PNG chart beside it. Rows are parameter combinations, columns
 * the implementations measured side by side (Panamax's, named {@code panamax…}, first), cells the rate of useful work
 * (from the suite's {@link Workload}) with the number of forks it comes from, followed by {@code panamax}'s ratio to
 * each peer and each Panamax variant's fraction of the ceiling, where one is known. Notes under the table mark the
 * ratios from a single fork and say where each ceiling comes from.
 */
final class Report {
    private static final String OURS = "panamax";
    /** The mark of a ratio with a single fork on a side. */
    private static final String SINGLE_FORK = "¹";
    /** Peers measured in the same run that move the bytes Panamax moves with nothing computed, and what they are. */
    private static final Map<String, String> REFERENCES = Map.of(
            "plainRead", "a plain vector read of the same bytes on the same threads",
            "arrayCopy", "`System.arraycopy` of the same bytes");

    private Report() {}

    /**
     * One measured cell: seconds per operation, JMH's 99.9% error relative to the score (NaN from one iteration), its
     * forks and its work.
     */
    private record Cell(double seconds, double relativeError, int forks, Workload workload) {
        double rate() {
            return workload.amount() / seconds;
        }
    }

    /**
     * Writes {@code NAME.md} and {@code NAME.png} next to {@code NAME.json}, each whole or not at all; returns the
     * Markdown.
     */
    static String render(Path json) throws IOException {
        JsonArray runs = JsonParser.parseString(Files.readString(json)).getAsJsonArray();
        if (runs.isEmpty()) {
            return json + ": no benchmark ran (check the suite's method filter and -p values)";
        }
        Map<String, Map<String, Cell>> rows = new LinkedHashMap<>();
        List<String> methods = new ArrayList<>();
        Map<String, String> units = new LinkedHashMap<>();
        for (JsonElement element : runs) {
            JsonObject run = element.getAsJsonObject();
            String benchmark = run.get("benchmark").getAsString();
            String method = benchmark.substring(benchmark.lastIndexOf('.') + 1);
            Map<String, String> params = new TreeMap<>();
            if (run.has("params")) {
                run.getAsJsonObject("params")
                        .entrySet()
                        .forEach(e -> params.put(e.getKey(), e.getValue().getAsString()));
            }
            JsonObject metric = run.getAsJsonObject("primaryMetric");
            double perOp = secondsPerOp(
                    metric.get("score").getAsDouble(), metric.get("scoreUnit").getAsString());
            double error =
                    metric.get("scoreError").getAsDouble() / metric.get("score").getAsDouble();
            // JMH writes the fork count of every run; one that lacks it is taken as unsampled, the cautious reading.
            int forks = run.has("forks") ? run.get("forks").getAsInt() : 1;
            Workload workload = workload(benchmark.substring(0, benchmark.lastIndexOf('.')), method, params);
            units.putIfAbsent(method, workload.unit());
            if (!methods.contains(method)) {
                methods.add(method);
            }
            rows.computeIfAbsent(label(params), key -> new LinkedHashMap<>())
                    .put(method, new Cell(perOp, error, forks, workload));
        }
        // Panamax's own variants first (the plain "panamax" leading), then the peers.
        methods.sort(Comparator.comparing((String m) -> !m.startsWith(OURS)).thenComparing(m -> !m.equals(OURS)));
        String name = json.getFileName().toString().replaceFirst("\\.json$", "");
        String markdown = table(json.getFileName().toString(), rows, methods, units);
        Path base = json.resolveSibling(name);
        // A reader never finds half a file, and a failed write leaves the previous one.
        AtomicFiles.replace(Path.of(base + ".md"), markdown);
        byte[] png = chart(name, rows, methods, units);
        AtomicFiles.replace(Path.of(base + ".png"), file -> Files.write(file, png));
        return markdown;
    }

    private static String table(
            String title, Map<String, Map<String, Cell>> rows, List<String> methods, Map<String, String> units) {
        Set<String> distinctUnits = new LinkedHashSet<>(units.values());
        boolean oneUnit = distinctUnits.size() == 1;
        StringBuilder out = new StringBuilder("# " + title + "\n\n")
                .append(
                        oneUnit
                                ? "Rates in " + distinctUnits.iterator().next() + "/s"
                                : "Rates per second in the unit each column names")
                .append(" (higher is better), each ± JMH's 99.9% confidence interval over the measured iterations,"
                        + " with the number of forks (JVMs) they come from. Ratios are panamax's rate over the peer's,"
                        + " measured in the same run.\n\n| case |");
        List<String> ours = methods.stream().filter(m -> m.startsWith(OURS)).toList();
        List<String> peers = methods.contains(OURS)
                ? methods.stream()
                        .filter(m -> !m.startsWith(OURS) && units.get(m).equals(units.get(OURS)))
                        .toList()
                : List.of();
        List<String> ceilinged = ours.stream()
                .filter(m -> rows.values().stream()
                        .anyMatch(cells ->
                                cells.containsKey(m) && cells.get(m).workload().hasCeiling()))
                .toList();
        methods.forEach(m -> out.append(' ')
                .append(m)
                .append(oneUnit ? "" : " (" + units.get(m) + "/s)")
                .append(" |"));
        peers.forEach(p -> out.append(" ÷ ").append(p).append(" |"));
        ceilinged.forEach(m -> out.append(ours.size() == 1 ? " % of ceiling |" : " " + m + " % of ceiling |"));
        out.append("\n|---|");
        out.append("---:|".repeat(methods.size() + peers.size() + ceilinged.size()))
                .append('\n');
        boolean marked = false;
        Map<String, Workload> ceilings = new LinkedHashMap<>();
        for (Map.Entry<String, Map<String, Cell>> row : rows.entrySet()) {
            Map<String, Cell> cells = row.getValue();
            out.append("| ").append(row.getKey()).append(" |");
            for (String method : methods) {
                Cell cell = cells.get(method);
                out.append(cell == null ? " – |" : rateEntry(cell));
            }
            Cell main = cells.get(OURS);
            for (String peer : peers) {
                Cell theirs = cells.get(peer);
                if (main == null || theirs == null) {
                    out.append(" – |");
                } else {
                    boolean single = main.forks() < 2 || theirs.forks() < 2;
                    marked |= single;
                    out.append(String.format(
                            Locale.ROOT, " %.2f×%s |", main.rate() / theirs.rate(), single ? SINGLE_FORK : ""));
                }
            }
            for (String method : ceilinged) {
                Cell cell = cells.get(method);
                if (cell == null || !cell.workload().hasCeiling()) {
                    out.append(" – |");
                } else {
                    marked |= cell.forks() < 2;
                    ceilings.putIfAbsent(cell.workload().ceilingSource(), cell.workload());
                    out.append(String.format(
                            Locale.ROOT,
                            " %.0f%%%s |",
                            100 * cell.rate() / cell.workload().ceiling(),
                            cell.forks() < 2 ? SINGLE_FORK : ""));
                }
            }
            out.append('\n');
        }
        if (marked) {
            out.append("\n")
                    .append(SINGLE_FORK)
                    .append(" Panamax's result, or the peer's, comes from a single fork (JVM): the variation from one"
                            + " JVM to the next, which the root README's Benchmarks section describes, is not sampled."
                            + " Run `-- -f 3` before drawing a conclusion.\n");
        }
        for (String peer : peers) {
            if (REFERENCES.containsKey(peer)) {
                out.append("\n`÷ ")
                        .append(peer)
                        .append("` is panamax's rate over ")
                        .append(REFERENCES.get(peer))
                        .append(", measured in this run: the fraction of the bandwidth this machine gave, the figure to"
                                + " trust over % of ceiling.\n");
            }
        }
        if (!ceilings.isEmpty()) {
            out.append("\n% of ceiling divides a rate by a constant, not by a measurement of this run:\n");
            ceilings.values()
                    .forEach(w -> out.append(String.format(
                            Locale.ROOT,
                            "- %s %s/s: %s\n",
                            Workload.number(w.ceiling()),
                            w.unit(),
                            w.ceilingSource())));
        }
        return out.toString();
    }

    /** The rate, its interval where JMH had iterations enough for one, and the forks. */
    private static String rateEntry(Cell cell) {
        return String.format(
                Locale.ROOT,
                " %.2f%s (%d fork%s) |",
                cell.rate(),
                Double.isNaN(cell.relativeError())
                        ? ""
                        : String.format(Locale.ROOT, " ± %.0f%%", 100 * cell.relativeError()),
                cell.forks(),
                cell.forks() == 1 ? "" : "s");
    }

    /** One chart per unit, stacked, as PNG bytes: rates in different units share no axis. */
    private static byte[] chart(
            String title, Map<String, Map<String, Cell>> rows, List<String> methods, Map<String, String> units)
            throws IOException {
        List<String> labels = new ArrayList<>(rows.keySet());
        List<CategoryChart> charts = new ArrayList<>();
        Set<String> distinctUnits = new LinkedHashSet<>(units.values());
        for (String unit : distinctUnits) {
            CategoryChart chart = new CategoryChartBuilder()
                    .width(Math.max(900, 110 * rows.size()))
                    .height(560)
                    .title(distinctUnits.size() == 1 ? title : title + " (" + unit + "/s)")
                    .xAxisTitle("case")
                    .yAxisTitle(unit + "/s")
                    .build();
            chart.getStyler().setXAxisLabelRotation(35);
            chart.getStyler().setOverlapped(false);
            for (String method : methods) {
                if (!units.get(method).equals(unit)) {
                    continue;
                }
                List<Double> values = new ArrayList<>();
                for (String label : labels) {
                    Cell cell = rows.get(label).get(method);
                    values.add(cell == null ? 0.0 : cell.rate());
                }
                chart.addSeries(method, labels, values);
            }
            charts.add(chart);
        }
        ByteArrayOutputStream png = new ByteArrayOutputStream();
        BitmapEncoder.saveBitmap(charts, charts.size(), 1, png, BitmapEncoder.BitmapFormat.PNG);
        return png.toByteArray();
    }

    private static String label(Map<String, String> params) {
        StringBuilder label = new StringBuilder();
        params.forEach((key, value) -> label.append(label.isEmpty() ? "" : ", ")
                .append(key)
                .append('=')
                .append(value));
        return label.isEmpty() ? "default" : label.toString();
    }

    private static double secondsPerOp(double score, String unit) {
        return switch (unit) {
            case "s/op" -> score;
            case "ms/op" -> score * 1e-3;
            case "us/op" -> score * 1e-6;
            case "ns/op" -> score * 1e-9;
            case "ops/s" -> 1 / score;
            case "ops/ms" -> 1e-3 / score;
            case "ops/us" -> 1e-6 / score;
            case "ops/ns" -> 1e-9 / score;
            default -> throw new IllegalArgumentException("unsupported JMH score unit '" + unit + "'");
        };
    }

    /**
     * The suite's {@code workload(method, params)} where it declares one (its methods do different work), else its
     * {@code workload(params)}.
     */
    private static Workload workload(String className, String method, Map<String, String> params) {
        try {
            Class<?> suite = Class.forName(className);
            try {
                return (Workload) suite.getDeclaredMethod("workload", String.class, Map.class)
                        .invoke(null, method, params);
            } catch (NoSuchMethodException e) {
                return (Workload) suite.getDeclaredMethod("workload", Map.class).invoke(null, params);
            }
        } catch (ReflectiveOperationException e) {
            throw new IllegalStateException(
                    className + " must declare static Workload workload(Map<String, String>) or"
                            + " workload(String method, Map<String, String>)",
                    e);
        }
    }
}
