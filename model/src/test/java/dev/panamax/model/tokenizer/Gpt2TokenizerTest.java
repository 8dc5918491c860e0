package dev.panamax.model.tokenizer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.knuddels.jtokkit.Encodings;
import com.knuddels.jtokkit.api.Encoding;
import com.knuddels.jtokkit.api.EncodingType;
import dev.panamax.model.backend.InsufficientMemoryException;
import dev.panamax.model.io.ModelFormatException;
import dev.panamax.model.testing.Gpt2Vocabulary;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class Gpt2TokenizerTest {
    /** Texts that exercise each branch of the pre-tokenizer and the byte-level fallback. */
    private static final List<String> TEXTS = List.of(
            "",
            " ",
            "\n",
            "Hello, world! This is GPT-2's tokenizer.",
            "   leading spaces and    runs\t\ttabs\n\n\nnewlines  \n  trailing   ",
            "I'm sure we can't, they've said she'd go, it's you're we'll DON'T I'M 'twas ''quoted''",
            "Café naïve façade résumé Ångström Zürich São Paulo ﬁ ligature e\u0301 combining",
            "日本語のテキスト、中文文本，한국어 텍스트 ไทย العربية עברית Ελληνικά русский",
            "emoji 👍🏽 family 👨‍👩‍👧‍👦 flags 🇫🇷🇩🇪 faces 😀😃😄 and 🧑‍💻",
            "numbers 1234567 3.14159 -42 1e10 ٣٤٥ ²³ Ⅻ ½",
            "<|endoftext|> ... --- !!! ?? $100 #hashtag @user https://example.com/a?b=c&d=e",
            "no\u00A0break\u2003em\u3000ideographic\u2028line\u0085next \u200Bzero-width",
            "control \u0000\u0001\u007F\u001B[0m chars",
            "antidisestablishmentarianism supercalifragilisticexpialidocious " + "a".repeat(300),
            "    def f(x):\n        return x ** 2  # comment\n\n\nclass A:\n\tpass\n");

    @TempDir
    Path dir;

    @Test
    void matchesJtokkitOnVariedText() throws IOException {
        Path vocabulary = Gpt2Vocabulary.require();
        Gpt2Tokenizer tokenizer =
                Gpt2Tokenizer.read(vocabulary.resolve("encoder.json"), vocabulary.resolve("vocab.bpe"));
        Encoding reference = Encodings.newDefaultEncodingRegistry().getEncoding(EncodingType.R50K_BASE);
        assertEquals(50257, tokenizer.vocabSize());
        assertEquals(50256, tokenizer.id("<|endoftext|>"));
        List<String> texts = new ArrayList<>(TEXTS);
        texts.addAll(randomTexts(300));
        for (String text : texts) {
            int[] ids = tokenizer.encode(text);
            assertArrayEquals(reference.encodeOrdinary(text).toArray(), ids, () -> "encoding \"" + text + "\"");
            assertEquals(text, tokenizer.decode(ids), "round trip");
        }
        assertArrayEquals(new int[] {15496, 11, 995, 0}, tokenizer.encode("Hello, world!"), "GPT-2's well-known ids");
    }

    /**
     * One pre-tokenizer piece of 200,000 letters (the pattern's {@code \p{L}+} is unbounded): merging rank by rank,
     * rescanning the piece for each, takes time in its length times the ranks applied, minutes here; merging from a
     * queue takes well under a second. The ids of a shorter run match jtokkit's.
     */
    @Test
    void aLongRunOfLettersEncodesInTimeNearLinearInItsLength() throws IOException {
        Path vocabulary = Gpt2Vocabulary.require();
        Gpt2Tokenizer tokenizer =
                Gpt2Tokenizer.read(vocabulary.resolve("encoder.json"), vocabulary.resolve("vocab.bpe"));
        SplittableRandom random = new SplittableRandom(11);
        StringBuilder letters = new StringBuilder();
        for (int i = 0; i < 200_000; i++) {
            letters.append((char) ('a' + random.nextInt(26)));
        }
        String text = letters.toString();
        int[] ids = assertTimeoutPreemptively(Duration.ofSeconds(10), () -> tokenizer.encode(text));
        assertEquals(text, tokenizer.decode(ids));
        String shorter = text.substring(0, 3000);
        Encoding reference = Encodings.newDefaultEncodingRegistry().getEncoding(EncodingType.R50K_BASE);
        assertArrayEquals(reference.encodeOrdinary(shorter).toArray(), tokenizer.encode(shorter));
    }

    /** Seeded random strings from a mix of scripts, digits, punctuation, spaces and emoji. */
    private static List<String> randomTexts(int count) {
        String[] pool = {
            "a", "Z", "e", "th", "'s", "'", "’", "1", "٣", " ", "  ", "\t", "\n", "\r\n", "\u00A0", "\u3000", ".", ",",
            "!", "-", "é", "ß", "ñ", "中", "語", "한", "ア", "α", "ж", "😀", "👍🏽", "🇫🇷", "\u200D", "€", "∑", "\u0301"
        };
        SplittableRandom random = new SplittableRandom(2024);
        List<String> texts = new ArrayList<>();
        for (int t = 0; t < count; t++) {
            StringBuilder text = new StringBuilder();
            int length = random.nextInt(1, 40);
            for (int i = 0; i < length; i++) {
                text.append(pool[random.nextInt(pool.length)]);
            }
            texts.add(text.toString());
        }
        return texts;
    }

    @Test
    void aTextTheHeapCannotEncodeIsRefusedBeforeItIsEncoded() {
        // Some 96 bytes of heap a byte of text: 2 heaps.
        String text = "hello ".repeat((int) (Runtime.getRuntime().maxMemory() / 48 / 6));
        InsufficientMemoryException e = assertThrows(
                InsufficientMemoryException.class, () -> tiny("h e", "l l").encode(text));
        assertTrue(
                e.getMessage().startsWith("encoding " + text.length() + " bytes of text with GPT-2's tokenizer"),
                e.getMessage());
    }

    /** A vocabulary of the 256 byte symbols (ids 0 to 255, in byte order) and the given merges, in order. */
    private static Gpt2Tokenizer tiny(String... merges) {
        Map<String, Integer> encoder = new LinkedHashMap<>();
        for (int b = 0; b < 256; b++) {
            encoder.put(symbol(b), b);
        }
        List<String[]> pairs = new ArrayList<>();
        for (String merge : merges) {
            String[] pair = merge.split(" ");
            pairs.add(pair);
            encoder.putIfAbsent(pair[0] + pair[1], encoder.size());
        }
        return new Gpt2Tokenizer(encoder, pairs);
    }

    /** GPT-2's printable stand-in for a byte. */
    private static String symbol(int b) {
        boolean printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        if (printable) {
            return String.valueOf((char) b);
        }
        int n = 0;
        for (int c = 0; c < b; c++) {
            if (!((c >= '!' && c <= '~') || (c >= 0xA1 && c <= 0xAC) || (c >= 0xAE && c <= 0xFF))) {
                n++;
            }
        }
        return String.valueOf((char) (256 + n));
    }

    @Test
    void mapsBytesToGpt2sAlphabetAndMergesByRank() {
        Gpt2Tokenizer bytesOnly = tiny();
        // ' ' is byte 32 → 'Ġ' (U+0120); '\n' → 'Ċ'; é is C3 A9, both printable Latin-1.
        assertEquals("Ġ", symbol(' '));
        assertEquals("Ċ", symbol('\n'));
        assertArrayEquals(new int[] {'a', ' ', 'b', 0xC3, 0xA9}, bytesOnly.encode("a bé"));
        // "aaa" with the merge "a a": every occurrence left to right, as encoder.py does → [aa, a].
        Gpt2Tokenizer aa = tiny("a a");
        assertArrayEquals(new int[] {256, 'a'}, aa.encode("aaa"));
        // Rank decides: with "b c" ranked before "a b", "abc" → [a, bc]; the other way round → [ab, c].
        assertArrayEquals(new int[] {'a', 256}, tiny("b c", "a b").encode("abc"));
        assertArrayEquals(new int[] {256, 'c'}, tiny("a b", "b c").encode("abc"));
        // Merges do not cross pre-token boundaries: " b" is one piece, "a" another.
        assertArrayEquals(new int[] {'a', 256}, tiny("Ġ b", "a Ġ").encode("a b"));
        for (int b = 0; b < 256; b++) {
            assertArrayEquals(new byte[] {(byte) b}, bytesOnly.decodeBytes(b));
        }
        assertEquals("\uFFFD", bytesOnly.decode(0xC3), "a lone lead byte decodes to the replacement character");
        assertThrows(IllegalArgumentException.class, () -> bytesOnly.decode(256));
        // A vocabulary without a byte's symbol (a GGUF file's need not have all 256) names the byte.
        Map<String, Integer> noZ = new LinkedHashMap<>();
        for (int b = 0; b < 'z'; b++) {
            noZ.put(symbol(b), b);
        }
        Gpt2Tokenizer withoutZ = new Gpt2Tokenizer(noZ, List.of());
        assertArrayEquals(new int[] {'a', 'y'}, withoutZ.encode("ay"));
        assertEquals(
                "the text has the byte 0x7A, which this vocabulary has no token for",
                assertThrows(IllegalArgumentException.class, () -> withoutZ.encode("az"))
                        .getMessage());
    }

    @Test
    void rejectsMalformedFilesNamingFileAndLine() throws IOException {
        StringBuilder bytes = new StringBuilder("{");
        for (int b = 0; b < 256; b++) {
            bytes.append(b == 0 ? "" : ",")
                    .append('"')
                    .append(symbol(b).equals("\"") ? "\\\"" : symbol(b).equals("\\") ? "\\\\" : symbol(b))
                    .append("\":")
                    .append(b);
        }
        String vocabulary = bytes + ",\"ab\":256}";
        assertRejected(vocabulary, "#version: 0.2\na b\n", null, null);
        assertRejected(vocabulary + "x", "a b\n", "encoder.json", "after the JSON value");
        assertRejected(vocabulary.replace(":256}", ":257}"), "a b\n", "encoder.json", "has id 257, outside [0, 257)");
        assertRejected(vocabulary.replace(":256}", ":5}"), "a b\n", "encoder.json", "id 5 is given to both");
        assertRejected(vocabulary.replace(":256}", ":-1}"), "a b\n", "encoder.json", "ab: value -1 is outside");
        assertRejected(
                vocabulary.replace("\"ab\"", "\"a b\""), "a b\n", "encoder.json", "not in GPT-2's byte alphabet");
        assertRejected(vocabulary, "#version: 0.2\na b\nab\n", "vocab.bpe", "line 3: \"ab\" is not two symbols");
        assertRejected(vocabulary, "#version: 0.2\na  b\n", "vocab.bpe", "line 2: \"a  b\" is not two symbols");
        assertRejected(vocabulary, "a b\nb c\n", "vocab.bpe", "line 2: merge \"b c\" makes \"bc\", which is not");
        assertRejected(vocabulary, "a b\nxy c\n", "vocab.bpe", "line 2: merge \"xy c\" joins \"xy\"");
        assertRejected(vocabulary, "a b\na b\n", "vocab.bpe", "line 2: merge \"a b\" repeats the merge of rank 0");
        Files.write(dir.resolve("vocab.bpe"), new byte[] {'a', ' ', (byte) 0xFF});
        ModelFormatException e = assertThrows(
                ModelFormatException.class,
                () -> Gpt2Tokenizer.read(dir.resolve("encoder.json"), dir.resolve("vocab.bpe")));
        assertTrue(
                e.getMessage().endsWith("vocab.bpe: not valid UTF-8: malformed byte sequence at byte 2"),
                e.getMessage());
    }

    @Test
    void aVocabularyOfAnotherSizeThanTheModelsIsRejectedNamingBoth() throws ModelFormatException {
        Gpt2Tokenizer tokenizer = tiny("a b"); // 257 tokens
        tokenizer.requireVocabularySize(257, Path.of("gpt2"), Path.of("model.safetensors"));
        for (int modelVocabSize : new int[] {256, 258}) {
            assertEquals(
                    "gpt2: GPT-2 tokenizer has 257 tokens, but the model model.safetensors has a vocabulary of "
                            + modelVocabSize + "; they must be equal (is this the model's tokenizer?)",
                    assertThrows(
                                    ModelFormatException.class,
                                    () -> tokenizer.requireVocabularySize(
                                            modelVocabSize, Path.of("gpt2"), Path.of("model.safetensors")))
                            .getMessage());
        }
        CharVocabulary chars = CharVocabulary.of("abc");
        chars.requireVocabularySize(3, Path.of("chars.json"), Path.of("model.safetensors"));
        assertEquals(
                "chars.json: character vocabulary has 3 tokens, but the model model.safetensors has a vocabulary of 4;"
                        + " they must be equal (is this the model's tokenizer?)",
                assertThrows(
                                ModelFormatException.class,
                                () -> chars.requireVocabularySize(
                                        4, Path.of("chars.json"), Path.of("model.safetensors")))
                        .getMessage());
    }

    @Test
    void aCharacterVocabularyOfSurrogatesIsRejected() throws IOException {
        Path file = dir.resolve("chars.json");
        Files.writeString(file, "{\"type\": \"chars\", \"code_points\": [97, 55357]}", StandardCharsets.UTF_8);
        ModelFormatException e = assertThrows(ModelFormatException.class, () -> CharVocabulary.read(file));
        assertTrue(e.getMessage().contains("element 1 (55357) is a UTF-16 surrogate"), e.getMessage());
        // Nor is one built from a Java string holding a lone surrogate, which could not be read back.
        IllegalArgumentException built =
                assertThrows(IllegalArgumentException.class, () -> CharVocabulary.of("ab\uD83Dc"));
        assertTrue(built.getMessage().contains("lone UTF-16 surrogate U+D83D"), built.getMessage());
    }

    private void assertRejected(String vocabulary, String merges, String file, String problem) throws IOException {
        Path encoder = dir.resolve("encoder.json");
        Path bpe = dir.resolve("vocab.bpe");
        Files.writeString(encoder, vocabulary, StandardCharsets.UTF_8);
        Files.writeString(bpe, merges, StandardCharsets.UTF_8);
        if (file == null) {
            assertArrayEquals(
                    new int[] {256, 'c'}, Gpt2Tokenizer.read(encoder, bpe).encode("abc"));
            return;
        }
        String message = assertThrows(ModelFormatException.class, () -> Gpt2Tokenizer.read(encoder, bpe))
                .getMessage();
        assertTrue(message.startsWith(dir.resolve(file) + ": ") && message.contains(problem), message);
    }
}
