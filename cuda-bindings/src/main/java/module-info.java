/** Panamax's GPU half: FFM bindings for the CUDA runtime and cuBLAS (not yet implemented: see issue 7). */
module dev.panamax.cuda {}
