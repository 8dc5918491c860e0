package dev.panamax.model.cli;

import dev.panamax.model.backend.Backend;
import dev.panamax.model.backend.MatmulPrecision;
import dev.panamax.model.backend.MemorySize;
import dev.panamax.model.io.AtomicFiles;
import dev.panamax.model.io.BoundedFiles;
import dev.panamax.model.io.DType;
import dev.panamax.model.io.Gpt2Checkpoint;
import dev.panamax.model.io.ModelFormatException;
import dev.panamax.model.io.TokenFile;
import dev.panamax.model.nn.ModelConfig;
import dev.panamax.model.nn.ModelConfig.Architecture;
import dev.panamax.model.tokenizer.CharVocabulary;
import dev.panamax.model.tokenizer.Gpt2Tokenizer;
import dev.panamax.model.tokenizer.Llama2cTokenizer;
import dev.panamax.model.train.Callback;
import dev.panamax.model.train.LossCurve;
import dev.panamax.model.train.ProgressReporter;
import dev.panamax.model.train.TokenDataset;
import dev.panamax.model.train.Trainer;
import dev.panamax.model.train.TrainingDivergedException;
import dev.panamax.model.train.TrainingOptions;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.FileSystemException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.OptionalDouble;
import java.util.function.Function;
import java.util.stream.Stream;

/**
 * {@code panamax train}: trains a model on a text file or a directory of text files, character-level (the vocabulary
 * built from the text and saved as {@value CharVocabulary#FILE}) or with GPT-2's BPE, and writes a checkpoint that
 * {@code panamax generate --model DIR} samples from and {@code --resume DIR} continues.
 */
final class TrainCommand {
    private static final TrainingOptions DEFAULTS = TrainingOptions.defaults(16, 128);

