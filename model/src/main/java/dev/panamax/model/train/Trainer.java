package dev.panamax.model.train;

import dev.panamax.model.backend.Backend;
import dev.panamax.model.backend.MatmulPrecision;
import dev.panamax.model.backend.MemorySize;
import dev.panamax.model.backend.Tensor;
import dev.panamax.model.io.DType;
import dev.panamax.model.io.Gpt2Checkpoint;
import dev.panamax.model.io.Llama2cCheckpoint;
import dev.panamax.model.io.ModelFormatException;
import dev.panamax.model.io.SafeTensors;
import dev.panamax.model.io.TensorInfo;
import dev.panamax.model.nn.Gpt2Weights;
import dev.panamax.model.nn.LlamaWeights;
import dev.panamax.model.nn.ModelConfig;
import dev.panamax.model.nn.ModelConfig.Architecture;
import dev.panamax.model.nn.Network;
import dev.panamax.model.nn.Parameters;
import dev.panamax.model.tokenizer.CharVocabulary;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.OptionalDouble;
import java.util.SplittableRandom;
import java.util.stream.Stream;

/**
 * Trains a Transformer of either family with AdamW: forward and backward through every layer on a {@link Backend},
 * gradient accumulation over micro-batches, global-norm clipping, a warm-up and cosine learning-rate schedule, and
 * checkpoints from which a run resumes bit for bit.
 *
 * <p>Everything a step needs is allocated when the trainer is made: the weights, their gradients and both AdamW
 * moments, and an arena with each block's activations for one micro-batch of {@code batchSize × seqLen} tokens. A
 * step allocates nothing on the backend. Results do not depend on the number of threads (the kernels reduce in a fixed
 * order), so a run is reproducible from its seed. Not thread-safe.
 *
 * <p>The backend owns all of that memory, not the trainer, which therefore has nothing to close: a {@link Backend} has
 * no call that frees one tensor, and frees them all when it is closed (the CPU backend its native tensors with its
 * arena, while training state on the Java heap goes with the trainer but stays counted against the backend's memory;
 * the CUDA backend every device buffer, rotary tables and step scratch included). A trainer is unusable once its
 * backend is closed, and a backend that outlives a trainer keeps the trainer's memory until then: to free a run's
 * memory (between the runs of a sweep, say), give each run its own backend and close it when the run ends.
 */
public final class Trainer {
    /** The weights file in a checkpoint directory (Hugging Face names for GPT-2, Meta's for Llama). */
    public static final String WEIGHTS_FILE = Gpt2Checkpoint.WEIGHTS_FILE;

    /** The optimizer's moments in a checkpoint directory, as {@code m.NAME} and {@code v.NAME}. */
    public static final String OPTIMIZER_FILE = "optimizer.safetensors";

    /** The trainer's state in a checkpoint directory: configuration, options, step, data fingerprint. */
    public static final String STATE_FILE = "trainer.json";

    /** A Llama model's weights as a llama2.c checkpoint, beside the safetensors, for {@code panamax generate}. */
    public static final String LLAMA2C_FILE = "model.bin";

    /** Every file a checkpoint may hold that the run directory links to. */
    private static final List<String> CHECKPOINT_FILES =
            List.of(WEIGHTS_FILE, Gpt2Checkpoint.CONFIG_FILE, LLAMA2C_FILE, OPTIMIZER_FILE, STATE_FILE);

    /** Every file a save writes into a step directory: the checkpoint's and a copy of the vocabulary. */
    private static final List<String> STEP_FILES = Stream.concat(
                    CHECKPOINT_FILES.stream(), Stream.of(CharVocabulary.FILE))
            .toList();

    /** The most values of one parameter: initialisation, checkpoints and {@link #weight} pass it through a float[]. */
    private static final long MAX_TENSOR_VALUES = Integer.MAX_VALUE - 8;

    private static final ValueLayout.OfFloat FLOAT =
            ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    private final Backend backend;
    private final ModelConfig config;
    private final TrainingOptions options;
    private final List<Parameters.Spec> specs;
    private final Map<String, Tensor> weights = new LinkedHashMap<>();
    private final Map<String, Tensor> gradients = new LinkedHashMap<>();

    /** The gradients in {@link Parameters} order, the order their norm adds them in. */
    private final List<Tensor> gradientList = new ArrayList<>();

    private final Map<String, Tensor> firstMoments = new LinkedHashMap<>();
    private final Map<String, Tensor> secondMoments = new LinkedHashMap<>();
    private final Network network;
    private final Network gradientNetwork;
    private final int rows;
    private final Tensor[] stream;
    private final Network.Activations[] activations;
    private final Tensor[] keys;
    private final Tensor[] values;
    private final Tensor normed;
    private final Tensor normMean;
    private final Tensor normRstd;
    private final Tensor logits;
    private final Tensor dx;
    private final Network.Gradients scratch;
    private final int[] inputs;
    private final int[] targets;
    private CheckpointDirectory.SavePoint savePoint = touched -> {};
    private int step;
    private int totalSteps;
    private String dataFingerprint = "";
    private double validationFraction = Double.NaN;
    private String savedBackend = "";
    /** The sums over the steps of the epoch in progress, with the seconds of fits that have ended. */
    private EpochTotals epochTotals = EpochTotals.NONE;
    /** When the running fit began timing the epoch in progress, or -1 outside a fit. */
    private long epochTimedSince = -1;

