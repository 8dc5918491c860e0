package dev.panamax.model.cli;

import dev.panamax.model.backend.Backend;
import dev.panamax.model.backend.MatmulPrecision;
import dev.panamax.model.io.BoundedFiles;
import dev.panamax.model.io.DType;
import dev.panamax.model.io.Gpt2Checkpoint;
import dev.panamax.model.io.ModelFormatException;
import dev.panamax.model.nn.ModelConfig;
import dev.panamax.model.nn.ModelConfig.Architecture;
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
import java.nio.file.FileSystemException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.stream.Stream;

/**
 * {@code panamax train}: trains a model on a text file or a directory of text files, character-level (the vocabulary
 * built from the text and saved as {@value CharVocabulary#FILE}) or with GPT-2's BPE, and writes a checkpoint that
 * {@code panamax generate --model DIR} samples from and {@code --resume DIR} continues.
 */
final class TrainCommand {
    private static final TrainingOptions DEFAULTS = TrainingOptions.defaults(16, 128);

    static final Option DATA = Option.text(
            "--data", "PATH", "the text to train on: a file, or a directory whose files are read in name order");
    static final Option CONFIG = Option.text(
                    "--config",
                    "NAME",
                    "the model: tiny (dim 128, 4 layers, 4 heads), small (dim 256, 6 layers, 8 heads), or a GPT-2"
                            + " config.json; a preset's context is --seq")
            .defaultValue("tiny");
    static final Option ARCH = Option.text(
                    "--arch", "NAME", "gpt2, or llama (written as a llama2.c model.bin) for a preset")
            .defaultValue("gpt2");
    static final Option STEPS = Option.whole(
            "--steps",
            "N",
            1,
            Integer.MAX_VALUE,
            "optimizer steps in all, counting those a resumed run has done (default: one epoch)");
    static final Option EPOCHS =
            Option.whole("--epochs", "E", 1, Integer.MAX_VALUE, "passes over the training windows, instead of --steps");
    static final Option BATCH = Option.whole("--batch", "B", 1, 1 << 16, "windows per step")
            .defaultValue(Integer.toString(DEFAULTS.batchSize()));
    static final Option SEQ =
            Option.whole("--seq", "T", 1, 4096, "tokens per window").defaultValue(Integer.toString(DEFAULTS.seqLen()));
    static final Option LR = Option.number(
                    "--lr",
                    "LR",
                    0,
                    true,
                    Double.POSITIVE_INFINITY,
                    "the peak learning rate, reached after the warm-up, then cosine decay to a tenth of it")
            .defaultValue(Float.toString(DEFAULTS.learningRate()));
    static final Option WARMUP = Option.whole(
                    "--warmup",
                    "N",
                    0,
                    Integer.MAX_VALUE,
                    "steps of rising learning rate; one as long as the run or longer is cut to a tenth of the run,"
                            + " with a warning")
            .defaultValue(Integer.toString(DEFAULTS.warmupSteps()));
    static final Option OUT = Option.text(
            "--out",
            "DIR",
            "where the checkpoint, chars.json, loss.csv and loss.png go: a new or empty directory, the --resume"
                    + " directory, or any with --force (default: the --resume directory, else panamax-train)");
    static final Option FORCE = Option.flag(
            "--force", "write into a non-empty --out or --export directory that is not the run being resumed");
    static final Option EXPORT =
            Option.text("--export", "DIR", "also write the weights alone in float16 there (GPT-2 models)");
    static final Option RESUME =
            Option.text("--resume", "DIR", "continue the run saved in DIR exactly, with its model and options");
    static final Option TOKENIZER = Option.text(
            "--tokenizer",
            "DIR",
            "train on GPT-2's BPE: a directory with encoder.json and vocab.bpe (default: a character vocabulary"
                    + " built from the text)");
    static final Option EVAL_EVERY = Option.whole(
            "--eval-every", "N", 1, Integer.MAX_VALUE, "validate every N steps, as well as after each epoch");
    static final Option VAL_WINDOWS = Option.whole(
            "--val-windows", "N", 1, Integer.MAX_VALUE, "the most validation windows per evaluation (default: all)");
    static final Option VAL_FRACTION = Option.number(
                    "--val-fraction", "F", 0, false, 0.5, "the fraction of the text held out for validation")
            .defaultValue("0.1");
    static final Option CHECKPOINT_EVERY = Option.whole(
            "--checkpoint-every", "N", 1, Integer.MAX_VALUE, "save a checkpoint every N steps, as well as at the end");
    static final Option PATIENCE = Option.whole(
            "--patience", "N", 1, Integer.MAX_VALUE, "stop after N evaluations without a better validation loss");
    static final Option SEED = Option.whole(
                    "--seed", "S", Long.MIN_VALUE, Long.MAX_VALUE, "the seed of the initial weights")
            .shortName("-s")
            .defaultValue(Long.toString(DEFAULTS.seed()));
    static final Option LOG_EVERY = Option.whole(
                    "--log-every", "N", 1, Integer.MAX_VALUE, "print the loss every N steps")
            .defaultValue("10");

