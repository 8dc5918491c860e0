package dev.panamax.model.tokenizer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.panamax.model.backend.InsufficientMemoryException;
import dev.panamax.model.io.GgufFile;
import dev.panamax.model.io.GgufValue;
import dev.panamax.model.io.GgufWriter;
import dev.panamax.model.io.ModelFormatException;
import dev.panamax.model.testing.TokenizerFixtures;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The tokenizers of GGUF metadata against llama.cpp: the expected ids below are what llama.cpp's {@code
 * llama-tokenize --ids} (commit 81ff7abe, BOS as the file asks, special tokens parsed) printed for the same texts
 * on the fixtures {@link TokenizerFixtures} writes, byte for byte the files these tests read.
 */
class GgufTokenizerTest {
    private static final String[] TEXTS = {
        "the hello world",
        " the  all",
        "all 123 café!",
        "héllo 中文 😀",
        "<s>the</s>all",
        "\n\tthe",
        "lol",
        "",
        "hello<unk>world<|endoftext|>1234567",
        "  12 1212\n\n wo",
        "Hello World"
    };

    private static final int[][] LLAMA = {
        {1, 278, 291, 296},
        {1, 259, 278, 259, 281},
        {1, 281, 259, 282, 268, 286, 275},
        {1, 259, 261, 271, 279, 265, 259, 231, 187, 176, 233, 153, 138, 259, 243, 162, 155, 131},
        {1, 1, 278, 2, 281},
        {1, 259, 13, 12, 260, 276},
        {1, 259, 287, 264},
        {1},
        {1, 291, 0, 296, 63, 127, 262, 113, 274, 265, 270, 260, 262, 123, 260, 127, 65, 282, 268, 55, 56, 57, 58},
        {1, 259, 259, 259, 282, 259, 282, 282, 13, 13, 293},
        {1, 259, 75, 262, 279, 265, 259, 90, 265, 294, 274}
    };

    private static final int[][] GPT2 = {
        {116, 257, 270, 32, 119, 111, 114, 108, 100},
        {258, 32, 261},
        {97, 259, 32, 263, 32, 267, 33},
        {104, 264, 259, 111, 32, 228, 184, 173, 230, 150, 135, 32, 240, 159, 152, 128},
        {60, 115, 62, 116, 257, 60, 47, 115, 62, 97, 259},
        {10, 9, 116, 257},
        {108, 111, 108},
        {},
        {269, 60, 117, 110, 107, 62, 119, 111, 114, 108, 100, 271, 263, 52, 53, 54, 55},
        {32, 32, 262, 32, 262, 262, 10, 10, 32, 119, 111},
        {72, 101, 259, 111, 32, 87, 111, 114, 108, 100}
    };

    /** As GPT2 but for Llama 3's pre-tokenizer, which cuts numbers into runs of at most three digits. */
    private static final int[][] LLAMA3 = {
        GPT2[0],
        GPT2[1],
        GPT2[2],
        GPT2[3],
        GPT2[4],
        GPT2[5],
        GPT2[6],
        GPT2[7],
        GPT2[8],
        {32, 32, 262, 32, 262, 49, 50, 10, 10, 32, 119, 111},
        GPT2[10]
    };

    @TempDir
    Path dir;

    private GgufTokenizer read(Path file) throws IOException {
        try (GgufFile gguf = GgufFile.open(file)) {
            return GgufTokenizer.read(gguf);
        }
    }

    private static void assertIds(GgufTokenizer tokenizer, int[][] expected) {
        for (int i = 0; i < TEXTS.length; i++) {
            assertArrayEquals(expected[i], tokenizer.encode(TEXTS[i], true, true), "\"" + TEXTS[i] + "\"");
        }
    }

    @Test
    void sentencePieceIdsAreLlamaCpps() throws IOException {
        Path file = dir.resolve("spm.gguf");
        TokenizerFixtures.writeLlama(file);
        GgufTokenizer tokenizer = read(file);
        assertIds(tokenizer, LLAMA);
        assertEquals(1, tokenizer.bos().orElseThrow());
        assertEquals(2, tokenizer.eos().orElseThrow());
        assertArrayEquals(new int[] {278, 291}, tokenizer.encode("the hello", false, true), "without BOS");
    }

    @Test
    void byteLevelBpeIdsAreLlamaCpps() throws IOException {
        Path gpt2 = dir.resolve("gpt2.gguf");
        Path llama3 = dir.resolve("llama3.gguf");
        TokenizerFixtures.writeGpt2(gpt2, "gpt-2");
        TokenizerFixtures.writeGpt2(llama3, "llama-bpe");
        assertIds(read(gpt2), GPT2);
        assertIds(read(llama3), LLAMA3);
    }

