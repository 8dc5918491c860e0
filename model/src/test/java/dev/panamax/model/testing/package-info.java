/**
 * Test utilities of the model: {@link dev.panamax.model.testing.ReferenceTransformer}, float64 forward passes of both
 * families written from their definitions, independently of the model's code; {@link
 * dev.panamax.model.testing.RandomWeights}, shaped and scaled like trained ones; {@link
 * dev.panamax.model.testing.Segments}, weights in the loaders' form; {@link dev.panamax.model.testing.TinyModels}, the
 * two-layer models both backends' Transformer tests run; {@link dev.panamax.model.testing.TokenizerFixtures}, small
 * vocabulary-only GGUF files that llama.cpp's tokenizer also reads; {@link dev.panamax.model.testing.TokenFiles}, llm.c
 * token files with any header; {@link dev.panamax.model.testing.FloatArrays}, arrays put end to end; and {@link
 * dev.panamax.model.testing.SharedData}
 * and {@link dev.panamax.model.testing.Gpt2Vocabulary}, which find data kept outside the repository, so that a test
 * that needs it is skipped, saying why, where it is absent ({@link dev.panamax.model.testing.Prerequisites}: or fails,
 * where CI requires it).
 */
package dev.panamax.model.testing;
