// The Transformer's kernels for the model's CudaBackend (dev.panamax.model.backend.CudaBackend): embedding, RMSNorm,
// LayerNorm, RoPE, GELU, SwiGLU, residual add, temperature softmax, argmax, causal grouped-query attention, the
// rounding of product operands to bfloat16, products and dequantization of GGML's block formats (F16, BF16, Q8_0,
// Q4_0), and the training side: every backward, cross-entropy with its gradient, the gradient norm's reductions and AdamW.
// Every matrix operand is (buffer, offset, ld): the element at row r, column c is buffer[offset + r·ld + c], so the
// backend's views (rows and columns of a larger tensor) are passed without copies. Reductions run in a fixed order
// (strided partial sums, then a tree in shared memory or a shuffle butterfly), never float atomics, so a launch gives
// the same bits every time and in any order the emulated device runs its threads.
#include "panamax_kernel.h"

#define ROW_THREADS_MAX 256
#define WARP 32
#define FLOAT_MAX 3.40282347e38f

// Rows of a row-wise kernel are walked by blockIdx.y with a stride of gridDim.y, so any row count fits the grid.

// y = a + b over a rows × cols matrix; grid (ceil(cols / blockDim.x), min(rows, 65535)).
extern "C" __global__ void add_matrix(global_ptr<const float> a, long long a_offset, int lda, global_ptr<const float> b,
        long long b_offset, int ldb, global_ptr<float> y, long long y_offset, int ldy, int rows, int cols) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= cols) {
        return;
    }
    for (int r = blockIdx.y; r < rows; r += gridDim.y) {
        y[y_offset + static_cast<long long>(r) * ldy + c] =
                a[a_offset + static_cast<long long>(r) * lda + c] + b[b_offset + static_cast<long long>(r) * ldb + c];
    }
}
PANAMAX_EXPORT(add_matrix)

// Every row of y = the one row src (a bias before a product accumulates onto it); launched as add_matrix.
extern "C" __global__ void broadcast_row(global_ptr<const float> src, long long src_offset, global_ptr<float> y,
        long long y_offset, int ldy, int rows, int cols) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= cols) {
        return;
    }
    float value = src[src_offset + c];
    for (int r = blockIdx.y; r < rows; r += gridDim.y) {
        y[y_offset + static_cast<long long>(r) * ldy + c] = value;
    }
}
PANAMAX_EXPORT(broadcast_row)

// dst = src rounded to bfloat16 (to nearest even), a rows × cols matrix into a dense one (row stride cols): the
// operands of a product with bfloat16 inputs; launched as add_matrix.
extern "C" __global__ void to_bfloat16(global_ptr<const float> src, long long src_offset, int lds,
        global_ptr<__nv_bfloat16> dst, int rows, int cols) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= cols) {
        return;
    }
    for (int r = blockIdx.y; r < rows; r += gridDim.y) {
        dst[static_cast<long long>(r) * cols + c] =
                __float2bfloat16_rn(src[src_offset + static_cast<long long>(r) * lds + c]);
    }
}
PANAMAX_EXPORT(to_bfloat16)

// y = 0 over a rows × cols matrix; launched as add_matrix.
extern "C" __global__ void zero_matrix(global_ptr<float> y, long long y_offset, int ldy, int rows, int cols) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= cols) {
        return;
    }
    for (int r = blockIdx.y; r < rows; r += gridDim.y) {
        y[y_offset + static_cast<long long>(r) * ldy + c] = 0.0f;
    }
}
PANAMAX_EXPORT(zero_matrix)

// GELU's tanh approximation 0.5·x·(1 + tanh(u)), u = √(2/π)·(x + 0.044715·x³), as the equal x·sigmoid(2u), which
// has no cancellation for negative x (the CPU kernels' form); launched as add_matrix.
extern "C" __global__ void gelu_forward(global_ptr<const float> x, long long x_offset, int ldx, global_ptr<float> y,
        long long y_offset, int ldy, int rows, int cols) {
    const float c1 = -1.5957691216057308f;  // -2·√(2/π)
    const float c2 = c1 * 0.044715f;
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= cols) {
        return;
    }
    for (int r = blockIdx.y; r < rows; r += gridDim.y) {
        float v = x[x_offset + static_cast<long long>(r) * ldx + c];
        y[y_offset + static_cast<long long>(r) * ldy + c] = v / (1.0f + expf(v * (c1 + c2 * v * v)));
    }
}
PANAMAX_EXPORT(gelu_forward)

// SwiGLU y = silu(gate)·up, silu(g) = g / (1 + e^-g); launched as add_matrix.
extern "C" __global__ void swiglu_forward(global_ptr<const float> gate, long long gate_offset, int ldgate,
        global_ptr<const float> up, long long up_offset, int ldup, global_ptr<float> y, long long y_offset, int ldy,
        int rows, int cols) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= cols) {
        return;
    }
    for (int r = blockIdx.y; r < rows; r += gridDim.y) {
        float g = gate[gate_offset + static_cast<long long>(r) * ldgate + c];
        float u = up[up_offset + static_cast<long long>(r) * ldup + c];
        y[y_offset + static_cast<long long>(r) * ldy + c] = g / (1.0f + expf(-g)) * u;
    }
}
PANAMAX_EXPORT(swiglu_forward)

// Row r of out = row tokens[r] of table (cols floats per row, dense); token ids are whole floats (exact below 2^24)
// because launches pass float buffers, and the backend checked each against the table's rows. Launched as
// add_matrix over rows × cols.
extern "C" __global__ void embedding_forward(global_ptr<const float> tokens, global_ptr<const float> table,
        global_ptr<float> out, long long out_offset, int ldout, int rows, int cols) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= cols) {
        return;
    }
    for (int r = blockIdx.y; r < rows; r += gridDim.y) {
        long long token = static_cast<long long>(tokens[r]);
        out[out_offset + static_cast<long long>(r) * ldout + c] = table[token * cols + c];
    }
}
PANAMAX_EXPORT(embedding_forward)

// Weights in GGML's formats, kept on the device as the file's bytes, read as 16-bit units (every row of every format
// is a whole number of them, and a unit holds its two bytes little-endian): format 0 Q8_0 (blocks of 32 elements: an
// fp16 scale d, then 32 int8 q; element = d·q), 1 Q4_0 (blocks of 32: d, then 16 bytes whose low nibbles are elements
// 0..15 and high nibbles 16..31; element = d·(q − 8)), 2 F16, 3 BF16. Row r starts r·row_units units after the
// matrix's first.
#define FORMAT_Q8_0 0
#define FORMAT_Q4_0 1
#define FORMAT_F16 2
#define FORMAT_BF16 3

// A binary16's value, exactly (subnormals, ±∞ and NaN payloads included), in integer arithmetic that the GPU and the
// emulated device share.
__device__ float half_to_float(unsigned short bits) {
    unsigned sign = (bits & 0x8000u) << 16;
    unsigned exponent = (bits >> 10) & 0x1fu;
    unsigned mantissa = bits & 0x3ffu;
    if (exponent == 0) {
        // mantissa·2⁻²⁴: exact, since the mantissa has 10 bits.
        float magnitude = static_cast<float>(mantissa) * 5.9604644775390625e-8f;
        return sign != 0 ? -magnitude : magnitude;
    }
    unsigned biased = exponent == 0x1fu ? 0xffu : exponent + 112u;
    return __int_as_float(static_cast<int>(sign | biased << 23 | mantissa << 13));
}

// The byte at `index` of the units from `units` (a row or a block).
__device__ unsigned weight_byte(global_ptr<const __half> units, int index) {
    unsigned pair = __half_as_ushort(units[index >> 1]);
    return (index & 1) != 0 ? pair >> 8 : pair & 0xffu;
}

// Element c of a row in `format`, as a float: the value the CPU's Quantization.dequantizeRow gives.
__device__ float weight_at(global_ptr<const __half> row, int format, int c) {
    if (format == FORMAT_F16) {
        return half_to_float(__half_as_ushort(row[c]));
    }
    if (format == FORMAT_BF16) {
        return __int_as_float(static_cast<int>(static_cast<unsigned>(__half_as_ushort(row[c])) << 16));
    }
    int j = c & 31;
    if (format == FORMAT_Q8_0) {
        global_ptr<const __half> block = row + (c >> 5) * 17;
        float d = half_to_float(__half_as_ushort(block[0]));
        return d * static_cast<float>(static_cast<signed char>(weight_byte(block + 1, j)));
    }
    global_ptr<const __half> block = row + (c >> 5) * 9;
    float d = half_to_float(__half_as_ushort(block[0]));
    unsigned packed = weight_byte(block + 1, j & 15);
    int q = static_cast<int>(j < 16 ? packed & 0xfu : packed >> 4) - 8;
    return d * static_cast<float>(q);
}

// Rows of a matrix in a GGML format dequantized into floats: out row r = weight row (use_ids ? ids[r] : first_row + r)
// (ids whole floats, checked by the backend). Launched as add_matrix over rows × cols.
extern "C" __global__ void dequantize_rows(global_ptr<const __half> w, long long w_offset, long long row_units,
        int format, global_ptr<const float> ids, int use_ids, int first_row, global_ptr<float> out,
        long long out_offset, int ldout, int rows, int cols) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= cols) {
        return;
    }
    for (int r = blockIdx.y; r < rows; r += gridDim.y) {
        long long source = use_ids != 0 ? static_cast<long long>(ids[r]) : static_cast<long long>(first_row) + r;
        out[out_offset + static_cast<long long>(r) * ldout + c] = weight_at(w + (w_offset + source * row_units), format, c);
    }
}
PANAMAX_EXPORT(dequantize_rows)

#define MATVEC_ROWS 8

// The integer values of elements e .. e + 3 of a Q8_0 or Q4_0 block (e a multiple of 4), before its scale: two
// 16-bit units hold their four bytes.
template <int FORMAT>
__device__ void block_quad(global_ptr<const __half> block, int e, float (&q)[4]) {
    int k = FORMAT == FORMAT_Q8_0 ? e : e & 15;
    unsigned low = __half_as_ushort(block[1 + (k >> 1)]);
    unsigned high = __half_as_ushort(block[2 + (k >> 1)]);
    unsigned bytes[4] = {low & 0xffu, low >> 8, high & 0xffu, high >> 8};
    PANAMAX_UNROLL
    for (int i = 0; i < 4; ++i) {
        q[i] = FORMAT == FORMAT_Q8_0 ? static_cast<float>(static_cast<signed char>(bytes[i]))
                                     : static_cast<float>(static_cast<int>(e < 16 ? bytes[i] & 0xfu : bytes[i] >> 4) - 8);
    }
}

