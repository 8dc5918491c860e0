package dev.panamax.model.tokenizer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.panamax.model.backend.InsufficientMemoryException;
import dev.panamax.model.io.ModelFormatException;
import dev.panamax.model.testing.TokenizerFixtures;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
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

class Llama2cTokenizerTest {
    @TempDir
    Path dir;

    /** A vocabulary laid out as llama2.c's: specials, the 256 byte tokens, then pieces with scores. */
    static Llama2cTokenizer tokenizer(Object... pieceAndScore) {
        return TokenizerFixtures.llama2c(pieceAndScore);
    }

    private static final Llama2cTokenizer TOKENIZER = tokenizer(
            " ", -1, "h", -2, "e", -3, "l", -4, "o", -5, "w", -6, "r", -7, "d", -8, "中", -9, // 259..267
            "he", -10, "ll", -11, "hell", -12, "hello", -13, " hello", -14, // 268..272
            " w", -15, "or", -16, " wor", -17, " world", -18, "lo", -19, "ld", -20); // 273..278

    private int id(String piece) {
        for (int i = 0; i < TOKENIZER.vocabSize(); i++) {
            if (Arrays.equals(TOKENIZER.piece(i), piece.getBytes(StandardCharsets.UTF_8))) {
                return i;
            }
        }
        throw new AssertionError(piece);
    }

    @Test
    void mergesTheBestScoringPairFirstWithTheDummyPrefix() {
        // " " h e l l o → he(-10), ll(-11) … → " hello"; "lo"(-19) never wins over "ll"(-11).
        assertArrayEquals(new int[] {1, id(" hello"), id(" world"), 2}, TOKENIZER.encode("hello world", true, true));
        assertArrayEquals(new int[] {id(" hello")}, TOKENIZER.encode("hello", false, false));
        assertArrayEquals(new int[] {1}, TOKENIZER.encode("", true, false), "no dummy prefix for empty text");
        assertArrayEquals(new int[] {id(" "), id("o"), id("lo")}, TOKENIZER.encode("olo", false, false));
    }

    @Test
    void scoreDecidesBetweenOverlappingPairsAndTiesGoLeft() {
        Llama2cTokenizer abFirst = tokenizer(" ", 0, "a", 0, "b", 0, "c", 0, "ab", 3, "bc", 2);
        Llama2cTokenizer bcFirst = tokenizer(" ", 0, "a", 0, "b", 0, "c", 0, "ab", 2, "bc", 3);
        Llama2cTokenizer tie = tokenizer(" ", 0, "a", 0, "b", 0, "c", 0, "ab", 2, "bc", 2);
        assertArrayEquals(new int[] {259, 263, 262}, abFirst.encode("abc", false, false));
        assertArrayEquals(new int[] {259, 260, 264}, bcFirst.encode("abc", false, false));
        assertArrayEquals(new int[] {259, 263, 262}, tie.encode("abc", false, false));
    }

    @Test
    void aTextTheHeapCannotEncodeIsRefusedBeforeItIsEncoded() {
        // Some 80 bytes of heap a byte of text: 1.7 heaps.
        String text = "hello ".repeat((int) (Runtime.getRuntime().maxMemory() / 48 / 6));
        InsufficientMemoryException e =
                assertThrows(InsufficientMemoryException.class, () -> TOKENIZER.encode(text, true, false));
        assertTrue(
                e.getMessage().startsWith("encoding " + text.length() + " bytes of text with the llama2.c tokenizer"),
                e.getMessage());
    }

    @Test
    void fallsBackToBytesForUnknownCharacters() {
        // é is not in the vocabulary: its two UTF-8 bytes C3 A9 become <0xC3> <0xA9>; 中 is, as one token.
        assertArrayEquals(
                new int[] {1, id(" "), 3 + 0xC3, 3 + 0xA9, id("中"), 3 + 0xF0, 3 + 0x9F, 3 + 0x98, 3 + 0x80},
                TOKENIZER.encode("é中😀", true, false));
    }