    private Trainer(Backend backend, ModelConfig config, TrainingOptions options) {
        if (options.seqLen() > config.seqLen()) {
            throw new IllegalArgumentException("options.seqLen (" + options.seqLen()
                    + ") must be <= the model's context length (config.seqLen " + config.seqLen() + ")");
        }
        long tokens = (long) options.batchSize() * options.seqLen();
        if (tokens > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("options.batchSize × options.seqLen (" + options.batchSize() + " × "
                    + options.seqLen() + " = " + tokens + " tokens per micro-batch) must be at most "
                    + Integer.MAX_VALUE);
        }
        // Checked before anything is allocated (the parameter list included, which grows with the layers).
        backend.requireMemory(
                "training " + config.architecture() + " (" + config.parameterCount() + " parameters, " + config.layers()
                        + " layers: weights, gradients, AdamW moments and activations) on micro-batches of "
                        + options.batchSize() + " × " + options.seqLen() + " tokens",
                backend.copiesWeights()
                        ? onBackend(config, options)
                                // The weights' network and the gradients' each build rotary tables.
                                .add(2, Parameters.rotaryFloats(config, options.seqLen()))
                                .add(
                                        1,
                                        backend.productScratchBytes(Parameters.largestProductOperand(config, tokens))
                                                / Float.BYTES)
                                .bytes()
                        : memoryBytes(config, options));
        this.backend = backend;
        this.config = config;
        this.options = options;
        this.specs = Parameters.of(config);
        for (Parameters.Spec spec : specs) {
            if (spec.size() > MAX_TENSOR_VALUES) {
                throw new IllegalArgumentException(
                        "parameter " + spec.name() + " " + spec.shape() + " has " + spec.size()
                                + " values; the trainer copies each parameter through a Java array, which holds at most "
                                + MAX_TENSOR_VALUES);
            }
        }
        for (Parameters.Spec spec : specs) {
            weights.put(spec.name(), backend.allocate(spec.rows(), spec.cols()));
            gradients.put(spec.name(), backend.allocateTrainingState(spec.rows(), spec.cols()));
            gradientList.add(gradients.get(spec.name()));
            firstMoments.put(spec.name(), backend.allocateTrainingState(spec.rows(), spec.cols()));
            secondMoments.put(spec.name(), backend.allocateTrainingState(spec.rows(), spec.cols()));
        }
        this.network = Network.of(backend, config, weights, options.seqLen());
        this.gradientNetwork = Network.of(backend, config, gradients, options.seqLen());
        this.rows = (int) tokens;
        int layers = config.layers();
        this.stream = new Tensor[layers + 1];
        for (int l = 0; l <= layers; l++) {
            stream[l] = backend.allocate(rows, config.dim());
        }
        Tensor projection = backend.allocate(rows, config.dim());
        this.activations = new Network.Activations[layers];
        this.keys = new Tensor[layers];
        this.values = new Tensor[layers];
        for (int l = 0; l < layers; l++) {
            activations[l] = network.trainingActivations(stream[l], stream[l + 1], projection);
            keys[l] = backend.allocate(rows, config.kvDim());
            values[l] = backend.allocate(rows, config.kvDim());
        }
        this.normed = backend.allocate(rows, config.dim());
        this.normMean = config.architecture() == Architecture.GPT2 ? backend.allocate(rows, 1) : null;
        this.normRstd = backend.allocate(rows, 1);
        this.logits = backend.allocate(rows, config.vocabSize());
        this.dx = backend.allocate(rows, config.dim());
        this.scratch = Network.Gradients.allocate(backend, config, rows);
        this.inputs = new int[rows];
        this.targets = new int[rows];
    }

    /**
     * Returns the memory a trainer needs: on its backend the weights, their gradients and both AdamW moments, and each
     * block's activations for one micro-batch; while saving, host copies of the moments.
     *
     * @param config the model's shape
     * @param options the run's options
     * @return the bytes, {@link Long#MAX_VALUE} if they overflow a long
     */
    public static long memoryBytes(ModelConfig config, TrainingOptions options) {
        return onBackend(config, options)
                .add(2, config.parameterCount()) // save(): the moments copied off the backend
                .bytes();
    }

    /** The floats a trainer allocates on its backend: parameters, gradients, moments and one micro-batch's state. */
    private static MemorySize onBackend(ModelConfig config, TrainingOptions options) {
        long n = (long) options.batchSize() * options.seqLen();
        long d = config.dim();
        long h = config.hiddenDim();
        long layers = config.layers();
        boolean llama = config.architecture() == Architecture.LLAMA;
        // Per block: its activations (see Network.trainingActivations), keys and values.
        long block = 5 * d + config.heads() + 2 + 2 * h + (llama ? h : 2) + 2L * config.kvDim();
        return new MemorySize()
                .add(4, config.parameterCount()) // weights, gradients, two moments
                .add(layers + 1, n, d) // the residual stream between blocks
                .add(layers, n, block)
                .add(n, 3 * d + 1 + (llama ? 0 : 1) + config.vocabSize()) // projection, head, logits, gradient
                .add(n, 3 * d + 2L * config.kvDim() + 2 * h + (llama ? h : 1)); // backward scratch (GPT-2: and ones)
    }

    /**
     * A trainer for a freshly initialised model ({@link Parameters#initialise}).
     *
     * @param backend where everything lives
     * @param config the model's shape
     * @param options the run's options
     * @param initSeed the seed of the initial weights
     * @return the trainer, at step 0
     * @throws IllegalArgumentException if {@code options.seqLen} exceeds the model's context
     * @throws dev.panamax.model.backend.InsufficientMemoryException if the run needs more memory than the backend has
     *     ({@link #memoryBytes})
     */
    public static Trainer create(Backend backend, ModelConfig config, TrainingOptions options, long initSeed) {
        Trainer trainer = new Trainer(backend, config, options);
        SplittableRandom random = new SplittableRandom(initSeed);
        for (Parameters.Spec spec : trainer.specs) {
            float[] values = new float[Math.toIntExact(spec.size())];
            Parameters.initialise(config, spec, random, values);
            backend.write(values, trainer.weights.get(spec.name()));
        }
        return trainer;
    }