// quantized_matvec's work for one format, so that the format's branches leave the loops: lane j of the warp of
// output o sums its columns in order (four consecutive elements at a time in Q8_0 and Q4_0, whose block scale it
// decodes once for them, Σ q·x then times the scale; one element at a time in F16 and BF16), then a fixed butterfly
// adds the lanes, so the bits are the same every run.
template <int FORMAT>
__device__ void matvec_row(global_ptr<const __half> row, int cols, global_ptr<const float> x, long long x_offset,
        int ldx, int rows, global_ptr<float> y, long long y_offset, int ldy, int o, int lane) {
    float sums[MATVEC_ROWS];
    PANAMAX_UNROLL
    for (int r = 0; r < MATVEC_ROWS; ++r) {
        sums[r] = 0.0f;
    }
    if (FORMAT == FORMAT_Q8_0 || FORMAT == FORMAT_Q4_0) {
        const int block_units = FORMAT == FORMAT_Q8_0 ? 17 : 9;
        for (int c = 4 * lane; c < cols; c += 4 * WARP) {
            global_ptr<const __half> block = row + (c >> 5) * block_units;
            float d = half_to_float(__half_as_ushort(block[0]));
            float q[4];
            block_quad<FORMAT>(block, c & 31, q);
            PANAMAX_UNROLL
            for (int r = 0; r < MATVEC_ROWS; ++r) {
                if (r < rows) {
                    global_ptr<const float> in = x + (x_offset + static_cast<long long>(r) * ldx + c);
                    sums[r] += d * (q[0] * in[0] + q[1] * in[1] + q[2] * in[2] + q[3] * in[3]);
                }
            }
        }
    } else {
        for (int c = lane; c < cols; c += WARP) {
            float weight = weight_at(row, FORMAT, c);
            PANAMAX_UNROLL
            for (int r = 0; r < MATVEC_ROWS; ++r) {
                if (r < rows) {
                    sums[r] += weight * x[x_offset + static_cast<long long>(r) * ldx + c];
                }
            }
        }
    }
    PANAMAX_UNROLL
    for (int r = 0; r < MATVEC_ROWS; ++r) {
        if (r < rows) {
            float sum = sums[r];
            for (int mask = WARP / 2; mask > 0; mask /= 2) {
                sum += __shfl_xor_sync(0xffffffffu, sum, mask);
            }
            if (lane == 0) {
                y[y_offset + static_cast<long long>(r) * ldy + o] = sum;
            }
        }
    }
}

// y = x·Wᵀ for W [outputs, cols] in a GGML format and at most MATVEC_ROWS rows of x (a decode's tokens), reading each
// weight once: warp w of block b computes output o = b·(blockDim.x / 32) + w for every row of x (matvec_row). Grid
// (ceil(outputs / warps)).
extern "C" __global__ void quantized_matvec(global_ptr<const __half> w, long long w_offset, long long row_units,
        int format, int outputs, int cols, global_ptr<const float> x, long long x_offset, int ldx, int rows,
        global_ptr<float> y, long long y_offset, int ldy) {
    int o = blockIdx.x * (blockDim.x / WARP) + threadIdx.x / WARP;
    int lane = threadIdx.x % WARP;
    if (rows > MATVEC_ROWS) {
        __trap();
    }
    if (o >= outputs) {
        return;  // the whole warp: its shuffles stay uniform
    }
    global_ptr<const __half> row = w + (w_offset + static_cast<long long>(o) * row_units);
    switch (format) {
        case FORMAT_Q8_0:
            matvec_row<FORMAT_Q8_0>(row, cols, x, x_offset, ldx, rows, y, y_offset, ldy, o, lane);
            break;
        case FORMAT_Q4_0:
            matvec_row<FORMAT_Q4_0>(row, cols, x, x_offset, ldx, rows, y, y_offset, ldy, o, lane);
            break;
        case FORMAT_F16:
            matvec_row<FORMAT_F16>(row, cols, x, x_offset, ldx, rows, y, y_offset, ldy, o, lane);
            break;
        default:
            matvec_row<FORMAT_BF16>(row, cols, x, x_offset, ldx, rows, y, y_offset, ldy, o, lane);
            break;
    }
}
PANAMAX_EXPORT(quantized_matvec)

// Traps unless the block is a row of a power-of-two number of threads up to ROW_THREADS_MAX: the shared scratch of the
// row reductions below has ROW_THREADS_MAX slots, one per threadIdx.x, and their trees halve blockDim.x exactly.
// Every kernel that calls them checks this first, since the condition is uniform over the block.
__device__ void require_row_block() {
    unsigned n = blockDim.x;
    if (blockDim.y != 1 || blockDim.z != 1 || n > ROW_THREADS_MAX || (n & (n - 1)) != 0) {
        __trap();
    }
}

// The sum of one value per thread of the block, in a fixed tree order; every thread gets it. The block is as
// require_row_block checks. The trailing barrier lets the caller reuse the scratch at once.
template <typename T>
__device__ T block_sum(T value, T (&scratch)[ROW_THREADS_MAX]) {
    unsigned t = threadIdx.x;
    scratch[t] = value;
    __syncthreads();
    for (unsigned half = blockDim.x / 2; half > 0; half /= 2) {
        if (t < half) {
            scratch[t] += scratch[t + half];
        }
        __syncthreads();
    }
    T sum = scratch[0];
    __syncthreads();
    return sum;
}

// The largest of one value per thread of the block (NaN loses to numbers, as in fmaxf); every thread gets it.
__device__ float block_max(float value, float (&scratch)[ROW_THREADS_MAX]) {
    unsigned t = threadIdx.x;
    scratch[t] = value;
    __syncthreads();
    for (unsigned half = blockDim.x / 2; half > 0; half /= 2) {
        if (t < half) {
            scratch[t] = fmaxf(scratch[t], scratch[t + half]);
        }
        __syncthreads();
    }
    float largest = scratch[0];
    __syncthreads();
    return largest;
}

// RMSNorm y = x / √(mean(x²) + epsilon) ⊙ weight, one block per row (grid (1, min(rows, 65535))); rstd[r] keeps the
// row's 1/√(mean(x²) + epsilon) when keep_rstd is 1. y may be x.
extern "C" __global__ void rmsnorm_forward(global_ptr<const float> x, long long x_offset, int ldx,
        global_ptr<const float> weight, long long weight_offset, global_ptr<float> y, long long y_offset, int ldy,
        global_ptr<float> rstd, long long rstd_offset, int keep_rstd, int rows, int cols, float epsilon) {
    __shared__ float scratch[ROW_THREADS_MAX];
    require_row_block();
    for (int r = blockIdx.y; r < rows; r += gridDim.y) {
        global_ptr<const float> in = x + (x_offset + static_cast<long long>(r) * ldx);
        float squares = 0.0f;
        for (int c = threadIdx.x; c < cols; c += blockDim.x) {
            squares += in[c] * in[c];
        }
        squares = block_sum(squares, scratch);
        float s = 1.0f / sqrtf(squares / cols + epsilon);
        global_ptr<float> out = y + (y_offset + static_cast<long long>(r) * ldy);
        for (int c = threadIdx.x; c < cols; c += blockDim.x) {
            out[c] = in[c] * s * weight[weight_offset + c];
        }
        if (keep_rstd != 0 && threadIdx.x == 0) {
            rstd[rstd_offset + r] = s;
        }
        __syncthreads();
    }
}
PANAMAX_EXPORT(rmsnorm_forward)

// LayerNorm y = (x - mean) / √(var + epsilon) ⊙ weight + bias, one block per row, the variance from a second pass
// over the deviations d = x - mu from the first mean mu (no cancellation), which also corrects mu by c = mean(d): mu
// is a float sum, off by about its spread on a row far from 0 with a small spread, while d is exact there (the CPU
// kernel's corrected two-pass algorithm). mean[r] = mu + c and rstd[r] kept when keep_statistics is 1. y may be x.
extern "C" __global__ void layernorm_forward(global_ptr<const float> x, long long x_offset, int ldx,
        global_ptr<const float> weight, long long weight_offset, global_ptr<const float> bias, long long bias_offset,
        global_ptr<float> y, long long y_offset, int ldy, global_ptr<float> mean, long long mean_offset,
        global_ptr<float> rstd, long long rstd_offset, int keep_statistics, int rows, int cols, float epsilon) {
    __shared__ float scratch[ROW_THREADS_MAX];
    require_row_block();
    for (int r = blockIdx.y; r < rows; r += gridDim.y) {
        global_ptr<const float> in = x + (x_offset + static_cast<long long>(r) * ldx);
        float sum = 0.0f;
        for (int c = threadIdx.x; c < cols; c += blockDim.x) {
            sum += in[c];
        }
        float mu = block_sum(sum, scratch) / cols;
        float squares = 0.0f;
        float deviations = 0.0f;
        for (int c = threadIdx.x; c < cols; c += blockDim.x) {
            float d = in[c] - mu;
            squares += d * d;
            deviations += d;
        }
        float correction = block_sum(deviations, scratch) / cols;
        float variance = block_sum(squares, scratch) / cols - correction * correction;
        // Rounding can leave a constant row's variance just below 0; a NaN (from NaN or ∞ in x) stays NaN, as on the
        // CPU, where fmaxf would make it 0 and rstd a plausible 1/√epsilon.
        variance = variance < 0.0f ? 0.0f : variance;
        float s = 1.0f / sqrtf(variance + epsilon);
        // (d - c)·s as d·s - c·s: far from 0 a float mean holds fewer bits than the deviations.
        float shift = -correction * s;
        global_ptr<float> out = y + (y_offset + static_cast<long long>(r) * ldy);
        for (int c = threadIdx.x; c < cols; c += blockDim.x) {
            out[c] = fmaf(in[c] - mu, s, shift) * weight[weight_offset + c] + bias[bias_offset + c];
        }
        if (keep_statistics != 0 && threadIdx.x == 0) {
            mean[mean_offset + r] = mu + correction;
            rstd[rstd_offset + r] = s;
        }
        __syncthreads();
    }
}
PANAMAX_EXPORT(layernorm_forward)

// Rotary position embedding in place on rows × (heads·head_dim), row r at position + r. cos and sin are the CPU
// Rope's tables [positions, head_dim] (sin already negated on the first element of each pair); pairing 0 rotates
// adjacent pairs (x[2k], x[2k+1]) (llama2.c), 1 the halves' pairs (x[k], x[k + head_dim/2]) (Hugging Face).
// sign -1 applies the inverse rotation (the backward). One thread per pair: grid (ceil(heads·head_dim/2 /
// blockDim.x), min(rows, 65535)).
extern "C" __global__ void rope_rotate(global_ptr<float> x, long long x_offset, int ldx, int rows, int heads,
        int head_dim, int position, global_ptr<const float> cos_table, global_ptr<const float> sin_table, int pairing,
        float sign) {
    int half = head_dim / 2;
    int pair = blockIdx.x * blockDim.x + threadIdx.x;
    if (pair >= heads * half) {
        return;
    }
    int head = pair / half;
    int k = pair % half;
    int first = pairing == 0 ? 2 * k : k;
    int second = pairing == 0 ? 2 * k + 1 : k + half;
    for (int r = blockIdx.y; r < rows; r += gridDim.y) {
        global_ptr<float> row = x + (x_offset + static_cast<long long>(r) * ldx + static_cast<long long>(head) * head_dim);
        long long table = static_cast<long long>(position + r) * head_dim;
        float a = row[first];
        float b = row[second];
        row[first] = a * cos_table[table + first] + b * (sign * sin_table[table + first]);
        row[second] = b * cos_table[table + second] + a * (sign * sin_table[table + second]);
    }
}
PANAMAX_EXPORT(rope_rotate)

