/**
 * JMH benchmarks of the kernels, the CUDA bindings and the model, each next to the peer a user would pick instead
 * (OpenBLAS, EJML, plain Java loops; the native peers through the scripts beside this module), on the same seeded
 * inputs in the same run.
 *
 * <p>{@link dev.panamax.bench.Bench} runs a suite by name; methods named {@code panamax…} are Panamax's, the others
 * its peers'. {@link dev.panamax.bench.Workload} says what one operation does (GFLOP for compute-bound kernels, GB
 * read or read and written for memory-bound ones, tokens for a prompt) and {@code Report} turns JMH's JSON into a
 * Markdown table and a PNG plot of rates with their fork counts, ratios to each peer and fractions of a ceiling
 * measured on the development machine, where one is known. Ratios, not absolute times, are what survive a noisy shared
 * machine; the module's README gives the method.
 */
package dev.panamax.bench;
