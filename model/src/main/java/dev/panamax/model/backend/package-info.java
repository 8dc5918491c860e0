/**
 * The seam between the model and the hardware. {@link dev.panamax.model.backend.Backend} is every operation of a
 * Transformer's forward and backward pass and of its training step, on {@link dev.panamax.model.backend.Tensor}s the
 * backend owns; {@link dev.panamax.model.backend.CpuBackend} implements it on {@code dev.panamax.kernels}, {@link
 * dev.panamax.model.backend.CudaBackend} on cuBLAS and Panamax's CUDA C kernels (on a GPU, or on the emulated device
 * that runs the same kernels on the CPU), and {@link dev.panamax.model.backend.Backends#create} picks one by name.
 *
 * <p>The packages that hold the network ({@code nn}) and training ({@code train}) see only these two interfaces, never a
 * kernel: a tensor is an opaque handle to a row-major float32 matrix with row and column views, so that its storage
 * may be device memory. Outside this package the kernels are reached for what is not computation on tensors: a GGUF
 * model's block-format matrices are the kernels' {@code QuantizedMatrix} (built by {@code generate}, encoded by {@code
 * io} through {@code Quantization}), and the CLI's {@code demo} (which exercises the kernels themselves) and its {@code
 * --threads} option call them directly.
 *
 * <p>Conventions: activations are {@code [tokens, width]} matrices, one row per token, so a prompt goes through as a
 * batch and a decode step is the same call with one row; shapes are checked before anything is written; an output must
 * not overlap an input unless the method says it may; the backward of each operation training goes through is declared
 * next to it ({@code matmul} and {@code matmulBackward}, {@code layerNorm} and {@code layerNormBackward}, …), and
 * cross-entropy writes its gradient in the same call. Weight matrices come in two layouts, {@link
 * dev.panamax.model.backend.Backend.Layout#OUT_IN} (llama2.c) and {@link
 * dev.panamax.model.backend.Backend.Layout#IN_OUT} (GPT-2's {@code Conv1D}), which {@code matmul} takes as they are
 * stored.
 *
 * <p>Where {@code CpuBackend} keeps memory: tensors it allocates are native memory of one shared arena (shared so that
 * the kernels' worker threads may use them), freed by {@code close}; weights handed to {@code weights} are used in
 * place, so a memory-mapped checkpoint stays mapped and is never copied; training state (gradients and AdamW's moments)
 * is a {@code float[]} on the Java heap when it fits, where the memory-bound update kernels work on it in place, and
 * native memory otherwise. The kernels' thread pool is process-wide ({@code Parallelism}): a backend uses it as the
 * application set it and never resizes it, and results do not depend on its size.
 */
package dev.panamax.model.backend;