// Each row replaced by softmax(row · inverse_temperature), one block per row; the maximum is subtracted first. As the
// CPU's Softmax: an input of -∞ gets 0, so a row of only -∞ gets zeros, never NaN; a NaN or +∞ makes its row NaN.
extern "C" __global__ void softmax_rows(global_ptr<float> x, long long x_offset, int ldx, int rows, int cols,
        float inverse_temperature) {
    __shared__ float scratch[ROW_THREADS_MAX];
    require_row_block();
    for (int r = blockIdx.y; r < rows; r += gridDim.y) {
        global_ptr<float> row = x + (x_offset + static_cast<long long>(r) * ldx);
        float largest = -INFINITY;
        for (int c = threadIdx.x; c < cols; c += blockDim.x) {
            largest = fmaxf(largest, row[c] * inverse_temperature);
        }
        largest = block_max(largest, scratch);
        float sum = 0.0f;
        for (int c = threadIdx.x; c < cols; c += blockDim.x) {
            float z = row[c] * inverse_temperature;
            // Where largest is -∞ too, exp(z - largest) would be NaN rather than the 0 of every other -∞ input.
            float e = z == -INFINITY ? 0.0f : expf(z - largest);
            row[c] = e;
            sum += e;
        }
        sum = block_sum(sum, scratch);
        // The sum is 0 only for a row of only -∞, whose zeros must stay zeros rather than become 0·∞ = NaN.
        float inverse_sum = sum == 0.0f ? 0.0f : 1.0f / sum;
        for (int c = threadIdx.x; c < cols; c += blockDim.x) {
            row[c] *= inverse_sum;
        }
        __syncthreads();
    }
}
PANAMAX_EXPORT(softmax_rows)

// result[r] = the column of row r's largest value, the first on ties, NaN never the largest; 0 when no value is above
// -∞ (as the CPU's loop starting from -∞ answers). One block per row; the column is a float, exact below 2^24.
extern "C" __global__ void argmax_rows(global_ptr<const float> x, long long x_offset, int ldx, int rows, int cols,
        global_ptr<float> result) {
    __shared__ float values[ROW_THREADS_MAX];
    __shared__ int columns[ROW_THREADS_MAX];
    require_row_block();
    unsigned t = threadIdx.x;
    for (int r = blockIdx.y; r < rows; r += gridDim.y) {
        global_ptr<const float> row = x + (x_offset + static_cast<long long>(r) * ldx);
        float best = -INFINITY;
        int best_column = -1;
        for (int c = t; c < cols; c += blockDim.x) {
            float v = row[c];
            if (v > best) {
                best = v;
                best_column = c;
            }
        }
        values[t] = best;
        columns[t] = best_column;
        __syncthreads();
        for (unsigned half = blockDim.x / 2; half > 0; half /= 2) {
            if (t < half) {
                float v = values[t + half];
                int c = columns[t + half];
                bool better = c >= 0 && (columns[t] < 0 || v > values[t] || (v == values[t] && c < columns[t]));
                if (better) {
                    values[t] = v;
                    columns[t] = c;
                }
            }
            __syncthreads();
        }
        if (t == 0) {
            result[r] = static_cast<float>(columns[0] < 0 ? 0 : columns[0]);
        }
        __syncthreads();
    }
}
PANAMAX_EXPORT(argmax_rows)

// dx = dy · GELU'(x), GELU(x) = x·σ with σ = 1 / (1 + e), e = exp(x·(c1 + c2·x²)) = e^(-2u): GELU' = σ + x·σ·(1 -
// σ)·2u', 2u' = -(c1 + 3·c2·x²). dx may be dy; launched as add_matrix.
extern "C" __global__ void gelu_backward(global_ptr<const float> x, long long x_offset, int ldx,
        global_ptr<const float> dy, long long dy_offset, int lddy, global_ptr<float> dx, long long dx_offset, int lddx,
        int rows, int cols) {
    const float c1 = -1.5957691216057308f;
    const float c2 = c1 * 0.044715f;
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= cols) {
        return;
    }
    for (int r = blockIdx.y; r < rows; r += gridDim.y) {
        float v = x[x_offset + static_cast<long long>(r) * ldx + c];
        float sigma = 1.0f / (1.0f + expf(v * (c1 + c2 * v * v)));
        float derivative = sigma - v * sigma * (1.0f - sigma) * (c1 + 3.0f * c2 * v * v);
        dx[dx_offset + static_cast<long long>(r) * lddx + c] = dy[dy_offset + static_cast<long long>(r) * lddy + c] * derivative;
    }
}
PANAMAX_EXPORT(gelu_backward)

// SwiGLU's gradients on n dense elements: with σ = σ(gate), dup = dy·gate·σ and dgate = dy·up·σ·(1 + gate·(1 − σ)).
// Grid-stride; outputs must not overlap the inputs.
extern "C" __global__ void swiglu_backward(global_ptr<const float> gate, long long gate_offset,
        global_ptr<const float> up, long long up_offset, global_ptr<const float> dy, long long dy_offset,
        global_ptr<float> dgate, long long dgate_offset, global_ptr<float> dup, long long dup_offset, long long n) {
    long long stride = static_cast<long long>(gridDim.x) * blockDim.x;
    for (long long i = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
        float g = gate[gate_offset + i];
        float sigma = 1.0f / (1.0f + expf(-g));
        float d = dy[dy_offset + i];
        dup[dup_offset + i] = d * g * sigma;
        dgate[dgate_offset + i] = d * up[up_offset + i] * sigma * (1.0f + g * (1.0f - sigma));
    }
}
PANAMAX_EXPORT(swiglu_backward)

// One AdamW step on n dense elements (the CPU kernel's formula): g = grad_scale·grad, m = β1·m + (1 - β1)·g,
// v = β2·v + (1 - β2)·g², param -= lr·(m·c1 / (√(v·c2) + ε) + wd·param), c1 and c2 the bias corrections. Grid-stride.
extern "C" __global__ void adamw_update(global_ptr<float> param, long long param_offset, global_ptr<const float> grad,
        long long grad_offset, global_ptr<float> m, long long m_offset, global_ptr<float> v, long long v_offset, long long n, float learning_rate, float beta1, float beta2, float epsilon,
        float weight_decay, float correction1, float correction2, float grad_scale, global_ptr<const float> step_totals,
        int scale_from_totals) {
    if (scale_from_totals != 0) {
        // The clipping factor clip_gradients left on the device; not finite when the norm was not: no update.
        grad_scale = step_totals[1];
        if (!isfinite(grad_scale)) {
            return;
        }
    }
    long long stride = static_cast<long long>(gridDim.x) * blockDim.x;
    for (long long i = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
        float g = grad[grad_offset + i] * grad_scale;
        float m_new = g * (1.0f - beta1) + m[m_offset + i] * beta1;
        float v_new = g * g * (1.0f - beta2) + v[v_offset + i] * beta2;
        m[m_offset + i] = m_new;
        v[v_offset + i] = v_new;
        float p = param[param_offset + i];
        float adam = m_new * correction1 / (sqrtf(v_new * correction2) + epsilon);
        param[param_offset + i] = p - learning_rate * (p * weight_decay + adam);
    }
}
PANAMAX_EXPORT(adamw_update)

#define SQUARES_SPAN 4096

// Block b sums the squares of elements b·4096 .. (b+1)·4096 − 1 of the rows × cols matrix read in row-major order, in
// double in a fixed order, and writes the sum as two floats (partials[2b] + partials[2b+1], the high part and the
// rest) at partials_offset + 2b, which the host (or clip_gradients) adds in block order in double: the same bits every
// run, whatever the device.
extern "C" __global__ void sum_of_squares_partials(global_ptr<const float> x, long long x_offset, int ldx, int rows,
        int cols, global_ptr<float> partials, long long partials_offset) {
    __shared__ double scratch[ROW_THREADS_MAX];
    require_row_block();
    long long n = static_cast<long long>(rows) * cols;
    long long start = static_cast<long long>(blockIdx.x) * SQUARES_SPAN;
    double sum = 0.0;
    for (long long i = start + threadIdx.x; i < n && i < start + SQUARES_SPAN; i += blockDim.x) {
        float value = x[x_offset + (i / cols) * ldx + i % cols];
        sum += static_cast<double>(value) * value;
    }
    sum = block_sum(sum, scratch);
    if (threadIdx.x == 0) {
        float high = static_cast<float>(sum);
        partials[partials_offset + 2 * blockIdx.x] = high;
        partials[partials_offset + 2 * blockIdx.x + 1] = static_cast<float>(sum - high);
    }
}
PANAMAX_EXPORT(sum_of_squares_partials)

// The sum of sum_of_squares_partials' pairs (high + rest) in double, by one block of ROW_THREADS_MAX threads: thread t
// adds pairs t, t + blockDim.x, ... in order, then a fixed tree adds the threads' sums, so every run and every device
// gives the same bits; every thread gets the sum.
__device__ double pairs_total(global_ptr<const float> partials, int pairs, double (&scratch)[ROW_THREADS_MAX]) {
    double sum = 0.0;
    for (int b = threadIdx.x; b < pairs; b += blockDim.x) {
        sum += static_cast<double>(partials[2 * b]) + static_cast<double>(partials[2 * b + 1]);
    }
    return block_sum(sum, scratch);
}

// The total of sum_of_squares_partials' pairs, for Backend.sumOfSquares: totals[totals_offset] +
// totals[totals_offset + 1] (the high part and the rest) is pairs_total's double, which the host adds back. Grid 1,
// block a power of two up to ROW_THREADS_MAX.
extern "C" __global__ void squares_total(global_ptr<const float> partials, int pairs, global_ptr<float> totals,
        long long totals_offset) {
    __shared__ double scratch[ROW_THREADS_MAX];
    require_row_block();
    double sum = pairs_total(partials, pairs, scratch);
    if (threadIdx.x == 0) {
        float high = static_cast<float>(sum);
        totals[totals_offset] = high;
        totals[totals_offset + 1] = static_cast<float>(sum - high);
    }
}
PANAMAX_EXPORT(squares_total)

// The gradients' global norm from sum_of_squares_partials' pairs (pairs_total, as squares_total adds them for
// Backend.sumOfSquares), and the clipping factor AdamW scales the gradients by: max_norm / norm when max_norm > 0 and
// the norm exceeds it, else 1; NaN when the norm is not finite. totals[0] = norm, totals[1] = factor. Grid 1, block a
// power of two up to ROW_THREADS_MAX.
extern "C" __global__ void clip_gradients(global_ptr<const float> partials, int pairs, float max_norm,
        global_ptr<float> totals) {
    __shared__ double scratch[ROW_THREADS_MAX];
    require_row_block();
    double sum = pairs_total(partials, pairs, scratch);
    if (threadIdx.x == 0) {
        float norm = static_cast<float>(sqrt(sum));
        float factor = max_norm > 0.0f && norm > max_norm ? max_norm / norm : 1.0f;
        totals[0] = norm;
        totals[1] = isfinite(norm) ? factor : __int_as_float(0x7fc00000);
    }
}
PANAMAX_EXPORT(clip_gradients)

