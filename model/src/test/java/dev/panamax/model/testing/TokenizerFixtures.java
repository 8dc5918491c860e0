package dev.panamax.model.testing;

import dev.panamax.model.io.GgufValue;
import dev.panamax.model.io.GgufWriter;
import dev.panamax.model.tokenizer.GgufTokenizer;
import dev.panamax.model.tokenizer.Llama2cTokenizer;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Small vocabulary-only GGUF files, made here so that tokenizer tests need no outside file: a SentencePiece-style
 * {@code llama} vocabulary (byte tokens, scored merges into English words, an accented word, digits, two merges of
 * equal score) and byte-level BPE {@code gpt2} vocabularies with a few merges and {@code <|endoftext|>}. They carry
 * the {@code llama.*} keys llama.cpp's loader needs, so that its {@code llama-tokenize} reads the same files.
 */
public final class TokenizerFixtures {
    private TokenizerFixtures() {}

    /** Merged pieces of the llama vocabulary, best score first; two share a score. */
    private static final String[] SPM_MERGES = {
        "he", " t", " the", "ll", " a", " all", "12", "ca", " ca", " caf", " café", "lo", "ol", "hell", "hello",
        " hello", "wo", " wo", "rl", " worl", " world"
    };

    private static final String[] SPM_CHARACTERS = {
        " ", "t", "h", "e", "a", "l", "o", "1", "2", "3", "c", "f", "é", "w", "r", "d", "!"
    };

    /**
     * A vocabulary laid out as llama2.c's: {@code <unk>}, BOS, EOS, the 256 byte tokens, then the given pieces.
     *
     * @param pieceAndScore each piece (a String) followed by its score (a Number)
     * @return the tokenizer
     */
    public static Llama2cTokenizer llama2c(Object... pieceAndScore) {
        List<byte[]> pieces = new ArrayList<>();
        List<Float> scores = new ArrayList<>();
        for (String special : new String[] {"<unk>", "\n<s>\n", "\n</s>\n"}) {
            pieces.add(special.getBytes(StandardCharsets.UTF_8));
            scores.add(0f);
        }
        for (int b = 0; b < 256; b++) {
            pieces.add("<0x%02X>".formatted(b).getBytes(StandardCharsets.UTF_8));
            scores.add(0f);
        }
        for (int i = 0; i < pieceAndScore.length; i += 2) {
            pieces.add(((String) pieceAndScore[i]).getBytes(StandardCharsets.UTF_8));
            scores.add(((Number) pieceAndScore[i + 1]).floatValue());
        }
        float[] s = new float[scores.size()];
        for (int i = 0; i < s.length; i++) {
            s[i] = scores.get(i);
        }
        return new Llama2cTokenizer(pieces, s);
    }

    /**
     * The llama2.c-style vocabulary the {@code llama} fixture is made from: {@code <unk>}, BOS, EOS, the 256 byte
     * tokens, single characters, then the merged pieces (two of equal score).
     *
     * @param size the number of tokens: the pieces above, then filler pieces {@code <extra_N>} that never merge
     * @return the tokenizer
     */
    public static Llama2cTokenizer llama2cVocabulary(int size) {
        List<Object> pieceAndScore = new ArrayList<>();
        for (String c : SPM_CHARACTERS) {
            pieceAndScore.add(c);
            pieceAndScore.add(-100f);
        }
        for (int i = 0; i < SPM_MERGES.length; i++) {
            pieceAndScore.add(SPM_MERGES[i]);
            pieceAndScore.add(SPM_MERGES[i].equals("ol") ? -12f : -1f - i);
        }
        for (int id = 259 + pieceAndScore.size() / 2; id < size; id++) {
            pieceAndScore.add("<extra_" + id + ">");
            pieceAndScore.add(-1000f);
        }
        return llama2c(pieceAndScore.toArray());
    }

    /**
     * Writes the {@code llama} vocabulary as GGUF.
     *
     * @param file the file
     * @throws IOException if it cannot be written
     */
    public static void writeLlama(Path file) throws IOException {
        Map<String, GgufValue> m = hyperparameters();
        m.putAll(GgufTokenizer.metadata(llama2cVocabulary(0)));
        GgufWriter.write(file, m, List.of());
    }

    /**
     * Writes a byte-level BPE vocabulary as GGUF: the 256 byte symbols, merges into {@code Ġthe}, {@code Ġall},
     * {@code 123}, {@code café} and {@code hello}, and {@code <|endoftext|>} as a control token (BOS and EOS).
     *
     * @param file the file
     * @param pre the pre-tokenizer, e.g. {@code gpt-2} or {@code llama-bpe}
     * @throws IOException if it cannot be written
     */
    public static void writeGpt2(Path file, String pre) throws IOException {
        writeGpt2(file, pre, List.of());
    }

