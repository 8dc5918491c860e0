"""The PyTorch side of GpuDecode in bench/gpu/check.sh: greedy decode of a llama2.c-shaped Llama, same CSV line.

A minimal Llama forward in eager PyTorch with a KV cache, RoPE on adjacent pairs as llama2.c rotates them, the
classifier tied to the embedding. Its weights are those of the llama2.c file --checkpoint names (the one GpuDecode
wrote, so that both generate the same tokens up to rounding), or random ones (uniform in ±1/√dim, norm weights 1).
A 16-token prompt is prefilled as one batch; then Python runs one forward pass per token and reads the argmax back to
the host, as a user's generation loop does. FP32 with TF32 off.

usage: torch_decode.py [--tiny] [--device cuda|cpu] [--steps N] [--warmup N] [--checkpoint FILE]
"""
import argparse
import struct
import statistics
import sys
import time

import torch
import torch.nn.functional as F

PROMPT = 16
SHAPES = {  # name: dim, hidden, layers, heads, kv heads, vocabulary, tokens generated per run
    "llama2.c-110M": (768, 2048, 12, 12, 12, 32000, 256),
    "llama-tiny": (64, 172, 2, 4, 4, 97, 8),
}


def random_weights(dim, hidden, layers, kv, vocab):
    """Weights in llama2.c's order and shapes ([out, in] matrices, stacked over layers)."""
    g = torch.Generator(device="cpu").manual_seed(1)

    def uniform(*shape):
        return (torch.rand(*shape, generator=g) * 2 - 1) * dim ** -0.5

    return dict(embedding=uniform(vocab, dim), attention_norm=torch.ones(layers, dim),
                wq=uniform(layers, dim, dim), wk=uniform(layers, kv, dim), wv=uniform(layers, kv, dim),
                wo=uniform(layers, dim, dim), ffn_norm=torch.ones(layers, dim), w1=uniform(layers, hidden, dim),
                w2=uniform(layers, dim, hidden), w3=uniform(layers, hidden, dim), norm=torch.ones(dim))


def read_llama2c(path, shape):
    """The weights of a llama2.c file (header of seven int32, then float32 tensors), which must have `shape`."""
    with open(path, "rb") as f:
        header = struct.unpack("<7i", f.read(28))
        data = bytearray(f.read())
    dim, hidden, layers, heads, kv_heads, vocab, _ = header
    if (dim, hidden, layers, heads, kv_heads, vocab) != shape:
        raise SystemExit(f"{path}: header {header} is not the shape {shape}")
    floats = torch.frombuffer(data, dtype=torch.float32)
    kv = kv_heads * dim // heads
    shapes = dict(embedding=(vocab, dim), attention_norm=(layers, dim), wq=(layers, dim, dim), wk=(layers, kv, dim),
                  wv=(layers, kv, dim), wo=(layers, dim, dim), ffn_norm=(layers, dim), w1=(layers, hidden, dim),
                  w2=(layers, dim, hidden), w3=(layers, hidden, dim), norm=(dim,))
    weights, at = {}, 0
    for name, dims in shapes.items():  # the classifier is tied and the legacy RoPE tables that follow are unused
        count = torch.Size(dims).numel()
        weights[name] = floats[at:at + count].view(dims).clone()
        at += count
    return weights


