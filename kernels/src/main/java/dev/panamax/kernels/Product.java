package dev.panamax.kernels;

/**
 * One product {@code C = alpha·op(A)·op(B) + beta·C}, with {@code op(A)} {@code m × k}, {@code op(B)} {@code k × n} and
 * C {@code m × n}, as SGEMM takes it; the arguments arrive checked.
 *
 * @param transA whether A is stored transposed ({@code k × m})
 * @param transB whether B is stored transposed ({@code n × k})
 * @param m rows of op(A) and C
 * @param n columns of op(B) and C
 * @param k columns of op(A), rows of op(B)
 * @param alpha the product's factor
 * @param a A
 * @param b B
 * @param beta C's factor; C is not read when it is 0
 * @param c C
 */
record Product(
        boolean transA, boolean transB, int m, int n, int k, float alpha, Matrix a, Matrix b, float beta, Matrix c) {
    /** Row {@code i} of this product alone: row i of op(A) against op(B), into row i of C. */
    Product row(int i) {
        return new Product(
                transA, true, 1, n, k, alpha, transA ? a.fromColumn(i) : a.fromRow(i), b, beta, c.fromRow(i));
    }

    /**
     * The float arrays behind the operands that are heap segments over one (else null), with the array index of each
     * operand's element (0, 0). Such operands are read and written with array vector operations and all others with
     * segment ones, each at call sites of their own: a segment vector operation that has seen both kinds compiles to
     * slow code for both, and users mix arrays and native memory in one JVM.
     */
    record ArrayOperands(float[] a, int aFirst, float[] b, int bFirst, float[] c, int cFirst) {
        static ArrayOperands of(Product o) {
            Operand a = Operand.of(o.a().data());
            Operand b = Operand.of(o.b().data());
            Operand c = Operand.of(o.c().data());
            return new ArrayOperands(
                    a.array,
                    first(a, o.a().offset()),
                    b.array,
                    first(b, o.b().offset()),
                    c.array,
                    first(c, o.c().offset()));
        }

        /** The array index of float {@code offset} of an operand that is an array; 0 otherwise. */
        private static int first(Operand operand, long offset) {
            return operand.array == null ? 0 : Math.toIntExact(operand.arrayBase + offset);
        }
    }
}