    /**
     * A trainer that starts from pretrained weights, for fine-tuning: the weights are copied in, the optimizer's moments
     * start at zero and the step at 0.
     *
     * @param backend where everything lives
     * @param config the model's shape, the one the weights have
     * @param options the run's options
     * @param pretrained float32 values under the names {@link Parameters#of(ModelConfig)} lists (a checkpoint's {@code
     *     byName()}), each as many as its parameter has
     * @return the trainer, at step 0
     * @throws IllegalArgumentException if a parameter is missing or has another size, or {@code options.seqLen}
     *     exceeds the model's context
     * @throws dev.panamax.model.backend.InsufficientMemoryException if the run needs more memory than the backend has
     */
    public static Trainer fromWeights(
            Backend backend, ModelConfig config, TrainingOptions options, Map<String, MemorySegment> pretrained) {
        for (Parameters.Spec spec : Parameters.of(config)) {
            MemorySegment values = pretrained.get(spec.name());
            if (values == null || values.byteSize() != spec.size() * Float.BYTES) {
                throw new IllegalArgumentException("pretrained weight " + spec.name() + " must hold " + spec.size()
                        + " float32 values (" + spec.shape() + "), not "
                        + (values == null ? "be missing" : values.byteSize() + " bytes"));
            }
        }
        Trainer trainer = new Trainer(backend, config, options);
        for (Parameters.Spec spec : trainer.specs) {
            trainer.copyIn(pretrained.get(spec.name()), spec, trainer.weights);
        }
        return trainer;
    }

    /**
     * A trainer that continues a run from a checkpoint written by {@link #save}: same configuration, options, weights,
     * optimizer moments and step, so that its next steps equal those of the run that wrote it.
     *
     * @param backend where everything lives
     * @param run the run directory {@link #save} wrote (or one of its step directories)
     * @return the trainer
     * @throws CheckpointNotFoundException if the directory holds no checkpoint
     * @throws ModelFormatException if a file is missing, malformed, from another step than the state file, or does not
     *     hold what the state file's configuration implies
     * @throws dev.panamax.model.backend.InsufficientMemoryException if the run needs more memory than the backend has
     * @throws IllegalArgumentException if the backend's {@link Backend#precision()} is not the one the run trains with
     * @throws IOException if a file cannot be read
     */
    public static Trainer resume(Backend backend, Path run) throws IOException {
        Path directory = CheckpointDirectory.resolve(run);
        TrainerState state = TrainerState.read(directory.resolve(STATE_FILE));
        if (state.precision() != backend.precision()) {
            throw new IllegalArgumentException("the run in " + directory + " trains with "
                    + state.precision().spelling()
                    + " products, " + backend + " computes "
                    + backend.precision().spelling()
                    + ": resume it at the precision it was started with, so that its steps continue exactly");
        }
        try (SafeTensors weightsFile = SafeTensors.open(directory.resolve(WEIGHTS_FILE));
                SafeTensors optimizerFile = SafeTensors.open(directory.resolve(OPTIMIZER_FILE))) {
            // The files must hold what the state's configuration implies before that configuration sizes anything.
            long parameters = state.config().parameterCount();
            requireStep(weightsFile, state.step());
            requireFloats(weightsFile, parameters, "the parameters");
            requireStep(optimizerFile, state.step());
            requireFloats(optimizerFile, 2 * parameters, "two moments of the parameters");
            Trainer trainer = new Trainer(backend, state.config(), state.options());
            trainer.step = state.step();
            trainer.totalSteps = state.totalSteps();
            trainer.dataFingerprint = state.dataFingerprint();
            trainer.validationFraction = state.validationFraction();
            trainer.savedBackend = state.backend();
            trainer.epochTotals = state.epoch();
            for (Parameters.Spec spec : trainer.specs) {
                trainer.load(weightsFile, spec.name(), spec, trainer.weights);
                trainer.load(optimizerFile, "m." + spec.name(), spec, trainer.firstMoments);
                trainer.load(optimizerFile, "v." + spec.name(), spec, trainer.secondMoments);
            }
            return trainer;
        }
    }

    /**
     * The products' precision a saved run trains with, which a backend to resume it on must have.
     *
     * @param run the run directory {@link #save} wrote (or one of its step directories)
     * @return the precision its state file records
     * @throws CheckpointNotFoundException if the directory holds no checkpoint
     * @throws ModelFormatException if the state file is malformed
     * @throws IOException if it cannot be read
     */
    public static MatmulPrecision savedPrecision(Path run) throws IOException {
        return TrainerState.read(CheckpointDirectory.resolve(run).resolve(STATE_FILE))
                .precision();
    }

    /** Checks that a file's tensors hold {@code expected} floats in all, as the state file's configuration says. */
    private static void requireFloats(SafeTensors file, long expected, String what) throws ModelFormatException {
        long floats = 0;
        for (TensorInfo info : file.tensors().values()) {
            floats =
                    Math.addExact(floats, info.elementCount()); // bounded by the file's size, which SafeTensors checked
        }
        if (floats != expected) {
            throw new ModelFormatException(
                    file.file(),
                    "holds " + floats + " values but " + STATE_FILE + "'s configuration implies " + expected + " ("
                            + what + "): the files are not of one checkpoint");
        }
    }

