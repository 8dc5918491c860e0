package dev.panamax.model.cli;

import dev.panamax.model.backend.CpuBackend;
import dev.panamax.model.io.BoundedFiles;
import dev.panamax.model.io.DType;
import dev.panamax.model.io.Gpt2Checkpoint;
import dev.panamax.model.io.ModelConfig;
import dev.panamax.model.io.ModelConfig.Architecture;
import dev.panamax.model.tokenizer.CharVocabulary;
import dev.panamax.model.tokenizer.Gpt2Tokenizer;
import dev.panamax.model.train.Callback;
import dev.panamax.model.train.LossCurve;
import dev.panamax.model.train.ProgressReporter;
import dev.panamax.model.train.TokenDataset;
import dev.panamax.model.train.Trainer;
import dev.panamax.model.train.TrainingOptions;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.stream.Stream;

/**
 * {@code panamax train}: trains a model on a text file or a directory of text files, character-level (the vocabulary
 * built from the text and saved as {@value CharVocabulary#FILE}) or with GPT-2's BPE, and writes a checkpoint that
 * {@code panamax generate --model DIR} samples from and {@code --resume DIR} continues.
 */
final class TrainCommand {
    /** Options that take a value. */
    static final Set<String> VALUES = Set.of(
            "--data",
            "--config",
            "--arch",
            "--steps",
            "--epochs",
            "--batch",
            "--seq",
            "--lr",
            "--warmup",
            "--out",
            "--export",
            "--resume",
            "--tokenizer",
            "--threads",
            "--eval-every",
            "--val-windows",
            "--val-fraction",
            "--checkpoint-every",
            "--patience",
            "--seed",
            "--log-every");

    /** The longest sequence a preset model is made for: its context is the training sequence length. */
    private static final int MAX_PRESET_CONTEXT = 4096;

    /** The most text read for training: the tokens are held in memory as ints. */
    private static final long MAX_DATA_BYTES = 1L << 30;

    private TrainCommand() {}

