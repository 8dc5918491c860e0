/**
 * The test utilities every module's tests share, published as the {@code panamax-kernels} test-jar: seeded {@link
 * dev.panamax.kernels.testing.Inputs}, so that a failing test fails the same way everywhere; the float64 references
 * {@link dev.panamax.kernels.testing.ReferenceBlas}, {@link dev.panamax.kernels.testing.ReferenceOps} and {@link
 * dev.panamax.kernels.testing.ReferenceAttention}, written plainly and independently of the kernels they judge; {@link
 * dev.panamax.kernels.testing.FiniteDifferences}, the independent check of every backward formula; {@link
 * dev.panamax.kernels.testing.Tolerance}, whose failures name the worst element with its expected and actual value,
 * error and bound; and {@link dev.panamax.kernels.testing.Agreement}, the checks every kernel owes beyond accuracy
 * (array and segment forms give the same bits, any thread count gives the same bits, bad arguments are rejected as
 * documented).
 */
package dev.panamax.kernels.testing;
