package dev.panamax.model.cli;

import dev.panamax.model.backend.Backend;
import dev.panamax.model.backend.MatmulPrecision;
import dev.panamax.model.generate.Generator;
import dev.panamax.model.generate.Sampler;
import dev.panamax.model.generate.Transformer;
import dev.panamax.model.nn.ModelConfig;
import java.io.IOException;
import java.io.PrintStream;
import java.lang.management.ManagementFactory;
import java.nio.file.Path;
import java.util.HashSet;
import java.util.List;
import java.util.Locale;
import java.util.Optional;
import java.util.Set;

/**
 * {@code panamax generate}: streams a continuation of a prompt from a model, then reports prefill and decode speed.
 * Everything the user typed is checked, and the prompt measured against the context, before the model's cache is
 * allocated or a token is computed.
 */
final class GenerateCommand {
    static final Option MODEL = Option.text(
                    "--model",
                    "FILE",
                    "a llama2.c checkpoint (.bin), a GGUF file of a Llama-family model (F32, F16, BF16, Q8_0 or"
                            + " Q4_0 weights), or GPT-2 as a directory with config.json and model.safetensors (default:"
                            + " Panamax's built-in model)")
            .shortName("-m");
    static final Option TOKENIZER = Option.text(
            "--tokenizer",
            "FILE",
            "llama2.c's tokenizer.bin, a directory with GPT-2's encoder.json and vocab.bpe, or a chars.json"
                    + " (default: a GGUF model's own tokenizer, or the chars.json beside the model, if there is one)");
    static final Option PROMPT = Option.text(
                    "--prompt",
                    "TEXT",
                    "the text to continue (default: none; generation starts from the beginning-of-text token)")
            .shortName("-p");
    static final Option PROMPT_IDS = Option.text("--prompt-ids", "IDS", "the prompt as token ids, e.g. 1,450,2462");
    static final Option MAX_TOKENS = Option.wholeFrom(
                    "--max-tokens",
                    "N",
                    0,
                    "the most tokens to generate (default: 256, or what the context leaves after the prompt)")
            .shortName("-n");
    static final Option TEMPERATURE = Option.nonNegative("--temperature", "T", "the softmax temperature; 0 is greedy")
            .defaultValue("1");
    static final Option TOP_K = Option.wholeFrom(
                    "--top-k", "K", 0, "sample from the K most likely tokens only; 0 keeps all")
            .defaultValue("0");
    static final Option TOP_P = Option.number(
                    "--top-p",
                    "P",
                    0,
                    true,
                    1,
                    "sample from the most likely tokens whose probabilities add up to P, in (0, 1]")
            .defaultValue("0.9");
    static final Option SEED = Option.whole(
                    "--seed",
                    "S",
                    Long.MIN_VALUE,
                    Long.MAX_VALUE,
                    "the random seed (default: from the clock, printed at the end so that the run can be repeated)")
            .shortName("-s");
    static final Option PRINT_IDS =
            Option.flag("--print-ids", "print token ids, not text (always so without a tokenizer)");

    static final Command COMMAND = new Command(
            "generate",
            List.of(),
            "stream a continuation of a prompt from a model",
            "Streams a continuation of the prompt to standard output (control characters other than whitespace"
                    + " left out, as llama2.c prints), then prints the prefill and decode speed in"
                    + " tokens/s and the time from the JVM's start to the first token on standard error. Without a"
                    + " prompt, a llama2.c model starts from BOS (token 1), a GGUF model from its tokenizer's BOS,"
                    + " GPT-2 from <|endoftext|>, and a character model (the built-in one, or one that panamax train"
                    + " wrote) from a line break. The prompt and the tokens generated must fit in the model's"
                    + " context.",
            List.of(
                    MODEL,
                    TOKENIZER,
                    PROMPT,
                    PROMPT_IDS,
                    MAX_TOKENS,
                    TEMPERATURE,
                    TOP_K,
                    TOP_P,
                    SEED,
                    Command.THREADS,
                    Command.BACKEND,
                    Command.PRECISION,
                    PRINT_IDS));

    private static final int DEFAULT_MAX_TOKENS = 256;

    private GenerateCommand() {}