    static int run(Map<String, String> options, PrintStream out, PrintStream err) throws IOException {
        String data = options.get("--data");
        if (data == null) {
            throw new IllegalArgumentException("train needs --data PATH (a text file or a directory of them)");
        }
        if (options.containsKey("--steps") && options.containsKey("--epochs")) {
            throw new IllegalArgumentException("train takes --steps N or --epochs E, not both");
        }
        Path resume = options.containsKey("--resume") ? Path.of(options.get("--resume")) : null;
        Path outDir = Path.of(options.getOrDefault("--out", resume != null ? resume.toString() : "panamax-train"));
        int threads = (int) Panamax.whole(options, "--threads", 0, 1, Integer.MAX_VALUE);
        String text = readText(Path.of(data));
        Tokens tokens = tokenize(text, options, resume);
        try (CpuBackend backend = threads == 0 ? new CpuBackend() : new CpuBackend(threads)) {
            Trainer trainer;
            if (resume != null) {
                trainer = Trainer.resume(backend, resume);
                err.println("resuming " + resume + " at step " + trainer.step() + " of " + trainer.totalSteps());
            } else {
                int seq = (int) Panamax.whole(options, "--seq", 128, 1, MAX_PRESET_CONTEXT);
                ModelConfig config = config(options, tokens.vocabSize, seq);
                if (seq > config.seqLen()) {
                    throw new IllegalArgumentException(
                            "--seq (" + seq + ") must be at most the model's context (" + config.seqLen() + ")");
                }
                int batch = (int) Panamax.whole(options, "--batch", 16, 1, 1 << 16);
                TrainingOptions training = TrainingOptions.defaults(batch, seq);
                if (options.containsKey("--lr")) {
                    training = training.withLearningRate(Panamax.number(options, "--lr", training.learningRate()));
                }
                training = training.withWarmupSteps(
                        (int) Panamax.whole(options, "--warmup", training.warmupSteps(), 0, Integer.MAX_VALUE));
                long seed = Panamax.whole(options, "--seed", 1337, Long.MIN_VALUE, Long.MAX_VALUE);
                trainer = Trainer.create(backend, config, training, seed);
            }
            ModelConfig config = trainer.config();
            if (tokens.vocabSize != config.vocabSize()) {
                throw new IllegalArgumentException(
                        "the data's vocabulary has " + tokens.vocabSize + " tokens, the model's " + config.vocabSize());
            }
            double fraction = Panamax.number(options, "--val-fraction", 0.1f);
            TokenDataset dataset = new TokenDataset(
                    tokens.ids, config.vocabSize(), trainer.options().seqLen(), fraction);
            int perStep = trainer.options().batchSize() * trainer.options().microBatches();
            int stepsPerEpoch = Math.max(1, dataset.trainWindows() / perStep);
            int steps = (int) Panamax.whole(options, "--steps", 0, 1, Integer.MAX_VALUE);
            int epochs = (int) Panamax.whole(options, "--epochs", 0, 1, Integer.MAX_VALUE);
            if (steps == 0 && epochs == 0) {
                steps = trainer.totalSteps() > 0 ? trainer.totalSteps() : stepsPerEpoch;
            }
            int plannedEpochs = steps > 0 ? (steps + stepsPerEpoch - 1) / stepsPerEpoch : epochs;
            err.printf(
                    Locale.ROOT,
                    "%s: %,d parameters (dim %d, %d layers, %d heads, vocabulary %d); data: %,d training tokens"
                            + " (%,d windows of %d), %,d held out; %d steps per epoch of batch %d%n",
                    config.architecture(),
                    config.parameterCount(),
                    config.dim(),
                    config.layers(),
                    config.heads(),
                    config.vocabSize(),
                    dataset.trainTokens(),
                    dataset.trainWindows(),
                    trainer.options().seqLen(),
                    tokens.ids.length - dataset.trainTokens(),
                    stepsPerEpoch,
                    trainer.options().batchSize());
            Files.createDirectories(outDir);
            if (tokens.vocabulary != null) {
                tokens.vocabulary.write(outDir.resolve(CharVocabulary.FILE));
            }
            LossCurve curve = new LossCurve(outDir, trainer.step());
            List<Callback> callbacks = new ArrayList<>();
            callbacks.add(new ProgressReporter(
                    out,
                    ProgressReporter.stdoutIsTerminal(),
                    (int) Panamax.whole(options, "--log-every", 10, 1, Integer.MAX_VALUE),
                    stepsPerEpoch,
                    plannedEpochs));
            callbacks.add(curve);
            int checkpointEvery = (int) Panamax.whole(options, "--checkpoint-every", 0, 1, Integer.MAX_VALUE);
            if (checkpointEvery > 0) {
                callbacks.add(Callback.checkpointEvery(outDir, checkpointEvery));
            }
            int patience = (int) Panamax.whole(options, "--patience", 0, 1, Integer.MAX_VALUE);
            if (patience > 0) {
                callbacks.add(Callback.earlyStopping(patience));
            }
            trainer.fit(
                    dataset,
                    epochs,
                    steps,
                    (int) Panamax.whole(options, "--eval-every", 0, 1, Integer.MAX_VALUE),
                    (int) Panamax.whole(options, "--val-windows", 0, 1, Integer.MAX_VALUE),
                    callbacks);
            trainer.save(outDir);
            curve.write();
            if (options.containsKey("--export")) {
                Path export = Path.of(options.get("--export"));
                trainer.exportGpt2(export, DType.F16);
                if (tokens.vocabulary != null) {
                    tokens.vocabulary.write(export.resolve(CharVocabulary.FILE));
                }
                err.println("exported the weights as float16 to " + export);
            }
            err.println("saved step " + trainer.step() + " to " + outDir + " (loss curve: "
                    + outDir.resolve(LossCurve.PNG) + "); sample it with: panamax generate --model "
                    + (config.architecture() == Architecture.GPT2 ? outDir : outDir.resolve(Trainer.LLAMA2C_FILE))
                    + (tokens.vocabulary != null ? " --prompt TEXT" : " --tokenizer DIR --prompt TEXT"));
            return 0;
        }
    }