    @Test
    void decodesStrippingTheDummyPrefixAfterBosAndMappingBytes() {
        for (String text : List.of("hello world", "é中😀 hello\n\tworld", " lead", "a", "")) {
            assertEquals(text, TOKENIZER.decode(TOKENIZER.encode(text, true, true)), text);
            assertEquals(
                    text.isEmpty() ? "" : " " + text,
                    TOKENIZER.decode(TOKENIZER.encode(text, false, false)),
                    "without BOS the prefix space stays");
        }
        assertArrayEquals("hello".getBytes(StandardCharsets.UTF_8), TOKENIZER.decode(1, id(" hello")));
        assertArrayEquals(" hello".getBytes(StandardCharsets.UTF_8), TOKENIZER.decode(5, id(" hello")));
        assertArrayEquals(new byte[] {10}, TOKENIZER.decode(1, 3 + 10));
        assertThrows(IllegalArgumentException.class, () -> TOKENIZER.decode(1, TOKENIZER.vocabSize()));
        assertThrows(IllegalArgumentException.class, () -> TOKENIZER.decode(-1));
    }

    @Test
    void writesAndReadsTokenizerBin() throws IOException {
        Path file = dir.resolve("tokenizer.bin");
        TOKENIZER.write(file);
        Llama2cTokenizer read = Llama2cTokenizer.read(file, TOKENIZER.vocabSize());
        for (int i = 0; i < TOKENIZER.vocabSize(); i++) {
            assertArrayEquals(TOKENIZER.piece(i), read.piece(i));
            assertEquals(TOKENIZER.score(i), read.score(i));
        }
        ByteBuffer bytes = ByteBuffer.wrap(Files.readAllBytes(file)).order(ByteOrder.LITTLE_ENDIAN);
        assertEquals(6, bytes.getInt(), "max_token_length: \"\\n</s>\\n\", \" world\" and \"<0x00>\" are 6 bytes");
        assertEquals(0f, bytes.getFloat());
        assertEquals(5, bytes.getInt(), "<unk>");
    }

    @Test
    void rejectsMalformedFilesNamingTheProblem() throws IOException {
        Path file = dir.resolve("tokenizer.bin");
        TOKENIZER.write(file);
        byte[] good = Files.readAllBytes(file);
        int n = TOKENIZER.vocabSize();

        assertRejected(file, Arrays.copyOf(good, good.length - 1), n, "truncated");
        assertRejected(file, Arrays.copyOf(good, good.length + 3), n, "3 bytes after the " + n + " tokens");
        assertRejected(file, good, n + 1, "truncated");
        assertRejected(file, good, Integer.MAX_VALUE, "cannot hold 2147483647 tokens");
        assertRejected(file, good, n - 1, "bytes after");
        assertRejected(file, new byte[2], n, "truncated");
        assertRejected(file, patch(good, 0, -1), n, "max_token_length -1");
        assertRejected(file, patch(good, 8, -7), n, "token 0 has length -7");
        assertRejected(file, patch(good, 8, 7), n, "token 0 has length 7, outside [0, max_token_length 6]");
        assertRejected(file, patch(good, 4, Float.floatToIntBits(Float.NaN)), n, "token 0 has score NaN");
        assertRejected(file, patch(good, 8, Integer.MAX_VALUE), n, "length 2147483647");
        // Token 3 must be <0x00>: "<unk>" (5 bytes) + "\n<s>\n" (5) + "\n</s>\n" (6) precede it.
        byte[] wrongByteToken = good.clone();
        wrongByteToken[4 + (8 + 5) + (8 + 5) + (8 + 6) + 8 + 4] = 'A';
        assertRejected(file, wrongByteToken, n, "token 3 is \"<0x0A>\", expected the byte-fallback token <0x00>");
    }

    @Test
    void encodesAsRunCsRescanningMergeDoesOnRandomVocabulariesAndTexts() {
        SplittableRandom random = new SplittableRandom(19);
        String alphabet = "abc é中";
        for (int v = 0; v < 10; v++) {
            Llama2cTokenizer tokenizer = randomTokenizer(random, alphabet);
            Map<String, Integer> ids = new HashMap<>();
            for (int id = 0; id < tokenizer.vocabSize(); id++) {
                ids.putIfAbsent(new String(tokenizer.piece(id), StandardCharsets.ISO_8859_1), id);
            }
            for (int t = 0; t < 100; t++) {
                String text = randomText(random, alphabet, random.nextInt(80));
                boolean bos = random.nextBoolean();
                boolean eos = random.nextBoolean();
                assertArrayEquals(
                        rescanningEncode(tokenizer, ids, text, bos, eos), tokenizer.encode(text, bos, eos), text);
            }
        }
    }

