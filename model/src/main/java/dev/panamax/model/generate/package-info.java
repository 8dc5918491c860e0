/**
 * Text generation. {@link dev.panamax.model.generate.Transformer} holds a network, a key/value cache of its context
 * length (at most the model's context, allocated up front) and scratch activations for a batch of tokens; each {@code
 * forward} appends tokens at the current position, a prompt in batches of up to the Transformer's batch size and a
 * decode step as the same pass with one token. Its factories {@code llama} (a llama2.c checkpoint or a GGUF model) and
 * {@code gpt2} take a checkpoint's weights and hand each, under its name, to the backend. {@link
 * dev.panamax.model.generate.Generator} prefills the prompt, then decodes one token at a time and streams each to a
 * callback, stopping after a number of tokens or at a stop token. {@link dev.panamax.model.generate.Sampler} picks a
 * token: greedily, or from the softmax at a temperature restricted by top-k and top-p, from one generator seeded once,
 * so a seed reproduces a whole generation; logits that are not all finite are refused, never turned into a token.
 *
 * <p>Everything runs on a {@code Backend}. A {@code Transformer} and a {@code Sampler} are not thread-safe.
 */
package dev.panamax.model.generate;