    @Test
    void aTextTheHeapCannotEncodeIsRefusedBeforeItIsEncoded() throws IOException {
        // Some 112 bytes of heap a byte of text for either kind, without a character that never merges: 1.75 heaps.
        String text = "hello ".repeat((int) (Runtime.getRuntime().maxMemory() / 64 / 6));
        Path spm = dir.resolve("spm.gguf");
        Path gpt2 = dir.resolve("gpt2.gguf");
        TokenizerFixtures.writeLlama(spm);
        TokenizerFixtures.writeGpt2(gpt2, "gpt-2");
        for (Path file : List.of(spm, gpt2)) {
            GgufTokenizer tokenizer = read(file);
            InsufficientMemoryException e = assertThrows(
                    InsufficientMemoryException.class, () -> tokenizer.encode(text, true, false), file.toString());
            // SentencePiece counts each space as the 3 bytes of ▁.
            String bytes = file == spm
                    ? text.length() / 6 * 8 + " bytes of text with the GGUF file's llama"
                    : text.length() + " bytes of text with the GGUF file's gpt2";
            assertTrue(e.getMessage().startsWith("encoding " + bytes + " tokenizer needs "), e.getMessage());
            assertTrue(e.getMessage().contains("of Java heap (-Xmx)"), e.getMessage());
        }
    }

    @Test
    void sentencePieceEncodesEachLineInTheHeapOfALine() throws IOException {
        // No piece of the fixture holds a newline, so no merge reaches across one: lines encode apart, to the same ids,
        // where the whole text at once (some 70 bytes a byte) would not fit in the heap.
        Path file = dir.resolve("spm.gguf");
        TokenizerFixtures.writeLlama(file);
        GgufTokenizer tokenizer = read(file);
        String line = "the hello world\n";
        int lines = (int) (Runtime.getRuntime().maxMemory() / 40 / line.length());
        int[] one = tokenizer.encode(line, false, false);
        int[] two = tokenizer.encode(line.repeat(2), false, false);
        int[] ids = tokenizer.encode(line.repeat(lines), false, false);
        int each = two.length - one.length;
        assertEquals(one.length + (long) (lines - 1) * each, ids.length);
        assertArrayEquals(one, Arrays.copyOf(ids, one.length));
        for (int at = one.length; at < ids.length; at += each) {
            assertArrayEquals(
                    Arrays.copyOfRange(two, one.length, two.length),
                    Arrays.copyOfRange(ids, at, at + each),
                    "at " + at);
        }
    }

    @Test
    void sentencePieceMergesAsARescanOfEveryPairDoes() throws IOException {
        Map<String, GgufValue> m = GgufTokenizer.metadata(TokenizerFixtures.llama2cVocabulary(0));
        Path file = dir.resolve("spm.gguf");
        TokenizerFixtures.writeLlama(file);
        GgufTokenizer tokenizer = read(file);
        String[] pieces = (String[]) m.get("tokenizer.ggml.tokens").value();
        float[] scores = (float[]) m.get("tokenizer.ggml.scores").value();
        // Newline, tab, "3", "!" and 中 are in no piece of two characters or more; the rest merge.
        String[] pool = {"the", "hello", " ", "\n", "\t", "3", "!", "é", "中", "l", "o", "wo", "12", "rld", "ca", "f"};
        SplittableRandom random = new SplittableRandom(7);
        for (int i = 0; i < 2000; i++) {
            String text = randomText(random, pool, 1, 30);
            assertArrayEquals(rescan(text, pieces, scores), tokenizer.encode(text, false, false), "\"" + text + "\"");
        }
    }

    /** Up to {@code most - 1} (at least {@code least}) pieces of the pool, at random. */
    private static String randomText(SplittableRandom random, String[] pool, int least, int most) {
        StringBuilder text = new StringBuilder();
        for (int n = random.nextInt(least, most); n > 0; n--) {
            text.append(pool[random.nextInt(pool.length)]);
        }
        return text.toString();
    }

