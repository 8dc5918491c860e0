package dev.panamax.model.cli;

import dev.panamax.kernels.Parallelism;
import dev.panamax.model.backend.CpuBackend;
import dev.panamax.model.generate.Generator;
import dev.panamax.model.generate.Sampler;
import dev.panamax.model.generate.Transformer;
import dev.panamax.model.io.ModelConfig;
import dev.panamax.model.io.ModelConfig.Architecture;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.HashMap;
import java.util.HashSet;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.Set;

/**
 * The {@code panamax} command line: {@code generate} text or token ids from a model, print a model's {@code info}, or
 * run the kernel {@code demo}.
 */
public final class Panamax {
    private static final String USAGE = """
            usage: panamax <command> [options]

            commands:
              generate [--model FILE] [--tokenizer FILE] (--prompt TEXT | --prompt-ids 1,2,3) [--max-tokens N]
                       [--temperature T] [--top-k K] [--top-p P] [--seed S] [--threads N] [--print-ids]
                                   stream a continuation of the prompt (token ids with --print-ids or without a
                                   tokenizer), then prefill and decode tokens/s on standard error. FILE is a llama2.c
                                   checkpoint (.bin) or a GPT-2 directory (config.json, model.safetensors); the
                                   tokenizer is llama2.c's tokenizer.bin, a directory with GPT-2's encoder.json and
                                   vocab.bpe, or a character vocabulary (chars.json, found beside the model by
                                   itself). Without --model: Panamax's own small model, trained on Debian's
                                   fortunes. Temperature 0 is greedy; defaults: temperature 1, top-p 0.9, top-k 0
                                   (off), a seed from the clock (printed), max tokens 256 or what the context leaves.
              train --data PATH [--config tiny|small|FILE] [--arch gpt2|llama] [--steps N | --epochs E]
                    [--batch B] [--seq T] [--lr LR] [--warmup N] [--out DIR] [--export DIR] [--resume DIR]
                    [--tokenizer DIR] [--threads N] [--eval-every N] [--val-windows N] [--val-fraction F]
                    [--checkpoint-every N] [--patience N] [--seed S] [--log-every N]
                                   train on a text file or directory (character vocabulary, or GPT-2's BPE with
                                   --tokenizer), printing loss and accuracy per step and epoch; writes DIR (default
                                   panamax-train) with the checkpoint, loss.csv and loss.png. --resume DIR continues a
                                   run exactly; --export DIR also writes the weights alone in float16 (GPT-2).
                                   Defaults: config tiny (GPT-2, dim 128, 4 layers, context = seq), batch 16, seq 128,
                                   lr 1e-3 with 100 warm-up steps and cosine decay, one epoch, 10% held out.
              info FILE            print a model's configuration and parameter count
              demo [--threads N]   run each kernel on a small problem, check it and time it next to plain Java
              help                 show this text
            """;
    private static final Set<String> GENERATE_VALUES = Set.of(
            "--model",
            "--tokenizer",
            "--prompt",
            "--prompt-ids",
            "--max-tokens",
            "--temperature",
            "--top-k",
            "--top-p",
            "--seed",
            "--threads");
    private static final int DEFAULT_MAX_TOKENS = 256;

    private Panamax() {}

    /**
     * Runs a command and exits with its status: 0 on success, 1 when a check failed, 2 on a usage error.
     *
     * @param args the command and its options
     */
    public static void main(String[] args) {
        System.exit(run(args, System.out, System.err));
    }

    static int run(String[] args, PrintStream out, PrintStream err) {
        if (args.length == 0 || args[0].equals("help") || args[0].equals("--help")) {
            out.print(USAGE);
            return args.length == 0 ? 2 : 0;
        }
        try {
            String[] options = Arrays.copyOfRange(args, 1, args.length);
            return switch (args[0]) {
                case "demo" -> {
                    applyThreads(options);
                    yield new Demo(out).run() ? 0 : 1;
                }
                case "generate" -> generate(options(options, GENERATE_VALUES, Set.of("--print-ids")), out, err);
                case "info" -> info(options, out);
                case "train" -> TrainCommand.run(options(options, TrainCommand.VALUES, Set.of()), out, err);
                default -> throw new IllegalArgumentException("unknown command '" + args[0] + "'");
            };
        } catch (IllegalArgumentException e) {
            err.println("panamax: " + e.getMessage());
            err.print(USAGE);
            return 2;
        } catch (IOException | IllegalStateException e) {
            err.println("panamax: " + e.getMessage());
            return 1;
        }
    }