    static int run(CommandLine line, PrintStream out, PrintStream err) throws IOException {
        float temperature = line.number(TEMPERATURE);
        float topP = line.number(TOP_P);
        int topK = (int) line.whole(TOP_K);
        long seed = line.has(SEED) ? line.whole(SEED) : System.nanoTime();
        String backendName = BackendChoice.name(line);
        MatmulPrecision precision = BackendChoice.precision(line);
        if (line.has(MAX_TOKENS)) {
            line.whole(MAX_TOKENS);
        }
        if (line.has(PROMPT) && line.has(PROMPT_IDS)) {
            throw line.usage("give " + line.typed(PROMPT) + " or " + line.typed(PROMPT_IDS) + ", not both");
        }
        String modelSource = line.has(MODEL) ? line.typed(MODEL) : "the built-in model";
        Path modelPath = line.has(MODEL) ? line.path(MODEL) : BuiltInModel.directory();
        try (ModelFiles.Model model = ModelFiles.open(modelPath, modelSource)) {
            ModelConfig config = model.config();
            ModelFiles.Codec codec = ModelFiles.codec(line.path(TOKENIZER), line.typed(TOKENIZER), modelPath, model)
                    .orElse(null);
            int[] prompt = prompt(line, codec, model);
            if (prompt.length > config.seqLen()) {
                throw line.usage(tooLong(tokens(prompt.length), config));
            }
            int room = config.seqLen() + 1 - prompt.length;
            int maxTokens = line.has(MAX_TOKENS)
                    ? (int) line.whole(
                            MAX_TOKENS,
                            0,
                            room,
                            "the prompt (" + tokens(prompt.length) + ") and the tokens generated after it, but the"
                                    + " last (which is never fed back), must fit in the context (" + config.seqLen()
                                    + ")")
                    : Math.min(DEFAULT_MAX_TOKENS, room);
            if (maxTokens == 0) {
                return 0;
            }
            Set<Integer> stop = new HashSet<>();
            if (codec != null) {
                stop.addAll(codec.stopTokens());
            } else {
                model.bos().ifPresent(stop::add);
            }
            boolean printIds = codec == null || line.has(PRINT_IDS);
            try (Backend backend = BackendChoice.open(line, backendName, precision, err)) {
                // The cache holds what this run feeds back, not the header's context: a hostile header cannot size it.
                Transformer transformer = model.transformer()
                        .apply(backend, (int) Math.min(config.seqLen(), (long) prompt.length + maxTokens));
                int[] previous = {prompt[prompt.length - 1]};
                Printable text = new Printable(out);
                long[] firstTokenMillis = {-1};
                Sampler sampler = new Sampler(temperature, topK, topP, seed);
                Generator.Result result = new Generator(transformer, sampler, stop)
                        .generate(prompt, maxTokens, token -> {
                            if (printIds) {
                                out.print(token + " ");
                            } else {
                                text.write(codec.decode(previous[0], token));
                            }
                            out.flush();
                            if (firstTokenMillis[0] < 0) {
                                firstTokenMillis[0] = System.currentTimeMillis();
                            }
                            previous[0] = token;
                        });
                text.finish();
                out.println();
                err.printf(
                        Locale.ROOT,
                        "prefill: %d tokens, %.1f tokens/s; decode: %d tokens%s%s%s%s%n",
                        result.promptTokens(),
                        result.prefillTokensPerSecond(),
                        result.decodeSteps(),
                        result.decodeSteps() > 0
                                ? String.format(Locale.ROOT, ", %.1f tokens/s", result.decodeTokensPerSecond())
                                : "",
                        firstTokenMillis[0] < 0 ? "" : firstToken(firstTokenMillis[0]),
                        temperature > 0 ? "; seed " + seed : "",
                        result.stopped() ? "; stopped at a stop token" : "");
                return 0;
            }
        }
    }

    /**
     * How long the first token took to reach standard output, from the JVM's start: what a user waits for, start-up,
     * loading and the prompt's pass included.
     */
    private static String firstToken(long millis) {
        return String.format(
                Locale.ROOT,
                "; first token after %d ms from start",
                millis - ManagementFactory.getRuntimeMXBean().getStartTime());
    }

    /** The prompt's token ids: encoded text, ids as given, or the start token alone. */
    private static int[] prompt(CommandLine line, ModelFiles.Codec codec, ModelFiles.Model model) {
        ModelConfig config = model.config();
        String text = line.text(PROMPT);
        if (text != null && !text.isEmpty()) {
            if (codec == null) {
                throw line.usage(line.typed(PROMPT) + " needs " + line.typed(TOKENIZER)
                        + " FILE for this model (or give the prompt as " + line.typed(PROMPT_IDS) + ")");
            }
            // Measured before encoding: a prompt far too long is refused without spending time on it.
            long fewest = codec.fewestTokens(text);
            if (fewest > config.seqLen()) {
                throw line.usage(tooLong("at least " + tokens(fewest), config));
            }
            try {
                return codec.encode(text);
            } catch (IllegalArgumentException e) {
                throw line.usage(line.typed(PROMPT) + ": " + e.getMessage());
            }
        }
        if (line.has(PROMPT_IDS)) {
            return ids(line, config);
        }
        Optional<Integer> start = codec != null ? codec.startToken() : model.bos();
        return new int[] {
            start.orElseThrow(() -> line.usage("this model has no beginning-of-text token to start from: give "
                    + line.typed(PROMPT) + " TEXT or " + line.typed(PROMPT_IDS) + " IDS"))
        };
    }

