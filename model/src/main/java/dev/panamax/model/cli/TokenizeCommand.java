package dev.panamax.model.cli;

import dev.panamax.model.io.BoundedFiles;
import dev.panamax.model.io.GgufFile;
import dev.panamax.model.tokenizer.GgufTokenizer;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.stream.Collectors;

/** {@code panamax tokenize}: prints the token ids a GGUF file's own tokenizer gives a text, as llama.cpp does. */
final class TokenizeCommand {
    private static final long MAX_TEXT_BYTES = 64L << 20;

    static final Option MODEL = Option.text(
                    "--model", "FILE", "a GGUF file with a tokenizer (a model, or a vocabulary-only file)")
            .shortName("-m");
    static final Option PROMPT =
            Option.text("--prompt", "TEXT", "the text to encode").shortName("-p");
    static final Option FILE = Option.text("--file", "FILE", "read the text from a UTF-8 file instead");
    static final Option NO_BOS = Option.flag("--no-bos", "do not add BOS or EOS, even where the file asks for them");
    static final Option NO_PARSE_SPECIAL =
            Option.flag("--no-parse-special", "encode special tokens written in the text as plain text");

    static final Command COMMAND = new Command(
            "tokenize",
            List.of(),
            "print the token ids a GGUF file's tokenizer gives a text",
            "Encodes the text with the tokenizer in the GGUF file's metadata (SentencePiece-style \"llama\" or"
                    + " byte-level BPE \"gpt2\") and prints the ids llama.cpp's llama-tokenize --ids gives, separated"
                    + " by spaces; special tokens written in the text become their ids.",
            List.of(MODEL, PROMPT, FILE, NO_BOS, NO_PARSE_SPECIAL));

    private TokenizeCommand() {}

    static int run(CommandLine line, PrintStream out) throws IOException {
        if (!line.has(MODEL) || line.has(PROMPT) == line.has(FILE)) {
            throw line.usage("give " + line.typed(MODEL) + " FILE and one of " + line.typed(PROMPT) + " TEXT and "
                    + line.typed(FILE) + " FILE");
        }
        Path model = line.path(MODEL);
        if (!Files.exists(model)) {
            throw ModelFiles.missing(line.typed(MODEL), model, "no such file");
        }
        if (line.has(FILE) && !Files.exists(line.path(FILE))) {
            throw ModelFiles.missing(line.typed(FILE), line.path(FILE), "no such file");
        }
        String text = line.has(PROMPT)
                ? line.text(PROMPT)
                : BoundedFiles.readUtf8(line.path(FILE), "text file", MAX_TEXT_BYTES);
        try (GgufFile gguf = GgufFile.open(model)) {
            int[] ids = GgufTokenizer.read(gguf).encode(text, !line.has(NO_BOS), !line.has(NO_PARSE_SPECIAL));
            out.println(Arrays.stream(ids).mapToObj(Integer::toString).collect(Collectors.joining(" ")));
            return 0;
        }
    }
}