class Llama:
    def __init__(self, weights, heads, kv_heads, context, device):
        w = {name: t.to(device) for name, t in weights.items()}
        layers, dim = w["attention_norm"].shape
        self.heads, self.kv_heads, self.head_dim = heads, kv_heads, dim // heads
        self.embedding, self.norm = w["embedding"], w["norm"]
        self.layers = [{name: w[name][l] for name in ("attention_norm", "wq", "wk", "wv", "wo", "ffn_norm", "w1",
                                                       "w2", "w3")} for l in range(layers)]
        freqs = 1.0 / 10000.0 ** (torch.arange(0, self.head_dim, 2, device=device).float() / self.head_dim)
        self.rotation = torch.polar(torch.ones(context, freqs.numel(), device=device),
                                    torch.outer(torch.arange(context, device=device).float(), freqs))
        self.keys = torch.zeros(layers, context, kv_heads, self.head_dim, device=device)
        self.values = torch.zeros_like(self.keys)

    @staticmethod
    def rms_norm(x, weight):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5) * weight

    def rope(self, x, position):
        pairs = torch.view_as_complex(x.reshape(*x.shape[:-1], -1, 2))
        rotated = pairs * self.rotation[position:position + x.shape[0]].unsqueeze(1)
        return torch.view_as_real(rotated).flatten(-2)

    def forward(self, tokens, position):
        """Logits of the last of `tokens`, at positions position, position + 1, …; fills the cache."""
        t = tokens.shape[0]
        if t > 1 and position != 0:
            raise ValueError(f"a batch of {t} tokens must start at position 0, not {position} (prefill only)")
        end = position + t
        x = self.embedding[tokens]
        for l, w in enumerate(self.layers):
            h = self.rms_norm(x, w["attention_norm"])
            q = self.rope((h @ w["wq"].T).view(t, self.heads, self.head_dim), position)
            self.keys[l, position:end] = self.rope((h @ w["wk"].T).view(t, self.kv_heads, self.head_dim), position)
            self.values[l, position:end] = (h @ w["wv"].T).view(t, self.kv_heads, self.head_dim)
            group = self.heads // self.kv_heads  # repeated by hand: enable_gqa needs torch 2.5
            k, v = (c[l, :end].transpose(0, 1).repeat_interleave(group, dim=0) if group > 1
                    else c[l, :end].transpose(0, 1) for c in (self.keys, self.values))
            y = F.scaled_dot_product_attention(q.transpose(0, 1), k, v, is_causal=t > 1)
            x = x + y.transpose(0, 1).reshape(t, -1) @ w["wo"].T
            h = self.rms_norm(x, w["ffn_norm"])
            x = x + (F.silu(h @ w["w1"].T) * (h @ w["w3"].T)) @ w["w2"].T
        return self.rms_norm(x[-1], self.norm) @ self.embedding.T


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--tiny", action="store_true")
    p.add_argument("--device", default="cuda")
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--checkpoint", help="a llama2.c file of the shape; random weights if absent")
    a = p.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    name = "llama-tiny" if a.tiny else "llama2.c-110M"
    dim, hidden, layers, heads, kv_heads, vocab, generated = SHAPES[name]
    device = torch.device(a.device)
    kv = kv_heads * dim // heads
    weights = (read_llama2c(a.checkpoint, (dim, hidden, layers, heads, kv_heads, vocab)) if a.checkpoint
               else random_weights(dim, hidden, layers, kv, vocab))
    model = Llama(weights, heads, kv_heads, PROMPT + generated, device)
    prompt = torch.tensor([1 + i * 97 % (vocab - 1) for i in range(PROMPT)], device=device)
    gpu = device.type == "cuda"
    print(f"torch {torch.__version__} on {torch.cuda.get_device_name(device) if gpu else 'cpu'}: {name}, FP32",
          file=sys.stderr)
    rates = []
    with torch.inference_mode():
        for r in range(a.warmup + a.steps):
            start = time.perf_counter()
            tokens = [int(model.forward(prompt, 0).argmax())]
            prefilled = time.perf_counter()
            for i in range(generated - 1):  # as Generator: the last token chosen is never fed back
                tokens.append(int(model.forward(torch.tensor(tokens[-1:], device=device), PROMPT + i).argmax()))
            rate = (generated - 1) / (time.perf_counter() - prefilled)
            if r >= a.warmup:
                rates.append(rate)
            print(f"run {r + 1}: {generated} tokens, prefill {(prefilled - start) * 1e3:.1f} ms, decode {rate:.1f} "
                  f"tokens/s{' (warm-up)' if r < a.warmup else ''}", file=sys.stderr)
    print("tokens: " + " ".join(map(str, tokens)), file=sys.stderr)
    print(f"torch,decode,{name} P{PROMPT}+{generated},FP32,{statistics.median(rates):.1f},tokens/s", flush=True)


if __name__ == "__main__":
    main()