    @Test
    void encodingTakesTimeNearLinearInTheText() {
        SplittableRandom random = new SplittableRandom(7);
        Llama2cTokenizer tokenizer = randomTokenizer(random, "ab c");
        String text = randomText(random, "ab c", 200_000); // the rescanning merge took 25 s for 40,000 characters
        int[] tokens = assertTimeoutPreemptively(Duration.ofSeconds(10), () -> tokenizer.encode(text, true, false));
        assertEquals(text, tokenizer.decode(tokens));
    }

    /**
     * A vocabulary of random short pieces over an alphabet, scores drawn from a few values so that ties are common,
     * some below run.c's floor of -1e10, and some pieces twice (the first id wins).
     */
    private static Llama2cTokenizer randomTokenizer(SplittableRandom random, String alphabet) {
        float[] scoreChoices = {-1, -2, -3, -2e10f};
        List<Object> pieceAndScore = new ArrayList<>(List.of(" ", -1));
        for (int i = 0; i < alphabet.length(); i++) {
            pieceAndScore.add(alphabet.substring(i, i + 1));
            pieceAndScore.add(-1);
        }
        for (int i = 0; i < 60; i++) {
            pieceAndScore.add(randomText(random, alphabet.replace("中", ""), 2 + random.nextInt(4)));
            pieceAndScore.add(scoreChoices[random.nextInt(scoreChoices.length)]);
        }
        return tokenizer(pieceAndScore.toArray());
    }

    private static String randomText(SplittableRandom random, String alphabet, int length) {
        StringBuilder text = new StringBuilder(length);
        for (int i = 0; i < length; i++) {
            text.append(alphabet.charAt(random.nextInt(alphabet.length())));
        }
        return text.toString();
    }

    /**
     * run.c's encoding as written: after the initial symbols, rescan every adjacent pair for each merge; {@code ids}
     * maps each piece (bytes as ISO-8859-1) to its first id.
     */
    private static int[] rescanningEncode(
            Llama2cTokenizer tokenizer, Map<String, Integer> ids, String text, boolean bos, boolean eos) {
        byte[] bytes = text.getBytes(StandardCharsets.UTF_8);
        List<Integer> tokens = new ArrayList<>();
        if (!text.isEmpty()) {
            tokens.add(ids.get(" "));
        }
        for (int start = 0; start < bytes.length; ) {
            int end = start + 1;
            while (end < bytes.length && (bytes[end] & 0xC0) == 0x80 && end - start < 4) {
                end++;
            }
            Integer id = ids.get(new String(bytes, start, end - start, StandardCharsets.ISO_8859_1));
            if (id != null) {
                tokens.add(id);
            } else {
                for (int i = start; i < end; i++) {
                    tokens.add(3 + (bytes[i] & 0xFF));
                }
            }
            start = end;
        }
        while (true) {
            float bestScore = -1e10f;
            int bestId = -1;
            int bestIndex = -1;
            for (int i = 0; i + 1 < tokens.size(); i++) {
                Integer merged = ids.get(new String(tokenizer.piece(tokens.get(i)), StandardCharsets.ISO_8859_1)
                        + new String(tokenizer.piece(tokens.get(i + 1)), StandardCharsets.ISO_8859_1));
                if (merged != null && tokenizer.score(merged) > bestScore) {
                    bestScore = tokenizer.score(merged);
                    bestId = merged;
                    bestIndex = i;
                }
            }
            if (bestIndex < 0) {
                break;
            }
            tokens.set(bestIndex, bestId);
            tokens.remove(bestIndex + 1);
        }
        if (bos) {
            tokens.addFirst(Llama2cTokenizer.BOS);
        }
        if (eos) {
            tokens.add(Llama2cTokenizer.EOS);
        }
        return tokens.stream().mapToInt(Integer::intValue).toArray();
    }

    private static byte[] patch(byte[] bytes, int offset, int value) {
        byte[] copy = bytes.clone();
        ByteBuffer.wrap(copy).order(ByteOrder.LITTLE_ENDIAN).putInt(offset, value);
        return copy;
    }

    private static void assertRejected(Path file, byte[] bytes, int vocabSize, String problem) throws IOException {
        Files.write(file, bytes);
        String message = assertThrows(ModelFormatException.class, () -> Llama2cTokenizer.read(file, vocabSize))
                .getMessage();
        assertTrue(message.startsWith(file + ": ") && message.contains(problem), message);
    }
}
