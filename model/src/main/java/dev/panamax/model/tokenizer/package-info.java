/**
 * Tokenizers: llama2.c's {@code tokenizer.bin} (scored BPE with byte fallback, as {@code run.c} encodes; {@link
 * dev.panamax.model.tokenizer.Llama2cTokenizer}), GPT-2's byte-level BPE from {@code encoder.json} and {@code
 * vocab.bpe} ({@link dev.panamax.model.tokenizer.Gpt2Tokenizer}), and a character vocabulary built from a training text
 * and saved beside the model as {@code chars.json} ({@link dev.panamax.model.tokenizer.CharVocabulary}), and the
 * tokenizer a GGUF file carries in its metadata, encoding as llama.cpp does ({@link
 * dev.panamax.model.tokenizer.GgufTokenizer}). The character
 * vocabulary and GPT-2's, whose size their files give, check it against a model's vocabulary size ({@code
 * requireVocabularySize}); llama2.c's takes its size from the model. A malformed file
 * is a {@code ModelFormatException}.
 */
package dev.panamax.model.tokenizer;
