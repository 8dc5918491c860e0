/**
 * The layers of a decoder-only Transformer, forward and backward, for both families of {@code
 * ModelConfig.Architecture}: GPT-2 (LayerNorm, GELU, learned positions, biases, {@code [in, out]} matrices) and Llama
 * (RMSNorm, RoPE, SwiGLU, grouped-query attention, {@code [out, in]} matrices).
 *
 * <p>{@link dev.panamax.model.nn.ModelConfig} is a configuration, every value and their consistency checked. {@link
 * dev.panamax.model.nn.Parameters} names every parameter tensor of a configuration, in a fixed order, with the names
 * of the family's own checkpoints (Hugging Face's {@code h.0.attn.c_attn.weight}, Meta's {@code
 * layers.0.attention.wq.weight}) and its kind, which decides initialisation and weight decay. {@link
 * dev.panamax.model.nn.LlamaWeights} and {@link dev.panamax.model.nn.Gpt2Weights} hold a family's weights as named
 * components, generic in what holds a tensor (a file's segment, then a backend's tensor): their {@code byName} and
 * {@code fromNames} are the one place where checkpoint names meet components, and {@code map} turns one into the
 * other under each name.
 *
 * <p>{@link dev.panamax.model.nn.Network} is built from such a record ({@code llama}, {@code gpt2}) or from a map of
 * tensors under those names ({@code of}, as a trainer holds its parameters), checks that each is present with its
 * shape, and runs on a {@code Backend} only. Inference (with a key/value cache) and training (activations kept per
 * block for the backward) call the same {@code forwardBlock}, which reads top to bottom like llm.c's layer code; they
 * differ only in the {@link dev.panamax.model.nn.Network.Activations} they hand it. {@code backwardBlock} is its
 * backward; it adds each weight's gradient into the tensor of the same name of a network built over gradient tensors.
 *
 * <p>Inside, a network keeps each block's tensors by role, built from the family's layer record by component name:
 * norms and projections (weight and bias), Llama's gate as an {@code Optional}, GPT-2's fused query-key-value matrix
 * split into three column views. The package depends on {@code backend} only.
 */
package dev.panamax.model.nn;
