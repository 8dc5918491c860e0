package dev.panamax.model.train;

import dev.panamax.model.io.AtomicFiles;
import java.awt.BasicStroke;
import java.awt.Color;
import java.awt.Font;
import java.awt.Graphics2D;
import java.awt.RenderingHints;
import java.awt.geom.Path2D;
import java.awt.image.BufferedImage;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import javax.imageio.ImageIO;

/**
 * Records the loss curve of a run as {@value #CSV} (one row per step: train loss and accuracy, and validation loss and
 * accuracy where measured), appending each step's row as it comes, and draws {@value #PNG} (train loss per step,
 * validation loss as points) after every epoch and on {@link #write()}. Opened on a directory that already has a
 * curve, it keeps the rows up to the trainer's step and drops the later ones (those of steps a crash took back to the
 * last checkpoint), so that a resumed run's curve has every step once. Rewrites go through a temporary file and a
 * rename, so a crash leaves the old curve or the new one; a row torn by a crash while appending is dropped on reading.
 */
public final class LossCurve implements Callback {
    /** The CSV file's name. */
    public static final String CSV = "loss.csv";

    /** The chart's file name. */
    public static final String PNG = "loss.png";

    private static final String HEADER =
            "step,epoch,train_loss,train_accuracy,val_loss,val_accuracy,learning_rate,grad_norm,tokens_per_s";

    private final Path directory;
    private final List<String> rows = new ArrayList<>();
    private final List<double[]> train = new ArrayList<>();
    private final List<double[]> validation = new ArrayList<>();

    /**
     * A curve written into a directory, continuing the rows already there up to {@code fromStep}: later rows are
     * removed from the file at once.
     *
     * @param directory the directory, created if absent
     * @param fromStep the trainer's current step; later rows of an earlier curve are dropped
     * @throws IOException if an existing curve cannot be read or rewritten
     */
    public LossCurve(Path directory, int fromStep) throws IOException {
        this.directory = directory;
        Path csv = directory.resolve(CSV);
        if (Files.isRegularFile(csv)) {
            List<String> lines = Files.readAllLines(csv, StandardCharsets.UTF_8);
            int last = 0;
            for (int i = 1; i < lines.size(); i++) {
                String[] cells = lines.get(i).split(",", -1);
                try {
                    int step = Integer.parseInt(cells[0]);
                    if (cells.length == 9 && step > last && step <= fromStep) {
                        add(step, number(cells[2]), number(cells[4]), lines.get(i));
                        last = step;
                    }
                } catch (NumberFormatException e) {
                    // A row that is not ours (or was torn by a crash) is dropped, not fatal to the run.
                }
            }
            writeCsv();
        }
    }

    /** A CSV cell's number; NaN for an empty cell (not measured at that step). */
    private static double number(String cell) {
        return cell.isEmpty() ? Double.NaN : Double.parseDouble(cell);
    }

    /** Records a row and the points it adds to the chart; a NaN loss adds no point. */
    private void add(int step, double trainLoss, double validationLoss, String row) {
        rows.add(row);
        if (!Double.isNaN(trainLoss)) {
            train.add(new double[] {step, trainLoss});
        }
        if (!Double.isNaN(validationLoss)) {
            validation.add(new double[] {step, validationLoss});
        }
    }

    @Override
    public boolean afterStep(Trainer trainer, Metrics m) throws IOException {
        String row = String.format(
                Locale.ROOT,
                "%d,%d,%.6f,%.6f,%s,%s,%.6g,%.6g,%.1f",
                m.step(),
                m.epoch(),
                m.trainLoss(),
                m.trainAccuracy(),
                m.validated() ? String.format(Locale.ROOT, "%.6f", m.validationLoss()) : "",
                m.validated() ? String.format(Locale.ROOT, "%.6f", m.validationAccuracy()) : "",
                m.learningRate(),
                m.gradientNorm(),
                m.tokensPerSecond());
        add(m.step(), m.trainLoss(), m.validationLoss(), row);
        Path csv = directory.resolve(CSV);
        if (!Files.isRegularFile(csv)) {
            writeCsv();
        } else {
            Files.writeString(csv, row + "\n", StandardCharsets.UTF_8, StandardOpenOption.APPEND);
        }
        return true;
    }

