package dev.panamax.model.cli;

import dev.panamax.model.backend.Backend;
import dev.panamax.model.backend.Tensor;
import dev.panamax.model.generate.Transformer;
import dev.panamax.model.io.BoundedFiles;
import dev.panamax.model.io.TokenFile;
import dev.panamax.model.nn.ModelConfig;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import java.util.Optional;

/**
 * {@code panamax perplexity}: teacher-forced mean negative log-likelihood and perplexity of a model over data, in
 * windows of the context as llama.cpp's {@code llama-perplexity} computes them, and optionally the top-1 agreement
 * and mean KL divergence against a base model (what quantization costs).
 */
final class PerplexityCommand {
    private static final long MAX_TEXT_BYTES = 256L << 20;
    private static final int MAX_TOKENS = 1 << 26;
    private static final int DEFAULT_CONTEXT = 512;

    static final Option MODEL = Option.text("--model", "FILE", "the model, as panamax generate takes it")
            .shortName("-m");
    static final Option DATA =
            Option.text("--data", "FILE", "UTF-8 text, or an llm.c token file (uint16 ids after a 256-int32 header)");
    static final Option TOKENIZER = Option.text(
            "--tokenizer",
            "FILE",
            "the tokenizer for text data (default: as for generate, the vocabulary beside the model or a GGUF"
                    + " model's own)");
    /** The shortest window that scores a position: its second half starts at N/2 and ends at N - 2. */
    private static final int MIN_CONTEXT = 3;

    static final Option CONTEXT = Option.wholeFrom(
            "--context",
            "N",
            MIN_CONTEXT,
            "the window: tokens per window, at most the model's context (default: " + DEFAULT_CONTEXT
                    + " or the model's context if smaller)");
    static final Option CHUNKS =
            Option.wholeFrom("--chunks", "N", 1, "score at most N windows (default: all that fit)");
    static final Option BASE = Option.text(
            "--base",
            "FILE",
            "a base model (e.g. the F32 original of a quantized one) to run on the same windows: prints the top-1"
                    + " agreement with it and the mean KL divergence from it");
    static final Option PRINT_TOP1 =
            Option.flag("--print-top1", "print the most likely next id at each scored position, one line per window");

    static final Command COMMAND = new Command(
            "perplexity",
            List.of(),
            "measure a model's perplexity on a text or token file",
            "Splits the data's tokens into windows of N tokens (the first replaced by BOS where the tokenizer adds one),"
                    + " runs each window teacher-forced in batches, and scores the predictions of the second half of the window"
                    + " (positions N/2 to N-2 predicting the next token), as llama.cpp's llama-perplexity does. Prints"
                    + " the mean negative log-likelihood (nats per token) and the perplexity, exp of it.",
            List.of(
                    MODEL,
                    DATA,
                    TOKENIZER,
                    CONTEXT,
                    CHUNKS,
                    BASE,
                    PRINT_TOP1,
                    Command.THREADS,
                    Command.BACKEND,
                    Command.PRECISION));

    private PerplexityCommand() {}