    static final Option DATA = Option.text(
            "--data",
            "PATH",
            "what to train on: a text file, a directory whose text files are read in name order, or an llm.c token"
                    + " file (uint16 ids after a header of 256 int32 starting with the magic 20240520, version 1)");
    static final Option INIT = Option.text(
            "--init",
            "PATH",
            "fine-tune pretrained weights: a GPT-2 Hugging Face directory, a llama2.c .bin or a panamax train run"
                    + " directory, keeping its architecture and its tokenizer; the optimizer starts afresh");
    static final Option CONFIG = Option.text(
                    "--config",
                    "NAME",
                    "the model: tiny (dim 128, 4 layers, 4 heads), small (dim 256, 6 layers, 8 heads), or a GPT-2"
                            + " config.json; a preset's context is --seq")
            .defaultValue("tiny");
    static final Option ARCH = Option.text(
                    "--arch", "NAME", "gpt2, or llama (written as a llama2.c model.bin) for a preset")
            .defaultValue("gpt2");
    static final Option STEPS = Option.wholeFrom(
            "--steps",
            "N",
            1,
            "optimizer steps in all (default: one epoch); a resumed run keeps the total it was started with, so"
                    + " given with --resume it must be that total");
    static final Option EPOCHS =
            Option.wholeFrom("--epochs", "E", 1, "passes over the training windows, instead of --steps");
    static final Option BATCH =
            Option.whole("--batch", "B", 1, 1 << 16, "windows per step").defaultValue(DEFAULTS.batchSize());
    static final Option SEQ =
            Option.whole("--seq", "T", 1, 4096, "tokens per window").defaultValue(DEFAULTS.seqLen());
    static final Option LR = Option.positive(
                    "--lr", "LR", "the peak learning rate, reached after the warm-up, then cosine decay to --min-lr")
            .defaultValue(DEFAULTS.learningRate());
    static final Option MIN_LR = Option.nonNegative(
            "--min-lr", "LR", "the learning rate the cosine decay ends at, at most --lr (default: a tenth of --lr)");
    static final Option WEIGHT_DECAY = Option.nonNegative(
                    "--weight-decay",
                    "W",
                    "AdamW's decoupled weight decay, on matrices and embeddings (not on norms and biases)")
            .defaultValue(DEFAULTS.weightDecay());
    static final Option BETA1 = Option.numberBelow("--beta1", "B1", 0, 1, "AdamW's decay of the gradient's mean")
            .defaultValue(DEFAULTS.beta1());
    static final Option BETA2 = Option.numberBelow(
                    "--beta2", "B2", 0, 1, "AdamW's decay of the squared gradient's mean")
            .defaultValue(DEFAULTS.beta2());
    static final Option EPS = Option.positive("--eps", "E", "added to the root of AdamW's second moment")
            .defaultValue(DEFAULTS.epsilon());
    static final Option GRAD_CLIP = Option.nonNegative(
                    "--grad-clip",
                    "C",
                    "scale the gradients down to this global norm when it is larger (0: no clipping)")
            .defaultValue(DEFAULTS.gradClip());
    static final Option DATA_ORDER = Option.text(
                    "--data-order",
                    "ORDER",
                    "shuffled (each epoch in an order drawn from --seed) or sequential (the windows in file order,"
                            + " step s taking windows s·B to s·B+B-1), for runs another program must reproduce")
            .defaultValue("shuffled");
    static final Option WARMUP = Option.wholeFrom(
                    "--warmup",
                    "N",
                    0,
                    "steps of rising learning rate; one as long as the run or longer is cut to a tenth of the run,"
                            + " with a warning")
            .defaultValue(DEFAULTS.warmupSteps());
    static final Option OUT = Option.text(
            "--out",
            "DIR",
            "where the checkpoint, chars.json, loss.csv and loss.png go: a new or empty directory, the --resume"
                    + " directory, or any with --force (default: the --resume directory, else panamax-train)");
    static final Option FORCE = Option.flag(
            "--force",
            "write into a non-empty --out or --export directory that is not the run being resumed; in --out, the run"
                    + " there is removed first (its checkpoints, loss curve and tokenizer files; other files stay)");
    static final Option EXPORT = Option.text(
            "--export",
            "DIR",
            "also write the weights alone there: GPT-2 as a Hugging Face directory in float16, a Llama as a"
                    + " llama2.c model.bin");
    static final Option RESUME =
            Option.text("--resume", "DIR", "continue the run saved in DIR exactly, with its model and options");
    static final Option TOKENIZER = Option.text(
            "--tokenizer",
            "PATH",
            "train on GPT-2's BPE: a directory with encoder.json and vocab.bpe; with a llama2.c --init, its"
                    + " tokenizer.bin (default: the --init model's own, else a character vocabulary built from the"
                    + " text)");
    static final Option EVAL_EVERY =
            Option.wholeFrom("--eval-every", "N", 1, "validate every N steps, as well as after each epoch");
    static final Option VAL_WINDOWS =
            Option.wholeFrom("--val-windows", "N", 1, "the most validation windows per evaluation (default: all)");
    static final Option VAL_FRACTION = Option.number(
                    "--val-fraction",
                    "F",
                    0,
                    false,
                    0.5,
                    "the fraction of the text held out for validation (a resumed run keeps its own)")
            .defaultValue("0.1");
    static final Option CHECKPOINT_EVERY =
            Option.wholeFrom("--checkpoint-every", "N", 1, "save a checkpoint every N steps, as well as at the end");
    static final Option PATIENCE =
            Option.wholeFrom("--patience", "N", 1, "stop after N evaluations without a better validation loss");
    static final Option SEED = Option.whole(
                    "--seed", "S", Long.MIN_VALUE, Long.MAX_VALUE, "the seed of the initial weights")
            .shortName("-s")
            .defaultValue(Long.toString(DEFAULTS.seed()));
    static final Option LOG_EVERY = Option.wholeFrom(
                    "--log-every",
                    "N",
                    1,
                    "print the loss every N steps (given, as plain lines even on a terminal; 1: every step)")
            .defaultValue("10");

    /** The optimizer's settings, which a run keeps from its first step to its last. */
    private static final List<Option> OPTIMIZER =
            List.of(LR, MIN_LR, WARMUP, WEIGHT_DECAY, BETA1, BETA2, EPS, GRAD_CLIP);

    static final Command COMMAND = new Command(
            "train",
            List.of(),
            "train or fine-tune a model on text or pre-tokenized data",
            "Trains a GPT-2 (or a Llama) with AdamW on text, character by character or on GPT-2's BPE tokens, or on"
                    + " an llm.c token file, from random weights or from a pretrained model (--init), printing loss"
                    + " and accuracy per step and per epoch, and saves a checkpoint that panamax generate --model"
                    + " DIR samples from and panamax train --resume DIR continues exactly.",
            options(
                    List.of(DATA, INIT, CONFIG, ARCH, STEPS, EPOCHS, BATCH, SEQ),
                    OPTIMIZER,
                    List.of(
                            DATA_ORDER,
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
                            LOG_EVERY)));

    /** What a resumed run takes from its checkpoint, so giving it again is a mistake. */
    private static final List<Option> FIXED_BY_A_RUN =
            options(List.of(INIT, CONFIG, ARCH, BATCH, SEQ), OPTIMIZER, List.of(DATA_ORDER, SEED, Command.PRECISION));

