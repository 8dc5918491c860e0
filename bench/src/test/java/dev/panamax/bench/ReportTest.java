package dev.panamax.bench;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.awt.image.BufferedImage;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Stream;
import javax.imageio.ImageIO;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class ReportTest {
    /** One run of JMH's JSON: the suite's method at the parameters (a JSON object's body), its score and forks. */
    private static String run(String suite, String method, String params, double score, String unit, int forks) {
        return """
                {"benchmark": "dev.panamax.bench.%s.%s", "mode": "avgt", "threads": 1, "forks": %d,
                 "params": {%s},
                 "primaryMetric": {"score": %s, "scoreError": %s, "scoreUnit": "%s"}}""".formatted(suite, method, forks, params, score, score / 10, unit);
    }

    private static String run(String method, String shape, double microseconds) {
        return gemm(method, shape, microseconds, 1);
    }

    private static String gemm(String method, String shape, double microseconds, int forks) {
        return run(
                "GemmBench",
                method,
                "\"shape\": \"%s\", \"threads\": \"1\"".formatted(shape),
                microseconds,
                "us/op",
                forks);
    }

    /** A run of the quantized GEMV over Q8_0 768×768 weights, 626,688 bytes: 768 rows of 24 blocks of 34 bytes. */
    private static String quant(String method, int threads, double microseconds) {
        String params = "\"format\": \"Q8_0\", \"shape\": \"768x768\", \"threads\": \"%d\"".formatted(threads);
        return run("QuantBench", method, params, microseconds, "us/op", 1);
    }

    /** Writes the runs as JMH's JSON list to {@code json} and renders it. */
    private static String render(Path json, String... runs) throws IOException {
        Files.writeString(json, "[" + String.join(",", runs) + "]");
        return Report.render(json);
    }

    @Test
    void rendersRatesRatiosAndAChart(@TempDir Path folder) throws Exception {
        // 2·512³ flop = 0.268 GFLOP: 5000 µs is 53.7 GFLOP/s, 4000 µs is 67.1 GFLOP/s.
        String markdown = render(
                folder.resolve("gemm-test.json"),
                run("openblas", "512x512x512", 4000),
                run("panamax", "512x512x512", 5000),
                run("panamax", "1x768x768", 100));
        assertTrue(markdown.contains("| case | panamax | openblas | ÷ openblas | % of ceiling |"), markdown);
        assertTrue(
                markdown.contains("| shape=512x512x512, threads=1 | 53.69 ± 10% (1 fork) | 67.11 ± 10% (1 fork) |"
                        + " 0.80×¹ | 57%¹ |"),
                markdown);
        assertTrue(markdown.contains("| shape=1x768x768, threads=1 | 11.80 ± 10% (1 fork) | – | – | 12%¹ |"), markdown);
        assertEquals(markdown, Files.readString(folder.resolve("gemm-test.md")));
        BufferedImage chart = ImageIO.read(folder.resolve("gemm-test.png").toFile());
        assertTrue(chart.getWidth() >= 900 && chart.getHeight() == 560);
    }

    @Test
    void panamaxVariantsComeFirstAndEachGetsItsCeiling(@TempDir Path folder) throws Exception {
        String markdown = render(
                folder.resolve("variants.json"),
                run("openblas", "512x512x512", 4000),
                run("panamaxNative", "512x512x512", 4000),
                run("panamax", "512x512x512", 5000));
        assertTrue(
                markdown.contains("| case | panamax | panamaxNative | openblas | ÷ openblas | panamax % of ceiling"
                        + " | panamaxNative % of ceiling |"),
                markdown);
        assertTrue(markdown.contains("| 0.80×¹ | 57%¹ | 71%¹ |"), markdown);
    }

    @Test
    void everyResultShowsItsForksAndOnlySingleForkRatiosAreMarked(@TempDir Path folder) throws Exception {
        String sampled = render(
                folder.resolve("forks.json"),
                gemm("openblas", "512x512x512", 4000, 3),
                gemm("panamax", "512x512x512", 5000, 3),
                gemm("openblas", "256x256x256", 500, 1),
                gemm("panamax", "256x256x256", 500, 3));
        assertTrue(
                sampled.contains("| shape=512x512x512, threads=1 | 53.69 ± 10% (3 forks) | 67.11 ± 10% (3 forks) |"
                        + " 0.80× | 57% |"),
                sampled);
        // One side from one JVM is enough to leave the JVM-to-JVM variation of the ratio unsampled.
        assertTrue(sampled.contains("(3 forks) | 67.11 ± 10% (1 fork) | 1.00×¹ | 71% |"), sampled);
        assertTrue(sampled.contains("¹ Panamax's result, or the peer's, comes from a single fork (JVM)"), sampled);

        String allSampled = render(
                folder.resolve("three.json"),
                gemm("openblas", "512x512x512", 4000, 3),
                gemm("panamax", "512x512x512", 5000, 3));
        assertFalse(allSampled.contains("¹"), allSampled);
    }

    @Test
    void readOnlyKernelsAreHeldToAReadAndOpsToATriad(@TempDir Path folder) throws Exception {
        // At 9.8 GB/s, half the 1-thread read.
        String quant = render(
                folder.resolve("quant.json"),
                quant("panamax", 1, 626_688 / 9_800.0),
                quant("plainRead", 1, 626_688 / 19_600.0));
        assertTrue(quant.contains("| 9.80 ± 10% (1 fork) | 19.60 ± 10% (1 fork) | 0.50×¹ | 50%¹ |"), quant);
        assertTrue(quant.contains("- 19.6 GB/s: plain AVX2 read (a sum) of 512 MiB in C, best of 5, 1 thread,"), quant);
        assertTrue(quant.contains("not measured in this run"), quant);
        assertTrue(quant.contains("`÷ plainRead` is panamax's rate over a plain vector read"), quant);

        // Softmax over 5461 rows of 768: 8 bytes an element read and written; at 7.5 GB/s, half the 1-thread triad.
        String ops = render(
                folder.resolve("ops.json"),
                run(
                        "OpsBench",
                        "panamax",
                        "\"op\": \"softmax\", \"cols\": \"768\"",
                        8.0 * 5461 * 768 / 7_500,
                        "us/op",
                        1));
        assertTrue(ops.contains("| 7.50 ± 10% (1 fork) | 50%¹ |"), ops);
        assertTrue(ops.contains("- 15 GB/s: STREAM-style triad"), ops);
    }

    @Test
    void bandwidthHasNoCeilingPastTwoThreads(@TempDir Path folder) throws Exception {
        String markdown = render(folder.resolve("quant4.json"), quant("panamax", 4, 50));
        assertTrue(markdown.contains("| case | panamax |\n"), markdown);
        assertFalse(markdown.contains("ceiling"), markdown);
    }

    @Test
    void methodsOfOneSuiteMayCountDifferentWork(@TempDir Path folder) throws Exception {
        String params = "\"shape\": \"15M\", \"threads\": \"1\", \"weights\": \"llama2c\"";
        String markdown = render(
                folder.resolve("generate.json"),
                run("GenerateBench", "prefill", params, 10, "ms/op", 1),
                run("GenerateBench", "decode", params, 2, "ms/op", 1));
        assertTrue(markdown.contains("| case | prefill (token/s) | decode (GB/s) |"), markdown);
        assertTrue(markdown.contains("| 100.00 ± 10% (1 fork) |"), markdown);
        // Two units share no axis: a chart for each, one above the other.
        BufferedImage chart = ImageIO.read(folder.resolve("generate.png").toFile());
        assertEquals(2 * 560, chart.getHeight());
    }

    @Test
    void theTableAndChartReplaceTheOldFilesWhole(@TempDir Path folder) throws Exception {
        Path md = folder.resolve("atomic.md");
        Files.writeString(md, "an earlier report");
        // A second name for the old file: writing in place would change it too, a rename leaves it be.
        Path earlier = Files.createLink(folder.resolve("earlier.md"), md);
        String markdown = render(folder.resolve("atomic.json"), run("panamax", "512x512x512", 5000));
        assertEquals(markdown, Files.readString(md));
        assertEquals("an earlier report", Files.readString(earlier));
        try (Stream<Path> files = Files.list(folder)) {
            assertEquals(
                    List.of("atomic.json", "atomic.md", "atomic.png", "earlier.md"),
                    files.map(f -> f.getFileName().toString()).sorted().toList());
        }
    }

    @Test
    void aSingleIterationClaimsNoInterval(@TempDir Path folder) throws Exception {
        String markdown = render(
                folder.resolve("once.json"),
                run("panamax", "512x512x512", 5000).replace("\"scoreError\": 500.0", "\"scoreError\": \"NaN\""));
        assertTrue(markdown.contains("| 53.69 (1 fork) |"), markdown);
    }

    @Test
    void anEmptyRunSaysSo(@TempDir Path folder) throws Exception {
        assertTrue(render(folder.resolve("empty.json")).contains("no benchmark ran"));
    }

    @Test
    void shapesParseWithAndWithoutBatch() {
        assertEquals("[1, 64, 768, 3072]", java.util.Arrays.toString(GemmBench.parse("64x768x3072")));
        assertEquals("[12, 256, 64, 256]", java.util.Arrays.toString(GemmBench.parse("12*256x64x256")));
    }
}
