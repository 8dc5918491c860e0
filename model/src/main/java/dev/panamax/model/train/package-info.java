/**
 * Training. {@link dev.panamax.model.train.Trainer} trains a Transformer of either family with AdamW on a {@code
 * Backend}: forward and backward through a {@code Network}, gradient accumulation over micro-batches, global-norm
 * clipping, warm-up and cosine decay of the learning rate, weight decay on matrices and embeddings only. It allocates
 * everything a step needs when it is made (weights, gradients, both moments, each block's activations), so a step
 * allocates nothing on the backend beyond the backend's own small scratch, which the first step sizes. {@code fit} runs epochs over a {@link dev.panamax.model.train.TokenDataset} and
 * reports {@link dev.panamax.model.train.Metrics} to {@link dev.panamax.model.train.Callback}s ({@link
 * dev.panamax.model.train.ProgressReporter}, {@link dev.panamax.model.train.LossCurve}, periodic checkpoints).
 *
 * <p>Reproducible and resumable: the data order depends only on the seed and the epoch, the kernels reduce in a fixed
 * order whatever the thread count, and a checkpoint holds the weights ({@code model.safetensors} and {@code
 * config.json} for GPT-2, or a llama2.c {@code model.bin}), AdamW's moments, and the step, options, products'
 * precision, the running epoch's sums and a fingerprint of the data. Each checkpoint goes into a new step directory that a link {@code current} is switched to once the
 * directory is complete and flushed, so a crash leaves the previous checkpoint or the new one whole. A resumed run gives
 * the same bits as one that never stopped, on the same backend (and GPU).
 */
package dev.panamax.model.train;