// A micro-batch's mean loss (the rows' losses added in double, strided over the block's threads and then a fixed
// tree) and its count of rows whose argmax is the target, into totals[slot] and totals[slot + 1] (the count's int
// bits). Grid 1, block a power of two up to ROW_THREADS_MAX.
extern "C" __global__ void step_totals(global_ptr<const float> losses, global_ptr<const float> best,
        global_ptr<const float> targets, int rows, global_ptr<float> totals, int slot) {
    __shared__ double sums[ROW_THREADS_MAX];
    __shared__ int counts[ROW_THREADS_MAX];
    require_row_block();
    double sum = 0.0;
    int correct = 0;
    for (int r = threadIdx.x; r < rows; r += blockDim.x) {
        sum += losses[r];
        correct += static_cast<int>(best[r]) == static_cast<int>(targets[r]) ? 1 : 0;
    }
    sum = block_sum(sum, sums);
    correct = block_sum(correct, counts);
    if (threadIdx.x == 0) {
        totals[slot] = static_cast<float>(sum / rows);
        totals[slot + 1] = __int_as_float(correct);
    }
}
PANAMAX_EXPORT(step_totals)

// Cross-entropy of each row of logits against its target (a whole float): losses[r] = (max − x[target]) + log Σ
// e^(x - max), one block per row; with write_gradient 1, dlogits = gradient_scale·(softmax(x) − one-hot(target)).
// As the CPU's CrossEntropy: a logit of -∞ has probability 0, so a row of only -∞ has a NaN loss (-∞ - -∞) and the
// gradient -gradient_scale at its target, 0 elsewhere; a NaN logit makes its row's loss and gradient NaN.
// dlogits may be logits: every logit is read before the first is overwritten.
extern "C" __global__ void cross_entropy_rows(global_ptr<const float> logits, long long logits_offset, int ldlogits,
        int rows, int cols, global_ptr<const float> targets, global_ptr<float> dlogits, long long dlogits_offset,
        int lddlogits, int write_gradient, float gradient_scale, global_ptr<float> losses) {
    __shared__ float scratch[ROW_THREADS_MAX];
    __shared__ float target_logit;
    require_row_block();
    for (int r = blockIdx.y; r < rows; r += gridDim.y) {
        global_ptr<const float> row = logits + (logits_offset + static_cast<long long>(r) * ldlogits);
        int target = static_cast<int>(targets[r]);
        float largest = -INFINITY;
        for (int c = threadIdx.x; c < cols; c += blockDim.x) {
            largest = fmaxf(largest, row[c]);
        }
        largest = block_max(largest, scratch);
        float sum = 0.0f;
        for (int c = threadIdx.x; c < cols; c += blockDim.x) {
            // Where largest is -∞ too, exp(x - largest) would be NaN rather than 0.
            sum += row[c] == -INFINITY ? 0.0f : expf(row[c] - largest);
        }
        sum = block_sum(sum, scratch);
        if (threadIdx.x == 0) {
            target_logit = row[target];
            // The difference first: largest + logf(sum) would round away a small loss when the largest logit is big.
            losses[r] = (largest - target_logit) + logf(sum);
        }
        __syncthreads();
        if (write_gradient != 0) {
            global_ptr<float> out = dlogits + (dlogits_offset + static_cast<long long>(r) * lddlogits);
            // The sum is 0 only for a row of only -∞, whose probabilities are all 0.
            float inverse_sum = sum == 0.0f ? 0.0f : 1.0f / sum;
            for (int c = threadIdx.x; c < cols; c += blockDim.x) {
                float p = row[c] == -INFINITY ? 0.0f : expf(row[c] - largest) * inverse_sum;
                out[c] = gradient_scale * (c == target ? p - 1.0f : p);
            }
        }
        __syncthreads();
    }
}
PANAMAX_EXPORT(cross_entropy_rows)

// dtable[tokens[i]] += dout[i] for i in order, with the rows grouped by token on the host: groups holds the rows in
// token order (rows floats, each token's rows in increasing order), then each group's token (group_count floats), then
// where each group starts in the rows (group_count + 1 floats). Thread c of group g adds column c of its token's rows
// onto the table in row order, so repeated tokens give the bits of a sequential pass, without atomics, and the
// distinct tokens run in parallel. Grid (ceil(cols / blockDim.x), min(group_count, 65535)).
extern "C" __global__ void embedding_backward(global_ptr<const float> groups, int rows, int group_count,
        global_ptr<const float> dout, long long dout_offset, int lddout, global_ptr<float> dtable, int cols) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= cols) {
        return;
    }
    for (int g = blockIdx.y; g < group_count; g += gridDim.y) {
        long long token = static_cast<long long>(groups[rows + g]);
        int begin = static_cast<int>(groups[rows + group_count + g]);
        int end = static_cast<int>(groups[rows + group_count + g + 1]);
        float sum = dtable[token * cols + c];
        for (int i = begin; i < end; ++i) {
            sum += dout[dout_offset + static_cast<long long>(groups[i]) * lddout + c];
        }
        dtable[token * cols + c] = sum;
    }
}
PANAMAX_EXPORT(embedding_backward)

#define NORM_ROWS_SPAN 64

// The column sums a norm's weight (and bias) gradients need, in two launches. This one: thread c sums the rows of span
// y (rows y·NORM_ROWS_SPAN .. (y + 1)·NORM_ROWS_SPAN − 1) of column c in order, dy[r,c]·x̂[r,c] with x̂ = (x −
// mean[r])·rstd[r] (mean 0 for RMSNorm: has_mean 0) into partials[y·cols + c], and, with has_bias 1, dy[r,c] into
// partials[(spans + y)·cols + c]. Launched before the dx kernel, which may overwrite dy. Grid (ceil(cols /
// blockDim.x), min(spans, 65535)), spans = ceil(rows / NORM_ROWS_SPAN), blocks striding over the spans.
extern "C" __global__ void norm_backward_partials(global_ptr<const float> x, long long x_offset, int ldx,
        global_ptr<const float> dy, long long dy_offset, int lddy, global_ptr<const float> mean, long long mean_offset,
        int has_mean, global_ptr<const float> rstd, long long rstd_offset, int rows, int cols,
        global_ptr<float> partials, int spans, int has_bias) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= cols) {
        return;
    }
    for (int span = blockIdx.y; span < spans; span += gridDim.y) {
        int end = min(rows, (span + 1) * NORM_ROWS_SPAN);
        float weight_sum = 0.0f;
        float bias_sum = 0.0f;
        for (int r = span * NORM_ROWS_SPAN; r < end; ++r) {
            float d = dy[dy_offset + static_cast<long long>(r) * lddy + c];
            float centred =
                    x[x_offset + static_cast<long long>(r) * ldx + c] - (has_mean != 0 ? mean[mean_offset + r] : 0.0f);
            weight_sum += d * centred * rstd[rstd_offset + r];
            bias_sum += d;
        }
        partials[static_cast<long long>(span) * cols + c] = weight_sum;
        if (has_bias != 0) {
            partials[static_cast<long long>(spans + span) * cols + c] = bias_sum;
        }
    }
}
PANAMAX_EXPORT(norm_backward_partials)

// The second launch: dweight[c] += Σ_y partials[y·cols + c] and, with has_bias 1, dbias[c] += Σ_y partials[(spans +
// y)·cols + c], each over the spans in order, so the result has the same bits every run. Grid (ceil(cols /
// blockDim.x)).
extern "C" __global__ void norm_backward_weights(global_ptr<const float> partials, int spans, int cols,
        global_ptr<float> dweight, long long dweight_offset, global_ptr<float> dbias, long long dbias_offset,
        int has_bias) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= cols) {
        return;
    }
    float weight_sum = 0.0f;
    float bias_sum = 0.0f;
    for (int y = 0; y < spans; ++y) {
        weight_sum += partials[static_cast<long long>(y) * cols + c];
        if (has_bias != 0) {
            bias_sum += partials[static_cast<long long>(spans + y) * cols + c];
        }
    }
    dweight[dweight_offset + c] += weight_sum;
    if (has_bias != 0) {
        dbias[dbias_offset + c] += bias_sum;
    }
}
PANAMAX_EXPORT(norm_backward_weights)

// A norm's input gradient, one block per row: with g = dy ⊙ weight and x̂ = (x − mean)·rstd (mean 0 for RMSNorm),
// dx = rstd·(g − x̂·mean(g·x̂)) for RMSNorm, and rstd·(g − mean(g) − x̂·mean(g·x̂)) for LayerNorm (has_mean 1). dx may
// be dy: each thread reads its elements of dy before writing them, after the sums every thread needed.
extern "C" __global__ void norm_backward_input(global_ptr<const float> x, long long x_offset, int ldx,
        global_ptr<const float> weight, long long weight_offset, global_ptr<const float> mean, long long mean_offset,
        int has_mean, global_ptr<const float> rstd, long long rstd_offset, global_ptr<const float> dy,
        long long dy_offset, int lddy, global_ptr<float> dx, long long dx_offset, int lddx, int rows, int cols) {
    __shared__ float scratch[ROW_THREADS_MAX];
    require_row_block();
    for (int r = blockIdx.y; r < rows; r += gridDim.y) {
        global_ptr<const float> in = x + (x_offset + static_cast<long long>(r) * ldx);
        global_ptr<const float> grad = dy + (dy_offset + static_cast<long long>(r) * lddy);
        float mu = has_mean != 0 ? mean[mean_offset + r] : 0.0f;
        float s = rstd[rstd_offset + r];
        float g_sum = 0.0f;
        float gx_sum = 0.0f;
        for (int c = threadIdx.x; c < cols; c += blockDim.x) {
            float g = grad[c] * weight[weight_offset + c];
            g_sum += g;
            gx_sum += g * (in[c] - mu) * s;
        }
        float g_mean = has_mean != 0 ? block_sum(g_sum, scratch) / cols : 0.0f;
        float gx_mean = block_sum(gx_sum, scratch) / cols;
        global_ptr<float> out = dx + (dx_offset + static_cast<long long>(r) * lddx);
        for (int c = threadIdx.x; c < cols; c += blockDim.x) {
            float g = grad[c] * weight[weight_offset + c];
            out[c] = s * (g - g_mean - (in[c] - mu) * s * gx_mean);
        }
        __syncthreads();
    }
}
PANAMAX_EXPORT(norm_backward_input)