    static int run(CommandLine line, PrintStream out, PrintStream err) throws IOException {
        if (!line.has(MODEL) || !line.has(DATA)) {
            throw line.usage("give " + line.typed(MODEL) + " FILE and " + line.typed(DATA) + " FILE");
        }
        String backendName = BackendChoice.name(line);
        Path modelPath = line.path(MODEL);
        Path data = line.path(DATA);
        if (!Files.exists(data)) {
            throw ModelFiles.missing(line.typed(DATA), data, "no such file");
        }
        try (ModelFiles.Model model = ModelFiles.open(modelPath, line.typed(MODEL));
                ModelFiles.Model base = line.has(BASE) ? ModelFiles.open(line.path(BASE), line.typed(BASE)) : null) {
            ModelConfig config = model.config();
            if (base != null && base.config().vocabSize() != config.vocabSize()) {
                throw line.usage(line.typed(BASE) + " has " + base.config().vocabSize() + " tokens, the model "
                        + config.vocabSize());
            }
            Optional<ModelFiles.Codec> codec =
                    ModelFiles.codec(line.path(TOKENIZER), line.typed(TOKENIZER), modelPath, model);
            int[] tokens = tokens(line, data, model, codec);
            if (config.seqLen() < MIN_CONTEXT) {
                throw line.usage("the model's context (" + config.seqLen() + ") is shorter than the " + MIN_CONTEXT
                        + " tokens a window needs to score a position");
            }
            int context = line.has(CONTEXT)
                    ? (int) line.whole(
                            CONTEXT, MIN_CONTEXT, config.seqLen(), "the window must fit in the model's context")
                    : Math.min(DEFAULT_CONTEXT, config.seqLen());
            if (base != null && base.config().seqLen() < context) {
                throw line.usage(
                        line.typed(BASE) + "'s context (" + base.config().seqLen() + ") is shorter than the"
                                + " window (" + context + "): give " + line.typed(CONTEXT) + " N of at most that");
            }
            int windows = tokens.length / context;
            if (line.has(CHUNKS)) {
                windows = (int) Math.min(windows, line.whole(CHUNKS));
            }
            if (windows == 0) {
                throw line.usage(
                        line.typed(DATA) + " has " + tokens.length + " tokens, fewer than one window of " + context);
            }
            // llama.cpp starts each window with BOS where its tokenizer adds one; token data without a tokenizer keeps
            // the model's own convention (llama2.c's BOS).
            Optional<Integer> bos = codec.isPresent() ? codec.get().addedBos() : model.bos();
            int first = context / 2;
            try (Backend backend = BackendChoice.open(line, backendName, BackendChoice.precision(line), err)) {
                Transformer transformer = model.transformer().apply(backend, context);
                Transformer baseTransformer =
                        base == null ? null : base.transformer().apply(backend, context);
                float[] logits = new float[config.vocabSize()];
                float[] baseLogits = new float[config.vocabSize()];
                double nll = 0;
                double kl = 0;
                long agree = 0;
                long scored = 0;
                for (int w = 0; w < windows; w++) {
                    int[] window = java.util.Arrays.copyOfRange(tokens, w * context, (w + 1) * context);
                    if (bos.isPresent()) {
                        window[0] = bos.get();
                    }
                    transformer.reset();
                    if (baseTransformer != null) {
                        baseTransformer.reset();
                    }
                    StringBuilder top1 = new StringBuilder();
                    // Each batch's logits at every position, as llama.cpp computes a window; positions below
                    // first are context only.
                    for (int j = 0; j + 1 < context; ) {
                        int n = Math.min(transformer.maxBatch(), context - 1 - j);
                        Tensor result = transformer.forwardEach(window, j, n);
                        Tensor baseResult = baseTransformer == null ? null : baseTransformer.forwardEach(window, j, n);
                        for (int i = Math.max(0, first - j); i < n; i++) {
                            backend.read(result.rows(i, 1), logits);
                            requireFinite(logits, line.typed(MODEL), w, j + i);
                            double[] logProbs = logSoftmax(logits);
                            nll -= logProbs[window[j + i + 1]];
                            int best = argmax(logits);
                            if (baseResult != null) {
                                backend.read(baseResult.rows(i, 1), baseLogits);
                                requireFinite(baseLogits, line.typed(BASE), w, j + i);
                                double[] baseLogProbs = logSoftmax(baseLogits);
                                for (int v = 0; v < logits.length; v++) {
                                    kl += Math.exp(baseLogProbs[v]) * (baseLogProbs[v] - logProbs[v]);
                                }
                                agree += best == argmax(baseLogits) ? 1 : 0;
                            }
                            scored++;
                            if (line.has(PRINT_TOP1)) {
                                top1.append(top1.isEmpty() ? "" : " ").append(best);
                            }
                        }
                        j += n;
                    }
                    if (line.has(PRINT_TOP1)) {
                        out.println(top1);
                    }
                }
                out.printf(
                        Locale.ROOT,
                        "windows: %d of %d tokens (%d tokens in the data), %d positions scored%n",
                        windows,
                        context,
                        tokens.length,
                        scored);
                out.printf(
                        Locale.ROOT,
                        "mean NLL: %.6f nats/token, perplexity: %.4f%n",
                        nll / scored,
                        Math.exp(nll / scored));
                if (base != null) {
                    out.printf(
                            Locale.ROOT,
                            "against the base: top-1 agreement %.2f%% (%d of %d), mean KL divergence %.6f%n",
                            100.0 * agree / scored,
                            agree,
                            scored,
                            kl / scored);
                }
                return 0;
            }
        }
    }

    /** The data's token ids: an llm.c token file as stored, text through the model's or the given tokenizer. */
    private static int[] tokens(CommandLine line, Path data, ModelFiles.Model model, Optional<ModelFiles.Codec> codec)
            throws IOException {
        int vocab = model.config().vocabSize();
        int[] tokens;
        if (TokenFile.hasMagic(data)) {
            tokens = TokenFile.read(data, vocab, MAX_TOKENS);
        } else {
            tokens = codec.orElseThrow(() -> line.usage("text data needs " + line.typed(TOKENIZER)
                            + " FILE for this model (or give an llm.c token file)"))
                    .encodeText(BoundedFiles.readUtf8(data, "text file", MAX_TEXT_BYTES));
        }
        for (int i = 0; i < tokens.length; i++) {
            if (tokens[i] >= vocab) {
                throw line.usage(line.typed(DATA) + ": token " + i + " is " + tokens[i] + ", outside the model's"
                        + " vocabulary of " + vocab);
            }
        }
        return tokens;
    }

    /** Refuses logits a broken model gave: a NaN or infinite one would make every figure NaN or meaningless. */
    private static void requireFinite(float[] logits, String model, int window, int position) {
        for (int v = 0; v < logits.length; v++) {
            if (!Float.isFinite(logits[v])) {
                throw new IllegalStateException(model + "'s logits are not finite (token " + v + " is " + logits[v]
                        + " at window " + window + ", position " + position + "): its weights are broken");
            }
        }
    }

    private static double[] logSoftmax(float[] logits) {
        double max = Double.NEGATIVE_INFINITY;
        for (float v : logits) {
            max = Math.max(max, v);
        }
        double sum = 0;
        for (float v : logits) {
            sum += Math.exp(v - max);
        }
        double log = max + Math.log(sum);
        double[] result = new double[logits.length];
        for (int i = 0; i < logits.length; i++) {
            result[i] = logits[i] - log;
        }
        return result;
    }

    private static int argmax(float[] values) {
        int best = 0;
        for (int i = 1; i < values.length; i++) {
            if (values[i] > values[best]) {
                best = i;
            }
        }
        return best;
    }
}
