/**
 * Model files: llama2.c checkpoints ({@link dev.panamax.model.io.Llama2cCheckpoint}, read and written),
 * GPT-2 in Hugging Face's layout ({@link dev.panamax.model.io.Gpt2Checkpoint}: {@code config.json} and {@code
 * model.safetensors}), the safetensors format itself ({@link dev.panamax.model.io.SafeTensors}, read and written,
 * float32, float16 and bfloat16), GGUF ({@link dev.panamax.model.io.GgufFile} reads any GGUF file of version 2 or 3,
 * {@link dev.panamax.model.io.GgufWriter} writes one, {@link dev.panamax.model.io.GgufLlama} reads and writes the Llama
 * architecture in it, its matrices in their GGML types), and llm.c's token files ({@link
 * dev.panamax.model.io.TokenFile}). A checkpoint gives its weights as the family's named record ({@link
 * dev.panamax.model.nn.LlamaWeights}, {@link dev.panamax.model.nn.Gpt2Weights}), which the network's package defines:
 * of {@code MemorySegment}s, or for a GGUF model of {@link dev.panamax.model.io.GgufLlama.Weight}s, each a matrix in
 * its GGML type.
 *
 * <p>Conventions: a file is checked before it is trusted (a regular file, its header against its size, every tensor's
 * type and shape against its byte range) and before anything its size did not justify is allocated ({@link
 * dev.panamax.model.io.BoundedFiles} reads small files with a size limit and strict UTF-8, JSON files among them, whose
 * {@code JsonException} it reports as a {@code ModelFormatException}). Every loader reports a bad
 * file with {@link dev.panamax.model.io.ModelFormatException}, whose message names the file and what is wrong. Float32
 * weights are memory-mapped and used in place, not copied; other float types in safetensors are converted once, and a
 * GGUF file's matrices stay in their GGML type, used in place. A checkpoint's
 * segments are valid until it is closed.
 */
package dev.panamax.model.io;