// Σ_j weights[j]·tile[j·ld + d] over the first `rows` rows of a tile staged in shared memory, in order: column d of a
// weighted sum of the tile's rows.
template <class Shared>
__device__ float weighted_column(Shared weights, Shared tile, int ld, int rows, int d) {
    float sum = 0.0f;
    for (int j = 0; j < rows; ++j) {
        sum += weights[j] * tile[j * ld + d];
    }
    return sum;
}

// A half-mean (attention's accumulator) doubled: a finite one doubled past float's limit is a mean within rounding of
// it, so it is clamped, as ∞ and NaN pass.
__device__ float doubled_mean(float half) {
    return isfinite(half) ? fminf(fmaxf(2.0f * half, -FLOAT_MAX), FLOAT_MAX) : 2.0f * half;
}

#define ATTENTION_WARPS 4
#define ATTENTION_TILE WARP
#define ATTENTION_MAX_HEAD_DIM 256
// A query whose log-sum-exp is this large or not finite gets its gradients in double (AttentionExact.EXACT_LOG_SUM on
// the CPU): e^(s − lse) with lse rounded to float is off by up to half its ulp, 2⁻⁴ from here on.
#define ATTENTION_EXACT_LOG_SUM 1048576.0f
// Floats per (row, head) that attention_backward_dq leaves for attention_backward_dkdv: for a query it computes in
// double, its largest score, Σ e^(s − max) and R = Σ p·(dO·v), three doubles as their bits; for every query, at
// ATTENTION_EXACT_FLAG, 1 where it is computed in double and 0 where not, so that the two kernels never disagree.
#define ATTENTION_EXACT_STATS 7
#define ATTENTION_EXACT_FLAG 6

// The larger of two doubles, NaN where either is (as Java's Math.max; fmax would drop the NaN).
__device__ double max_or_nan(double a, double b) {
    return a != a || b != b ? a + b : fmax(a, b);
}

// Σ_d a[d]·b[d] in double, in order: each product of two floats is exact, so the sum rounds the same on every device
// and as AttentionExact.exactDot on the CPU (a fused multiply-add changes nothing).
__device__ double exact_dot(global_ptr<const float> a, global_ptr<const float> b, int head_dim) {
    double dot = 0.0;
    PANAMAX_NO_UNROLL
    for (int d = 0; d < head_dim; ++d) {
        dot += static_cast<double>(a[d]) * b[d];
    }
    return dot;
}

// e^(score − max) of one key; 0 for a score of −∞ even where max is NaN, and 0 where the weight underflows in float,
// as in the float pass, so a NaN in the value row of a key that weighs nothing there adds nothing here
// (AttentionExact.exactWeight). The double products and sums of the exact path are __dmul_rn and __dsub_rn where
// nvcc would fuse them (scale·dot − max here): each rounds once, as on the CPU and the emulated device.
__device__ double exact_weight(double score, double max) {
    double weight = score == -INFINITY ? 0.0 : exp(__dsub_rn(score, max));
    return static_cast<float>(weight) == 0.0f ? 0.0 : weight;
}

// One query's softmax over keys 0 .. keys − 1 in double, by a warp: the largest score scale·q·k (NaN if one is) and
// Σ e^(s − max). Lane j takes keys j, j + 32, ... in order, then a fixed butterfly, so every lane gets the same bits.
struct ExactSoftmax {
    double max;
    double sum;
};

__device__ ExactSoftmax exact_softmax(global_ptr<const float> q_row, global_ptr<const float> k_rows, int ldk, int keys,
        int head_dim, float scale, int lane) {
    double largest = -INFINITY;
    for (int j = lane; j < keys; j += WARP) {
        largest = max_or_nan(largest, scale * exact_dot(q_row, k_rows + static_cast<long long>(j) * ldk, head_dim));
    }
    for (int mask = WARP / 2; mask > 0; mask /= 2) {
        largest = max_or_nan(largest, __shfl_xor_sync(0xffffffffu, largest, mask));
    }
    double sum = 0.0;
    for (int j = lane; j < keys; j += WARP) {
        sum += exact_weight(scale * exact_dot(q_row, k_rows + static_cast<long long>(j) * ldk, head_dim), largest);
    }
    for (int mask = WARP / 2; mask > 0; mask /= 2) {
        sum += __shfl_xor_sync(0xffffffffu, sum, mask);
    }
    return ExactSoftmax{largest, sum};
}

// One query of attention computed again in double by a warp (AttentionExact.exactQuery on the CPU), where the float
// pass gives it no weight (scores beyond float's range make ∞ − ∞, or every score −∞) or a result that is not finite:
// out_row[d] = Σ_j p_j·v_j[d] / Σ_j p_j for d in [first_dim, end_dim), each rounded to float once, and with keep_lse
// *lse_at = max + log Σ p (±∞ beyond float's range); zeros and −∞ where no key weighs, NaN where a score is NaN. A
// key of weight 0 adds nothing. Not inlined: this rare path stays out of the kernels' registers.
__device__ __noinline__ void exact_attention_row(global_ptr<const float> q_row, global_ptr<const float> k_rows, int ldk,
        global_ptr<const float> v_rows, int ldv, int keys, int head_dim, float scale, int first_dim, int end_dim,
        global_ptr<float> out_row, global_ptr<float> lse_at, bool keep_lse) {
    int lane = threadIdx.x % WARP;
    ExactSoftmax softmax = exact_softmax(q_row, k_rows, ldk, keys, head_dim, scale, lane);
    for (int first = first_dim; first < end_dim; first += WARP) {
        int d = first + lane;
        double sum = 0.0;
        for (int chunk = 0; chunk < keys; chunk += WARP) {
            int j = chunk + lane;
            double p = j < keys
                    ? exact_weight(scale * exact_dot(q_row, k_rows + static_cast<long long>(j) * ldk, head_dim),
                              softmax.max)
                    : 0.0;
            for (int t = 0; t < min(WARP, keys - chunk); ++t) {
                double weight = __shfl_sync(0xffffffffu, p, t);
                if (weight != 0.0 && d < end_dim) {
                    sum += __dmul_rn(weight, v_rows[static_cast<long long>(chunk + t) * ldv + d]);
                }
            }
        }
        if (d < end_dim) {
            out_row[d] = softmax.sum == 0.0 ? 0.0f : static_cast<float>(sum / softmax.sum);
        }
    }
    if (keep_lse && lane == 0) {
        *lse_at = softmax.sum == 0.0 ? -INFINITY : static_cast<float>(softmax.max + log(softmax.sum));
    }
}