    /**
     * {@link #writeGpt2(Path, String)}'s vocabulary with these user-defined tokens (type 4) after it, written as plain
     * text as llama.cpp's converters write them.
     *
     * @param file the file
     * @param pre the pre-tokenizer's name
     * @param userDefined the user-defined tokens' text
     * @throws IOException if the file cannot be written
     */
    public static void writeGpt2(Path file, String pre, List<String> userDefined) throws IOException {
        GgufWriter.write(file, gpt2Metadata(pre, userDefined, List.of()), List.of());
    }

    /**
     * The metadata {@link #writeGpt2(Path, String, List)} writes, with these control tokens (type 3) after the
     * user-defined ones, for a test to change before writing it.
     *
     * @param pre the pre-tokenizer's name
     * @param userDefined the user-defined tokens' text
     * @param control the further control tokens' text
     * @return the metadata, mutable
     */
    public static Map<String, GgufValue> gpt2Metadata(String pre, List<String> userDefined, List<String> control) {
        List<String> tokens = new ArrayList<>();
        for (int b = 0; b < 256; b++) {
            tokens.add(String.valueOf(byteSymbol(b)));
        }
        String[][] merges = {
            {"Ġ", "t"},
            {"h", "e"},
            {"Ġt", "he"},
            {"l", "l"},
            {"Ġ", "a"},
            {"Ġa", "ll"},
            {"1", "2"},
            {"12", "3"},
            {"Ã", "©"},
            {"c", "a"},
            {"ca", "f"},
            {"caf", "Ã©"},
            {"he", "ll"},
            {"hell", "o"},
            {"Ġ", "hello"}
        };
        List<String> mergeLines = new ArrayList<>();
        for (String[] merge : merges) {
            tokens.add(merge[0] + merge[1]);
            mergeLines.add(merge[0] + " " + merge[1]);
        }
        tokens.add("<|endoftext|>");
        int endOfText = tokens.size() - 1;
        tokens.addAll(userDefined);
        tokens.addAll(control);
        int[] types = new int[tokens.size()];
        java.util.Arrays.fill(types, 1);
        types[endOfText] = 3;
        java.util.Arrays.fill(types, endOfText + 1, endOfText + 1 + userDefined.size(), 4);
        java.util.Arrays.fill(types, endOfText + 1 + userDefined.size(), types.length, 3);
        Map<String, GgufValue> m = hyperparameters();
        m.put("tokenizer.ggml.model", GgufValue.of("gpt2"));
        m.put("tokenizer.ggml.pre", GgufValue.of(pre));
        m.put("tokenizer.ggml.tokens", GgufValue.of(tokens.toArray(String[]::new)));
        m.put("tokenizer.ggml.token_type", GgufValue.of(types));
        m.put("tokenizer.ggml.merges", GgufValue.of(mergeLines.toArray(String[]::new)));
        m.put("tokenizer.ggml.bos_token_id", GgufValue.uint32(endOfText));
        m.put("tokenizer.ggml.eos_token_id", GgufValue.uint32(endOfText));
        m.put("tokenizer.ggml.add_bos_token", GgufValue.of(false));
        return m;
    }

    /** GPT-2's printable stand-in for a byte (encoder.py's bytes_to_unicode). */
    private static char byteSymbol(int b) {
        boolean printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        if (printable) {
            return (char) b;
        }
        int n = 0;
        for (int i = 0; i < b; i++) {
            boolean p = (i >= '!' && i <= '~') || (i >= 0xA1 && i <= 0xAC) || (i >= 0xAE && i <= 0xFF);
            n += p ? 0 : 1;
        }
        return (char) (256 + n);
    }

    /** The model keys llama.cpp's loader reads even for a vocabulary-only file. */
    private static Map<String, GgufValue> hyperparameters() {
        Map<String, GgufValue> m = new LinkedHashMap<>();
        m.put("general.architecture", GgufValue.of("llama"));
        m.put("llama.context_length", GgufValue.uint32(64));
        m.put("llama.embedding_length", GgufValue.uint32(32));
        m.put("llama.block_count", GgufValue.uint32(1));
        m.put("llama.feed_forward_length", GgufValue.uint32(32));
        m.put("llama.attention.head_count", GgufValue.uint32(4));
        m.put("llama.attention.layer_norm_rms_epsilon", GgufValue.of(1e-5f));
        return m;
    }
}