    /**
     * SentencePiece as llama.cpp's loop reads, without its queue: with a space before the text and {@code ▁} for
     * spaces, merge the best-scoring adjacent pair that is a piece (the leftmost among equals) until none is, then
     * each symbol is its piece or its bytes' tokens.
     */
    private static int[] rescan(String text, String[] pieces, float[] scores) {
        Map<String, Integer> ids = new HashMap<>();
        for (int id = 0; id < pieces.length; id++) {
            ids.put(pieces[id], id);
        }
        List<String> symbols = new ArrayList<>();
        ("▁" + text.replace(" ", "▁")).codePoints().forEach(c -> symbols.add(Character.toString(c)));
        while (true) {
            int best = -1;
            for (int i = 0; i + 1 < symbols.size(); i++) {
                Integer id = ids.get(symbols.get(i) + symbols.get(i + 1));
                if (id != null
                        && (best < 0 || scores[id] > scores[ids.get(symbols.get(best) + symbols.get(best + 1))])) {
                    best = i;
                }
            }
            if (best < 0) {
                break;
            }
            symbols.set(best, symbols.get(best) + symbols.remove(best + 1));
        }
        List<Integer> out = new ArrayList<>();
        for (String symbol : symbols) {
            Integer id = ids.get(symbol);
            if (id != null) {
                out.add(id);
            } else {
                for (byte b : symbol.getBytes(StandardCharsets.UTF_8)) {
                    out.add(ids.get("<0x%02X>".formatted(b & 0xFF)));
                }
            }
        }
        return out.stream().mapToInt(Integer::intValue).toArray();
    }

    @Test
    void specialTokensSplitTheTextAsOneSplitASpecialTokenDoes() throws IOException {
        // Overlapping special tokens, prefixes of each other, of equal length, of several UTF-16 chars and both kinds.
        Map<String, GgufValue> m = TokenizerFixtures.gpt2Metadata(
                "gpt-2",
                List.of("bc", "xy", "abcd", "dx", "中文"),
                List.of("<s>", "ab", "abc", "bcd", "cd", "<s><s>", "é<", "😀<", "ba", "cb"));
        Path file = dir.resolve("specials.gguf");
        GgufWriter.write(file, m, List.of());
        GgufTokenizer tokenizer = read(file);
        String[] tokens = (String[]) m.get("tokenizer.ggml.tokens").value();
        long[] types = (long[]) m.get("tokenizer.ggml.token_type").value();
        String[] pool = {"a", "b", "c", "d", "x", "y", "<", "s", ">", "é", "中", "文", "😀", " ", "<s>", "abcd"};
        SplittableRandom random = new SplittableRandom(11);
        for (int i = 0; i < 3000; i++) {
            String text = randomText(random, pool, 0, 25);
            for (boolean parseSpecial : new boolean[] {true, false}) {
                assertEquals(
                        splitOneSpecialAtATime(text, parseSpecial, tokens, types),
                        tokenizer.splitAtSpecials(text, parseSpecial),
                        "\"" + text + "\", parseSpecial " + parseSpecial);
            }
        }
    }

    @Test
    void splittingAtSpecialTokensTakesOnePassOverTheText() throws IOException {
        // 200000 special tokens and 1 MB of text: a pass a special token (the old split) compared 10^11 chars.
        List<String> control = new ArrayList<>();
        for (int i = 0; i < 200_000; i++) {
            control.add("<extra_" + i + ">");
        }
        Path file = dir.resolve("many.gguf");
        GgufWriter.write(file, TokenizerFixtures.gpt2Metadata("gpt-2", List.of(), control), List.of());
        GgufTokenizer tokenizer = read(file);
        String text = "hello <extra_5> world <extra_199999>".repeat(30_000);
        int[] ids = assertTimeoutPreemptively(Duration.ofSeconds(20), () -> tokenizer.encode(text, false, true));
        assertEquals(30_000, Arrays.stream(ids).filter(id -> id == 272 + 5).count());
        assertEquals(
                30_000, Arrays.stream(ids).filter(id -> id == 272 + 199_999).count());
    }

    /**
     * The split as llama.cpp writes it, and this class did: each special token (control, user-defined or unknown, the
     * longest in UTF-8 bytes first, then by id) in turn splits the text that those before it left, at its leftmost
     * occurrences.
     */
    private static List<Object> splitOneSpecialAtATime(
            String text, boolean parseSpecial, String[] tokens, long[] types) {
        List<Integer> specials = new ArrayList<>();
        for (int id = 0; id < tokens.length; id++) {
            if ((types[id] == 4 || (parseSpecial && (types[id] == 2 || types[id] == 3))) && !tokens[id].isEmpty()) {
                specials.add(id);
            }
        }
        specials.sort((a, b) -> Integer.compare(
                tokens[b].getBytes(StandardCharsets.UTF_8).length, tokens[a].getBytes(StandardCharsets.UTF_8).length));
        List<Object> fragments = new ArrayList<>();
        if (!text.isEmpty()) {
            fragments.add(text);
        }
        for (int special : specials) {
            List<Object> split = new ArrayList<>();
            for (Object fragment : fragments) {
                if (!(fragment instanceof String raw)) {
                    split.add(fragment);
                    continue;
                }
                int from = 0;
                for (int at = raw.indexOf(tokens[special]); at >= 0; at = raw.indexOf(tokens[special], from)) {
                    if (at > from) {
                        split.add(raw.substring(from, at));
                    }
                    split.add(special);
                    from = at + tokens[special].length();
                }
                if (from < raw.length()) {
                    split.add(raw.substring(from));
                }
            }
            fragments = split;
        }
        return fragments;
    }