// Causal grouped-query attention, flash-style: a block of warps (blockDim.x / 32 of them) of one sequence, each warp
// one query of one query head (below: which). Key and value tiles of 32 rows are staged in dynamic
// shared memory; each warp keeps an online softmax (running maximum m, running sum l) and half its output so far, a
// weighted mean of the value rows seen: each tile scales it by l_old·e^(m_old - m_new)/l_new and adds the tile's rows
// weighted p/(2·l_new), so no queries × keys matrix exists and the accumulator stays within half the largest value (a
// sum Σ p·v would overflow on values near float's limit). Lane j scores key j of the tile; lane d accumulates output
// dimensions d, d + 32, ... Query i of a sequence (at position + i) sees keys 0 .. position + i; query head h reads
// key/value head h / (heads / kv_heads). Each sequence's keys start keys_per_sequence rows after the previous one's;
// its queries queries rows after. Dynamic shared memory: (32·(head_dim + 1) + 32·head_dim + warps·(head_dim + 32))
// floats. head_dim ≤ 256.
//
// With splits 1, grid (ceil(queries / warps), heads, sequences): block (x, y) takes queries x·warps ... of head y, and
// each warp writes its query's output and lse[i, h] = m + log(l), the natural log-sum-exp of the scaled scores, when
// keep_lse is 1. With splits > 1 (few queries and many keys, as in decoding, where one block per head would leave the
// GPU idle), grid (queries · splits, heads / warps, sequences), warps dividing heads / kv_heads: block (x, y) takes
// query x % queries of heads y·warps ... (one per warp, all of one key/value group, so each staged tile serves them
// all) and only the keys of split x / queries, key_chunk of them from split · key_chunk, and each warp writes its
// partial softmax for attention_combine: for item t = ((sequence · queries
// + query) · heads + head) · splits + split, the half-mean at partials[t · head_dim ...] and (m, l) at partials[items
// · head_dim + 2t ...], where items = sequences · queries · heads · splits (l = 0 where the query sees none of them).
// A query that the float pass gives no weight (l not above 0: scores beyond float's range make ∞ − ∞, or every score
// −∞) or an accumulator that is not finite is computed again in double (exact_attention_row), as on the CPU; with
// splits, the split writes l = NaN for a non-finite accumulator and attention_combine does that.
extern "C" __global__ void attention_forward(global_ptr<const float> q, long long q_offset, int ldq,
        global_ptr<const float> k, long long k_offset, int ldk, global_ptr<const float> v, long long v_offset, int ldv,
        global_ptr<float> out, long long out_offset, int ldout, global_ptr<float> lse, long long lse_offset, int ldlse,
        int keep_lse, int heads, int kv_heads, int head_dim, int queries, int keys_per_sequence, int position,
        float scale, int splits, int key_chunk, global_ptr<float> partials) {
    PANAMAX_DYNAMIC_SHARED(float, shared);
    int warps = blockDim.x / WARP;
    auto k_tile = shared;                                    // [32][head_dim + 1]: +1 spreads a column over banks
    auto v_tile = k_tile + ATTENTION_TILE * (head_dim + 1);  // [32][head_dim]
    auto q_rows = v_tile + ATTENTION_TILE * head_dim;        // [warps][head_dim]
    auto p_rows = q_rows + warps * head_dim;                 // [warps][32]: the tile's weights, per warp

    int warp = threadIdx.x / WARP;
    int lane = threadIdx.x % WARP;
    // Without splits a block's warps take consecutive queries of one head; with splits, one query and consecutive
    // heads of one key/value group, which then share each staged key and value tile.
    int queries_per_block = splits == 1 ? warps : 1;
    int head = splits == 1 ? blockIdx.y : blockIdx.y * warps + warp;
    int kv_head = head / (heads / kv_heads);
    int sequence = blockIdx.z;
    int query_blocks = (queries + queries_per_block - 1) / queries_per_block;
    int split = blockIdx.x / query_blocks;
    int first_query = (blockIdx.x % query_blocks) * queries_per_block;
    int query = first_query + (splits == 1 ? warp : 0);
    bool active = query < queries;  // the same for the whole warp: warp operations stay uniform
    long long q_row = static_cast<long long>(sequence) * queries + query;
    long long key_row0 = static_cast<long long>(sequence) * keys_per_sequence;
    int first_key = splits == 1 ? 0 : split * key_chunk;
    int split_last = splits == 1 ? position + queries - 1 : first_key + key_chunk - 1;
    int last_key = min(position + min(first_query + queries_per_block, queries) - 1, split_last);  // the block's last
    int my_last_key = min(position + query, split_last);

    auto my_q = q_rows + warp * head_dim;
    auto my_p = p_rows + warp * ATTENTION_TILE;
    if (active) {
        for (int d = lane; d < head_dim; d += WARP) {
            my_q[d] = q[q_offset + q_row * ldq + static_cast<long long>(head) * head_dim + d];
        }
    }
    float accumulator[ATTENTION_MAX_HEAD_DIM / WARP];
    for (int i = 0; i < ATTENTION_MAX_HEAD_DIM / WARP; ++i) {
        accumulator[i] = 0.0f;
    }
    float running_max = -INFINITY;
    float running_sum = 0.0f;

    for (int tile = first_key; tile <= last_key; tile += ATTENTION_TILE) {
        int tile_rows = min(ATTENTION_TILE, last_key + 1 - tile);
        for (int e = threadIdx.x; e < tile_rows * head_dim; e += blockDim.x) {
            int row = e / head_dim;
            int d = e % head_dim;
            long long key_row = key_row0 + tile + row;
            k_tile[row * (head_dim + 1) + d] = k[k_offset + key_row * ldk + static_cast<long long>(kv_head) * head_dim + d];
            v_tile[row * head_dim + d] = v[v_offset + key_row * ldv + static_cast<long long>(kv_head) * head_dim + d];
        }
        __syncthreads();
        if (active && tile <= my_last_key) {
            int key = tile + lane;
            bool visible = lane < tile_rows && key <= my_last_key;
            float score = -INFINITY;
            if (visible) {
                float dot = 0.0f;
                for (int d = 0; d < head_dim; ++d) {
                    dot += my_q[d] * k_tile[lane * (head_dim + 1) + d];
                }
                score = dot * scale;
            }
            float tile_max = score;
            for (int mask = WARP / 2; mask > 0; mask /= 2) {
                tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, mask));
            }
            // Key `tile` is visible to this query, so tile_max and new_max are finite.
            float new_max = fmaxf(running_max, tile_max);
            float correction = expf(running_max - new_max);
            float p = visible ? expf(score - new_max) : 0.0f;
            float tile_sum = p;
            for (int mask = WARP / 2; mask > 0; mask /= 2) {
                tile_sum += __shfl_xor_sync(0xffffffffu, tile_sum, mask);
            }
            float kept_sum = running_sum * correction;
            running_sum = kept_sum + tile_sum;
            running_max = new_max;
            float inverse_sum = 1.0f / running_sum;
            float keep = kept_sum * inverse_sum;
            my_p[lane] = p * (0.5f * inverse_sum);
            __syncwarp();
            // Keys past this query's last stay out of the sum: their weight is 0, but 0·NaN is NaN.
            int seen_rows = min(tile_rows, my_last_key + 1 - tile);
            PANAMAX_UNROLL
            for (int i = 0; i < ATTENTION_MAX_HEAD_DIM / WARP; ++i) {
                if (i * WARP + lane < head_dim) {
                    float sum = weighted_column(my_p, v_tile, head_dim, seen_rows, i * WARP + lane);
                    accumulator[i] = accumulator[i] * keep + sum;
                }
            }
            __syncwarp();
        }
        __syncthreads();
    }
    if (!active) {
        return;
    }
    bool finite = true;
    PANAMAX_UNROLL
    for (int i = 0; i < ATTENTION_MAX_HEAD_DIM / WARP; ++i) {
        finite = finite && (i * WARP + lane >= head_dim || isfinite(accumulator[i]));
    }
    bool all_finite = __all_sync(0xffffffffu, finite) != 0;
    if (splits == 1) {
        if (!(running_sum > 0.0f) || !all_finite) {
            exact_attention_row(q + (q_offset + q_row * ldq + static_cast<long long>(head) * head_dim),
                    k + (k_offset + key_row0 * ldk + static_cast<long long>(kv_head) * head_dim), ldk,
                    v + (v_offset + key_row0 * ldv + static_cast<long long>(kv_head) * head_dim), ldv, my_last_key + 1,
                    head_dim, scale, 0, head_dim, out + (out_offset + q_row * ldout + static_cast<long long>(head) * head_dim),
                    lse + (lse_offset + q_row * ldlse + head), keep_lse != 0);
            return;
        }
        PANAMAX_UNROLL
        for (int i = 0; i < ATTENTION_MAX_HEAD_DIM / WARP; ++i) {
            if (i * WARP + lane < head_dim) {
                out[out_offset + q_row * ldout + static_cast<long long>(head) * head_dim + i * WARP + lane] =
                        doubled_mean(accumulator[i]);
            }
        }
        if (keep_lse != 0 && lane == 0) {
            lse[lse_offset + q_row * ldlse + head] = running_max + logf(running_sum);
        }
        return;
    }
    long long items = static_cast<long long>(gridDim.z) * queries * heads * splits;
    long long item = (q_row * heads + head) * splits + split;
    PANAMAX_UNROLL
    for (int i = 0; i < ATTENTION_MAX_HEAD_DIM / WARP; ++i) {
        if (i * WARP + lane < head_dim) {
            partials[item * head_dim + i * WARP + lane] = accumulator[i];
        }
    }
    if (lane == 0) {
        partials[items * head_dim + 2 * item] = running_max;
        // A NaN sum makes attention_combine compute the query again in double, as a non-finite accumulator asks.
        partials[items * head_dim + 2 * item + 1] = all_finite ? running_sum : __int_as_float(0x7fc00000);
    }
}
PANAMAX_EXPORT(attention_forward)

// The outputs of attention_forward's splits (partials as it writes them): warp w of block (x, y) combines item
// x·(blockDim.x / 32) + w of sequences · queries · heads (query row, then head) for dimensions y·32 .. y·32 + 31.
// Its lanes take the splits in turn: M = the largest m of the splits that saw keys (a butterfly of fmaxf), L = Σ
// l·e^(m − M) (each lane's splits in order, then a fixed butterfly), and each split's weight l·e^(m − M) / L into
// shared memory; then lane d sums Σ weight·half-mean over the splits in order and doubles it, so the bits are the same
// every run. A split of weight 0 (it saw no keys, or its weight underflowed) adds nothing, as a key of weight 0 adds
// nothing to attention_forward's output. lse[row, head] = M + log(L) when keep_lse is 1. An item whose L is not above
// 0 (no split gave it weight, or one flagged it with l = NaN) is computed again in double from q, k and v, laid out as
// attention_forward's (exact_attention_row), each block y for its own 32 dimensions. Grid (ceil(items / warps),
// ceil(head_dim / 32)); dynamic shared memory: warps · splits floats.
extern "C" __global__ void attention_combine(global_ptr<const float> partials, int splits, int heads, int head_dim,
        long long rows, global_ptr<float> out, long long out_offset, int ldout, global_ptr<float> lse,
        long long lse_offset, int ldlse, int keep_lse, global_ptr<const float> q, long long q_offset, int ldq,
        global_ptr<const float> k, long long k_offset, int ldk, global_ptr<const float> v, long long v_offset, int ldv,
        int kv_heads, int queries, int keys_per_sequence, int position, float scale) {
    PANAMAX_DYNAMIC_SHARED(float, shared);
    int warps = blockDim.x / WARP;
    int warp = threadIdx.x / WARP;
    long long item = static_cast<long long>(blockIdx.x) * warps + warp;
    int lane = threadIdx.x % WARP;
    if (item >= rows * heads) {
        return;  // the whole warp
    }
    long long row = item / heads;
    int head = static_cast<int>(item % heads);
    global_ptr<const float> stats = partials + (rows * heads * splits * head_dim + 2 * item * splits);
    float largest = -INFINITY;
    for (int s = lane; s < splits; s += WARP) {
        if (stats[2 * s + 1] != 0.0f) {
            largest = fmaxf(largest, stats[2 * s]);
        }
    }
    for (int mask = WARP / 2; mask > 0; mask /= 2) {
        largest = fmaxf(largest, __shfl_xor_sync(0xffffffffu, largest, mask));
    }
    float total = 0.0f;
    for (int s = lane; s < splits; s += WARP) {
        float sum = stats[2 * s + 1];
        total += sum == 0.0f ? 0.0f : sum * expf(stats[2 * s] - largest);
    }
    for (int mask = WARP / 2; mask > 0; mask /= 2) {
        total += __shfl_xor_sync(0xffffffffu, total, mask);
    }
    if (!(total > 0.0f)) {
        long long sequence = row / queries;
        int kv_head = head / (heads / kv_heads);
        exact_attention_row(q + (q_offset + row * ldq + static_cast<long long>(head) * head_dim),
                k + (k_offset + sequence * keys_per_sequence * ldk + static_cast<long long>(kv_head) * head_dim), ldk,
                v + (v_offset + sequence * keys_per_sequence * ldv + static_cast<long long>(kv_head) * head_dim), ldv,
                position + static_cast<int>(row % queries) + 1, head_dim, scale, static_cast<int>(blockIdx.y) * WARP,
                min(head_dim, static_cast<int>(blockIdx.y + 1) * WARP),
                out + (out_offset + row * ldout + static_cast<long long>(head) * head_dim),
                lse + (lse_offset + row * ldlse + head), keep_lse != 0 && blockIdx.y == 0);
        return;
    }
    float inverse_total = 1.0f / total;
    auto weights = shared + warp * splits;
    for (int s = lane; s < splits; s += WARP) {
        float sum = stats[2 * s + 1];
        weights[s] = sum == 0.0f ? 0.0f : sum * expf(stats[2 * s] - largest) * inverse_total;
    }
    __syncwarp();
    int d = blockIdx.y * WARP + lane;
    if (d < head_dim) {
        float half = 0.0f;
        for (int s = 0; s < splits; ++s) {
            if (weights[s] != 0.0f) {
                half += weights[s] * partials[(item * splits + s) * head_dim + d];
            }
        }
        out[out_offset + row * ldout + static_cast<long long>(head) * head_dim + d] = doubled_mean(half);
    }
    if (keep_lse != 0 && blockIdx.y == 0 && lane == 0) {
        lse[lse_offset + row * ldlse + head] = largest + logf(total);
    }
}
PANAMAX_EXPORT(attention_combine)

// Attention's backward at position 0 (query i of a sequence sees keys 0 .. i), flash-style in three launches that
// recompute the probabilities p = e^(scale·q·k − lse) from the forward's log-sum-exps instead of storing them:
// delta (D = dO·O per query and head), dQ (per query, over its keys) and dK/dV (per key, over the queries that see
// it and every query head of its group). Every sum runs in a fixed order; no two threads write one output. A query
// whose lse is not finite or at least ATTENTION_EXACT_LOG_SUM in magnitude (scores beyond float's range, or so large
// that lse's rounding moves the weights), or whose float score with a key it sees is not finite although q, k and the
// scale are (q·k overflowed, as ∞ − ∞, while lse may be moderate), is computed in double instead, as on the CPU: its dQ
// by attention_backward_dq (exact_attention_dq), which flags it and leaves its softmax statistics after the deltas for
// attention_backward_dkdv to compute its p and ds from (exact_gradient), so each dK and dV row is still
// summed by one warp in order.

