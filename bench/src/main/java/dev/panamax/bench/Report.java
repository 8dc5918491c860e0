package dev.panamax.bench;

import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import java.io.IOException;
import java.lang.reflect.Method;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;
import java.util.function.Function;
import org.knowm.xchart.BitmapEncoder;
import org.knowm.xchart.CategoryChart;
import org.knowm.xchart.CategoryChartBuilder;

/**
 * Turns a JMH JSON result into a Markdown table and a PNG chart beside it. Rows are parameter combinations, columns
 * the implementations measured side by side (Panamax's, named {@code panamax…}, first), cells the rate of useful work
 * (from the suite's {@link Workload}), followed by {@code panamax}'s ratio to each peer and each Panamax variant's
 * fraction of the machine's ceiling.
 */
final class Report {
    private static final String OURS = "panamax";

    private Report() {}

    /** One measured cell: seconds per operation, JMH's 99.9% error relative to the score, and the work it did. */
    private record Cell(double seconds, double relativeError, Workload workload) {
        double rate() {
            return workload.amount() / seconds;
        }
    }

    /** Writes {@code NAME.md} and {@code NAME.png} next to {@code NAME.json}; returns the Markdown. */
    static String render(Path json) throws IOException {
        JsonArray runs = JsonParser.parseString(Files.readString(json)).getAsJsonArray();
        if (runs.isEmpty()) {
            return json + ": no benchmark ran (check the suite's method filter and -p values)";
        }
        Map<String, Map<String, Cell>> rows = new LinkedHashMap<>();
        List<String> methods = new ArrayList<>();
        String unit = null;
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
            Workload workload = workload(benchmark.substring(0, benchmark.lastIndexOf('.')), params);
            unit = workload.unit();
            if (!methods.contains(method)) {
                methods.add(method);
            }
            rows.computeIfAbsent(label(params), key -> new LinkedHashMap<>())
                    .put(method, new Cell(perOp, Double.isNaN(error) ? 0 : error, workload));
        }
        // Panamax's own variants first (the plain "panamax" leading), then the peers.
        methods.sort(Comparator.comparing((String m) -> !m.startsWith(OURS)).thenComparing(m -> !m.equals(OURS)));
        String markdown = table(json.getFileName().toString(), rows, methods, unit);
        Path base = json.resolveSibling(json.getFileName().toString().replaceFirst("\\.json$", ""));
        Files.writeString(Path.of(base + ".md"), markdown);
        chart(rows, methods, unit, Path.of(base + ".png"));
        return markdown;
    }

    private static String table(String title, Map<String, Map<String, Cell>> rows, List<String> methods, String unit) {
        StringBuilder out = new StringBuilder("# " + title + "\n\nRates in " + unit + "/s (higher is better)."
                + " Ratios are panamax's rate over the peer's, measured in the same run.\n\n| case |");
        List<String> peers = methods.stream().filter(m -> !m.startsWith(OURS)).toList();
        List<String> ours = methods.stream().filter(m -> m.startsWith(OURS)).toList();
        boolean hasOurs = methods.contains(OURS);
        methods.forEach(m -> out.append(' ').append(m).append(" |"));
        if (hasOurs) {
            peers.forEach(p -> out.append(" ÷ ").append(p).append(" |"));
        }
        ours.forEach(m -> out.append(ours.size() == 1 ? " % of ceiling |" : " " + m + " % of ceiling |"));
        out.append("\n|---|");
        int columns = methods.size() + (hasOurs ? peers.size() : 0) + ours.size();
        out.append("---:|".repeat(columns)).append('\n');
        rows.forEach((label, cells) -> {
            out.append("| ").append(label).append(" |");
            for (String method : methods) {
                out.append(entry(cells.get(method), Report::rateEntry));
            }
            Cell main = cells.get(OURS);
            if (hasOurs) {
                for (String peer : peers) {
                    Cell theirs = cells.get(peer);
                    out.append(
                            main == null || theirs == null
                                    ? " – |"
                                    : String.format(Locale.ROOT, " %.2f× |", main.rate() / theirs.rate()));
                }
            }
            for (String method : ours) {
                out.append(entry(cells.get(method), Report::ceilingEntry));
            }
            out.append('\n');
        });
        return out.toString();
    }

    /** A table entry, or a dash where the method did not run for the row. */
    private static String entry(Cell cell, Function<Cell, String> text) {
        return cell == null ? " – |" : text.apply(cell);
    }

    private static String rateEntry(Cell cell) {
        return String.format(Locale.ROOT, " %.2f ± %.0f%% |", cell.rate(), 100 * cell.relativeError());
    }

    private static String ceilingEntry(Cell cell) {
        return String.format(
                Locale.ROOT, " %.0f%% |", 100 * cell.rate() / cell.workload().ceiling());
    }

    private static void chart(Map<String, Map<String, Cell>> rows, List<String> methods, String unit, Path png)
            throws IOException {
        CategoryChart chart = new CategoryChartBuilder()
                .width(Math.max(900, 110 * rows.size()))
                .height(560)
                .title(png.getFileName().toString().replaceFirst("\\.png$", ""))
                .xAxisTitle("case")
                .yAxisTitle(unit + "/s")
                .build();
        chart.getStyler().setXAxisLabelRotation(35);
        chart.getStyler().setOverlapped(false);
        List<String> labels = new ArrayList<>(rows.keySet());
        for (String method : methods) {
            List<Double> values = new ArrayList<>();
            for (String label : labels) {
                Cell cell = rows.get(label).get(method);
                values.add(cell == null ? 0.0 : cell.rate());
            }
            chart.addSeries(method, labels, values);
        }
        BitmapEncoder.saveBitmap(chart, png.toString(), BitmapEncoder.BitmapFormat.PNG);
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

    private static Workload workload(String className, Map<String, String> params) {
        try {
            Method method = Class.forName(className).getDeclaredMethod("workload", Map.class);
            return (Workload) method.invoke(null, params);
        } catch (ReflectiveOperationException e) {
            throw new IllegalStateException(
                    className + " must declare static Workload workload(Map<String, String>)", e);
        }
    }
}
