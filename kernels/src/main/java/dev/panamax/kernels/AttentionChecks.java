package dev.panamax.kernels;

/**
 * Attention's argument checks: every view's extent against its storage, strides the kernels can step with int
 * indices, and no output sharing a float with an input or another output.
 */
final class AttentionChecks {
    private AttentionChecks() {}

    /** A view with its sizes and its argument's name, for the overlap checks. */
    record View(String name, TensorView view, int heads, int rows, int width) {
        /** Batch entry b's heads as {@link Checks.Strided} matrices; a stride of 0 (broadcast) counts one of a kind. */
        Checks.Strided entry(int b) {
            boolean oneRow = rows == 1 || view.rowStride() == 0;
            return new Checks.Strided(
                    name,
                    name + ".row(" + b + ", 0, 0) at",
                    view.data(),
                    view.row(b, 0, 0),
                    rows == 0 ? 0 : oneRow ? 1 : rows,
                    width,
                    oneRow ? Math.max(1, width) : view.rowStride(),
                    view.headStride());
        }

        int matrices() {
            return heads == 0 ? 0 : view.headStride() == 0 ? 1 : heads;
        }

        int entries(int batch) {
            return view.batchStride() == 0 ? Math.min(1, batch) : batch;
        }

        /** The whole tensor as one run of floats, from its first element to the end of its last row. */
        Checks.Strided span(int batch) {
            if (batch == 0 || heads == 0 || rows == 0 || width == 0) {
                return null;
            }
            return Checks.Strided.vector(name, view.data(), view.offset(), view.span(batch, heads, rows, width));
        }
    }

    static View[] inputs(Attention.Shape s, TensorView q, TensorView k, TensorView v, TensorView mask) {
        View[] inputs = {
            new View("q", q, s.qHeads(), s.tq(), s.headDim()),
            new View("k", k, s.kvHeads(), s.tk(), s.headDim()),
            new View("v", v, s.kvHeads(), s.tk(), s.headDim())
        };
        return mask == null ? inputs : append(inputs, new View("mask", mask, s.qHeads(), s.tq(), s.tk()));
    }

    static View[] append(View[] views, View... more) {
        View[] all = java.util.Arrays.copyOf(views, views.length + more.length);
        System.arraycopy(more, 0, all, views.length, more.length);
        return all;
    }

    /**
     * The output shares no float with any input: every pair of batch entries, heads as the matrices compared. An output
     * written over an input (dK over K, zeroed before it is read) would give a silently wrong answer.
     */
    static void checkOutput(int batch, View output, View... inputs) {
        Checks.Strided outputSpan = output.span(batch);
        if (outputSpan == null) {
            return;
        }
        for (View input : inputs) {
            Checks.Strided inputSpan = input.span(batch);
            // Tensors in different buffers (the usual case) are told apart at once, without a pair of entries.
            if (inputSpan == null || !Checks.mayShare(outputSpan, inputSpan)) {
                continue;
            }
            Checks.Strided[] read = new Checks.Strided[input.entries(batch)];
            for (int c = 0; c < read.length; c++) {
                read[c] = input.entry(c);
            }
            for (int b = 0; b < output.entries(batch); b++) {
                Checks.Strided written = output.entry(b);
                for (Checks.Strided entry : read) {
                    Checks.unshared(written, output.matrices(), entry, input.matrices());
                }
            }
        }
    }

    /** The kernels step through these views' rows with int indices into arrays. */
    static void checkIntStride(String name, TensorView view) {
        if (view.rowStride() > Integer.MAX_VALUE) {
            throw new IllegalArgumentException(
                    name + ".rowStride (" + view.rowStride() + ") must be <= " + Integer.MAX_VALUE);
        }
    }

    /** Checks the views forward and backward share; {@code oWritten}: o is the forward's output, not an input. */
    static void checkViews(
            Attention.Shape s,
            TensorView q,
            TensorView k,
            TensorView v,
            TensorView mask,
            TensorView o,
            boolean oWritten,
            TensorView lse) {
        Checks.notNull("q", q).check("q", s.batch(), s.qHeads(), s.tq(), s.headDim(), false);
        Checks.notNull("k", k).check("k", s.batch(), s.kvHeads(), s.tk(), s.headDim(), false);
        Checks.notNull("v", v).check("v", s.batch(), s.kvHeads(), s.tk(), s.headDim(), false);
        Checks.notNull("o", o).check("o", s.batch(), s.qHeads(), s.tq(), s.headDim(), oWritten);
        if (mask != null) {
            mask.check("mask", s.batch(), s.qHeads(), s.tq(), s.tk(), false);
        }
        if (lse != null) {
            lse.check("lse", s.batch(), s.qHeads(), s.tq(), 1, true);
        }
        checkIntStride("q", q);
        checkIntStride("k", k);
        checkIntStride("v", v);
    }

