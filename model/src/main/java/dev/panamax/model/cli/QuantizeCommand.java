package dev.panamax.model.cli;

import dev.panamax.model.io.GgmlType;
import dev.panamax.model.io.GgufLlama;
import dev.panamax.model.io.GgufValue;
import dev.panamax.model.io.Llama2cCheckpoint;
import dev.panamax.model.tokenizer.GgufTokenizer;
import dev.panamax.model.tokenizer.Llama2cTokenizer;
import dev.panamax.model.train.Trainer;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.FileSystemException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * {@code panamax quantize}: writes a llama2.c checkpoint (or the one {@code panamax train} wrote) as a GGUF file of
 * one weight type, with the llama2.c vocabulary as its tokenizer when one is given.
 */
final class QuantizeCommand {
    static final Option MODEL = Option.text(
                    "--model",
                    "FILE",
                    "a llama2.c checkpoint (.bin), or a directory panamax train wrote (its " + Trainer.LLAMA2C_FILE
                            + ")")
            .shortName("-m");
    static final Option OUT = Option.text("--out", "FILE", "the GGUF file to write (replaced atomically)")
            .shortName("-o");
    static final Option TYPE = Option.text(
                    "--type",
                    "TYPE",
                    "f32, f16, bf16, q8_0 or q4_0: the matrices' type (norms stay f32; a matrix whose rows are"
                            + " not whole 32-element blocks is written f16)")
            .defaultValue("q8_0");
    static final Option TOKENIZER =
            Option.text("--tokenizer", "FILE", "llama2.c's tokenizer.bin, written into the file as its vocabulary");

    static final Command COMMAND = new Command(
            "quantize",
            List.of(),
            "write a Llama model as a GGUF file of F32, F16, BF16, Q8_0 or Q4_0 weights",
            "Reads a llama2.c checkpoint and writes it as GGUF (version 3), llama.cpp's format, with the"
                    + " configuration in its llama.* metadata and the matrices encoded in the given type, which"
                    + " panamax generate, panamax perplexity and llama.cpp read.",
            List.of(MODEL, OUT, TYPE, TOKENIZER));

    private QuantizeCommand() {}

    static int run(CommandLine line, PrintStream out) throws IOException {
        if (!line.has(MODEL) || !line.has(OUT)) {
            throw line.usage("give " + line.typed(MODEL) + " FILE and " + line.typed(OUT) + " FILE");
        }
        GgmlType type =
                switch (line.text(TYPE).toLowerCase(Locale.ROOT)) {
                    case "f32" -> GgmlType.F32;
                    case "f16" -> GgmlType.F16;
                    case "bf16" -> GgmlType.BF16;
                    case "q8_0" -> GgmlType.Q8_0;
                    case "q4_0" -> GgmlType.Q4_0;
                    default ->
                        throw line.usage(line.typed(TYPE) + " (" + line.text(TYPE)
                                + ") must be one of f32, f16, bf16, q8_0 and q4_0");
                };
        Path target = line.path(OUT);
        if (Files.isDirectory(target)) {
            throw new FileSystemException(
                    line.typed(OUT) + " " + target, null, "is a directory; give the file to write");
        }
        Path folder = target.toAbsolutePath().getParent();
        if (folder != null && !Files.isDirectory(folder)) {
            throw ModelFiles.missing(line.typed(OUT), target, "no such directory " + folder);
        }
        Path model = line.path(MODEL);
        if (Files.isDirectory(model)) {
            model = model.resolve(Trainer.LLAMA2C_FILE);
        }
        if (!Files.exists(model)) {
            throw ModelFiles.missing(line.typed(MODEL), line.path(MODEL), "no llama2.c checkpoint there");
        }
        if (ModelFiles.isGguf(model)) {
            throw line.usage(line.typed(MODEL) + " " + model + " is already a GGUF file; give a llama2.c checkpoint");
        }
        try (Llama2cCheckpoint checkpoint = Llama2cCheckpoint.open(model)) {
            Map<String, GgufValue> vocabulary = Map.of();
            if (line.has(TOKENIZER)) {
                Path tokenizer = line.path(TOKENIZER);
                if (!Files.exists(tokenizer)) {
                    throw ModelFiles.missing(line.typed(TOKENIZER), tokenizer, "no such file");
                }
                vocabulary = GgufTokenizer.metadata(
                        Llama2cTokenizer.read(tokenizer, checkpoint.config().vocabSize()));
            }
            String name = model.getFileName().toString().replaceFirst("\\.bin$", "");
            GgufLlama.write(target, checkpoint.config(), checkpoint.weights(), name, vocabulary, type);
            out.printf(
                    Locale.ROOT,
                    "wrote %s: %s, %,d parameters, %,d bytes%s%n",
                    target,
                    type,
                    checkpoint.config().parameterCount(),
                    Files.size(target),
                    vocabulary.isEmpty() ? " (no tokenizer)" : "");
            return 0;
        }
    }
}