    private static void requireStep(SafeTensors file, int step) throws ModelFormatException {
        String stored = file.metadata().get("step");
        if (!String.valueOf(step).equals(stored)) {
            throw new ModelFormatException(
                    file.file(),
                    "written at step " + stored + " but " + STATE_FILE + " says step " + step
                            + ": the checkpoint is incomplete (interrupted while saving?)");
        }
    }

    private void load(SafeTensors file, String name, Parameters.Spec spec, Map<String, Tensor> into)
            throws ModelFormatException {
        TensorInfo info = file.tensors().get(name);
        if (info == null) {
            throw new ModelFormatException(file.file(), "missing tensor \"" + name + "\" of shape " + spec.shape());
        }
        if (!info.shape().equals(spec.shape())) {
            throw new ModelFormatException(
                    file.file(), "tensor \"" + name + "\" has shape " + info.shape() + ", expected " + spec.shape());
        }
        copyIn(file.floats(name), spec, into);
    }

    /** Copies a parameter's float32 values from host memory to its backend tensor in {@code into}. */
    private void copyIn(MemorySegment floats, Parameters.Spec spec, Map<String, Tensor> into) {
        float[] values = new float[Math.toIntExact(spec.size())];
        MemorySegment.copy(floats, FLOAT, 0, values, 0, values.length);
        backend.write(values, into.get(spec.name()));
    }

    /**
     * Returns the model's configuration.
     *
     * @return the configuration
     */
    public ModelConfig config() {
        return config;
    }

    /**
     * Returns the run's options.
     *
     * @return the options
     */
    public TrainingOptions options() {
        return options;
    }

    /**
     * Returns the optimizer steps taken so far.
     *
     * @return the step count
     */
    public int step() {
        return step;
    }

    /**
     * Returns the length of the run the learning-rate schedule is planned for: set by the first {@link #fit}, kept by
     * checkpoints.
     *
     * @return the planned steps, 0 before the first fit
     */
    public int totalSteps() {
        return totalSteps;
    }

    /**
     * Returns the share of its data the run holds out for validation: set by the first {@link #fit}, kept by
     * checkpoints, so that a resumed run splits its data as before.
     *
     * @return the {@link TokenDataset#validationFraction()}, empty before the first fit or for a checkpoint written
     *     before it was recorded
     */
    public OptionalDouble validationFraction() {
        return Double.isNaN(validationFraction) ? OptionalDouble.empty() : OptionalDouble.of(validationFraction);
    }

    /**
     * Returns the kind of backend that saved the checkpoint this trainer resumed from: a run resumed on another kind
     * continues, but not bit for bit as it would have there.
     *
     * @return its {@link Backend#kind()}, empty for a new trainer or a checkpoint written before it was recorded
     */
    public Optional<String> savedBackend() {
        return savedBackend.isEmpty() ? Optional.empty() : Optional.of(savedBackend);
    }

    /**
     * Runs one micro-batch forward and backward and leaves its gradients (of the mean loss over its tokens) in the
     * gradient tensors, replacing what was there; the weights are not changed. For inspection and gradient checks.
     *
     * @param inputs {@code batchSize · seqLen} token ids, sequence after sequence
     * @param targets the token that follows each input
     * @return the mean loss
     * @throws IllegalArgumentException if the arrays do not hold a batch or a token is out of range
     */
    public float computeGradients(int[] inputs, int[] targets) {
        if (inputs.length != rows || targets.length != rows) {
            throw new IllegalArgumentException("inputs (" + inputs.length + ") and targets (" + targets.length
                    + ") must hold batchSize × seqLen (" + rows + ") tokens");
        }
        checkTokens("inputs", inputs);
        checkTokens("targets", targets);
        zeroGradients();
        System.arraycopy(inputs, 0, this.inputs, 0, rows);
        System.arraycopy(targets, 0, this.targets, 0, rows);
        Backend.StepTotals totals = backend.stepTotals(1);
        forwardBackward(options.batchSize(), 1f, totals, 0);
        return totals.read().losses()[0];
    }

    private void checkTokens(String name, int[] tokens) {
        for (int i = 0; i < tokens.length; i++) {
            if (tokens[i] < 0 || tokens[i] >= config.vocabSize()) {
                throw new IllegalArgumentException(name + "[" + i + "] (" + tokens[i] + ") must be in [0, vocabSize ("
                        + config.vocabSize() + "))");
            }
        }
    }

    /**
     * Returns a copy of a parameter's values.
     *
     * @param name a name from {@link Parameters#of(ModelConfig)}
     * @return row-major values
     * @throws IllegalArgumentException if there is no such parameter
     */
    public float[] weight(String name) {
        return read(weights, name);
    }

    /**
     * Replaces a parameter's values (e.g. to start from pretrained weights).
     *
     * @param name a name from {@link Parameters#of(ModelConfig)}
     * @param values row-major values, as many as the parameter has
     * @throws IllegalArgumentException if there is no such parameter or the count differs
     */
    public void setWeight(String name, float[] values) {
        Tensor t = weights.get(name);
        if (t == null) {
            throw new IllegalArgumentException("no parameter named \"" + name + "\"");
        }
        if (values.length != t.rows() * t.cols()) {
            throw new IllegalArgumentException("values (" + values.length + ") must number the parameter's " + t.rows()
                    + " × " + t.cols() + " elements");
        }
        backend.write(values, t);
    }