    /** What a pretrained model fixes, so giving it with {@code --init} contradicts the checkpoint. */
    private static final List<Option> FIXED_BY_A_MODEL = List.of(CONFIG, ARCH);

    /** The name a llama2.c tokenizer is kept under beside a trained Llama. */
    private static final String LLAMA2C_TOKENIZER = "tokenizer.bin";

    /** The most names a warning about the files left in a directory lists. */
    private static final int MAX_NAMED_FILES = 10;

    /** The most text read for training: the tokens are held in memory as ints. */
    private static final long MAX_DATA_BYTES = 1L << 30;

    /** The most tokens read from a token file: as many as the most text could give. */
    private static final int MAX_DATA_TOKENS = (int) MAX_DATA_BYTES;

    private TrainCommand() {}

    /** The options of the three lists, in order. */
    private static List<Option> options(List<Option> first, List<Option> second, List<Option> third) {
        return Stream.of(first, second, third).flatMap(List::stream).toList();
    }

    static int run(CommandLine line, PrintStream out, PrintStream err) throws IOException {
        if (!line.has(DATA)) {
            throw line.usage("train needs --data PATH (a text file, a directory of them, or an llm.c token file)");
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
        Path init = line.path(INIT);
        if (init != null) {
            for (Option option : FIXED_BY_A_MODEL) {
                if (line.has(option)) {
                    throw line.usage(line.typed(option) + " contradicts " + line.typed(INIT) + " " + init
                            + ": a fine-tuned model keeps the architecture and shape of the one it starts from");
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
        TrainingOptions requested = trainingOptions(line, batch, seq);
        int warmup = requested.warmupSteps();
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
                        + outDir + "): the export would replace the checkpoint's weights");
            }
            refuseAnotherRun(line, EXPORT, export, null);
        }
        if (init != null && Files.exists(init) && Files.isDirectory(outDir)) {
            // --force would remove the model this run starts from (the directory, its current link or a step
            // directory, through the links) before the first checkpoint replaces it.
            if (init.toRealPath().startsWith(outDir.toRealPath())) {
                throw line.usage(line.typed(INIT) + " " + init + " is in " + named(line, OUT, outDir)
                        + ", which this run writes: give another directory, so that the model it starts from stays");
            }
        }

        if (resume != null) {
            precision = checkpoint(line, resume, () -> Trainer.savedPrecision(resume));
        }
        String writing =
                !line.has(OUT) && resume != null ? line.typed(RESUME) + " " + resume : named(line, OUT, outDir);
        try (RunLock lock = new RunLock(outDir, writing);
                Backend backend = BackendChoice.open(line, backendName, precision, err);
                ModelFiles.Pretrained pretrained =
                        init != null ? ModelFiles.pretrained(init, line.typed(INIT)) : null) {
            // Taken before the checkpoint to resume is read, so that no other process saves after that read.
            if (Files.isDirectory(outDir)) {
                lock.take();
                // Another run may have taken the directory between the check above and the lock.
                refuseAnotherRun(line, OUT, outDir, resume);
            }
            Trainer resumed = resume != null ? resume(line, backend, resume) : null;
            if (resumed != null) {
                fraction = keptFraction(line, resumed, resume, fraction);
                String trainedOn = resumed.savedBackend().orElse(backend.kind());
                if (!trainedOn.equals(backend.kind())) {
                    // Moving a run to another machine is legitimate, so a different backend is only worth a warning.
                    err.println("panamax: warning: " + resume + " was trained on " + trainedOn + ", resumed on "
                            + backend.kind() + ": it continues, but not bit for bit as it would have on " + trainedOn);
                }
            }
            ModelConfig fixed = resumed != null ? resumed.config() : pretrained != null ? pretrained.config() : null;
            if (pretrained != null && seq > fixed.seqLen()) {
                throw line.usage(line.typed(SEQ) + " (" + seq + ") must be at most the context of " + line.typed(INIT)
                        + " " + init + " (" + fixed.seqLen() + ")");
            }
            Path dataPath = line.path(DATA);
            boolean tokenData = TokenFile.hasMagic(dataPath)
                    || dataPath.getFileName() != null
                            && dataPath.getFileName().toString().endsWith(".bin");
            String text = tokenData ? null : readText(line);
            Vocabulary vocabulary = vocabulary(line, text, resume, pretrained, fixed);
            int[] ids = tokenData
                    ? TokenFile.read(dataPath, vocabulary.size(), MAX_DATA_TOKENS)
                    : encode(line, vocabulary, text);
            int seqLen = resumed != null ? resumed.options().seqLen() : seq;
            ModelConfig config = fixed != null ? fixed : config(line, llama, vocabulary.size(), seq);
            if (vocabulary.size() != config.vocabSize()) {
                throw line.usage("the vocabulary of " + line.typed(DATA) + " has " + vocabulary.size()
                        + " tokens, the model's " + config.vocabSize());
            }
            requireWindows(line, ids.length, seqLen, fraction);
            TokenDataset dataset = new TokenDataset(ids, config.vocabSize(), seqLen, fraction);
            int perStep = resumed != null
                    ? resumed.options().batchSize() * resumed.options().microBatches()
                    : batch;
            if (dataset.trainWindows() < perStep) {
                throw line.usage("the data has " + dataset.trainWindows() + " training windows of " + seqLen
                        + " tokens, fewer than one step's " + perStep + ": lower " + line.typed(BATCH) + " or "
                        + line.typed(SEQ) + ", or give more data");
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
                if (trainer.step() >= plannedSteps) {
                    // Its learning rate has decayed to the end of its schedule: more steps would be another run.
                    err.println(resume + " already finished its " + plannedSteps + " steps: nothing to train. To train"
                            + " its weights further, start a new run from them: " + line.typed(INIT) + " " + resume);
                    if (export != null) {
                        export(trainer, vocabulary, export, err);
                    }
                    return 0;
                }
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
                TrainingOptions training = requested.withWarmupSteps(warmup);
                trainer = pretrained != null
                        ? Trainer.fromWeights(backend, config, training, pretrained.weights())
                        : Trainer.create(backend, config, training, training.seed());
                if (pretrained != null) {
                    err.println("fine-tuning " + init + " (weights only; the optimizer starts afresh)");
                }
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
                    ids.length - dataset.trainTokens(),
                    stepsPerEpoch,
                    trainer.options().batchSize());
            int unused = dataset.trainWindows() % perStep;
            if (unused > 0) {
                // Each epoch takes whole steps, so the remainder sits out: in sequential order always the same windows.
                err.printf(
                        Locale.ROOT,
                        "%,d training window%s per epoch left out: a step takes %d, which does not divide %,d%s%n",
                        unused,
                        unused == 1 ? " is" : "s are",
                        perStep,
                        dataset.trainWindows(),
                        trainer.options().dataOrder() == TrainingOptions.DataOrder.SEQUENTIAL
                                ? " (in sequential order, the last ones every epoch)"
                                : "");
            }
            if (!lock.held()) {
                // A directory created meanwhile by another run is refused as at the start.
                Files.createDirectories(outDir);
                lock.take();
                refuseAnotherRun(line, OUT, outDir, resume);
            }
            boolean intoResumed = resume != null && Files.isSameFile(outDir, resume);
            if (line.has(FORCE) && !intoResumed) {
                removeEarlierRun(outDir, named(line, OUT, outDir), vocabulary, err);
            }
            vocabulary.writeBeside(outDir);
            LossCurve curve = new LossCurve(outDir, trainer.step());
            List<Callback> callbacks = new ArrayList<>();
            // An explicit --log-every asks for lines to keep, so it prints them on a terminal too.
            boolean progressBar = ProgressReporter.stdoutIsTerminal() && !line.has(LOG_EVERY);
            callbacks.add(new ProgressReporter(out, progressBar, logEvery, stepsPerEpoch, plannedEpochs));
            callbacks.add(curve);
            if (checkpointEvery > 0) {
                callbacks.add(Callback.checkpointEvery(outDir, checkpointEvery));
            }
            if (patience > 0) {
                callbacks.add(Callback.earlyStopping(patience));
            }
            int startStep = trainer.step();
            try {
                trainer.fit(dataset, 0, plannedSteps, evalEvery, validationWindows, callbacks);
            } catch (TrainingDivergedException diverged) {
                // The diverged step was not taken, so the trainer still holds the step before it, worth keeping.
                if (trainer.step() > 0 && !saved(trainer, startStep, checkpointEvery, intoResumed)) {
                    trainer.save(outDir);
                }
                curve.write();
                throw new IllegalStateException(diverged(line, diverged, trainer, outDir));
            }
            if (!saved(trainer, startStep, checkpointEvery, intoResumed)) {
                trainer.save(outDir);
            }
            curve.write();
            boolean gpt2 = config.architecture() == Architecture.GPT2;
            if (export != null) {
                export(trainer, vocabulary, export, err);
            }
            err.println("saved step " + trainer.step() + " to " + outDir + " (loss curve: "
                    + outDir.resolve(LossCurve.PNG) + "); sample it with: panamax generate --model "
                    + (gpt2 ? outDir : outDir.resolve(Trainer.LLAMA2C_FILE))
                    + vocabulary.generateOption(outDir) + " --prompt TEXT");
            return 0;
        }
    }

    /** What a run that diverged kept, and how to go on with a lower learning rate, which a resumed run cannot take. */
    private static String diverged(CommandLine line, TrainingDivergedException e, Trainer trainer, Path outDir) {
        String lr = line.typed(LR);
        String diverged = "training diverged at step " + e.step() + ": the gradient norm is " + e.gradientNorm() + ". ";
        if (trainer.step() == 0) {
            return diverged + "No step was completed: start again with a " + lr + " lower than "
                    + trainer.options().learningRate() + ", and " + line.typed(FORCE) + " to train into " + outDir
                    + " again (or another " + line.typed(OUT) + ")";
        }
        return diverged + "The checkpoint in " + outDir + " is step " + trainer.step() + ", the last before it (loss"
                + " curve: " + outDir.resolve(LossCurve.PNG) + "). " + line.typed(RESUME) + " would diverge again, as"
                + " it keeps the learning rate (" + trainer.options().learningRate() + "); to go on from those weights"
                + " with a lower " + lr + ", start a new run, which starts new optimizer moments and a new"
                + " learning-rate schedule: panamax train " + line.typed(DATA) + " " + line.path(DATA) + " "
                + line.typed(INIT) + " " + outDir + " " + lr + " LR " + line.typed(OUT) + " NEW_DIR";
    }

    /**
     * Whether the run directory holds the trainer's step already: saved by {@code --checkpoint-every} (after a step
     * that is a multiple of it, or the last), or, when no step was taken, the checkpoint the run resumed from there.
     */
    private static boolean saved(Trainer trainer, int startStep, int checkpointEvery, boolean intoResumed) {
        int step = trainer.step();
        if (step == startStep) {
            return intoResumed;
        }
        return checkpointEvery > 0 && (step % checkpointEvery == 0 || step == trainer.totalSteps());
    }

    /**
     * The validation fraction a resumed run keeps: the one it recorded, which a different {@code --val-fraction}
     * contradicts; {@code given} for a checkpoint from before the fraction was recorded.
     */
    private static double keptFraction(CommandLine line, Trainer resumed, Path resume, double given) {
        OptionalDouble kept = resumed.validationFraction();
        if (kept.isEmpty()) {
            return given;
        }
        if (line.has(VAL_FRACTION) && given != kept.getAsDouble()) {
            throw line.usage(line.typed(VAL_FRACTION) + " " + line.text(VAL_FRACTION) + " does not match the run being"
                    + " resumed (" + line.typed(RESUME) + " " + resume + "), which holds out "
                    + (float) kept.getAsDouble() + " of its data for validation: leave it out to keep the run's");
        }
        return kept.getAsDouble();
    }

    /** Refuses data whose training or held-out part is shorter than one window, naming the options to change. */
    private static void requireWindows(CommandLine line, int tokens, int seqLen, double fraction) {
        int held = TokenDataset.heldOutTokens(tokens, fraction);
        int window = seqLen + 1;
        if (tokens - held < window) {
            throw line.usage("the training part of " + line.typed(DATA) + " has " + (tokens - held) + " tokens, fewer"
                    + " than one window of " + seqLen + " tokens needs (" + window + "): give more data or a smaller "
                    + line.typed(SEQ) + (held > 0 ? " or " + line.typed(VAL_FRACTION) : ""));
        }
        if (held > 0 && held < window) {
            throw line.usage("the " + held + " tokens that " + line.typed(VAL_FRACTION) + " " + (float) fraction
                    + " holds out"
                    + " are fewer than one window of " + seqLen + " tokens needs (" + window + "): give a larger "
                    + line.typed(VAL_FRACTION) + ", a smaller " + line.typed(SEQ) + " or more data");
        }
    }

    /** Writes the weights alone to {@code export}: GPT-2 as a Hugging Face directory, a Llama as a llama2.c file. */
    private static void export(Trainer trainer, Vocabulary vocabulary, Path export, PrintStream err)
            throws IOException {
        boolean gpt2 = trainer.config().architecture() == Architecture.GPT2;
        if (gpt2) {
            trainer.exportGpt2(export, DType.F16);
        } else {
            trainer.exportLlama2c(export);
        }
        vocabulary.writeBeside(export);
        err.println("exported the weights to " + export
                + (gpt2 ? " (float16, Hugging Face GPT-2)" : " (" + Trainer.LLAMA2C_FILE + ", llama2.c)"));
    }

    /** The optimizer and data-order options as given (their defaults otherwise), checked against each other. */
    private static TrainingOptions trainingOptions(CommandLine line, int batch, int seq) {
        float learningRate = line.number(LR);
        float minLearningRate = line.has(MIN_LR) ? line.number(MIN_LR) : learningRate / 10;
        if (minLearningRate > learningRate) {
            throw line.usage(line.typed(MIN_LR) + " (" + line.text(MIN_LR) + ") must be at most " + line.typed(LR)
                    + " (" + learningRate + ")");
        }
        TrainingOptions.DataOrder order =
                switch (line.text(DATA_ORDER)) {
                    case "shuffled" -> TrainingOptions.DataOrder.SHUFFLED;
                    case "sequential" -> TrainingOptions.DataOrder.SEQUENTIAL;
                    default ->
                        throw line.usage(line.typed(DATA_ORDER) + " (" + line.text(DATA_ORDER)
                                + ") must be shuffled or sequential");
                };
        return new TrainingOptions(
                batch,
                seq,
                1,
                learningRate,
                minLearningRate,
                (int) line.whole(WARMUP),
                line.number(WEIGHT_DECAY),
                line.number(BETA1),
                line.number(BETA2),
                line.number(EPS),
                line.number(GRAD_CLIP),
                line.whole(SEED),
                order);
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
        String named = named(line, option, dir);
        if (!Files.isDirectory(dir)) {
            throw new FileSystemException(named, null, "is a file, not a directory");
        }
        if (line.has(FORCE) || resume != null && Files.isSameFile(dir, resume)) {
            return;
        }
        boolean empty;
        try (Stream<Path> entries = Files.list(dir)) {
            // The lock file is left by any run, one that failed before writing anything included.
            empty = entries.allMatch(entry -> entry.getFileName().toString().equals(RunLock.FILE));
        }
        if (!empty) {
            throw line.usage(named + " already holds files that are not the run being resumed; choose a new"
                    + " directory, continue that run with --resume " + dir + ", or overwrite it with --force");
        }
    }

    /**
     * Removes what an earlier run left in a directory that {@code --force} lets this run write into, before this run
     * writes anything there: its checkpoints, loss curve and tokenizer copies, so that the directory never resumes as
     * the earlier run nor mixes its files with this run's. Files of the names this run's vocabulary writes stay, as
     * they may be what it copies, and are replaced; anything else is left where it is and named in a warning.
     */
    private static void removeEarlierRun(Path outDir, String named, Vocabulary vocabulary, PrintStream err)
            throws IOException {
        Trainer.deleteCheckpoints(outDir);
        List<String> written = vocabulary.names();
        List<String> earlier =
                new ArrayList<>(List.of(LossCurve.CSV, LossCurve.PNG, CharVocabulary.FILE, LLAMA2C_TOKENIZER));
        earlier.addAll(ModelFiles.GPT2_TOKENIZER_NAMES);
        earlier.removeAll(written);
        AtomicFiles.delete(outDir, earlier);
        List<String> left;
        try (Stream<Path> entries = Files.list(outDir)) {
            left = entries.map(entry -> entry.getFileName().toString())
                    .filter(name -> !name.equals(RunLock.FILE) && !written.contains(name))
                    .sorted()
                    .toList();
        }
        if (!left.isEmpty()) {
            int shown = Math.min(left.size(), MAX_NAMED_FILES);
            err.println("panamax: warning: " + named + " holds files that are not of a Panamax run, left as they"
                    + " are: " + String.join(", ", left.subList(0, shown))
                    + (left.size() > shown ? " and " + (left.size() - shown) + " more" : ""));
        }
    }

    /** A directory as messages name it: with the option that gave it, or as that option's default. */
    private static String named(CommandLine line, Option option, Path dir) {
        return line.has(option) ? line.typed(option) + " " + dir : dir + " (the default " + option.name() + ")";
    }

    private static boolean architecture(CommandLine line) {
        return switch (line.text(ARCH)) {
            case "gpt2" -> false;
            case "llama" -> true;
            default -> throw line.usage(line.typed(ARCH) + " (" + line.text(ARCH) + ") must be gpt2 or llama");
        };
    }

    /**
     * The tokens a model reads: how many there are, how text becomes them (null when no tokenizer is known, so that
     * only a token file can be trained on), and the files that describe them, kept beside the trained model so that
     * {@code panamax generate} can read and write its text.
     *
     * @param size the vocabulary's size
     * @param encoder text to ids, or null
     * @param characters a character vocabulary, written as {@value CharVocabulary#FILE}; null for the other kinds
     * @param files tokenizer files copied beside the model (GPT-2's BPE files, llama2.c's tokenizer.bin)
     */
    private record Vocabulary(int size, Function<String, int[]> encoder, CharVocabulary characters, List<Path> files) {
        static Vocabulary of(CharVocabulary characters) {
            return new Vocabulary(characters.size(), characters::encode, characters, List.of());
        }

        static Vocabulary idsOnly(int size) {
            return new Vocabulary(size, null, null, List.of());
        }

        /** The names of the files {@link #writeBeside} writes. */
        List<String> names() {
            List<String> names = new ArrayList<>();
            if (characters != null) {
                names.add(CharVocabulary.FILE);
            }
            for (Path file : files) {
                names.add(copyName(file));
            }
            return names;
        }

        void writeBeside(Path directory) throws IOException {
            if (characters != null) {
                characters.write(directory.resolve(CharVocabulary.FILE));
            }
            for (Path file : files) {
                Path copy = directory.resolve(copyName(file));
                if (!Files.exists(copy) || !Files.isSameFile(file, copy)) {
                    AtomicFiles.replace(
                            copy, temporary -> Files.copy(file, temporary, StandardCopyOption.REPLACE_EXISTING));
                }
            }
        }

        /**
         * The name a tokenizer file is kept under: a llama2.c tokenizer (the only one of a single file) as {@value
         * #LLAMA2C_TOKENIZER}, where a resumed run finds it, GPT-2's files under their own names.
         */
        private String copyName(Path file) {
            return files.size() == 1 ? LLAMA2C_TOKENIZER : file.getFileName().toString();
        }

        /** The tokenizer option {@code panamax generate} needs for a model saved in {@code directory}. */
        String generateOption(Path directory) {
            if (characters != null) {
                return ""; // generate finds chars.json beside the model
            }
            if (files.isEmpty()) {
                return " --tokenizer TOKENIZER";
            }
            return " --tokenizer " + (files.size() == 1 ? directory.resolve(LLAMA2C_TOKENIZER) : directory);
        }
    }

    /**
     * The vocabulary of the run: {@code --tokenizer}'s, else the pretrained model's or the resumed run's own (see
     * {@link #besideModel}), else for text the characters it holds. A vocabulary of another size than a pretrained or resumed model's is refused.
     */
    private static Vocabulary vocabulary(
            CommandLine line, String text, Path resume, ModelFiles.Pretrained pretrained, ModelConfig fixed)
            throws IOException {
        Path model = pretrained != null ? line.path(INIT) : resume;
        if (line.has(TOKENIZER)) {
            Path path = line.path(TOKENIZER);
            boolean llama = fixed != null && fixed.architecture() == Architecture.LLAMA;
            if (!Files.exists(path)) {
                throw ModelFiles.missing(line.typed(TOKENIZER), path, llama ? "no such file" : "no such directory");
            }
            if (llama) {
                if (!Files.isRegularFile(path)) {
                    throw ModelFiles.missing(
                            line.typed(TOKENIZER), path, "is not a file; a llama2.c model takes its tokenizer.bin");
                }
                return llama2cVocabulary(path, fixed);
            }
            if (!Files.isDirectory(path)) {
                throw ModelFiles.missing(
                        line.typed(TOKENIZER), path, "is not a directory (of encoder.json and vocab.bpe)");
            }
            return gpt2Vocabulary(path, line.typed(TOKENIZER), fixed, model);
        }
        if (pretrained != null) {
            return besideModel(pretrained.directory(), line.typed(INIT), fixed, model, false);
        }
        if (resume != null) {
            return besideModel(resume, line.typed(RESUME), fixed, model, true);
        }
        if (text != null) {
            return Vocabulary.of(CharVocabulary.of(text));
        }
        if (fixed != null) {
            return Vocabulary.idsOnly(fixed.vocabSize());
        }
        Path configFile = gpt2ConfigFile(line);
        if (configFile == null) {
            throw line.usage(line.typed(DATA) + " is an llm.c token file, whose ids need the model's vocabulary: give "
                    + line.typed(INIT) + " MODEL, " + line.typed(TOKENIZER) + " DIR (GPT-2's BPE) or "
                    + line.typed(CONFIG) + " config.json");
        }
        return Vocabulary.idsOnly(Gpt2Checkpoint.readConfig(configFile).vocabSize());
    }

    /**
     * The tokenizer kept beside a pretrained model or a run: a {@value CharVocabulary#FILE}, else GPT-2's BPE files
     * for GPT-2, else a {@value #LLAMA2C_TOKENIZER} for a Llama; a vocabulary of ids alone when there is none. Beside
     * a model that is not a run's ({@code run} false) a {@value #LLAMA2C_TOKENIZER} of another vocabulary is not the
     * model's (a llama2.c checkout holds Llama 2's beside models of their own vocabularies) and is passed over.
     */
    private static Vocabulary besideModel(Path directory, String source, ModelConfig fixed, Path model, boolean run)
            throws IOException {
        Path chars = directory.resolve(CharVocabulary.FILE);
        if (Files.isRegularFile(chars)) {
            CharVocabulary characters = CharVocabulary.read(chars);
            characters.requireVocabularySize(fixed.vocabSize(), chars, model);
            return Vocabulary.of(characters);
        }
        if (fixed.architecture() == Architecture.GPT2
                && ModelFiles.gpt2TokenizerFiles(directory).isPresent()) {
            return gpt2Vocabulary(directory, source, fixed, model);
        }
        Path llama2c = directory.resolve(LLAMA2C_TOKENIZER);
        if (fixed.architecture() == Architecture.LLAMA && Files.isRegularFile(llama2c)) {
            try {
                return llama2cVocabulary(llama2c, fixed);
            } catch (ModelFormatException e) {
                if (run) {
                    throw e;
                }
            }
        }
        return Vocabulary.idsOnly(fixed.vocabSize());
    }

    /** A llama2.c tokenizer, which must hold the model's vocabulary size. */
    private static Vocabulary llama2cVocabulary(Path file, ModelConfig fixed) throws IOException {
        Llama2cTokenizer tokenizer = Llama2cTokenizer.read(file, fixed.vocabSize());
        return new Vocabulary(tokenizer.vocabSize(), s -> tokenizer.encode(s, true, false), null, List.of(file));
    }

    /** GPT-2's BPE from a directory, whose size must be the model's when there is one already. */
    private static Vocabulary gpt2Vocabulary(Path directory, String source, ModelConfig fixed, Path model)
            throws IOException {
        Gpt2Tokenizer bpe = ModelFiles.gpt2Tokenizer(directory, source);
        if (fixed != null) {
            bpe.requireVocabularySize(fixed.vocabSize(), directory, model);
        }
        return new Vocabulary(
                bpe.vocabSize(),
                bpe::encode,
                null,
                ModelFiles.gpt2TokenizerFiles(directory).orElseThrow());
    }

    /** The ids of the text; a vocabulary without a tokenizer, or one that lacks a character of it, is refused. */
    private static int[] encode(CommandLine line, Vocabulary vocabulary, String text) {
        if (vocabulary.encoder() == null) {
            throw line.usage(line.typed(DATA) + " is text, but no tokenizer is known for the model"
                    + (line.has(INIT) ? " (" + line.typed(INIT) + " " + line.path(INIT) + " has none beside it)" : "")
                    + ": give " + line.typed(TOKENIZER) + ", or the data as an llm.c token file");
        }
        try {
            return vocabulary.encoder().apply(text);
        } catch (IllegalArgumentException e) {
            throw line.usage(line.typed(DATA) + " does not fit the model's vocabulary: " + e.getMessage());
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
        long total = 0;
        for (Path file : files) {
            total += Files.size(file);
            if (total > MAX_DATA_BYTES) {
                throw new FileSystemException(
                        named, null, "holds more than " + (MAX_DATA_BYTES >> 20) + " MiB of text");
            }
        }
        // A file's bytes (1 a byte), its text and the whole string (up to 2 each), the builder (2, 3 as it widens).
        MemorySize.requireHeap("reading the " + total + " bytes of text of " + named, 8 * total);
        StringBuilder text = new StringBuilder();
        for (Path file : files) {
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

    /** The GPT-2 {@code config.json} that {@code --config} names, checked to be a file; null for a preset. */
    private static Path gpt2ConfigFile(CommandLine line) throws IOException {
        String name = line.text(CONFIG);
        if (name.equals("tiny") || name.equals("small")) {
            return null;
        }
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
        return file;
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
            Path file = gpt2ConfigFile(line);
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