    /** The forward's checks, in the order {@link Attention#forward} documents them. */
    static void forward(AttentionCall c) {
        Attention.Shape shape = c.shape();
        TensorView q = c.q(), k = c.k(), v = c.v(), mask = c.mask(), o = c.o(), lse = c.lse();
        Checks.notNull("shape", shape);
        Checks.finite("scale", c.scale());
        checkViews(shape, q, k, v, mask, o, true, lse);
        View[] inputs = inputs(shape, q, k, v, mask);
        View output = new View("o", o, shape.qHeads(), shape.tq(), shape.headDim());
        checkOutput(shape.batch(), output, inputs);
        if (lse != null) {
            checkOutput(shape.batch(), new View("lse", lse, shape.qHeads(), shape.tq(), 1), append(inputs, output));
        }
        long tiles = AttentionTiles.queryTiles(shape.tq());
        if ((long) shape.batch() * shape.qHeads() * tiles > Integer.MAX_VALUE) {
            throw tooManyTasks(
                    "batch (" + shape.batch() + ") × qHeads (" + shape.qHeads() + ") × query tiles of "
                            + AttentionTiles.QUERY_TILE + " (" + tiles + ")",
                    (long) shape.batch() * shape.qHeads() * tiles);
        }
    }

    /** Sizes whose tasks cannot be counted in an int, which broadcast (stride-0) inputs let pass the extent checks. */
    private static IllegalArgumentException tooManyTasks(String product, long tasks) {
        return new IllegalArgumentException(
                product + " is " + tasks + " tasks, more than the " + Integer.MAX_VALUE + " one call can run");
    }

    /** The backward's checks, in the order {@link Attention#backward} documents them. */
    static void backward(AttentionCall c) {
        Attention.Shape shape = c.shape();
        TensorView q = c.q(), k = c.k(), v = c.v(), mask = c.mask(), o = c.o(), lse = c.lse();
        TensorView dO = c.dO(), dQ = c.dQ(), dK = c.dK(), dV = c.dV();
        Checks.notNull("shape", shape);
        Checks.finite("scale", c.scale());
        checkViews(shape, q, k, v, mask, o, false, null);
        Checks.notNull("lse", lse).check("lse", shape.batch(), shape.qHeads(), shape.tq(), 1, false);
        Checks.notNull("dO", dO).check("dO", shape.batch(), shape.qHeads(), shape.tq(), shape.headDim(), false);
        Checks.notNull("dQ", dQ).check("dQ", shape.batch(), shape.qHeads(), shape.tq(), shape.headDim(), true);
        Checks.notNull("dK", dK).check("dK", shape.batch(), shape.kvHeads(), shape.tk(), shape.headDim(), true);
        Checks.notNull("dV", dV).check("dV", shape.batch(), shape.kvHeads(), shape.tk(), shape.headDim(), true);
        if ((long) shape.batch() * shape.kvHeads() > Integer.MAX_VALUE) {
            throw tooManyTasks(
                    "batch (" + shape.batch() + ") × kvHeads (" + shape.kvHeads() + ")",
                    (long) shape.batch() * shape.kvHeads());
        }
        checkIntStride("dO", dO);
        checkIntStride("dQ", dQ);
        checkIntStride("dK", dK);
        checkIntStride("dV", dV);
        View[] read = append(
                inputs(shape, q, k, v, mask),
                new View("o", o, shape.qHeads(), shape.tq(), shape.headDim()),
                new View("lse", lse, shape.qHeads(), shape.tq(), 1),
                new View("dO", dO, shape.qHeads(), shape.tq(), shape.headDim()));
        View dq = new View("dQ", dQ, shape.qHeads(), shape.tq(), shape.headDim());
        View dk = new View("dK", dK, shape.kvHeads(), shape.tk(), shape.headDim());
        checkOutput(shape.batch(), dq, read);
        checkOutput(shape.batch(), dk, append(read, dq));
        checkOutput(
                shape.batch(), new View("dV", dV, shape.kvHeads(), shape.tk(), shape.headDim()), append(read, dq, dk));
    }
}
