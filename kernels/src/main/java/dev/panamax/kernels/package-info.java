/**
 * Panamax's CPU kernels: the matrix products, row operations and attention a transformer needs, on the Vector API.
 * This is the module's only exported package, and the module requires nothing but {@code jdk.incubator.vector}: no
 * other Panamax module, no third-party library (peers such as OpenBLAS appear only in {@code bench}).
 *
 * <h2>What it holds</h2>
 *
 * <ul>
 *   <li>{@link dev.panamax.kernels.Gemm}: SGEMM, SGEMV and strided batched SGEMM, with BLAS semantics (row-major,
 *       {@link dev.panamax.kernels.Transpose}, alpha and beta, leading dimensions, offsets), so that a user of {@code
 *       cblas_sgemm} needs no manual. The blocked loops, packing and micro-kernel behind it are package-private.
 *   <li>{@link dev.panamax.kernels.Attention}: fused, flash-style multi-head attention over {@link
 *       dev.panamax.kernels.TensorView}s (causal or masked, grouped-query, a KV cache as a view with spare capacity).
 *   <li>Row operations with their backward kernels: {@link dev.panamax.kernels.Softmax} (and log-softmax), {@link
 *       dev.panamax.kernels.LayerNorm}, {@link dev.panamax.kernels.RmsNorm}, {@link dev.panamax.kernels.Activations}
 *       (GELU, SiLU, SwiGLU), {@link dev.panamax.kernels.Rope}, {@link dev.panamax.kernels.Embedding}; {@link
 *       dev.panamax.kernels.CrossEntropy} writes the gradient of its loss in the same pass.
 *   <li>Flat operations for training: {@link dev.panamax.kernels.Elementwise} (add, axpy, scale, zero, sum of
 *       squares) and the {@link dev.panamax.kernels.AdamW} update.
 *   <li>Weights in GGML's formats, used in place (a mapped GGUF file): {@link dev.panamax.kernels.QuantizedProduct}
 *       multiplies float activations by a {@link dev.panamax.kernels.QuantizedMatrix} of any {@link
 *       dev.panamax.kernels.WeightFormat} (F32, F16, BF16, Q8_0, Q4_0); {@link dev.panamax.kernels.Quantization}
 *       encodes and decodes them.
 *   <li>{@link dev.panamax.kernels.Parallelism}: the one team of worker threads every kernel shares.
 * </ul>
 *
 * <h2>Conventions</h2>
 *
 * <p><b>Entry points.</b> Kernels are static methods (only {@link dev.panamax.kernels.Rope} is an object, holding its
 * cosine and sine tables). Each comes in a {@code float[]} form with {@code int} offsets and a {@code MemorySegment}
 * form with {@code long} offsets ({@link dev.panamax.kernels.Attention} takes {@link dev.panamax.kernels.TensorView}s,
 * which view either); offsets, strides and leading dimensions count floats. Scratch buffers (packed panels and tiles,
 * staged rows, the norms' and cross-entropy's partial sums) are per thread, kept in thread-locals and reused by the
 * next call on that thread.
 *
 * <p><b>Memory per thread.</b> Each thread that calls a kernel, and each worker of {@link
 * dev.panamax.kernels.Parallelism} that runs its tasks, keeps its scratch buffers between calls, each grown to what
 * the calls on that thread have needed:
 *
 * <ul>
 *   <li>SGEMM, and the products inside attention and the quantized product: packed blocks sized to the products, at
 *       most a 64 × 1024 block of A and a 1024 × 512 panel of B (2.3 MiB), and about as much again to copy operands
 *       out of native memory; a few KiB for a thread that only multiplies small matrices;
 *   <li>SGEMV: a copy of x, 4 KiB of column sums, and for a transposed product of many rows 8 × 16 KiB of panel sums;
 *   <li>row kernels: a row of each operand copied out of native memory; cross-entropy: the losses of up to 65536
 *       rows, a double each (512 KiB), on the calling thread;
 *   <li>the norms' backward: partial sums of the parameter gradients, at most 16 MiB (or four chunks of 32 rows per
 *       thread, where those are more);
 *   <li>attention: {@link dev.panamax.kernels.Attention#workspaceFloats}, on top of the products': tiles sized by the
 *       head size, whatever the sequence lengths (packed key and value tiles up to 2 MiB per kind), and on the calling
 *       thread of a decoding call the partial results of every batch entry and head;
 *   <li>the quantized product: the activations, when copied out of native memory; from 16 tokens on, 1024 columns of
 *       each of 64 rows of W decoded to floats (256 KiB), or a whole row where the last of a product's panels of 64
 *       rows has one; for fewer tokens, one row of Q8_0 or Q4_0 weights widened to floats.
 * </ul>
 *
 * <p>A copy of a whole operand (SGEMV's x, the quantized product's activations), a decoded row of W, and partial sums
 * or results (the norms', decoding attention's) above 16 MiB are not kept: they are allocated again by each call that
 * needs them, so that one large call does not pin its memory to the thread.
 *
 * <p><b>Forward and backward side by side.</b> The operations the model trains through have their backward kernel in
 * the same class, named {@code backward} next to {@code forward} ({@code logBackward} and {@code swigluBackward} next
 * to theirs), as llm.c pairs {@code *_forward} and {@code *_backward}. A product's gradients are products with
 * transposed operands, so {@link dev.panamax.kernels.Gemm} has no backward of its own.
 *
 * <p><b>Argument checks.</b> Every argument is checked at the entry point before anything is written, and every
 * message names the argument, its value and the bound it broke, e.g. {@code lda (3) must be >= k (4) for a
 * non-transposed A}: negative sizes and too-small leading dimensions throw {@link IllegalArgumentException}; offsets
 * or extents past the end of an array or segment throw {@link IndexOutOfBoundsException}; a closed segment throws
 * {@link IllegalStateException} and one confined to another thread {@link WrongThreadException}; an output that shares
 * memory with an input throws {@link IllegalArgumentException}, except the in-place case a kernel documents (the very
 * same offset and leading dimension).
 *
 * <p><b>The same bits for every thread count.</b> Work is split over the threads of {@link
 * dev.panamax.kernels.Parallelism} along dimensions that are not reduced, or into parts that the shape fixes and the
 * thread count never does, so each output element is reduced in one fixed order, however many threads there are and
 * whichever runs which task:
 *
 * <ul>
 *   <li>horizontal sums of a vector's lanes add them as a fixed pairwise tree, never with {@code reduceLanes}, whose
 *       order differs between interpreted and compiled code;
 *   <li>SGEMM cuts its task grid along rows and columns of C, never along k; row operations compute each row with the
 *       same code whatever range of rows a task holds;
 *   <li>reductions across rows have a fixed grouping: the norms' parameter gradients are summed over chunks of rows,
 *       each into its own partial, and the partials added in chunk order; cross-entropy keeps each row's loss and adds
 *       them in row order; the embedding backward splits by columns and adds tokens in order; attention's backward
 *       splits over (batch, key/value head), so each gradient of K and V has one owner;
 *   <li>decoding one query against a cache of side-by-side heads cuts the keys into four parts, each with its own
 *       online softmax, merged in part order.
 * </ul>
 *
 * <p>A NaN is NaN for every thread count. Its sign and payload are the arithmetic's, which the JVM does not fix: the
 * first, interpreted calls of a kernel may give another NaN than its compiled code (softmax writes {@link
 * java.lang.Float#NaN} itself, the same bits always).
 *
 * <p>Calls may come from any number of threads at once, also while the thread count changes. Small problems, and
 * segments that the team's workers may not access (a confined arena's), stay on the calling thread; a kernel called
 * from inside a parallel region runs inline.
 *
 * <p><b>Arrays, and segments staged through them.</b> Vector loops read and write {@code float[]} arrays: the JIT's
 * profile of the JDK's segment vector loads is shared by the whole process, and once it has seen two kinds of segment
 * the loads everywhere can compile to slower code. A {@code float[]} operand, or a writable heap segment over one, is
 * used in place; a row or span of any other segment is copied into a per-thread buffer and back. Four paths read
 * native memory in place with segment vector loads, because they stream it once and a copy would not overlap the
 * arithmetic: SGEMM's packing of B (eight rows of it read together) and its C tiles when C is not an array, GEMV's
 * matrix, and the keys and values of attention's decode path. The README's Benchmarks section says what this means
 * for an application.
 *
 * <p><b>Vector width.</b> The species is {@code FloatVector.SPECIES_PREFERRED}, fixed once per JVM; the system
 * property {@code panamax.vectorBits} (64, 128, 256 or 512) forces another, and the module's tests run again at 128,
 * 256 and 512 bits. Tails are handled with masks or scalar loops, never by reading past an operand's end.
 *
 * <p><b>Tests.</b> Every kernel is compared with a plain float64 implementation in test scope ({@code ReferenceBlas},
 * {@code ReferenceOps}, {@code ReferenceAttention} in the {@code dev.panamax.kernels.testing} package of the {@code
 * panamax-kernels} test-jar, which the other modules' tests use too), element by element within a bound per
 * element. Each backward is checked twice: the float64 reference's gradient against central finite differences of
 * the float64 forward, and the kernel against that reference. Tests also check that every thread count, and the
 * array and segment forms, give the same bits.
 */
package dev.panamax.kernels;