    /** Options as {@code --name value} pairs and flags (mapped to themselves), each at most once. */
    static Map<String, String> options(String[] args, Set<String> valued, Set<String> flags) {
        Map<String, String> options = new HashMap<>();
        for (int i = 0; i < args.length; i++) {
            String name = args[i];
            String value;
            if (valued.contains(name)) {
                if (i + 1 == args.length) {
                    throw new IllegalArgumentException("option " + name + " needs a value");
                }
                value = args[++i];
            } else if (flags.contains(name)) {
                value = name;
            } else {
                throw new IllegalArgumentException("unknown option '" + name + "'");
            }
            if (options.put(name, value) != null) {
                throw new IllegalArgumentException("option " + name + " is given twice");
            }
        }
        return options;
    }

    private static int generate(Map<String, String> options, PrintStream out, PrintStream err) throws IOException {
        Path modelPath = options.containsKey("--model") ? Path.of(options.get("--model")) : BuiltInModel.directory();
        if (options.containsKey("--prompt") == options.containsKey("--prompt-ids")) {
            throw new IllegalArgumentException("generate needs exactly one of --prompt TEXT and --prompt-ids 1,2,3");
        }
        float temperature = number(options, "--temperature", 1f);
        float topP = number(options, "--top-p", 0.9f);
        int topK = (int) whole(options, "--top-k", 0, 0, Integer.MAX_VALUE);
        long seed = whole(options, "--seed", System.nanoTime(), Long.MIN_VALUE, Long.MAX_VALUE);
        Sampler sampler = new Sampler(temperature, topK, topP, seed);
        // Without --threads the kernels keep their default (all processors, or the panamax.threads property).
        int threads = (int) whole(options, "--threads", 0, 1, Integer.MAX_VALUE);
        try (ModelFiles.Model model = ModelFiles.open(modelPath);
                CpuBackend backend = threads == 0 ? new CpuBackend() : new CpuBackend(threads)) {
            ModelConfig config = model.config();
            Optional<Path> tokenizer = options.containsKey("--tokenizer")
                    ? Optional.of(Path.of(options.get("--tokenizer")))
                    : ModelFiles.vocabularyBeside(modelPath);
            ModelFiles.Codec codec = tokenizer.isPresent() ? ModelFiles.tokenizer(tokenizer.get(), config) : null;
            int[] prompt;
            if (options.containsKey("--prompt")) {
                if (codec == null) {
                    throw new IllegalArgumentException("--prompt needs --tokenizer FILE (or give --prompt-ids)");
                }
                prompt = codec.encode(options.get("--prompt"));
            } else {
                prompt = ids(options.get("--prompt-ids"), config.vocabSize());
            }
            if (prompt.length == 0) {
                throw new IllegalArgumentException("the prompt encodes to no tokens");
            }
            int room = config.seqLen() + 1 - prompt.length;
            int maxTokens = (int) whole(options, "--max-tokens", Math.min(DEFAULT_MAX_TOKENS, room), 0, room);
            Set<Integer> stop = new HashSet<>();
            model.stopToken().ifPresent(stop::add);
            if (codec != null) {
                codec.endOfText().ifPresent(stop::add);
            }
            boolean printIds = codec == null || options.containsKey("--print-ids");
            Transformer transformer = model.transformer().apply(backend);
            int[] previous = {prompt[prompt.length - 1]};
            Generator.Result result = new Generator(transformer, sampler, stop).generate(prompt, maxTokens, token -> {
                if (printIds) {
                    out.print(token + " ");
                } else {
                    byte[] bytes = codec.decode(previous[0], token);
                    out.write(bytes, 0, bytes.length);
                }
                out.flush();
                previous[0] = token;
            });
            out.println();
            err.printf(
                    Locale.ROOT,
                    "prefill: %d tokens, %.1f tokens/s; decode: %d tokens, %.1f tokens/s%s%s%n",
                    result.promptTokens(),
                    result.prefillTokensPerSecond(),
                    result.decodeSteps(),
                    result.decodeTokensPerSecond(),
                    temperature > 0 ? "; seed " + seed : "",
                    result.stopped() ? "; stopped at a stop token" : "");
            return 0;
        }
    }

