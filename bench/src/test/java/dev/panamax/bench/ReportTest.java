package dev.panamax.bench;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.awt.image.BufferedImage;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import javax.imageio.ImageIO;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class ReportTest {
    private static String run(String method, String shape, double microseconds) {
        return """
                {"benchmark": "dev.panamax.bench.GemmBench.%s", "mode": "avgt", "threads": 1,
                 "params": {"shape": "%s", "threads": "1"},
                 "primaryMetric": {"score": %s, "scoreError": %s, "scoreUnit": "us/op"}}""".formatted(method, shape, microseconds, microseconds / 10);
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
                markdown.contains("| shape=512x512x512, threads=1 | 53.69 ± 10% | 67.11 ± 10% | 0.80× | 57% |"),
                markdown);
        assertTrue(markdown.contains("| shape=1x768x768, threads=1 | 11.80 ± 10% | – | – | 12% |"), markdown);
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
        assertTrue(
                markdown.contains(
                        "| shape=512x512x512, threads=1 | 53.69 ± 10% | 67.11 ± 10% | 67.11 ± 10% | 0.80× | 57% | 71% |"),
                markdown);
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