    /**
     * Returns a copy of a parameter's gradient, as the last step or {@link #computeGradients} left it.
     *
     * @param name a name from {@link Parameters#of(ModelConfig)}
     * @return row-major values
     * @throws IllegalArgumentException if there is no such parameter
     */
    public float[] gradient(String name) {
        return read(gradients, name);
    }

    private float[] read(Map<String, Tensor> tensors, String name) {
        Tensor t = tensors.get(name);
        if (t == null) {
            throw new IllegalArgumentException("no parameter named \"" + name + "\"");
        }
        float[] values = new float[t.rows() * t.cols()];
        backend.read(t, values);
        return values;
    }

    /**
     * One optimizer step over {@code microBatches} micro-batches of the given training windows. Its learning rate is
     * the schedule's for the step, over the steps {@link #fit} planned; a trainer that no fit has planned (its {@link
     * #totalSteps()} 0) warms up and then keeps the peak rate.
     *
     * @param data the corpus
     * @param windows {@code batchSize · microBatches} training window indices
     * @return the step's numbers (no validation)
     * @throws IllegalArgumentException if the data's vocabulary or window length is not the model's and options'
     * @throws TrainingDivergedException if the gradient norm is not finite (the trainer is left unchanged)
     */
    public Metrics trainStep(TokenDataset data, int[] windows) {
        requireFits(data);
        int b = options.batchSize();
        int micro = options.microBatches();
        if (windows.length != b * micro) {
            throw new IllegalArgumentException(
                    "windows (" + windows.length + ") must number batchSize × microBatches (" + b * micro + ")");
        }
        long start = System.nanoTime();
        zeroGradients();
        // Losses, counts, the norm and the clipping factor stay on the backend until the one read below.
        Backend.StepTotals totals = backend.stepTotals(micro);
        for (int m = 0; m < micro; m++) {
            for (int s = 0; s < b; s++) {
                data.window(false, windows[m * b + s], inputs, targets, s * options.seqLen());
            }
            forwardBackward(b, 1f / micro, totals, m);
        }
        backend.clipGradients(gradientList, options.gradClip(), totals);
        int next = step + 1;
        float rate = options.learningRate(next, totalSteps > 0 ? Math.max(totalSteps, next) : Integer.MAX_VALUE);
        for (Parameters.Spec spec : specs) {
            String name = spec.name();
            backend.adamw(
                    weights.get(name),
                    gradients.get(name),
                    firstMoments.get(name),
                    secondMoments.get(name),
                    new Backend.AdamWStep(
                            rate,
                            options.beta1(),
                            options.beta2(),
                            options.epsilon(),
                            spec.kind().decayed() ? options.weightDecay() : 0f,
                            next,
                            1f),
                    totals);
        }
        Backend.StepValues values = totals.read();
        double loss = 0;
        long correct = 0;
        for (int m = 0; m < micro; m++) {
            loss += values.losses()[m];
            correct += values.correct()[m];
        }
        float norm = values.norm();
        if (!Float.isFinite(norm)) {
            // adamw left everything unchanged when the norm was not finite.
            throw new TrainingDivergedException(next, norm, loss / micro);
        }
        step = next;
        double seconds = (System.nanoTime() - start) / 1e9;
        return new Metrics(
                step,
                0,
                (float) (loss / micro),
                (float) ((double) correct / ((long) rows * micro)),
                Float.NaN,
                Float.NaN,
                rate,
                norm,
                options.tokensPerStep() / seconds);
    }

    private void zeroGradients() {
        for (Tensor g : gradients.values()) {
            backend.zero(g);
        }
    }

    /**
     * Forward and backward over the first {@code sequences} windows in {@link #inputs}: adds the gradient of
     * {@code gradientScale ×} the mean loss to the gradient tensors. The mean loss and the correct predictions go into {@code totals} as micro-batch {@code microBatch}'s.
     */
    private void forwardBackward(int sequences, float gradientScale, Backend.StepTotals totals, int microBatch) {
        int n = sequences * options.seqLen();
        Tensor out = forward(sequences);
        backend.crossEntropy(out, targets, 0, out, gradientScale, totals, microBatch);
        Tensor d = dx.rows(0, n);
        network.headBackward(
                gradientNetwork,
                stream[config.layers()].rows(0, n),
                normed.rows(0, n),
                normMean == null ? null : normMean.rows(0, n),
                normRstd.rows(0, n),
                out,
                d);
        for (int l = config.layers() - 1; l >= 0; l--) {
            network.backwardBlock(
                    gradientNetwork,
                    l,
                    activations[l].firstRows(n),
                    keys[l].rows(0, n),
                    values[l].rows(0, n),
                    sequences,
                    d,
                    scratch);
        }
        network.embedBackward(gradientNetwork, inputs, 0, sequences, d);
    }

    /** The forward pass over the first {@code sequences} windows in {@link #inputs}; returns their logits. */
    private Tensor forward(int sequences) {
        int n = sequences * options.seqLen();
        network.embed(inputs, 0, sequences, 0, stream[0].rows(0, n));
        for (int l = 0; l < config.layers(); l++) {
            network.forwardBlock(
                    l, activations[l].firstRows(n), keys[l].rows(0, n), values[l].rows(0, n), sequences, 0);
        }
        Tensor out = logits.rows(0, n);
        network.head(
                stream[config.layers()].rows(0, n),
                normed.rows(0, n),
                normMean == null ? null : normMean.rows(0, n),
                normRstd.rows(0, n),
                out);
        return out;
    }

