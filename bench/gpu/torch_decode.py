"""The PyTorch side of GpuDecode in bench/gpu/check.sh: greedy decode of a llama2.c-shaped Llama, same CSV line.

A minimal Llama forward in eager PyTorch with a KV cache, random weights (uniform in ±1/√dim as Panamax's random
llama2.c file, norm weights 1, classifier tied to the embedding), RoPE on adjacent pairs as llama2.c rotates them.
A 16-token prompt is prefilled as one batch; then Python runs one forward pass per token and reads the argmax back to
the host, as a user's generation loop does. FP32 with TF32 off.

usage: torch_decode.py [--tiny] [--device cuda|cpu] [--steps N] [--warmup N]
"""
import argparse
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


class Llama:
    def __init__(self, dim, hidden, layers, heads, kv_heads, vocab, context, device):
        g = torch.Generator(device="cpu").manual_seed(1)
        scale = dim ** -0.5

        def uniform(*shape):
            return ((torch.rand(*shape, generator=g) * 2 - 1) * scale).to(device)

        self.heads, self.kv_heads, self.head_dim = heads, kv_heads, dim // heads
        kv = kv_heads * self.head_dim
        self.embedding = uniform(vocab, dim)
        self.layers = [dict(wq=uniform(dim, dim), wk=uniform(kv, dim), wv=uniform(kv, dim), wo=uniform(dim, dim),
                            w1=uniform(hidden, dim), w2=uniform(dim, hidden), w3=uniform(hidden, dim),
                            attention_norm=torch.ones(dim, device=device), ffn_norm=torch.ones(dim, device=device))
                       for _ in range(layers)]
        self.norm = torch.ones(dim, device=device)
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
        end = position + t
        x = self.embedding[tokens]
        for l, w in enumerate(self.layers):
            h = self.rms_norm(x, w["attention_norm"])
            q = self.rope((h @ w["wq"].T).view(t, self.heads, self.head_dim), position)
            self.keys[l, position:end] = self.rope((h @ w["wk"].T).view(t, self.kv_heads, self.head_dim), position)
            self.values[l, position:end] = (h @ w["wv"].T).view(t, self.kv_heads, self.head_dim)
            k, v = self.keys[l, :end].transpose(0, 1), self.values[l, :end].transpose(0, 1)
            y = F.scaled_dot_product_attention(q.transpose(0, 1), k, v, is_causal=t > 1 and position == 0,
                                               enable_gqa=self.heads != self.kv_heads)
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
    a = p.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    name = "llama-tiny" if a.tiny else "llama2.c-110M"
    dim, hidden, layers, heads, kv_heads, vocab, generated = SHAPES[name]
    device = torch.device(a.device)
    model = Llama(dim, hidden, layers, heads, kv_heads, vocab, PROMPT + generated, device)
    prompt = torch.tensor([1 + i * 97 % (vocab - 1) for i in range(PROMPT)], device=device)
    gpu = device.type == "cuda"
    print(f"torch {torch.__version__} on {torch.cuda.get_device_name(device) if gpu else 'cpu'}: {name}, FP32",
          file=sys.stderr)
    rates = []
    with torch.inference_mode():
        for r in range(a.warmup + a.steps):
            start = time.perf_counter()
            token = int(model.forward(prompt, 0).argmax())
            prefilled = time.perf_counter()
            for i in range(generated - 1):  # as Generator: the last token chosen is never fed back
                token = int(model.forward(torch.tensor([token], device=device), PROMPT + i).argmax())
            rate = (generated - 1) / (time.perf_counter() - prefilled)
            if r >= a.warmup:
                rates.append(rate)
            print(f"run {r + 1}: {generated} tokens, prefill {(prefilled - start) * 1e3:.1f} ms, decode {rate:.1f} "
                  f"tokens/s{' (warm-up)' if r < a.warmup else ''}", file=sys.stderr)
    print(f"torch,decode,{name} P{PROMPT}+{generated},FP32,{statistics.median(rates):.1f},tokens/s", flush=True)


if __name__ == "__main__":
    main()
