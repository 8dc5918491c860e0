"""The PyTorch side of GpuTrainStep in bench/gpu/check.sh: the same GPT-2 training step in eager PyTorch, same CSV line.

One step, as Panamax's Trainer takes it: forward, cross-entropy (and the next-token accuracy Panamax also counts),
backward, clipping of the global gradient norm at 1, AdamW (betas 0.9/0.95, eps 1e-8, weight decay 0.1 on matrices
and embeddings only), the loss read back to the host. GPT-2: learned positions, pre-LayerNorm blocks, causal attention
through scaled_dot_product_attention (flash-style, as Panamax's), GELU with the tanh approximation, the classifier tied
to the token embedding; initialised as GPT-2 is.

--precision, as Panamax's MatmulPrecision: the weights, activations, gradients and optimizer state stay FP32 and only
the products' inputs are rounded. fp32: allow_tf32 off. tf32: torch.backends.cuda.matmul.allow_tf32 on, so cuBLAS
rounds FP32 inputs to TF32 (as CUBLAS_COMPUTE_32F_FAST_TF32); on the GPU this also lets the FP32 attention's own
products use TF32, where Panamax's attention kernels stay FP32. bf16: every linear layer and the tied classifier
multiply their inputs and weights rounded to bfloat16 (round to nearest even, as Panamax's to_bfloat16) with FP32
accumulation, and the result goes back to FP32 for the rest of the network; PyTorch rounds that result to bfloat16
once on the way (a bf16 matmul returns bf16), Panamax keeps it FP32. Autocast is not used: it would also run attention
and keep activations in bfloat16, a different computation.

usage: torch_train_step.py [--tiny] [--device cuda|cpu] [--precision fp32|tf32|bf16] [--steps N] [--warmup N]
"""
import argparse
import math
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

SHAPES = {  # name (as GpuTrainStep prints it): layers, heads, channels, vocabulary, context, batch, tokens
    "gpt2-124M B8xT1024": (12, 12, 768, 50257, 1024, 8, 1024),
    "gpt2-tiny B2xT32": (2, 4, 64, 97, 64, 2, 32),
}


BF16 = False  # set by main: products with bfloat16 inputs, FP32 everywhere else


def linear(x, weight, bias=None):
    """F.linear at the chosen precision: with BF16, inputs and weights rounded to bfloat16, the result back to FP32."""
    if not BF16:
        return F.linear(x, weight, bias)
    y = F.linear(x.to(torch.bfloat16), weight.to(torch.bfloat16)).float()
    return y if bias is None else y + bias


class Linear(nn.Linear):
    def forward(self, x):
        return linear(x, self.weight, self.bias)


class Block(nn.Module):
    def __init__(self, channels, heads):
        super().__init__()
        self.heads = heads
        self.ln_1 = nn.LayerNorm(channels, eps=1e-5)
        self.c_attn = Linear(channels, 3 * channels)
        self.c_proj = Linear(channels, channels)
        self.ln_2 = nn.LayerNorm(channels, eps=1e-5)
        self.c_fc = Linear(channels, 4 * channels)
        self.mlp_proj = Linear(4 * channels, channels)

    def forward(self, x):
        b, t, c = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(c, dim=2)
        q, k, v = (z.view(b, t, self.heads, c // self.heads).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.c_proj(y.transpose(1, 2).reshape(b, t, c))
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))


class Gpt2(nn.Module):
    def __init__(self, layers, heads, channels, vocab, context):
        super().__init__()
        self.wte = nn.Embedding(vocab, channels)
        self.wpe = nn.Embedding(context, channels)
        self.h = nn.ModuleList(Block(channels, heads) for _ in range(layers))
        self.ln_f = nn.LayerNorm(channels, eps=1e-5)
        for name, m in self.named_modules():
            if isinstance(m, nn.Linear):
                residual = name.endswith("c_proj") or name.endswith("mlp_proj")
                nn.init.normal_(m.weight, 0.0, 0.02 / math.sqrt(2 * layers) if residual else 0.02)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Embedding):
                nn.init.normal_(m.weight, 0.0, 0.02)

    def forward(self, idx):
        x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1], device=idx.device))
        for block in self.h:
            x = block(x)
        return linear(self.ln_f(x), self.wte.weight)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--tiny", action="store_true")
    p.add_argument("--device", default="cuda")
    p.add_argument("--precision", choices=("fp32", "tf32", "bf16"), default="fp32")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    a = p.parse_args()
    global BF16
    BF16 = a.precision == "bf16"
    torch.backends.cuda.matmul.allow_tf32 = a.precision == "tf32"
    torch.backends.cudnn.allow_tf32 = False
    name = "gpt2-tiny B2xT32" if a.tiny else "gpt2-124M B8xT1024"
    layers, heads, channels, vocab, context, batch, tokens = SHAPES[name]
    device = torch.device(a.device)
    torch.manual_seed(1)
    model = Gpt2(layers, heads, channels, vocab, context).to(device)
    decayed = [w for w in model.parameters() if w.dim() >= 2]
    plain = [w for w in model.parameters() if w.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decayed, "weight_decay": 0.1}, {"params": plain, "weight_decay": 0.0}],
        lr=1e-3, betas=(0.9, 0.95), eps=1e-8)
    data = torch.randint(0, vocab, (a.warmup + a.steps, batch, tokens + 1), device=device)
    gpu = device.type == "cuda"
    where = torch.cuda.get_device_name(device) if gpu else "cpu"
    print(f"torch {torch.__version__} on {where}: {name}, {a.precision.upper()} products "
          f"(allow_tf32 {torch.backends.cuda.matmul.allow_tf32}, bf16 linear inputs {BF16}), "
          f"{sum(w.numel() for w in model.parameters())} parameters", file=sys.stderr)
    millis = []
    for s in range(a.warmup + a.steps):
        x, y = data[s, :, :-1], data[s, :, 1:]
        start = time.perf_counter()
        logits = model(x)
        loss = F.cross_entropy(logits.reshape(-1, vocab), y.reshape(-1))
        correct = (logits.argmax(-1) == y).sum()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        value = loss.item()
        if gpu:
            torch.cuda.synchronize(device)
        ms = (time.perf_counter() - start) * 1e3
        if s >= a.warmup:
            millis.append(ms)
        print(f"step {s + 1}: loss {value:.4f}, {ms:.1f} ms{' (warm-up)' if s < a.warmup else ''}"
              f", accuracy {correct.item() / y.numel():.4f}", file=sys.stderr)
    print(f"torch,train,{name},{a.precision.upper()},{statistics.median(millis):.3f},ms/step", flush=True)


if __name__ == "__main__":
    main()