    /** Refuses a corpus whose windows the model's input buffers do not hold exactly. */
    private void requireFits(TokenDataset data) {
        if (data.vocabSize() != config.vocabSize() || data.seqLen() != options.seqLen()) {
            throw new IllegalArgumentException("data (vocabulary " + data.vocabSize() + ", windows of "
                    + data.seqLen() + ") must match the model's vocabulary (" + config.vocabSize()
                    + ") and options.seqLen (" + options.seqLen() + ")");
        }
    }

    /**
     * The mean loss and next-token accuracy over validation windows, in order, without touching gradients.
     *
     * @param data the corpus
     * @param maxWindows most windows to use (0: all)
     * @return {mean loss, accuracy}; NaNs when the data holds no validation windows
     * @throws IllegalArgumentException if the data's vocabulary or window length is not the model's and options'
     */
    public float[] evaluate(TokenDataset data, int maxWindows) {
        requireFits(data);
        int count = data.validationWindows();
        if (maxWindows > 0) {
            count = Math.min(count, maxWindows);
        }
        if (count == 0) {
            return new float[] {Float.NaN, Float.NaN};
        }
        double loss = 0;
        long correct = 0;
        for (int first = 0; first < count; first += options.batchSize()) {
            int sequences = Math.min(options.batchSize(), count - first);
            for (int s = 0; s < sequences; s++) {
                data.window(true, first + s, inputs, targets, s * options.seqLen());
            }
            Tensor out = forward(sequences);
            correct += backend.countCorrect(out, targets, 0);
            loss += (double) backend.crossEntropy(out, targets, 0, null, 1f) * sequences;
        }
        return new float[] {(float) (loss / count), (float) ((double) correct / ((long) count * options.seqLen()))};
    }

    /**
     * Trains for a number of epochs or steps, Keras style: reports each step and each epoch to the callbacks (a
     * {@link ProgressReporter} prints them, a {@link LossCurve} records them) and returns each epoch's numbers. A
     * resumed trainer continues where its checkpoint stopped, with the same data order and learning rates. An epoch
     * takes whole steps of {@code batchSize × microBatches} windows, so when that does not divide the training
     * windows the remainder sits out each epoch (in sequential order always the last windows; shuffled, others each
     * epoch). An epoch's summary averages all the steps of the epoch, those before a stop and a resume included (the
     * checkpoint keeps their sums), so that it and the steps' own losses and validation are those of a run that never
     * stopped; a fit that a callback stops reports the epoch so far, and the next fit or a resume goes on summing it.
     *
     * @param data the corpus
     * @param epochs passes over the training windows (used when {@code steps} is 0)
     * @param steps optimizer steps in all, counting those already done (0: {@code epochs} epochs)
     * @param evalEvery validate every this many steps as well as after each epoch (0: only after epochs)
     * @param validationWindows most validation windows per evaluation (0: all)
     * @param callbacks called after each step and epoch; any may stop training
     * @return the metrics of each finished epoch (validation included)
     * @throws IllegalArgumentException if the data does not fit the model or the run, or is not the data a resumed run
     *     was trained on, split with the same {@link #validationFraction()}; or if the fit plans the run (its {@link
     *     #totalSteps()} is 0) and {@code options.warmupSteps} is not less than the planned steps
     * @throws TrainingDivergedException if a step's gradient norm is not finite (the trainer is left at the step
     *     before it)
     * @throws IOException if a callback's output fails
     */
    public List<Metrics> fit(
            TokenDataset data, int epochs, int steps, int evalEvery, int validationWindows, List<Callback> callbacks)
            throws IOException {
        requireFits(data);
        if (!Double.isNaN(validationFraction) && validationFraction != data.validationFraction()) {
            throw new IllegalArgumentException("this run holds out " + validationFraction + " of its data for"
                    + " validation, the data " + data.validationFraction() + ": resume it with the same fraction");
        }
        if (!dataFingerprint.isEmpty()) {
            String now = data.fingerprintLike(dataFingerprint);
            if (!dataFingerprint.equals(now)) {
                throw new IllegalArgumentException("this run was trained on other data (fingerprint " + dataFingerprint
                        + ", now " + now + "): resume it on the same text and vocabulary");
            }
        }
        int perStep = options.batchSize() * options.microBatches();
        int stepsPerEpoch = data.trainWindows() / perStep;
        if (stepsPerEpoch < 1) {
            throw new IllegalArgumentException("the data has " + data.trainWindows() + " training windows of "
                    + data.seqLen() + " tokens; one step needs batchSize × microBatches = " + perStep);
        }
        if (epochs < 0 || steps < 0 || (epochs == 0 && steps == 0)) {
            throw new IllegalArgumentException(
                    "epochs (" + epochs + ") or steps (" + steps + ") must be positive, the other 0 or positive");
        }
        int planned = steps > 0 ? steps : Math.multiplyExact(epochs, stepsPerEpoch);
        if (totalSteps != 0 && totalSteps != planned) {
            throw new IllegalArgumentException("this run was planned for " + totalSteps
                    + " steps (its learning-rate schedule depends on it), not " + planned);
        }
        // Checked only when the run is planned, so that a run planned before the check existed still resumes.
        if (totalSteps == 0 && options.warmupSteps() >= planned) {
            throw new IllegalArgumentException("options.warmupSteps (" + options.warmupSteps()
                    + ") must be less than the run's total steps (" + planned + "), or the learning rate never"
                    + " rises to its peak and decays: use a shorter warm-up (TrainingOptions.withWarmupSteps) or more"
                    + " steps");
        }
        totalSteps = planned;
        dataFingerprint = data.fingerprint();
        validationFraction = data.validationFraction();
        List<Metrics> history = new ArrayList<>();
        int[] order = null;
        int orderEpoch = -1;
        // Sums from elsewhere count only if they are of this epoch's steps before this one: a checkpoint written at the
        // end of an epoch, or one from before they were recorded, starts the summary afresh.
        if (epochTotals.steps() != step % stepsPerEpoch) {
            epochTotals = EpochTotals.NONE;
        }
        epochTimedSince = System.nanoTime();
        boolean go = true;
        try {
            while (go && step < totalSteps) {
                int epoch = step / stepsPerEpoch;
                if (epoch != orderEpoch) {
                    order = data.order(options.dataOrder(), options.seed(), epoch);
                    orderEpoch = epoch;
                }
                int first = step % stepsPerEpoch * perStep;
                int[] windows = new int[perStep];
                System.arraycopy(order, first, windows, 0, perStep);
                Metrics m = trainStep(data, windows);
                epochTotals = epochTotals.plus(m);
                boolean endOfEpoch = step % stepsPerEpoch == 0 || step == totalSteps;
                // The epoch's validation is measured before the callbacks, so that a checkpoint saved by one of them
                // comes after it: a run resumed from there has the numbers of every step.
                boolean measured = endOfEpoch || (evalEvery > 0 && step % evalEvery == 0);
                float[] validation = measured ? evaluate(data, validationWindows) : new float[] {Float.NaN, Float.NaN};
                m = withValidation(m, epoch + 1, validation);
                for (Callback callback : callbacks) {
                    go &= callback.afterStep(this, m);
                }
                if (endOfEpoch || !go) {
                    if (!measured) {
                        validation = evaluate(data, validationWindows);
                    }
                    EpochTotals totals = timedEpochTotals();
                    Metrics summary = new Metrics(
                            step,
                            epoch + 1,
                            (float) (totals.lossSum() / totals.steps()),
                            (float) (totals.accuracySum() / totals.steps()),
                            validation[0],
                            validation[1],
                            m.learningRate(),
                            m.gradientNorm(),
                            totals.steps() * options.tokensPerStep() / totals.seconds());
                    history.add(summary);
                    for (Callback callback : callbacks) {
                        go &= callback.afterEpoch(this, summary);
                    }
                    if (endOfEpoch) {
                        epochTotals = EpochTotals.NONE;
                        epochTimedSince = System.nanoTime();
                    }
                }
            }
        } finally {
            epochTotals = epochTotals.steps() == 0 ? EpochTotals.NONE : timedEpochTotals();
            epochTimedSince = -1;
        }
        return history;
    }