    static final Command COMMAND = new Command(
            "train",
            List.of(),
            "train a model on a text file or a directory of text files",
            "Trains a GPT-2 (or a Llama) with AdamW on text, character by character or on GPT-2's BPE tokens,"
                    + " printing loss and accuracy per step and per epoch, and saves a checkpoint that panamax"
                    + " generate --model DIR samples from and panamax train --resume DIR continues exactly.",
            List.of(
                    DATA,
                    CONFIG,
                    ARCH,
                    STEPS,
                    EPOCHS,
                    BATCH,
                    SEQ,
                    LR,
                    WARMUP,
                    OUT,
                    FORCE,
                    EXPORT,
                    RESUME,
                    TOKENIZER,
                    Command.THREADS,
                    Command.BACKEND,
                    Command.PRECISION,
                    EVAL_EVERY,
                    VAL_WINDOWS,
                    VAL_FRACTION,
                    CHECKPOINT_EVERY,
                    PATIENCE,
                    SEED,
                    LOG_EVERY));

    /** What a resumed run takes from its checkpoint, so giving it again is a mistake. */
    private static final List<Option> FIXED_BY_A_RUN =
            List.of(CONFIG, ARCH, BATCH, SEQ, LR, WARMUP, SEED, Command.PRECISION);

    /** The most text read for training: the tokens are held in memory as ints. */
    private static final long MAX_DATA_BYTES = 1L << 30;

    private TrainCommand() {}