    @Override
    public boolean afterEpoch(Trainer trainer, Metrics m) throws IOException {
        // The epoch's validation belongs to its last step's row, which has it already unless training stopped early.
        int last = rows.size() - 1;
        String[] cells = last >= 0 ? rows.get(last).split(",", -1) : new String[0];
        if (last >= 0
                && rows.get(last).startsWith(m.step() + ",")
                && cells[4].isEmpty()
                && !Float.isNaN(m.validationLoss())) {
            cells[4] = String.format(Locale.ROOT, "%.6f", m.validationLoss());
            cells[5] = String.format(Locale.ROOT, "%.6f", m.validationAccuracy());
            rows.set(last, String.join(",", cells));
            validation.add(new double[] {m.step(), m.validationLoss()});
        }
        write();
        return true;
    }

    /**
     * Writes the CSV and the chart.
     *
     * @throws IOException if a file cannot be written
     */
    public void write() throws IOException {
        writeCsv();
        BufferedImage chart = chart();
        AtomicFiles.replace(directory.resolve(PNG), file -> {
            if (!ImageIO.write(chart, "png", file.toFile())) {
                throw new IOException("no PNG writer in this Java runtime for " + file);
            }
        });
    }

    private void writeCsv() throws IOException {
        Files.createDirectories(directory);
        List<String> lines = new ArrayList<>();
        lines.add(HEADER);
        lines.addAll(rows);
        AtomicFiles.replace(directory.resolve(CSV), String.join("\n", lines) + "\n");
    }

    private BufferedImage chart() {
        int width = 900;
        int height = 500;
        int left = 70;
        int right = 20;
        int top = 40;
        int bottom = 50;
        BufferedImage image = new BufferedImage(width, height, BufferedImage.TYPE_INT_RGB);
        Graphics2D g = image.createGraphics();
        try {
            g.setRenderingHint(RenderingHints.KEY_ANTIALIASING, RenderingHints.VALUE_ANTIALIAS_ON);
            g.setColor(Color.WHITE);
            g.fillRect(0, 0, width, height);
            double maxStep = 1;
            double lo = Double.POSITIVE_INFINITY;
            double hi = Double.NEGATIVE_INFINITY;
            for (List<double[]> series : List.of(train, validation)) {
                for (double[] p : series) {
                    maxStep = Math.max(maxStep, p[0]);
                    if (Double.isFinite(p[1])) {
                        lo = Math.min(lo, p[1]);
                        hi = Math.max(hi, p[1]);
                    }
                }
            }
            if (!(lo < hi)) {
                lo = Double.isFinite(lo) ? lo - 1 : 0;
                hi = lo + 2;
            }
            int plotWidth = width - left - right;
            int plotHeight = height - top - bottom;
            double xScale = plotWidth / maxStep;
            double yScale = plotHeight / (hi - lo);
            g.setFont(new Font(Font.SANS_SERIF, Font.PLAIN, 12));
            g.setColor(new Color(230, 230, 230));
            for (int i = 0; i <= 5; i++) {
                int y = top + plotHeight * i / 5;
                g.drawLine(left, y, width - right, y);
                g.setColor(Color.DARK_GRAY);
                g.drawString(String.format(Locale.ROOT, "%.2f", hi - (hi - lo) * i / 5), 10, y + 4);
                int x = left + plotWidth * i / 5;
                g.drawString(String.format(Locale.ROOT, "%.0f", maxStep * i / 5), x - 10, height - bottom + 18);
                g.setColor(new Color(230, 230, 230));
            }
            g.setColor(Color.BLACK);
            g.drawRect(left, top, plotWidth, plotHeight);
            g.drawString("step", left + plotWidth / 2, height - 10);
            g.drawString("cross-entropy (nats/token): train (blue), validation (orange)", left, top - 15);
            Path2D.Double line = new Path2D.Double();
            for (int i = 0; i < train.size(); i++) {
                double x = left + train.get(i)[0] * xScale;
                double y = top + (hi - train.get(i)[1]) * yScale;
                if (i == 0) {
                    line.moveTo(x, y);
                } else {
                    line.lineTo(x, y);
                }
            }
            g.setColor(new Color(31, 119, 180));
            g.setStroke(new BasicStroke(1.2f));
            g.draw(line);
            g.setColor(new Color(255, 127, 14));
            for (double[] p : validation) {
                int x = (int) Math.round(left + p[0] * xScale);
                int y = (int) Math.round(top + (hi - p[1]) * yScale);
                g.fillOval(x - 4, y - 4, 8, 8);
            }
        } finally {
            g.dispose();
        }
        return image;
    }
}