// A double kept in two floats of a scratch buffer as its bits (low word first), for another kernel to read back exactly.
__device__ void store_exact(global_ptr<float> at, double value) {
    at[0] = __int_as_float(__double2loint(value));
    at[1] = __int_as_float(__double2hiint(value));
}

__device__ double load_exact(global_ptr<const float> at) {
    return __hiloint2double(__float_as_int(at[1]), __float_as_int(at[0]));
}

// Where attention_backward_dq keeps the statistics of query row q_row, head `head` (exact_attention_dq): after the
// deltas of every (row, head) of the gridDim.z sequences of `length` rows, ATTENTION_EXACT_STATS floats each.
template <class T>
__device__ global_ptr<T> exact_stats(global_ptr<T> delta, int length, int heads, long long q_row, int head) {
    long long pairs = static_cast<long long>(gridDim.z) * length * heads;
    return delta + (pairs + (q_row * heads + head) * ATTENTION_EXACT_STATS);
}

// The weight p = e^(s − max)/Σ and ds = p·(dO·v − R) of one key for a query the backward computes in double; both 0
// where the weight is, even where Σ is NaN (0 / NaN is NaN), so the key adds nothing to the query's terms.
// attention_backward_dq (exact_attention_dq) and attention_backward_dkdv, from the statistics dq leaves, both take
// them from here, so the two kernels agree on every key.
struct ExactGradient {
    double p;
    double ds;
};

__device__ ExactGradient exact_gradient(global_ptr<const float> q_row, global_ptr<const float> k_row,
        global_ptr<const float> dout_row, global_ptr<const float> v_row, int head_dim, float scale, double max,
        double sum, double row_dot) {
    double weight = exact_weight(scale * exact_dot(q_row, k_row, head_dim), max);
    double p = weight / sum;
    if (weight == 0.0 || p == 0.0) {
        return ExactGradient{0.0, 0.0};
    }
    return ExactGradient{p, p * (exact_dot(dout_row, v_row, head_dim) - row_dot)};
}

// One query's dQ computed again in double by a warp (AttentionExact.exactGradients on the CPU), where its float
// log-sum-exp cannot give its weights: dq_row[d] = Σ_j scale·ds_j·k_j[d] over keys 0 .. keys − 1, each rounded to
// float once, with ds_j = p_j·(dO·v_j − R) and R = Σ_j p_j·(dO·v_j), a key of weight 0 left out; and the query's
// largest score, Σ e^(s − max) and R at stats (store_exact), from which attention_backward_dkdv computes the same p
// and ds (exact_gradient). Not inlined: this rare path stays out of the kernel's registers.
__device__ __noinline__ void exact_attention_dq(global_ptr<const float> q_row, global_ptr<const float> k_rows, int ldk,
        global_ptr<const float> v_rows, int ldv, global_ptr<const float> dout_row, int keys, int head_dim, float scale,
        global_ptr<float> dq_row, global_ptr<float> stats) {
    int lane = threadIdx.x % WARP;
    ExactSoftmax softmax = exact_softmax(q_row, k_rows, ldk, keys, head_dim, scale, lane);
    double row_dot = 0.0;
    for (int j = lane; j < keys; j += WARP) {
        double weight = exact_weight(scale * exact_dot(q_row, k_rows + static_cast<long long>(j) * ldk, head_dim),
                softmax.max);
        if (weight != 0.0) {
            row_dot += __dmul_rn(weight, exact_dot(dout_row, v_rows + static_cast<long long>(j) * ldv, head_dim));
        }
    }
    for (int mask = WARP / 2; mask > 0; mask /= 2) {
        row_dot += __shfl_xor_sync(0xffffffffu, row_dot, mask);
    }
    row_dot /= softmax.sum;
    for (int first = 0; first < head_dim; first += WARP) {
        int d = first + lane;
        double sum = 0.0;
        for (int chunk = 0; chunk < keys; chunk += WARP) {
            int j = chunk + lane;
            double ds = 0.0;
            int seen = 0;
            if (j < keys) {
                ExactGradient key = exact_gradient(q_row, k_rows + static_cast<long long>(j) * ldk, dout_row,
                        v_rows + static_cast<long long>(j) * ldv, head_dim, scale, softmax.max, softmax.sum, row_dot);
                seen = key.p != 0.0 ? 1 : 0;
                ds = key.ds;
            }
            for (int t = 0; t < min(WARP, keys - chunk); ++t) {
                double key_ds = __shfl_sync(0xffffffffu, ds, t);
                if (__shfl_sync(0xffffffffu, seen, t) != 0 && d < head_dim) {
                    sum += __dmul_rn(scale * key_ds, k_rows[static_cast<long long>(chunk + t) * ldk + d]);
                }
            }
        }
        if (d < head_dim) {
            dq_row[d] = static_cast<float>(sum);
        }
    }
    if (lane == 0) {
        store_exact(stats, softmax.max);
        store_exact(stats + 2, softmax.sum);
        store_exact(stats + 4, row_dot);
    }
}


// ds = p·(dO·v − D) computed again as p·dO·(v − o), for a key whose first try is not finite: on values near float's
// limit dO·v and D = dO·o overflow although their difference need not. The rows are halved so that v − o stays
// finite; a NaN or ∞ in them still makes ds NaN or ∞. Not inlined: this rare loop stays out of the kernels' registers.
__device__ __noinline__ float softmax_gradient_again(float p, global_ptr<const float> dout_row, global_ptr<const float> v_row,
        global_ptr<const float> out_row, int head_dim) {
    float half = 0.0f;
    for (int d = 0; d < head_dim; ++d) {
        half += dout_row[d] * (0.5f * v_row[d] - 0.5f * out_row[d]);
    }
    return 2.0f * (p * half);
}

// Whether the scale and a query's and a key's rows are all finite: a score that is not finite from them overflowed
// float, and only the double path gives the query's weights. Not inlined: only a score that is not finite calls it.
__device__ __noinline__ bool finite_score_inputs(float scale, global_ptr<const float> q_row,
        global_ptr<const float> k_row, int head_dim) {
    bool finite = isfinite(scale);
    for (int d = 0; d < head_dim; ++d) {
        finite = finite && isfinite(q_row[d]) && isfinite(k_row[d]);
    }
    return finite;
}

// delta[r·heads + h] = Σ_d dout[r, h, d]·out[r, h, d]; one thread per (row, head): grid (ceil(heads / blockDim.x),
// min(rows, 65535)).
extern "C" __global__ void attention_backward_delta(global_ptr<const float> out, long long out_offset, int ldout,
        global_ptr<const float> dout, long long dout_offset, int lddout, int rows, int heads, int head_dim,
        global_ptr<float> delta) {
    int head = blockIdx.x * blockDim.x + threadIdx.x;
    if (head >= heads) {
        return;
    }
    for (int r = blockIdx.y; r < rows; r += gridDim.y) {
        long long o = out_offset + static_cast<long long>(r) * ldout + static_cast<long long>(head) * head_dim;
        long long d = dout_offset + static_cast<long long>(r) * lddout + static_cast<long long>(head) * head_dim;
        float sum = 0.0f;
        for (int i = 0; i < head_dim; ++i) {
            sum += dout[d + i] * out[o + i];
        }
        delta[static_cast<long long>(r) * heads + head] = sum;
    }
}
PANAMAX_EXPORT(attention_backward_delta)

// dQ: as attention_forward, a warp per query (ATTENTION_WARPS queries of one head of one sequence per block, grid
// (ceil(T / ATTENTION_WARPS), heads, sequences)), over key/value tiles of 32 in shared memory; lane j computes
// ds_j = p_j·(dO·v_j − D) (from the forward's output where that is not finite, see softmax_gradient_again), lane d
// accumulates dq[d] = scale·Σ_j ds_j·k_j[d]. Every tensor has T rows per sequence (q, out, dout rows; k, v rows). A
// query to be computed in double (see above: its lse, or a warp vote on its scores in the tiles, which drops what the
// tiles summed) takes exact_attention_dq, writing its statistics at exact_stats(delta, ...); every query's flag goes
// there too. Dynamic shared memory: (2·32·(head_dim + 1) + ATTENTION_WARPS·(2·head_dim + 32)) floats.
extern "C" __global__ void attention_backward_dq(global_ptr<const float> q, long long q_offset, int ldq,
        global_ptr<const float> k, long long k_offset, int ldk, global_ptr<const float> v, long long v_offset, int ldv,
        global_ptr<const float> out, long long out_offset, int ldout,
        global_ptr<const float> dout, long long dout_offset, int lddout, global_ptr<const float> lse,
        long long lse_offset, int ldlse, global_ptr<float> delta, global_ptr<float> dq, long long dq_offset,
        int lddq, int heads, int kv_heads, int head_dim, int length, float scale) {
    PANAMAX_DYNAMIC_SHARED(float, shared);
    auto k_tile = shared;                                      // [32][head_dim + 1]
    auto v_tile = k_tile + ATTENTION_TILE * (head_dim + 1);    // [32][head_dim + 1]
    auto q_rows = v_tile + ATTENTION_TILE * (head_dim + 1);    // [warps][head_dim]
    auto dout_rows = q_rows + ATTENTION_WARPS * head_dim;      // [warps][head_dim]
    auto ds_rows = dout_rows + ATTENTION_WARPS * head_dim;     // [warps][32]

    int warp = threadIdx.x / WARP;
    int lane = threadIdx.x % WARP;
    int head = blockIdx.y;
    int kv_head = head / (heads / kv_heads);
    int sequence = blockIdx.z;
    int first_query = blockIdx.x * ATTENTION_WARPS;
    int query = first_query + warp;
    bool active = query < length;
    long long q_row = static_cast<long long>(sequence) * length + query;
    long long key_row0 = static_cast<long long>(sequence) * length;
    int last_key = min(first_query + ATTENTION_WARPS, length) - 1;

    auto my_q = q_rows + warp * head_dim;
    auto my_dout = dout_rows + warp * head_dim;
    auto my_ds = ds_rows + warp * ATTENTION_TILE;
    float my_lse = 0.0f;
    float my_delta = 0.0f;
    if (active) {
        for (int d = lane; d < head_dim; d += WARP) {
            my_q[d] = q[q_offset + q_row * ldq + static_cast<long long>(head) * head_dim + d];
            my_dout[d] = dout[dout_offset + q_row * lddout + static_cast<long long>(head) * head_dim + d];
        }
        my_lse = lse[lse_offset + q_row * ldlse + head];
        my_delta = delta[q_row * heads + head];
    }
    // The same for the whole warp, as my_lse and the vote on the scores are.
    bool exact = active && !(fabsf(my_lse) < ATTENTION_EXACT_LOG_SUM);
    float accumulator[ATTENTION_MAX_HEAD_DIM / WARP];
    for (int i = 0; i < ATTENTION_MAX_HEAD_DIM / WARP; ++i) {
        accumulator[i] = 0.0f;
    }
    for (int tile = 0; tile <= last_key; tile += ATTENTION_TILE) {
        int tile_rows = min(ATTENTION_TILE, last_key + 1 - tile);
        for (int e = threadIdx.x; e < tile_rows * head_dim; e += blockDim.x) {
            int row = e / head_dim;
            int d = e % head_dim;
            long long key_row = key_row0 + tile + row;
            k_tile[row * (head_dim + 1) + d] = k[k_offset + key_row * ldk + static_cast<long long>(kv_head) * head_dim + d];
            v_tile[row * (head_dim + 1) + d] = v[v_offset + key_row * ldv + static_cast<long long>(kv_head) * head_dim + d];
        }
        __syncthreads();
        if (active && !exact && tile <= query) {
            int key = tile + lane;
            float ds = 0.0f;
            bool overflowed = false;
            if (lane < tile_rows && key <= query) {
                float score = 0.0f;
                float dp = 0.0f;
                for (int d = 0; d < head_dim; ++d) {
                    score += my_q[d] * k_tile[lane * (head_dim + 1) + d];
                    dp += my_dout[d] * v_tile[lane * (head_dim + 1) + d];
                }
                overflowed = !isfinite(score * scale)
                        && finite_score_inputs(scale, my_q, k_tile + lane * (head_dim + 1), head_dim);
                float p = expf(score * scale - my_lse);
                ds = p * (dp - my_delta);
                if (!isfinite(ds)) {
                    ds = softmax_gradient_again(p, my_dout, v_tile + lane * (head_dim + 1),
                            out + out_offset + q_row * ldout + static_cast<long long>(head) * head_dim, head_dim);
                }
            }
            // The later tiles are skipped and what this warp summed is dropped: exact_attention_dq computes it all.
            exact = __any_sync(0xffffffffu, overflowed) != 0;
            if (!exact) {
                my_ds[lane] = ds;
                __syncwarp();
                // Keys past this query stay out: their ds is 0, but 0·NaN is NaN.
                int seen_rows = min(tile_rows, query + 1 - tile);
                PANAMAX_UNROLL
                for (int i = 0; i < ATTENTION_MAX_HEAD_DIM / WARP; ++i) {
                    if (i * WARP + lane < head_dim) {
                        accumulator[i] += weighted_column(my_ds, k_tile, head_dim + 1, seen_rows, i * WARP + lane);
                    }
                }
                __syncwarp();
            }
        }
        __syncthreads();
    }
    if (active && lane == 0) {
        exact_stats(delta, length, heads, q_row, head)[ATTENTION_EXACT_FLAG] = exact ? 1.0f : 0.0f;
    }
    if (exact) {
        exact_attention_dq(q + (q_offset + q_row * ldq + static_cast<long long>(head) * head_dim),
                k + (k_offset + key_row0 * ldk + static_cast<long long>(kv_head) * head_dim), ldk,
                v + (v_offset + key_row0 * ldv + static_cast<long long>(kv_head) * head_dim), ldv,
                dout + (dout_offset + q_row * lddout + static_cast<long long>(head) * head_dim), query + 1, head_dim,
                scale, dq + (dq_offset + q_row * lddq + static_cast<long long>(head) * head_dim),
                exact_stats(delta, length, heads, q_row, head));
    } else if (active) {
        PANAMAX_UNROLL
        for (int i = 0; i < ATTENTION_MAX_HEAD_DIM / WARP; ++i) {
            if (i * WARP + lane < head_dim) {
                dq[dq_offset + q_row * lddq + static_cast<long long>(head) * head_dim + i * WARP + lane] = accumulator[i] * scale;
            }
        }
    }
}
PANAMAX_EXPORT(attention_backward_dq)