    private static int[] ids(String list, int vocabSize) {
        String[] parts = list.split(",", -1);
        int[] ids = new int[parts.length];
        for (int i = 0; i < parts.length; i++) {
            try {
                ids[i] = Integer.parseInt(parts[i].trim());
            } catch (NumberFormatException e) {
                ids[i] = -1;
            }
            if (ids[i] < 0 || ids[i] >= vocabSize) {
                throw new IllegalArgumentException(
                        "--prompt-ids: '" + parts[i] + "' must be a token id in [0, " + vocabSize + ")");
            }
        }
        return ids;
    }

    static long whole(Map<String, String> options, String name, long fallback, long min, long max) {
        String value = options.get(name);
        if (value == null) {
            return fallback;
        }
        try {
            long parsed = Long.parseLong(value.trim());
            if (parsed >= min && parsed <= max) {
                return parsed;
            }
        } catch (NumberFormatException e) {
            // reported below with the bounds
        }
        throw new IllegalArgumentException(
                name + " (" + value + ") must be a whole number in [" + min + ", " + max + "]");
    }

    static float number(Map<String, String> options, String name, float fallback) {
        String value = options.get(name);
        if (value == null) {
            return fallback;
        }
        try {
            return Float.parseFloat(value.trim());
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException(name + " (" + value + ") must be a number");
        }
    }

    private static int info(String[] args, PrintStream out) throws IOException {
        if (args.length != 1) {
            throw new IllegalArgumentException("info needs exactly one model FILE");
        }
        try (ModelFiles.Model model = ModelFiles.open(Path.of(args[0]))) {
            ModelConfig c = model.config();
            boolean llama = c.architecture() == Architecture.LLAMA;
            out.printf(Locale.ROOT, "file:           %s%n", args[0]);
            out.printf(Locale.ROOT, "architecture:   %s%n", llama ? "Llama" : "GPT-2");
            out.printf(Locale.ROOT, "dim:            %d%n", c.dim());
            out.printf(Locale.ROOT, "hidden dim:     %d%n", c.hiddenDim());
            out.printf(Locale.ROOT, "layers:         %d%n", c.layers());
            out.printf(
                    Locale.ROOT,
                    "heads:          %d (key/value heads %d, head size %d)%n",
                    c.heads(),
                    c.kvHeads(),
                    c.headSize());
            out.printf(Locale.ROOT, "vocabulary:     %d%n", c.vocabSize());
            out.printf(Locale.ROOT, "context length: %d%n", c.seqLen());
            out.printf(Locale.ROOT, "norm epsilon:   %s%n", c.normEpsilon());
            if (llama) {
                out.printf(Locale.ROOT, "rope theta:     %s%n", c.ropeTheta());
            }
            out.printf(
                    Locale.ROOT,
                    "classifier:     %s%n",
                    c.sharedClassifier() ? "shared with the token embedding" : "a matrix of its own");
            out.printf(Locale.ROOT, "parameters:     %,d (%.2f M)%n", c.parameterCount(), c.parameterCount() / 1e6);
            return 0;
        }
    }

    private static void applyThreads(String[] options) {
        for (int i = 0; i < options.length; i++) {
            if (options[i].equals("--threads") && i + 1 < options.length) {
                try {
                    Parallelism.setThreads(Integer.parseInt(options[++i]));
                } catch (NumberFormatException e) {
                    throw new IllegalArgumentException("--threads (" + options[i] + ") must be a whole number >= 1");
                }
            } else {
                throw new IllegalArgumentException("unknown option '" + options[i] + "'");
            }
        }
    }
}