    static int run(CommandLine line, PrintStream out, PrintStream err) throws IOException {
        if (!line.has(DATA)) {
            throw line.usage("train needs --data PATH (a text file or a directory of them)");
        }
        if (line.has(STEPS) && line.has(EPOCHS)) {
            throw line.usage("train takes " + line.typed(STEPS) + " N or " + line.typed(EPOCHS) + " E, not both");
        }
        Path resume = line.path(RESUME);
        if (resume != null) {
            for (Option option : FIXED_BY_A_RUN) {
                if (line.has(option)) {
                    throw line.usage(line.typed(option) + " cannot change a resumed run: " + line.typed(RESUME)
                            + " continues with the options it was started with");
                }
            }
        }
        // Every value is checked before anything is read, written or trained.
        String backendName = BackendChoice.name(line);
        MatmulPrecision precision = BackendChoice.precision(line);
        int requestedSteps = line.has(STEPS) ? (int) line.whole(STEPS) : 0;
        int requestedEpochs = line.has(EPOCHS) ? (int) line.whole(EPOCHS) : 0;
        int seq = (int) line.whole(SEQ);
        int batch = (int) line.whole(BATCH);
        float learningRate = line.number(LR);
        int warmup = (int) line.whole(WARMUP);
        long seed = line.whole(SEED);
        double fraction = line.number(VAL_FRACTION);
        int logEvery = (int) line.whole(LOG_EVERY);
        int evalEvery = line.has(EVAL_EVERY) ? (int) line.whole(EVAL_EVERY) : 0;
        int validationWindows = line.has(VAL_WINDOWS) ? (int) line.whole(VAL_WINDOWS) : 0;
        int checkpointEvery = line.has(CHECKPOINT_EVERY) ? (int) line.whole(CHECKPOINT_EVERY) : 0;
        int patience = line.has(PATIENCE) ? (int) line.whole(PATIENCE) : 0;
        boolean llama = architecture(line);
        Path outDir = line.has(OUT) ? line.path(OUT) : resume != null ? resume : Path.of("panamax-train");
        Path export = line.path(EXPORT);
        if (resume != null && !Files.isDirectory(resume)) {
            throw ModelFiles.missing(line.typed(RESUME), resume, "no such directory");
        }
        refuseAnotherRun(line, OUT, outDir, resume);
        if (export != null) {
            if (Files.exists(export) && Files.exists(outDir) && Files.isSameFile(export, outDir)
                    || export.toAbsolutePath()
                            .normalize()
                            .equals(outDir.toAbsolutePath().normalize())) {
                throw line.usage(line.typed(EXPORT) + " must be another directory than " + line.typed(OUT) + " ("
                        + outDir + "): the float16 export would replace the checkpoint's weights");
            }
            refuseAnotherRun(line, EXPORT, export, null);
        }

        if (resume != null) {
            precision = checkpoint(line, resume, () -> Trainer.savedPrecision(resume));
        }
        try (Backend backend = BackendChoice.open(line, backendName, precision, err)) {
            Trainer resumed = resume != null ? resume(line, backend, resume) : null;
            String text = readText(line);
            Tokens tokens = tokenize(text, line, resume);
            int seqLen = resumed != null ? resumed.options().seqLen() : seq;
            ModelConfig config = resumed != null ? resumed.config() : config(line, llama, tokens.vocabSize, seq);
            if (tokens.vocabSize != config.vocabSize()) {
                throw line.usage("the vocabulary of " + line.typed(DATA) + " has " + tokens.vocabSize
                        + " tokens, the model's " + config.vocabSize());
            }
            TokenDataset dataset = new TokenDataset(tokens.ids, config.vocabSize(), seqLen, fraction);
            int perStep = resumed != null
                    ? resumed.options().batchSize() * resumed.options().microBatches()
                    : batch;
            if (dataset.trainWindows() < perStep) {
                throw line.usage("the data has " + dataset.trainWindows() + " training windows of " + seqLen
                        + " tokens, fewer than one step's " + perStep + ": lower " + line.typed(BATCH) + " or "
                        + line.typed(SEQ) + ", or give more text");
            }
            int stepsPerEpoch = dataset.trainWindows() / perStep;
            int plannedSteps = requestedSteps > 0
                    ? requestedSteps
                    : requestedEpochs > 0
                            ? Math.multiplyExact(requestedEpochs, stepsPerEpoch)
                            : resumed != null && resumed.totalSteps() > 0 ? resumed.totalSteps() : stepsPerEpoch;
            Trainer trainer;
            if (resumed != null) {
                if (resumed.totalSteps() != 0 && resumed.totalSteps() != plannedSteps) {
                    String asked = requestedSteps > 0
                            ? line.typed(STEPS) + " " + requestedSteps
                            : line.typed(EPOCHS) + " " + requestedEpochs + " (" + plannedSteps + " steps)";
                    throw line.usage(asked + " does not match the run being resumed, planned for "
                            + resumed.totalSteps() + " steps (its learning-rate schedule depends on it)");
                }
                trainer = resumed;
                err.println("resuming " + resume + " at step " + trainer.step() + " of " + trainer.totalSteps());
            } else {
                if (warmup >= plannedSteps) {
                    int shortened = plannedSteps / 10;
                    err.println("panamax: warning: the warm-up (" + (line.has(WARMUP) ? line.typed(WARMUP) + " " : "")
                            + warmup + " steps) is not shorter than the run (" + plannedSteps + " steps), so the"
                            + " learning rate would never reach its peak; using " + shortened
                            + " warm-up steps, a tenth of the run");
                    warmup = shortened;
                }
                TrainingOptions training = TrainingOptions.defaults(batch, seq)
                        .withLearningRate(learningRate)
                        .withWarmupSteps(warmup);
                trainer = Trainer.create(backend, config, training, seed);
            }
            int plannedEpochs = Math.ceilDiv(plannedSteps, stepsPerEpoch);
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
                    seqLen,
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
                    out, ProgressReporter.stdoutIsTerminal(), logEvery, stepsPerEpoch, plannedEpochs));
            callbacks.add(curve);
            if (checkpointEvery > 0) {
                callbacks.add(Callback.checkpointEvery(outDir, checkpointEvery));
            }
            if (patience > 0) {
                callbacks.add(Callback.earlyStopping(patience));
            }
            trainer.fit(dataset, 0, plannedSteps, evalEvery, validationWindows, callbacks);
            trainer.save(outDir);
            curve.write();
            if (export != null) {
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

    /** The run saved in {@code directory}; a missing file is reported with the option that named the directory. */
    private static Trainer resume(CommandLine line, Backend backend, Path directory) throws IOException {
        return checkpoint(line, directory, () -> Trainer.resume(backend, directory));
    }

    /** Reads from the run being resumed; a missing file is reported with the option that named the directory. */
    private static <T> T checkpoint(CommandLine line, Path directory, CheckpointRead<T> read) throws IOException {
        try {
            return read.get();
        } catch (NoSuchFileException e) {
            throw ModelFiles.missing(
                    line.typed(RESUME), directory, "no checkpoint to continue there (" + e.getFile() + " is missing)");
        }
    }

    /** A read from a checkpoint directory. */
    private interface CheckpointRead<T> {
        T get() throws IOException;
    }

    /**
     * Refuses to write into a directory that holds files, unless it is the run being resumed or {@code --force} was
     * given: a new run would silently replace another run's checkpoint.
     */
    private static void refuseAnotherRun(CommandLine line, Option option, Path dir, Path resume) throws IOException {
        if (!Files.exists(dir)) {
            return;
        }
        String named = line.has(option) ? line.typed(option) + " " + dir : dir + " (the default " + option.name() + ")";
        if (!Files.isDirectory(dir)) {
            throw new FileSystemException(named, null, "is a file, not a directory");
        }
        if (line.has(FORCE) || resume != null && Files.isSameFile(dir, resume)) {
            return;
        }
        boolean empty;
        try (Stream<Path> entries = Files.list(dir)) {
            empty = entries.findAny().isEmpty();
        }
        if (!empty) {
            throw line.usage(named + " already holds files that are not the run being resumed; choose a new"
                    + " directory, continue that run with --resume " + dir + ", or overwrite it with --force");
        }
    }

    private static boolean architecture(CommandLine line) {
        return switch (line.text(ARCH)) {
            case "gpt2" -> false;
            case "llama" -> true;
            default -> throw line.usage(line.typed(ARCH) + " (" + line.text(ARCH) + ") must be gpt2 or llama");
        };
    }

    /** The token ids of the text and the vocabulary's size; {@code vocabulary} is null for GPT-2's BPE. */
    private record Tokens(int[] ids, int vocabSize, CharVocabulary vocabulary) {}

    private static Tokens tokenize(String text, CommandLine line, Path resume) throws IOException {
        if (line.has(TOKENIZER)) {
            Path dir = line.path(TOKENIZER);
            if (!Files.isDirectory(dir)) {
                throw ModelFiles.missing(
                        line.typed(TOKENIZER),
                        dir,
                        Files.exists(dir) ? "is not a directory (of encoder.json and vocab.bpe)" : "no such directory");
            }
            Gpt2Tokenizer bpe = ModelFiles.gpt2Tokenizer(dir, line.typed(TOKENIZER));
            return new Tokens(bpe.encode(text), bpe.vocabSize(), null);
        }
        CharVocabulary vocabulary = resume != null && Files.isRegularFile(resume.resolve(CharVocabulary.FILE))
                ? CharVocabulary.read(resume.resolve(CharVocabulary.FILE))
                : CharVocabulary.of(text);
        try {
            return new Tokens(vocabulary.encode(text), vocabulary.size(), vocabulary);
        } catch (IllegalArgumentException e) {
            throw line.usage(
                    line.typed(DATA) + " does not fit the vocabulary of the run being resumed: " + e.getMessage());
        }
    }

    /** The text of a file, or of every regular file in a directory (sorted by name), one after the other. */
    private static String readText(CommandLine line) throws IOException {
        Path path = line.path(DATA);
        String named = line.typed(DATA) + " " + path;
        List<Path> files;
        if (Files.isDirectory(path)) {
            try (Stream<Path> listing = Files.list(path)) {
                files = listing.filter(Files::isRegularFile).sorted().toList();
            }
        } else if (Files.isRegularFile(path)) {
            files = List.of(path);
        } else if (Files.exists(path)) {
            throw new FileSystemException(named, null, "is not a regular file or directory");
        } else {
            throw ModelFiles.missing(line.typed(DATA), path, "no such text file or directory");
        }
        StringBuilder text = new StringBuilder();
        long total = 0;
        for (Path file : files) {
            total += Files.size(file);
            if (total > MAX_DATA_BYTES) {
                throw new FileSystemException(
                        named, null, "holds more than " + (MAX_DATA_BYTES >> 20) + " MiB of text");
            }
            text.append(BoundedFiles.readUtf8(file, "file", MAX_DATA_BYTES));
        }
        if (text.isEmpty()) {
            throw new FileSystemException(
                    named,
                    null,
                    "holds no text (an empty file, or a directory without files): training needs at least a few"
                            + " windows of text");
        }
        return text.toString();
    }

    /**
     * The model's shape: a preset ({@code tiny}, {@code small}) of either family whose context is the training
     * sequence length (positions beyond it would never be trained), or a GPT-2 {@code config.json}.
     */
    private static ModelConfig config(CommandLine line, boolean llama, int vocabSize, int seq) throws IOException {
        String name = line.text(CONFIG);
        int[] shape =
                switch (name) {
                    case "tiny" -> new int[] {128, 4, 4};
                    case "small" -> new int[] {256, 6, 8};
                    default -> null;
                };
        if (shape == null) {
            Path file = line.path(CONFIG);
            if (Files.exists(file) && !Files.isRegularFile(file)) {
                throw new ModelFormatException(file, "not a regular file");
            }
            if (!Files.exists(file)) {
                throw ModelFiles.missing(
                        line.typed(CONFIG),
                        file,
                        "no such file (" + line.typed(CONFIG) + " takes tiny, small or a GPT-2 config.json)");
            }
            if (line.has(ARCH) && llama) {
                throw line.usage(line.typed(ARCH) + " llama does not apply to " + line.typed(CONFIG) + " " + file
                        + ", a GPT-2 configuration");
            }
            ModelConfig config = Gpt2Checkpoint.readConfig(file);
            if (config.vocabSize() != vocabSize) {
                throw line.usage(line.typed(CONFIG) + " " + file + ": vocab_size " + config.vocabSize()
                        + " does not match the data's vocabulary (" + vocabSize + " tokens)");
            }
            if (seq > config.seqLen()) {
                throw line.usage(line.typed(SEQ) + " (" + seq + ") must be at most the context of " + line.typed(CONFIG)
                        + " " + file + " (" + config.seqLen() + ")");
            }
            return config;
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