    /** The epoch's totals with the time the running fit has spent in it so far. */
    private EpochTotals timedEpochTotals() {
        return epochTimedSince < 0 ? epochTotals : epochTotals.after((System.nanoTime() - epochTimedSince) / 1e9);
    }

    private static Metrics withValidation(Metrics m, int epoch, float[] validation) {
        return new Metrics(
                m.step(),
                epoch,
                m.trainLoss(),
                m.trainAccuracy(),
                validation[0],
                validation[1],
                m.learningRate(),
                m.gradientNorm(),
                m.tokensPerSecond());
    }

    /**
     * Writes a checkpoint: the weights ({@value #WEIGHTS_FILE}, float32; for GPT-2 with a Hugging Face
     * {@code config.json}, for Llama also a llama2.c {@value #LLAMA2C_FILE}), the AdamW moments ({@value
     * #OPTIMIZER_FILE}), the state ({@value #STATE_FILE}: configuration, options, step, planned steps, data
     * fingerprint, validation fraction, backend kind) and a copy of the directory's {@value CharVocabulary#FILE} if it has one. The checkpoint is atomic
     * as a whole: its files go into a new step directory that replaces the previous checkpoint only once complete and
     * flushed to disk, so a crash at any point leaves a checkpoint that {@link #resume} continues exactly. The
     * directory keeps links to the current files under their usual names, so it is also a model directory for
     * {@code panamax generate}.
     *
     * @param directory the run directory, created if absent
     * @throws IOException if a file cannot be written
     */
    public void save(Path directory) throws IOException {
        Files.createDirectories(directory);
        Path stepDirectory = CheckpointDirectory.createStep(directory, step);
        Map<String, String> metadata = Map.of("format", "pt", "step", String.valueOf(step));
        List<String> written = new ArrayList<>();
        try (Arena arena = Arena.ofConfined()) {
            Map<String, SafeTensors.Tensor> weightTensors = hostTensors(weights, arena);
            write(stepDirectory, WEIGHTS_FILE, written, file -> SafeTensors.write(file, weightTensors, metadata));
            if (config.architecture() == Architecture.GPT2) {
                write(
                        stepDirectory,
                        Gpt2Checkpoint.CONFIG_FILE,
                        written,
                        file -> Gpt2Checkpoint.writeConfig(file.getParent(), config));
            } else {
                Map<String, MemorySegment> named = new LinkedHashMap<>();
                weightTensors.forEach((name, tensor) -> named.put(name, tensor.data()));
                LlamaWeights<MemorySegment> llama = LlamaWeights.fromNames(config.layers(), named);
                write(stepDirectory, LLAMA2C_FILE, written, file -> Llama2cCheckpoint.write(file, config, llama));
            }
        }
        try (Arena arena = Arena.ofConfined()) {
            Map<String, SafeTensors.Tensor> moments = new LinkedHashMap<>();
            hostTensors(firstMoments, arena).forEach((name, tensor) -> moments.put("m." + name, tensor));
            hostTensors(secondMoments, arena).forEach((name, tensor) -> moments.put("v." + name, tensor));
            write(stepDirectory, OPTIMIZER_FILE, written, file -> SafeTensors.write(file, moments, metadata));
        }
        TrainerState state = new TrainerState(
                config,
                options,
                step,
                totalSteps,
                dataFingerprint,
                validationFraction,
                backend.kind(),
                backend.precision(),
                timedEpochTotals());
        write(stepDirectory, STATE_FILE, written, state::write);
        Path vocabulary = directory.resolve(CharVocabulary.FILE);
        if (Files.isRegularFile(vocabulary)) {
            Path copy = Files.copy(vocabulary, stepDirectory.resolve(CharVocabulary.FILE));
            savePoint.reached(copy);
        }
        CheckpointDirectory.commit(directory, stepDirectory, written, CHECKPOINT_FILES, savePoint);
    }

