/**
 * The model module's link between the kernels and cuda-bindings modules, which do not depend on each other: {@link
 * dev.panamax.model.gpu.KernelsHostGemm} serves cuBLAS's products on the emulated device with the kernels' SGEMM.
 */
package dev.panamax.model.gpu;
