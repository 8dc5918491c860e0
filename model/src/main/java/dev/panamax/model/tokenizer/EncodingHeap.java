package dev.panamax.model.tokenizer;

import dev.panamax.model.backend.MemorySize;

/**
 * The heap an encoding takes, checked before it is taken: a text within a command's size limit can still need many
 * times its size in working arrays, and an {@link OutOfMemoryError} halfway through helps nobody.
 */
final class EncodingHeap {
    private EncodingHeap() {}

    /**
     * Returns the length of {@code text[from, to)} in UTF-8, as {@link String#getBytes} would encode it (a lone
     * surrogate as one byte), without encoding it.
     *
     * @param text the text
     * @param from the first char
     * @param to past the last char
     * @param spaceBytes what a space counts for (SentencePiece writes it as the 3-byte {@code ▁})
     * @return the bytes
     */
    static long utf8Bytes(CharSequence text, int from, int to, int spaceBytes) {
        long bytes = 0;
        for (int i = from; i < to; i++) {
            char c = text.charAt(i);
            if (c == ' ') {
                bytes += spaceBytes;
            } else if (c < 0x80) {
                bytes += 1;
            } else if (c < 0x800) {
                bytes += 2;
            } else if (Character.isHighSurrogate(c) && i + 1 < to && Character.isLowSurrogate(text.charAt(i + 1))) {
                bytes += 4;
                i++;
            } else {
                bytes += Character.isSurrogate(c) ? 1 : 3;
            }
        }
        return bytes;
    }

    /**
     * Refuses an encoding the heap has no room for.
     *
     * @param tokenizer which tokenizer, for the message
     * @param textBytes the text's UTF-8 bytes, for the message
     * @param heapBytes the heap the encoding needs
     * @throws dev.panamax.model.backend.InsufficientMemoryException if the heap has less room than that
     */
    static void require(String tokenizer, long textBytes, long heapBytes) {
        MemorySize.requireHeap("encoding " + textBytes + " bytes of text with " + tokenizer, heapBytes);
    }
}