    /** Writes one checkpoint file, at a path in the new step directory that does not exist yet. */
    @FunctionalInterface
    private interface StepFile {
        void write(Path file) throws IOException;
    }

    private void write(Path stepDirectory, String name, List<String> written, StepFile writer) throws IOException {
        Path file = stepDirectory.resolve(name);
        writer.write(file);
        written.add(name);
        savePoint.reached(file);
    }

    /**
     * Installs a hook that {@link #save} calls after each file and each step of switching to the new checkpoint; the
     * crash tests make it throw there.
     */
    void onSavePoint(CheckpointDirectory.SavePoint hook) {
        this.savePoint = hook;
    }

    /**
     * Deletes the checkpoints that {@link #save} wrote into a run directory, so that a new run saved there neither
     * leaves the directory resuming as the earlier run until its first save nor keeps the earlier run's later step
     * directories beside its own (a save deletes only those older than itself). The link to the current checkpoint
     * goes first, so that a crash midway leaves no checkpoint rather than part of one; then the links under the
     * checkpoint files' names (or the files themselves, in the flat layout of earlier versions) and the step
     * directories. Only what a save writes is deleted, by name: other files stay, and so does a step directory that
     * holds any. No other trainer may be saving into the directory meanwhile.
     *
     * @param directory a run directory
     * @throws IOException if an entry cannot be listed or deleted
     */
    public static void deleteCheckpoints(Path directory) throws IOException {
        CheckpointDirectory.delete(directory, CHECKPOINT_FILES, STEP_FILES);
    }

    /**
     * Returns the directory that holds the checkpoint {@link #resume} would read from a run directory: the current
     * step directory, or the run directory itself if it holds the flat layout of earlier versions.
     *
     * @param directory a run directory
     * @return the checkpoint's directory, with its links resolved
     * @throws CheckpointNotFoundException if the directory holds no checkpoint
     * @throws IOException if the directory cannot be read
     */
    public static Path checkpointDirectory(Path directory) throws IOException {
        return CheckpointDirectory.resolve(directory);
    }

    /**
     * Writes the weights alone as a GPT-2 model directory in a smaller float type, for shipping a trained model.
     *
     * @param directory the directory, created if absent
     * @param dtype F32, F16 or BF16
     * @throws IllegalStateException if the model is not GPT-2
     * @throws IOException if a file cannot be written
     */
    public void exportGpt2(Path directory, DType dtype) throws IOException {
        if (config.architecture() != Architecture.GPT2) {
            throw new IllegalStateException("exportGpt2 needs a GPT-2 model, not " + config.architecture());
        }
        Files.createDirectories(directory);
        try (Arena arena = Arena.ofConfined()) {
            Map<String, MemorySegment> named = hostWeights(arena);
            Gpt2Checkpoint.write(directory, config, Gpt2Weights.fromNames(config.layers(), named), dtype);
        }
    }

    /**
     * Writes the weights alone as a llama2.c checkpoint ({@value #LLAMA2C_FILE}, float32, the format {@code run.c}
     * reads), for shipping a trained Llama.
     *
     * @param directory the directory, created if absent
     * @throws IllegalStateException if the model is not a Llama
     * @throws IOException if the file cannot be written
     */
    public void exportLlama2c(Path directory) throws IOException {
        if (config.architecture() != Architecture.LLAMA) {
            throw new IllegalStateException("exportLlama2c needs a Llama model, not " + config.architecture());
        }
        Files.createDirectories(directory);
        try (Arena arena = Arena.ofConfined()) {
            Map<String, MemorySegment> named = hostWeights(arena);
            LlamaWeights<MemorySegment> llama = LlamaWeights.fromNames(config.layers(), named);
            Llama2cCheckpoint.write(directory.resolve(LLAMA2C_FILE), config, llama);
        }
    }

    /** The weights as float32 segments in an arena, by name. */
    private Map<String, MemorySegment> hostWeights(Arena arena) {
        Map<String, MemorySegment> named = new LinkedHashMap<>();
        hostTensors(weights, arena).forEach((name, tensor) -> named.put(name, tensor.data()));
        return named;
    }

    /**
     * Copies named backend tensors to float32 tensors in an arena, with their checkpoint shapes; one tensor at a time
     * passes through the heap.
     */
    private Map<String, SafeTensors.Tensor> hostTensors(Map<String, Tensor> tensors, Arena arena) {
        Map<String, SafeTensors.Tensor> host = new LinkedHashMap<>();
        for (Parameters.Spec spec : specs) {
            float[] values = read(tensors, spec.name());
            MemorySegment data = arena.allocate((long) values.length * Float.BYTES, Float.BYTES);
            MemorySegment.copy(values, 0, data, FLOAT, 0, values.length);
            List<Long> shape = spec.shape();
            host.put(spec.name(), new SafeTensors.Tensor(DType.F32, shape, data));
        }
        return host;
    }
}