    /** The token ids of the text and the vocabulary's size; {@code vocabulary} is null for GPT-2's BPE. */
    private record Tokens(int[] ids, int vocabSize, CharVocabulary vocabulary) {}

    private static Tokens tokenize(String text, Map<String, String> options, Path resume) throws IOException {
        if (options.containsKey("--tokenizer")) {
            Path dir = Path.of(options.get("--tokenizer"));
            Gpt2Tokenizer bpe = Gpt2Tokenizer.read(dir.resolve("encoder.json"), dir.resolve("vocab.bpe"));
            return new Tokens(bpe.encode(text), bpe.vocabSize(), null);
        }
        CharVocabulary vocabulary = resume != null && Files.isRegularFile(resume.resolve(CharVocabulary.FILE))
                ? CharVocabulary.read(resume.resolve(CharVocabulary.FILE))
                : CharVocabulary.of(text);
        return new Tokens(vocabulary.encode(text), vocabulary.size(), vocabulary);
    }

    /** The text of a file, or of every regular file in a directory (sorted by name), one after the other. */
    static String readText(Path path) throws IOException {
        List<Path> files;
        if (Files.isDirectory(path)) {
            try (Stream<Path> listing = Files.list(path)) {
                files = listing.filter(Files::isRegularFile).sorted().toList();
            }
        } else if (Files.isRegularFile(path)) {
            files = List.of(path);
        } else {
            throw new NoSuchFileException(path.toString(), null, "no such text file or directory");
        }
        StringBuilder text = new StringBuilder();
        long total = 0;
        for (Path file : files) {
            total += Files.size(file);
            if (total > MAX_DATA_BYTES) {
                throw new IllegalArgumentException(
                        "--data " + path + " holds more than " + (MAX_DATA_BYTES >> 20) + " MiB of text");
            }
            text.append(BoundedFiles.decodeUtf8(BoundedFiles.read(file, MAX_DATA_BYTES), file));
        }
        if (text.isEmpty()) {
            throw new IllegalArgumentException("--data " + path + " holds no text (an empty file, or a directory "
                    + "without files): training needs at least a few windows of text");
        }
        return text.toString();
    }

    /**
     * The model's shape: a preset ({@code tiny}, {@code small}) of either family whose context is the training
     * sequence length (positions beyond it would never be trained), or a GPT-2 {@code config.json}.
     */
    private static ModelConfig config(Map<String, String> options, int vocabSize, int seq) throws IOException {
        String name = options.getOrDefault("--config", "tiny");
        String arch = options.getOrDefault("--arch", "gpt2");
        boolean llama =
                switch (arch) {
                    case "gpt2" -> false;
                    case "llama" -> true;
                    default -> throw new IllegalArgumentException("--arch (" + arch + ") must be gpt2 or llama");
                };
        int[] shape =
                switch (name) {
                    case "tiny" -> new int[] {128, 4, 4};
                    case "small" -> new int[] {256, 6, 8};
                    default -> null;
                };
        if (shape == null) {
            if (!Files.isRegularFile(Path.of(name))) {
                throw new IllegalArgumentException(
                        "--config (" + name + ") must be tiny, small, or a GPT-2 config.json file");
            }
            ModelConfig file = Gpt2Checkpoint.readConfig(Path.of(name));
            if (file.vocabSize() != vocabSize) {
                throw new IllegalArgumentException("--config " + name + ": vocab_size " + file.vocabSize()
                        + " does not match the data's vocabulary (" + vocabSize + " tokens)");
            }
            return file;
        }
        int dim = shape[0];
        return new ModelConfig(
                llama ? Architecture.LLAMA : Architecture.GPT2,
                dim,
                llama ? dim * 8 / 3 : 4 * dim,
                shape[1],
                shape[2],
                shape[2],
                vocabSize,
                seq,
                1e-5f,
                10000,
                true);
    }
}
