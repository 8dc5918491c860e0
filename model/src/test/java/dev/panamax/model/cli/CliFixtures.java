package dev.panamax.model.cli;

import dev.panamax.model.testing.SharedData;
import dev.panamax.model.train.Trainer;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Objects;
import java.util.stream.Collectors;

/** Inputs the CLI tests share, and what run.c prints for them. */
final class CliFixtures {
    private CliFixtures() {}

    /** {@code panamax generate}'s arguments for 40 greedy tokens of stories260K from BOS, then {@code more}. */
    static String[] greedy(String... more) {
        String[] head = {
            "generate",
            "--model",
            SharedData.require("stories260K.bin").toString(),
            "--prompt-ids",
            "1",
            "--temperature",
            "0",
            "--max-tokens",
            "40"
        };
        return with(head, more);
    }

    /**
     * {@code panamax train}'s arguments for a short run on {@code data} into {@code out}: {@code steps} steps of two
     * windows of {@code seq} tokens, then {@code more}.
     */
    static String[] train(Path data, int steps, int seq, Path out, String... more) {
        String[] head = {
            "train",
            "--data",
            data.toString(),
            "--steps",
            Integer.toString(steps),
            "--batch",
            "2",
            "--seq",
            Integer.toString(seq),
            "--out",
            out.toString()
        };
        return with(head, more);
    }

    /**
     * Makes a finished run one that stopped midway, as a kill after its last checkpoint leaves it: its state is
     * rewritten to plan {@code totalSteps} steps, more than it took.
     */
    static void stopMidway(Path run, int totalSteps) throws IOException {
        Path state = run.resolve(Trainer.STATE_FILE);
        String json = Files.readString(state);
        String planned = json.replaceFirst("(\"total_steps\":\\s*)\\d+", "$1" + totalSteps);
        if (planned.equals(json)) {
            throw new IllegalStateException(state + " has no total_steps: " + json);
        }
        Files.writeString(state, planned);
    }

    /** {@code args} followed by {@code more}. */
    static String[] with(String[] args, String... more) {
        String[] all = Arrays.copyOf(args, args.length + more.length);
        System.arraycopy(more, 0, all, args.length, more.length);
        return all;
    }

    /** The first {@code count} ids that run.c generates greedily from BOS with stories260K, space-separated. */
    static String greedyIds(int count) throws IOException {
        try (var in = Objects.requireNonNull(
                        CliFixtures.class.getResourceAsStream("/dev/panamax/model/generate/stories260K-greedy.txt"));
                var reader = new BufferedReader(new InputStreamReader(in, StandardCharsets.UTF_8))) {
            return reader.lines().filter(l -> !l.startsWith("#")).limit(count).collect(Collectors.joining(" "));
        }
    }

    /** Writes a small English text to train on as {@code dir/text.txt} and returns its path. */
    static Path trainingText(Path dir) throws IOException {
        Path file = dir.resolve("text.txt");
        Files.writeString(file, "the quick brown fox jumps over the lazy dog.\n".repeat(30), StandardCharsets.UTF_8);
        return file;
    }
}
