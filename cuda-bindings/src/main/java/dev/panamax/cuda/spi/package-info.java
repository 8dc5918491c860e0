/**
 * What cuda-bindings asks of other modules without depending on them: {@link dev.panamax.cuda.spi.HostGemm}, the host
 * matrix product that serves cuBLAS's products on the emulated device, found with {@link java.util.ServiceLoader}.
 */
package dev.panamax.cuda.spi;
