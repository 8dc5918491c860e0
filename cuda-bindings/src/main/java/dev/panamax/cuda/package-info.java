/**
 * The safe layer over CUDA: device memory, streams, events, cuBLAS handles and Panamax's own kernels, over the
 * jextract-generated bindings (internal, never edited by hand).
 *
 * <h2>Conventions</h2>
 *
 * <ul>
 *   <li><b>No GPU is a normal state.</b> {@link dev.panamax.cuda.Cuda#isAvailable()} and {@link
 *       dev.panamax.cuda.Cuda#unavailableReason()} say whether CUDA can run and why not, listing where the libraries
 *       were looked for; creating any CUDA object where it cannot throws {@link
 *       dev.panamax.cuda.CudaUnavailableException}, which callers catch to fall back to the CPU.
 *   <li><b>Arguments are checked in Java first.</b> Lengths, offsets, leading dimensions, launch dimensions, shared
 *       memory and kernel arguments are checked before a library sees them, as is the device of every buffer, stream and
 *       event given to a kernel, copy or handle; each message names the argument and the bound it broke, as in the
 *       kernels module. A failed call becomes a {@link dev.panamax.cuda.CudaException} (or
 *       {@link dev.panamax.cuda.CublasException}) naming the call, the status and the library's description.
 *   <li><b>Native resources are owned.</b> Buffers, streams, events, handles and modules are {@link AutoCloseable}; a
 *       second close does nothing, and use after close throws {@link IllegalStateException}. Each call that uses a
 *       resource holds it for the call's length, so a close on another thread waits for calls in progress instead of
 *       freeing memory under the driver. Any thread may close a resource; a stream and a cuBLAS handle are used by one
 *       thread at a time, buffers and modules (their kernels) by several at once.
 *   <li><b>Ordering.</b> Streams are created blocking, so the synchronous copies and the calls given no stream are
 *       ordered after the work queued on every stream.
 *   <li><b>The emulated device.</b> {@link dev.panamax.cuda.Cuda#useEmulatedDevice()} runs the same CUDA C sources the
 *       PTX is compiled from on the CPU, as cooperative fibers per block, and turns the GPU bugs it can see
 *       (out-of-bounds access, divergent barriers and warp operations, traps) into {@link
 *       dev.panamax.cuda.KernelFaultException}; the module's README lists what it cannot see.
 * </ul>
 */
package dev.panamax.cuda;