    @Test
    void decodingGivesTheTextBack() throws IOException {
        Path spm = dir.resolve("spm.gguf");
        Path gpt2 = dir.resolve("gpt2.gguf");
        TokenizerFixtures.writeLlama(spm);
        TokenizerFixtures.writeGpt2(gpt2, "gpt-2");
        GgufTokenizer llama = read(spm);
        GgufTokenizer bpe = read(gpt2);
        for (String text : List.of("the hello world", "all 123 café!", "héllo 中文 😀", "\n\tthe", "  12 1212\n\n wo")) {
            assertEquals(text, llama.decode(llama.encode(text, true, false)), "llama: " + text);
            assertEquals(text, bpe.decode(bpe.encode(text, true, false)), "gpt2: " + text);
        }
    }

    @Test
    void userDefinedTokensOfAByteLevelVocabularyArePlainText() throws IOException {
        // llama.cpp matches user-defined tokens in any text and prints them as written: not through GPT-2's byte
        // alphabet, outside which "café" would print as invalid UTF-8 and "hello world" could not load.
        Path gpt2 = dir.resolve("user-defined.gguf");
        TokenizerFixtures.writeGpt2(gpt2, "gpt-2", List.of("café", "hello world"));
        GgufTokenizer bpe = read(gpt2);
        int cafe = 256 + 15 + 1;
        int[] ids = bpe.encode("say hello world, café", false, false);
        assertTrue(Arrays.stream(ids).anyMatch(id -> id == cafe + 1), Arrays.toString(ids));
        assertTrue(Arrays.stream(ids).anyMatch(id -> id == cafe), Arrays.toString(ids));
        assertEquals("say hello world, café", bpe.decode(ids));
        assertArrayEquals("café".getBytes(StandardCharsets.UTF_8), bpe.decode(-1, cafe));
    }

    @Test
    void controlTokensOutsideTheByteAlphabetLoadAndStandForNothing() throws IOException {
        // As DeepSeek's distilled Llama files have: fullwidth bars and ▁ in a control token, or a space in one.
        Path file = dir.resolve("control.gguf");
        GgufWriter.write(
                file,
                TokenizerFixtures.gpt2Metadata("llama-bpe", List.of(), List.of("<｜begin▁of▁sentence｜>", "<|im end|>")),
                List.of());
        GgufTokenizer bpe = read(file);
        int begin = 256 + 15 + 1;
        int[] ids = bpe.encode("hello<｜begin▁of▁sentence｜> all<|im end|>", false, true);
        assertEquals(begin, ids[1], Arrays.toString(ids));
        assertEquals(begin + 1, ids[ids.length - 1], Arrays.toString(ids));
        assertEquals("hello all", bpe.decode(ids));
        assertArrayEquals(new byte[0], bpe.decode(-1, begin));
    }

    @Test
    void unknownAndUnusedTokensPrintAsNothingAsLlamaCppPrintsThem() throws IOException {
        Map<String, GgufValue> m = TokenizerFixtures.gpt2Metadata("gpt-2", List.of(), List.of("<unk>", "<unused3>"));
        int unknown = 256 + 15 + 1;
        int[] types = new int[unknown + 2];
        Arrays.fill(types, 1);
        types[unknown - 1] = 3;
        types[unknown] = 2;
        types[unknown + 1] = 5;
        m.put("tokenizer.ggml.token_type", GgufValue.of(types));
        Path file = dir.resolve("unknown.gguf");
        GgufWriter.write(file, m, List.of());
        GgufTokenizer bpe = read(file);
        assertArrayEquals(new byte[0], bpe.decode(-1, unknown));
        assertArrayEquals(new byte[0], bpe.decode(-1, unknown + 1));
        assertEquals("hello", bpe.decode(bpe.encode("hello", false, false)));
    }

