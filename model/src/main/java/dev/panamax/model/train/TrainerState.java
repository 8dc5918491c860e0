package dev.panamax.model.train;

import dev.panamax.model.backend.MatmulPrecision;
import dev.panamax.model.io.BoundedFiles;
import dev.panamax.model.io.ModelFormatException;
import dev.panamax.model.json.Json;
import dev.panamax.model.json.JsonException;
import dev.panamax.model.json.JsonFields;
import dev.panamax.model.json.JsonValue;
import dev.panamax.model.json.JsonValue.JsonNumber;
import dev.panamax.model.json.JsonValue.JsonObject;
import dev.panamax.model.json.JsonValue.JsonString;
import dev.panamax.model.nn.ModelConfig;
import dev.panamax.model.nn.ModelConfig.Architecture;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.stream.Stream;

/**
 * The part of a checkpoint that is not tensors, as JSON: the model's configuration, the run's options, the step, the
 * steps planned and the data's fingerprint. Floats are written in full precision, so they read back bit for bit.
 *
 * @param config the model's configuration
 * @param options the run's options
 * @param step optimizer steps done
 * @param totalSteps the steps the schedule is planned for
 * @param dataFingerprint the training data's {@link TokenDataset#fingerprint()}, empty before the first fit
 * @param validationFraction the data's {@link TokenDataset#validationFraction()} ({@code "validation_fraction"}), NaN
 *     before the first fit or in a file from before it was recorded
 * @param backend the {@link dev.panamax.model.backend.Backend#kind()} that saved the state ({@code "backend"}), empty
 *     in a file from before it was recorded
 * @param precision the products' precision the run trains with ({@code "precision"}; a file without it is from before
 *     the choice existed, when every run was FP32)
 * @param epoch the sums over the steps of the epoch in progress ({@code "epoch"}; {@link EpochTotals#NONE} where it
 *     has none or in a file from before they were recorded)
 */
