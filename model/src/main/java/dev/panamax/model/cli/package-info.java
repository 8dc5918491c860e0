/**
 * The {@code panamax} command line ({@link dev.panamax.model.cli.Panamax}, the one public class): {@code generate},
 * {@code perplexity}, {@code train}, {@code quantize}, {@code tokenize}, {@code info} and the kernel {@code demo}. Each command's options are a table from which its parser,
 * its validation messages and its {@code --help} text are all made, so that they cannot disagree. Exit status 0 on
 * success; 1 when a file is missing, unreadable or malformed (one line naming the file and the option that named it)
 * or the demo's check failed; 2 for a usage error (the message and the command's usage line). Models are loaded
 * through {@code io} and run on the backend {@code --backend} picks ({@code Backends}); the demo calls the kernels
 * directly, since they are what it shows.
 */
package dev.panamax.model.cli;