    @Test
    void generationEndsAtEveryEndOfTurnTokenLlamaCppStopsAt() throws IOException {
        int endOfText = 256 + 15;
        Map<String, GgufValue> m = TokenizerFixtures.gpt2Metadata(
                "llama-bpe", List.of(), List.of("<|eot_id|>", "<|im_end|>", "<x>", "<y>"));
        m.put("tokenizer.ggml.eom_token_id", GgufValue.uint32(endOfText + 3));
        Path file = dir.resolve("turns.gguf");
        GgufWriter.write(file, m, List.of());
        // EOS, the two turn endings by their spelling, and the end of message the file names; not <y>.
        assertEquals(
                java.util.Set.of(endOfText, endOfText + 1, endOfText + 2, endOfText + 3),
                read(file).endOfGeneration());
    }

    @Test
    void bosAndEosAreAddedAsTheFileOrLlamaCppsDefaultSays() throws IOException {
        int endOfText = 256 + 15;
        for (String pre : new String[] {"llama-bpe", "gpt-2"}) {
            Map<String, GgufValue> m = TokenizerFixtures.gpt2Metadata(pre, List.of(), List.of());
            m.remove("tokenizer.ggml.add_bos_token");
            Path file = dir.resolve(pre + ".gguf");
            GgufWriter.write(file, m, List.of());
            int[] ids = read(file).encode("hello", true, false);
            // llama.cpp adds BOS by default for Llama 3's pre-tokenizer only, among the byte-level ones.
            assertEquals(pre.equals("llama-bpe"), ids[0] == endOfText, pre + ": " + Arrays.toString(ids));
            m.put("tokenizer.ggml.add_eos_token", GgufValue.of(true));
            GgufWriter.write(file, m, List.of());
            ids = read(file).encode("hello", true, false);
            assertEquals(endOfText, ids[ids.length - 1], pre + " with add_eos_token: " + Arrays.toString(ids));
            assertEquals(1, read(file).encode("hello", false, false).length, pre + " without special tokens");
        }
    }

    @Test
    void badTokenizerMetadataIsAModelFormatException() throws IOException {
        Path file = dir.resolve("bad.gguf");
        assertRejected(file, Map.of("tokenizer.ggml.model", GgufValue.of("bert")), "\"bert\" is not supported");
        // A hostile value is shortened, and its terminal escapes written as escapes.
        assertRejected(
                file,
                Map.of("tokenizer.ggml.model", GgufValue.of("\u001b]52;c;" + "A".repeat(100) + "\u0007")),
                "tokenizer.ggml.model \"\\u001B]52;c;" + "A".repeat(33) + "... (108 chars)\" is not supported");
        assertRejected(
                file,
                llamaOfTwoTokens("tokenizer.ggml.scores", GgufValue.of(new float[] {0})),
                "tokenizer.ggml.scores has 1 entries for 2 tokens");
        assertRejected(
                file,
                llamaOfTwoTokens("tokenizer.ggml.bos_token_id", GgufValue.uint32(2)),
                "\"tokenizer.ggml.bos_token_id\" is 2, not in [0, 1]");
        assertRejected(
                file,
                Map.of(
                        "tokenizer.ggml.model",
                        GgufValue.of("gpt2"),
                        "tokenizer.ggml.pre",
                        GgufValue.of("qwen2"),
                        "tokenizer.ggml.tokens",
                        GgufValue.of(new String[] {"a"}),
                        "tokenizer.ggml.merges",
                        GgufValue.of(new String[] {})),
                "tokenizer.ggml.pre \"qwen2\" is not supported");
        assertRejected(
                file,
                llamaOfTwoTokens("tokenizer.ggml.scores", GgufValue.of(new float[] {0, Float.NaN})),
                "tokenizer.ggml.scores[1] is NaN");
        Map<String, GgufValue> repeated = TokenizerFixtures.gpt2Metadata("gpt-2", List.of(), List.of("Ġthe"));
        assertRejected(file, repeated, "tokenizer.ggml.tokens[272] repeats [258] \"Ġthe\"");
    }

    /** A llama tokenizer of the tokens "a" and "b", with one more key. */
    private static Map<String, GgufValue> llamaOfTwoTokens(String key, GgufValue value) {
        return Map.of(
                "tokenizer.ggml.model",
                GgufValue.of("llama"),
                "tokenizer.ggml.tokens",
                GgufValue.of(new String[] {"a", "b"}),
                key,
                value);
    }

    private void assertRejected(Path file, Map<String, GgufValue> metadata, String fragment) throws IOException {
        GgufWriter.write(file, new java.util.LinkedHashMap<>(metadata), List.of());
        ModelFormatException e = assertThrows(ModelFormatException.class, () -> read(file));
        assertTrue(e.getMessage().contains(fragment), e.getMessage());
    }
}