record TrainerState(
        ModelConfig config,
        TrainingOptions options,
        int step,
        int totalSteps,
        String dataFingerprint,
        double validationFraction,
        String backend,
        MatmulPrecision precision,
        EpochTotals epoch) {
    private static final String FORMAT = "panamax-trainer-1";

    void write(Path file) throws IOException {
        Map<String, JsonValue> c = new LinkedHashMap<>();
        c.put("architecture", new JsonString(config.architecture().name()));
        c.put("dim", JsonNumber.of(config.dim()));
        c.put("hidden_dim", JsonNumber.of(config.hiddenDim()));
        c.put("layers", JsonNumber.of(config.layers()));
        c.put("heads", JsonNumber.of(config.heads()));
        c.put("kv_heads", JsonNumber.of(config.kvHeads()));
        c.put("vocab_size", JsonNumber.of(config.vocabSize()));
        c.put("seq_len", JsonNumber.of(config.seqLen()));
        c.put("norm_epsilon", JsonNumber.of(config.normEpsilon()));
        c.put("rope_theta", JsonNumber.of(config.ropeTheta()));
        c.put("shared_classifier", JsonNumber.of(config.sharedClassifier() ? 1 : 0));
        Map<String, JsonValue> o = new LinkedHashMap<>();
        o.put("batch_size", JsonNumber.of(options.batchSize()));
        o.put("seq_len", JsonNumber.of(options.seqLen()));
        o.put("micro_batches", JsonNumber.of(options.microBatches()));
        o.put("learning_rate", JsonNumber.of(options.learningRate()));
        o.put("min_learning_rate", JsonNumber.of(options.minLearningRate()));
        o.put("warmup_steps", JsonNumber.of(options.warmupSteps()));
        o.put("weight_decay", JsonNumber.of(options.weightDecay()));
        o.put("beta1", JsonNumber.of(options.beta1()));
        o.put("beta2", JsonNumber.of(options.beta2()));
        o.put("epsilon", JsonNumber.of(options.epsilon()));
        o.put("grad_clip", JsonNumber.of(options.gradClip()));
        o.put("seed", JsonNumber.of(options.seed()));
        o.put("data_order", new JsonString(options.dataOrder().name().toLowerCase(Locale.ROOT)));
        Map<String, JsonValue> root = new LinkedHashMap<>();
        root.put("format", new JsonString(FORMAT));
        root.put("config", new JsonObject(c));
        root.put("options", new JsonObject(o));
        root.put("step", JsonNumber.of(step));
        root.put("total_steps", JsonNumber.of(totalSteps));
        root.put("data", new JsonString(dataFingerprint));
        if (!Double.isNaN(validationFraction)) {
            root.put("validation_fraction", JsonNumber.of(validationFraction));
        }
        root.put("backend", new JsonString(backend));
        root.put("precision", new JsonString(precision.spelling()));
        if (epoch.steps() > 0) {
            Map<String, JsonValue> e = new LinkedHashMap<>();
            e.put("steps", JsonNumber.of(epoch.steps()));
            e.put("loss_sum", JsonNumber.of(epoch.lossSum()));
            e.put("accuracy_sum", JsonNumber.of(epoch.accuracySum()));
            e.put("seconds", JsonNumber.of(epoch.seconds()));
            root.put("epoch", new JsonObject(e));
        }
        Files.writeString(file, Json.write(new JsonObject(root)) + "\n", StandardCharsets.UTF_8);
    }

    static TrainerState read(Path file) throws IOException {
        return BoundedFiles.readJson(file, text -> {
            JsonFields root = JsonFields.of(file, Json.parse(text, file, Json.Limits.DEFAULT));
            if (!root.string("format").equals(FORMAT)) {
                throw root.error(
                        "format",
                        "\"" + ModelFormatException.excerpt(root.string("format")) + "\" is not \"" + FORMAT + "\"");
            }
            JsonFields c = root.object("config");
            JsonFields o = root.object("options");
            String architecture = c.string("architecture");
            List<String> architectures =
                    Stream.of(Architecture.values()).map(Enum::name).toList();
            if (!architectures.contains(architecture)) {
                // Checked here, not by valueOf, whose message would repeat the value whole.
                throw c.error(
                        "architecture",
                        "\"" + ModelFormatException.excerpt(architecture) + "\" is not one of " + architectures);
            }
            ModelConfig config;
            TrainingOptions options;
            try {
                config = new ModelConfig(
                        Architecture.valueOf(architecture),
                        (int) c.integer("dim", 1, Integer.MAX_VALUE),
                        (int) c.integer("hidden_dim", 1, Integer.MAX_VALUE),
                        (int) c.integer("layers", 1, Integer.MAX_VALUE),
                        (int) c.integer("heads", 1, Integer.MAX_VALUE),
                        (int) c.integer("kv_heads", 1, Integer.MAX_VALUE),
                        (int) c.integer("vocab_size", 1, Integer.MAX_VALUE),
                        (int) c.integer("seq_len", 1, Integer.MAX_VALUE),
                        required(c, "norm_epsilon"),
                        required(c, "rope_theta"),
                        c.integer("shared_classifier", 0, 1) == 1);
                options = new TrainingOptions(
                        (int) o.integer("batch_size", 1, Integer.MAX_VALUE),
                        (int) o.integer("seq_len", 1, Integer.MAX_VALUE),
                        (int) o.integer("micro_batches", 1, Integer.MAX_VALUE),
                        required(o, "learning_rate"),
                        required(o, "min_learning_rate"),
                        (int) o.integer("warmup_steps", 0, Integer.MAX_VALUE),
                        required(o, "weight_decay"),
                        required(o, "beta1"),
                        required(o, "beta2"),
                        required(o, "epsilon"),
                        required(o, "grad_clip"),
                        o.integer("seed", Long.MIN_VALUE, Long.MAX_VALUE),
                        dataOrder(o));
            } catch (IllegalArgumentException e) {
                throw new ModelFormatException(file, e.getMessage(), e);
            }
            if (options.seqLen() > config.seqLen()) {
                throw o.error(
                        "seq_len",
                        options.seqLen() + " exceeds the model's context (config.seq_len " + config.seqLen() + ")");
            }
            if ((long) options.batchSize() * options.seqLen() > Integer.MAX_VALUE) {
                throw o.error(
                        "batch_size",
                        options.batchSize() + " × seq_len " + options.seqLen() + " exceeds " + Integer.MAX_VALUE
                                + " tokens per micro-batch");
            }
            int totalSteps = (int) root.integer("total_steps", 0, Integer.MAX_VALUE);
            int step = (int) root.integer("step", 0, totalSteps == 0 ? Integer.MAX_VALUE : totalSteps);
            MatmulPrecision precision;
            try {
                precision = root.has("precision") ? MatmulPrecision.of(root.string("precision")) : MatmulPrecision.FP32;
            } catch (IllegalArgumentException e) {
                throw root.error(
                        "precision",
                        "\"" + ModelFormatException.excerpt(root.string("precision")) + "\" is not one of "
                                + MatmulPrecision.names());
            }
            double validationFraction = root.number("validation_fraction", Double.NaN);
            if (validationFraction < 0 || validationFraction > 0.5) {
                throw root.error("validation_fraction", validationFraction + " is not in [0, 0.5]");
            }
            return new TrainerState(
                    config,
                    options,
                    step,
                    totalSteps,
                    root.string("data"),
                    validationFraction,
                    root.has("backend") ? root.string("backend") : "",
                    precision,
                    root.has("epoch") ? epochTotals(root.object("epoch"), step) : EpochTotals.NONE);
        });
    }

    /** The epoch's sums as written, each within what {@code steps} steps of losses and accuracies can add up to. */
    private static EpochTotals epochTotals(JsonFields e, int step) throws JsonException {
        int steps = (int) e.integer("steps", 0, step);
        return new EpochTotals(
                steps,
                atLeastZero(e, "loss_sum", Double.MAX_VALUE),
                atLeastZero(e, "accuracy_sum", steps),
                atLeastZero(e, "seconds", Double.MAX_VALUE));
    }

    private static double atLeastZero(JsonFields fields, String name, double max) throws JsonException {
        double value = fields.number(name, Double.NaN);
        if (Double.isNaN(value)) {
            throw fields.error(name, "is missing");
        }
        if (value < 0 || value > max) {
            throw fields.error(name, value + (value < 0 ? " is negative" : " exceeds the steps summed (" + max + ")"));
        }
        return value;
    }

    /** The stored order of training windows; checkpoints written before the option existed were shuffled. */
    private static TrainingOptions.DataOrder dataOrder(JsonFields options) throws JsonException {
        if (!options.has("data_order")) {
            return TrainingOptions.DataOrder.SHUFFLED;
        }
        String name = options.string("data_order");
        for (TrainingOptions.DataOrder order : TrainingOptions.DataOrder.values()) {
            if (order.name().toLowerCase(Locale.ROOT).equals(name)) {
                return order;
            }
        }
        throw options.error(
                "data_order", "\"" + ModelFormatException.excerpt(name) + "\" is not \"shuffled\" or \"sequential\"");
    }

    private static float required(JsonFields fields, String name) throws JsonException {
        double value = fields.number(name, Double.NaN);
        if (Double.isNaN(value)) {
            throw fields.error(name, "is missing");
        }
        return (float) value;
    }
}