// dK and dV: a warp per key row (ATTENTION_WARPS keys of one key/value head of one sequence per block, grid
// (ceil(T / ATTENTION_WARPS), kv_heads, sequences)), over every query head of the group in order and, for each, the
// tiles of 32 queries that see the block's keys, staged in shared memory with their lse and D; lane i computes p_i
// and ds_i = p_i·(dO_i·v − D_i) (from the forward's output where that is not finite, see softmax_gradient_again),
// lane d accumulates dv[d] = Σ p_i·dO_i[d] and dk[d] = scale·Σ ds_i·q_i[d]. For a query computed in double (see
// above, as attention_backward_dq flagged it), p_i and ds_i come from the statistics it left
// (exact_gradient).
// Dynamic shared memory: (2·32·(head_dim + 1) + 64 + ATTENTION_WARPS·(2·head_dim + 64)) floats.
extern "C" __global__ void attention_backward_dkdv(global_ptr<const float> q, long long q_offset, int ldq,
        global_ptr<const float> k, long long k_offset, int ldk, global_ptr<const float> v, long long v_offset, int ldv,
        global_ptr<const float> out, long long out_offset, int ldout,
        global_ptr<const float> dout, long long dout_offset, int lddout, global_ptr<const float> lse,
        long long lse_offset, int ldlse, global_ptr<const float> delta, global_ptr<float> dk, long long dk_offset,
        int lddk, global_ptr<float> dv, long long dv_offset, int lddv, int heads, int kv_heads, int head_dim,
        int length, float scale) {
    PANAMAX_DYNAMIC_SHARED(float, shared);
    auto q_tile = shared;                                      // [32][head_dim + 1]
    auto dout_tile = q_tile + ATTENTION_TILE * (head_dim + 1); // [32][head_dim + 1]
    auto lse_tile = dout_tile + ATTENTION_TILE * (head_dim + 1);  // [32]
    auto delta_tile = lse_tile + ATTENTION_TILE;               // [32]
    auto k_rows = delta_tile + ATTENTION_TILE;                 // [warps][head_dim]
    auto v_rows = k_rows + ATTENTION_WARPS * head_dim;         // [warps][head_dim]
    auto p_rows = v_rows + ATTENTION_WARPS * head_dim;         // [warps][32]
    auto ds_rows = p_rows + ATTENTION_WARPS * ATTENTION_TILE;  // [warps][32]

    int warp = threadIdx.x / WARP;
    int lane = threadIdx.x % WARP;
    int kv_head = blockIdx.y;
    int group = heads / kv_heads;
    int sequence = blockIdx.z;
    int first_key = blockIdx.x * ATTENTION_WARPS;
    int key = first_key + warp;
    bool active = key < length;
    long long row0 = static_cast<long long>(sequence) * length;
    long long key_row = row0 + key;

    auto my_k = k_rows + warp * head_dim;
    auto my_v = v_rows + warp * head_dim;
    auto my_p = p_rows + warp * ATTENTION_TILE;
    auto my_ds = ds_rows + warp * ATTENTION_TILE;
    if (active) {
        for (int d = lane; d < head_dim; d += WARP) {
            my_k[d] = k[k_offset + key_row * ldk + static_cast<long long>(kv_head) * head_dim + d];
            my_v[d] = v[v_offset + key_row * ldv + static_cast<long long>(kv_head) * head_dim + d];
        }
    }
    float dk_sum[ATTENTION_MAX_HEAD_DIM / WARP];
    float dv_sum[ATTENTION_MAX_HEAD_DIM / WARP];
    for (int i = 0; i < ATTENTION_MAX_HEAD_DIM / WARP; ++i) {
        dk_sum[i] = 0.0f;
        dv_sum[i] = 0.0f;
    }
    for (int head = kv_head * group; head < (kv_head + 1) * group; ++head) {
        for (int tile = first_key; tile < length; tile += ATTENTION_TILE) {
            int tile_rows = min(ATTENTION_TILE, length - tile);
            for (int e = threadIdx.x; e < tile_rows * head_dim; e += blockDim.x) {
                int row = e / head_dim;
                int d = e % head_dim;
                long long query_row = row0 + tile + row;
                q_tile[row * (head_dim + 1) + d] = q[q_offset + query_row * ldq + static_cast<long long>(head) * head_dim + d];
                dout_tile[row * (head_dim + 1) + d] =
                        dout[dout_offset + query_row * lddout + static_cast<long long>(head) * head_dim + d];
            }
            for (int row = threadIdx.x; row < tile_rows; row += blockDim.x) {
                long long query_row = row0 + tile + row;
                lse_tile[row] = lse[lse_offset + query_row * ldlse + head];
                delta_tile[row] = delta[query_row * heads + head];
            }
            __syncthreads();
            if (active) {
                int query = tile + lane;
                float p = 0.0f;
                float ds = 0.0f;
                bool seen = lane < tile_rows && query >= key;
                if (seen && exact_stats(delta, length, heads, row0 + query, head)[ATTENTION_EXACT_FLAG] != 0.0f) {
                    auto stats = exact_stats(delta, length, heads, row0 + query, head);
                    ExactGradient exact = exact_gradient(q_tile + lane * (head_dim + 1), my_k,
                            dout_tile + lane * (head_dim + 1), my_v, head_dim, scale, load_exact(stats),
                            load_exact(stats + 2), load_exact(stats + 4));
                    p = static_cast<float>(exact.p);
                    ds = static_cast<float>(exact.ds);
                } else if (seen) {
                    float score = 0.0f;
                    float dp = 0.0f;
                    for (int d = 0; d < head_dim; ++d) {
                        score += q_tile[lane * (head_dim + 1) + d] * my_k[d];
                        dp += dout_tile[lane * (head_dim + 1) + d] * my_v[d];
                    }
                    p = expf(score * scale - lse_tile[lane]);
                    ds = p * (dp - delta_tile[lane]);
                    if (!isfinite(ds)) {
                        ds = softmax_gradient_again(p, dout_tile + lane * (head_dim + 1), my_v,
                                out + out_offset + (row0 + query) * ldout + static_cast<long long>(head) * head_dim,
                                head_dim);
                    }
                }
                my_p[lane] = p;
                my_ds[lane] = ds;
                __syncwarp();
                // Queries before this key stay out: their p and ds are 0, but 0·NaN is NaN.
                int first_seeing = max(0, key - tile);
                PANAMAX_UNROLL
                for (int i = 0; i < ATTENTION_MAX_HEAD_DIM / WARP; ++i) {
                    if (i * WARP + lane < head_dim) {
                        int d = i * WARP + lane;
                        float v_part = 0.0f;
                        float k_part = 0.0f;
                        for (int j = first_seeing; j < tile_rows; ++j) {
                            v_part += my_p[j] * dout_tile[j * (head_dim + 1) + d];
                            k_part += my_ds[j] * q_tile[j * (head_dim + 1) + d];
                        }
                        dv_sum[i] += v_part;
                        dk_sum[i] += k_part;
                    }
                }
                __syncwarp();
            }
            __syncthreads();
        }
    }
    if (active) {
        PANAMAX_UNROLL
        for (int i = 0; i < ATTENTION_MAX_HEAD_DIM / WARP; ++i) {
            if (i * WARP + lane < head_dim) {
                int d = i * WARP + lane;
                dk[dk_offset + key_row * lddk + static_cast<long long>(kv_head) * head_dim + d] = dk_sum[i] * scale;
                dv[dv_offset + key_row * lddv + static_cast<long long>(kv_head) * head_dim + d] = dv_sum[i];
            }
        }
    }
}
PANAMAX_EXPORT(attention_backward_dkdv)