    private static String tooLong(String length, ModelConfig config) {
        return "the prompt (" + length + ") is longer than the context (" + config.seqLen() + ")";
    }

    private static String tokens(long count) {
        return count + (count == 1 ? " token" : " tokens");
    }

    private static int[] ids(CommandLine line, ModelConfig config) {
        String[] parts = line.text(PROMPT_IDS).split(",", -1);
        if (parts.length > config.seqLen()) {
            throw line.usage(tooLong(tokens(parts.length), config));
        }
        int[] ids = new int[parts.length];
        for (int i = 0; i < parts.length; i++) {
            try {
                ids[i] = Integer.parseInt(parts[i].strip());
            } catch (NumberFormatException e) {
                ids[i] = -1;
            }
            if (ids[i] < 0 || ids[i] >= config.vocabSize()) {
                throw line.usage(line.typed(PROMPT_IDS) + ": '" + parts[i] + "' must be a token id in [0, "
                        + config.vocabSize() + ")");
            }
        }
        return ids;
    }

    /**
     * Writes the bytes of generated tokens without the control characters that are not whitespace, as llama2.c's
     * {@code safe_printf} does, and without C1 controls: a generated ESC, BEL or CSI (U+009B) would reach the terminal
     * as a command, not as text. Bytes that are not part of a well-formed UTF-8 character (overlong forms such as
     * {@code E0 80 9B}, surrogates, code points past U+10FFFF, lone continuation bytes) are written only outside
     * 0x80–0x9F, where a lenient decoder could take them for C1. A character split across tokens is held until it is
     * whole, so that it is judged, and written, whole. Well-formed characters are written as they are, also those whose
     * encoding contains such bytes (Û is C3 9B): a UTF-8 terminal does not read them as controls.
     */
    static final class Printable {
        private final PrintStream out;
        private final byte[] pending = new byte[4];
        private int size;
        private int length;

        Printable(PrintStream out) {
            this.out = out;
        }

        /** Writes a token's bytes, holding back the start of a character the next token ends. */
        void write(byte[] bytes) {
            for (byte b : bytes) {
                int u = b & 0xFF;
                if (size > 0 && (u & 0xC0) == 0x80 && (size > 1 || secondByteFits(pending[0] & 0xFF, u))) {
                    pending[size++] = b;
                    if (size == length) {
                        // A two-byte character is C1 exactly when it is C2 80 to C2 9F.
                        if (!(pending[0] == (byte) 0xC2 && (pending[1] & 0xFF) < 0xA0)) {
                            out.write(pending, 0, size);
                        }
                        size = 0;
                    }
                    continue;
                }
                finish(); // a character cut short by this byte
                if (u >= 0xC2 && u <= 0xF4) {
                    pending[size++] = b;
                    length = u < 0xE0 ? 2 : u < 0xF0 ? 3 : 4;
                } else if (u >= 0x20 && u != 0x7F && (u < 0x80 || u > 0x9F) || u >= '\t' && u <= '\r') {
                    out.write(b); // a printable or whitespace ASCII byte, or a stray byte outside C1's range
                }
            }
        }

        /**
         * Whether {@code second} may follow the lead byte {@code lead} in well-formed UTF-8: the ranges that exclude
         * overlong forms (E0, F0), surrogates (ED) and code points past U+10FFFF (F4).
         */
        private static boolean secondByteFits(int lead, int second) {
            return switch (lead) {
                case 0xE0 -> second >= 0xA0;
                case 0xED -> second <= 0x9F;
                case 0xF0 -> second >= 0x90;
                case 0xF4 -> second <= 0x8F;
                default -> true;
            };
        }

        /** Writes what is held of a character that never ended, without the bytes a terminal could read as C1. */
        void finish() {
            for (int i = 0; i < size; i++) {
                if ((pending[i] & 0xFF) > 0x9F) {
                    out.write(pending[i]);
                }
            }
            size = 0;
        }
    }
}
