#!/usr/bin/env python3
"""Fine-tunes a pretrained model in PyTorch exactly as `panamax train --init ... --data-order sequential` does.

The model is a GPT-2 Hugging Face directory (config.json + model.safetensors) or a llama2.c checkpoint (.bin); the data
an llm.c token file. The run is Panamax's, step for step:

- windows: window i reads tokens [i*T, (i+1)*T] (inputs, then targets shifted by one); step s of an epoch takes
  windows s*B ... s*B+B-1; an epoch has (tokens-1)//T // B steps; nothing is held out (run Panamax with
  --val-fraction 0);
- loss: the mean cross-entropy over the batch's B*T tokens;
- AdamW (torch.optim.AdamW, decoupled weight decay) with the decay on the 2-D parameters only, which are exactly the
  matrices and embeddings that Panamax decays (its norms and biases are the 1-D ones);
- global-norm clipping with torch.nn.utils.clip_grad_norm_ (which divides by norm + 1e-6, Panamax by norm: a relative
  difference of 1e-6/norm in the clipped step);
- the learning rate of TrainingOptions.learningRate: linear warm-up in float32 arithmetic, then cosine decay to the
  minimum, computed in double from float32 options and rounded to float32.

Prints `step N loss L lr R grad_norm G` per step and writes the final weights, under Panamax's names and layouts
(GPT-2's Conv1D matrices [in, out], Llama's [out, in]), as a float32 safetensors file.

usage: finetune_parity.py --model PATH --data FILE --out-weights FILE [--steps 20 --batch 4 --seq 16 --lr 1e-3 ...]
"""
import argparse
import json
import math
import os
import struct

import numpy as np
import torch
import torch.nn.functional as F

TOKEN_MAGIC = 20240520


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + length])
    base = 8 + length
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        raw = data[base + begin:base + end]
        if info["dtype"] == "F32":
            values = np.frombuffer(raw, "<f4")
        elif info["dtype"] == "F16":
            values = np.frombuffer(raw, "<f2").astype(np.float32)
        elif info["dtype"] == "BF16":
            values = (np.frombuffer(raw, "<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            continue  # e.g. a bool attention mask some exports keep
        tensors[name] = values.reshape(info["shape"]).astype(np.float32)
    return tensors


def write_safetensors(path, tensors):
    header, blobs, offset = {}, [], 0
    for name, array in tensors.items():
        blob = np.ascontiguousarray(array, dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(array.shape), "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for blob in blobs:
            f.write(blob)


def read_tokens(path):
    with open(path, "rb") as f:
        header = np.frombuffer(f.read(1024), "<i4")
        if header[0] != TOKEN_MAGIC or header[1] != 1:
            raise SystemExit(f"{path}: not an llm.c token file (magic {header[0]}, version {header[1]})")
        ids = np.frombuffer(f.read(), "<u2")
    if len(ids) != header[2]:
        raise SystemExit(f"{path}: header says {header[2]} tokens, the file holds {len(ids)}")
    return ids.astype(np.int64)


def load_gpt2(directory):
    with open(os.path.join(directory, "config.json")) as f:
        config = json.load(f)
    weights = read_safetensors(os.path.join(directory, "model.safetensors"))
    weights = {name.removeprefix("transformer."): value for name, value in weights.items()}
    cfg = {
        "arch": "gpt2",
        "dim": config["n_embd"],
        "layers": config["n_layer"],
        "heads": config["n_head"],
        "vocab": config["vocab_size"],
        "eps": config.get("layer_norm_epsilon", 1e-5),
    }
    names = ["wte.weight", "wpe.weight"]
    for layer in range(cfg["layers"]):
        for local in ["ln_1.weight", "ln_1.bias", "attn.c_attn.weight", "attn.c_attn.bias", "attn.c_proj.weight",
                      "attn.c_proj.bias", "ln_2.weight", "ln_2.bias", "mlp.c_fc.weight", "mlp.c_fc.bias",
                      "mlp.c_proj.weight", "mlp.c_proj.bias"]:
            names.append(f"h.{layer}.{local}")
    names += ["ln_f.weight", "ln_f.bias"]
    return cfg, {name: weights[name] for name in names}


def load_llama2c(path):
    with open(path, "rb") as f:
        dim, hidden, layers, heads, kv_heads, vocab, seq_len = struct.unpack("<7i", f.read(28))
        values = np.frombuffer(f.read(), "<f4")
    shared = vocab > 0
    vocab = abs(vocab)
    head_size = dim // heads
    kv_dim = kv_heads * head_size
    at = 0

    def take(*shape):
        nonlocal at
        count = int(np.prod(shape))
        array = values[at:at + count].reshape(shape).astype(np.float32)
        at += count
        return array

    weights = {"tok_embeddings.weight": take(vocab, dim)}
    per_layer = [("attention_norm.weight", (dim,)), ("attention.wq.weight", (dim, dim)),
                 ("attention.wk.weight", (kv_dim, dim)), ("attention.wv.weight", (kv_dim, dim)),
                 ("attention.wo.weight", (dim, dim)), ("ffn_norm.weight", (dim,)),
                 ("feed_forward.w1.weight", (hidden, dim)), ("feed_forward.w2.weight", (dim, hidden)),
                 ("feed_forward.w3.weight", (hidden, dim))]
    for local, shape in per_layer:
        for layer in range(layers):
            weights[f"layers.{layer}.{local}"] = take(*shape)
    weights["norm.weight"] = take(dim)
    take(seq_len, head_size // 2)  # llama2.c's legacy RoPE tables, unused
    take(seq_len, head_size // 2)
    if not shared:
        weights["output.weight"] = take(vocab, dim)
    if at != len(values):
        raise SystemExit(f"{path}: {len(values) - at} floats left over after the weights the header implies")
    order = ["tok_embeddings.weight"]
    for layer in range(layers):
        order += [f"layers.{layer}.{local}" for local, _ in per_layer]
    order += ["norm.weight"] + (["output.weight"] if not shared else [])
    cfg = {"arch": "llama", "dim": dim, "layers": layers, "heads": heads, "kv_heads": kv_heads, "vocab": vocab,
           "eps": 1e-5, "theta": 10000.0}
    return cfg, {name: weights[name] for name in order}


def causal_attention(q, k, v):
    """q, k, v: (B, heads, T, hs) -> (B, T, heads*hs)."""
    B, H, T, hs = q.shape
    scores = (q @ k.transpose(-2, -1)) / math.sqrt(hs)
    mask = torch.ones(T, T, dtype=torch.bool).tril()
    scores = scores.masked_fill(~mask, float("-inf"))
    y = F.softmax(scores, dim=-1) @ v
    return y.transpose(1, 2).reshape(B, T, H * hs)


def gpt2_logits(cfg, P, idx):
    B, T = idx.shape
    C, H = cfg["dim"], cfg["heads"]
    eps = cfg["eps"]
    x = P["wte.weight"][idx] + P["wpe.weight"][:T]
    for layer in range(cfg["layers"]):
        p = lambda local: P[f"h.{layer}.{local}"]
        h = F.layer_norm(x, (C,), p("ln_1.weight"), p("ln_1.bias"), eps)
        q, k, v = (h @ p("attn.c_attn.weight") + p("attn.c_attn.bias")).split(C, dim=2)
        q, k, v = (t.view(B, T, H, C // H).transpose(1, 2) for t in (q, k, v))
        x = x + causal_attention(q, k, v) @ p("attn.c_proj.weight") + p("attn.c_proj.bias")
        h = F.layer_norm(x, (C,), p("ln_2.weight"), p("ln_2.bias"), eps)
        h = F.gelu(h @ p("mlp.c_fc.weight") + p("mlp.c_fc.bias"), approximate="tanh")
        x = x + h @ p("mlp.c_proj.weight") + p("mlp.c_proj.bias")
    x = F.layer_norm(x, (C,), P["ln_f.weight"], P["ln_f.bias"], eps)
    return x @ P["wte.weight"].T


def rms_norm(x, weight, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight


def rope(x, cos, sin):
    """Rotates adjacent pairs (x[2k], x[2k+1]) of each head, as llama2.c does. x: (B, T, heads, hs)."""
    even, odd = x[..., 0::2], x[..., 1::2]
    return torch.stack((even * cos - odd * sin, even * sin + odd * cos), dim=-1).flatten(-2)


def llama_logits(cfg, P, idx):
    B, T = idx.shape
    C, H, KV = cfg["dim"], cfg["heads"], cfg["kv_heads"]
    hs = C // H
    eps = cfg["eps"]
    # Panamax's tables: angles in double, cos and sin rounded to float.
    pair = torch.arange(hs // 2, dtype=torch.float64)
    angles = torch.arange(T, dtype=torch.float64)[:, None] * cfg["theta"] ** (-2 * pair / hs)
    cos = torch.cos(angles).float()[None, :, None, :]
    sin = torch.sin(angles).float()[None, :, None, :]
    x = P["tok_embeddings.weight"][idx]
    for layer in range(cfg["layers"]):
        p = lambda local: P[f"layers.{layer}.{local}"]
        h = rms_norm(x, p("attention_norm.weight"), eps)
        q = rope((h @ p("attention.wq.weight").T).view(B, T, H, hs), cos, sin)
        k = rope((h @ p("attention.wk.weight").T).view(B, T, KV, hs), cos, sin)
        v = (h @ p("attention.wv.weight").T).view(B, T, KV, hs)
        k = k.repeat_interleave(H // KV, dim=2)  # query head i reads key/value head i // (H / KV)
        v = v.repeat_interleave(H // KV, dim=2)
        y = causal_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        x = x + y @ p("attention.wo.weight").T
        h = rms_norm(x, p("ffn_norm.weight"), eps)
        x = x + (F.silu(h @ p("feed_forward.w1.weight").T) * (h @ p("feed_forward.w3.weight").T)) \
            @ p("feed_forward.w2.weight").T
    x = rms_norm(x, P["norm.weight"], eps)
    return x @ P.get("output.weight", P["tok_embeddings.weight"]).T


def learning_rate(step, total, a):
    """TrainingOptions.learningRate(step, total) with float32 options, bit for bit."""
    lr, min_lr = np.float32(a.lr), np.float32(a.min_lr)
    if step <= a.warmup:
        return float(lr * np.float32(step) / np.float32(a.warmup))
    progress = min(1.0, (step - a.warmup) / max(1, total - a.warmup))
    return float(np.float32(float(min_lr) + 0.5 * (1 + math.cos(math.pi * progress)) * float(lr - min_lr)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help="GPT-2 Hugging Face directory or llama2.c .bin")
    parser.add_argument("--data", required=True, help="llm.c token file")
    parser.add_argument("--out-weights", required=True, help="where the final weights go (float32 safetensors)")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seq", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--min-lr", type=float, default=None, help="default: a tenth of --lr, as Panamax's")
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--weight-decay", type=float, default=0.1)
    parser.add_argument("--beta1", type=float, default=0.9)
    parser.add_argument("--beta2", type=float, default=0.95)
    parser.add_argument("--eps", type=float, default=1e-8)
    parser.add_argument("--grad-clip", type=float, default=1.0)
    parser.add_argument("--threads", type=int, default=1)
    a = parser.parse_args()
    if a.min_lr is None:
        a.min_lr = float(np.float32(a.lr) / np.float32(10))
    torch.set_num_threads(a.threads)

    if os.path.isdir(a.model):
        cfg, weights = load_gpt2(a.model)
        logits_of = gpt2_logits
    else:
        cfg, weights = load_llama2c(a.model)
        logits_of = llama_logits
    params = {name: torch.tensor(value, requires_grad=True) for name, value in weights.items()}
    tokens = torch.from_numpy(read_tokens(a.data))
    if int(tokens.max()) >= cfg["vocab"]:
        raise SystemExit(f"{a.data}: token {int(tokens.max())} is not below the vocabulary size {cfg['vocab']}")
    windows = (len(tokens) - 1) // a.seq
    steps_per_epoch = windows // a.batch
    if steps_per_epoch < 1:
        raise SystemExit(f"{a.data}: {windows} windows of {a.seq} tokens, fewer than one batch of {a.batch}")

    decayed = [p for p in params.values() if p.ndim == 2]
    not_decayed = [p for p in params.values() if p.ndim != 2]
    optimizer = torch.optim.AdamW(
        [{"params": decayed, "weight_decay": float(np.float32(a.weight_decay))},
         {"params": not_decayed, "weight_decay": 0.0}],
        lr=a.lr, betas=(float(np.float32(a.beta1)), float(np.float32(a.beta2))), eps=float(np.float32(a.eps)))
    print(f"torch {torch.__version__} threads={torch.get_num_threads()} {cfg['arch']} "
          f"parameters={sum(p.numel() for p in params.values())} windows={windows} steps={a.steps}", flush=True)
    for step in range(1, a.steps + 1):
        first = (step - 1) % steps_per_epoch * a.batch
        rows = torch.stack([tokens[w * a.seq:(w + 1) * a.seq + 1] for w in range(first, first + a.batch)])
        inputs, targets = rows[:, :-1], rows[:, 1:]
        logits = logits_of(cfg, params, inputs)
        loss = F.cross_entropy(logits.reshape(-1, cfg["vocab"]), targets.reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if a.grad_clip > 0:
            norm = torch.nn.utils.clip_grad_norm_(list(params.values()), float(np.float32(a.grad_clip)))
        else:
            norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in params.values()]))
        rate = learning_rate(step, a.steps, a)
        for group in optimizer.param_groups:
            group["lr"] = rate
        optimizer.step()
        print(f"step {step} loss {loss.item()!r} lr {rate!r} grad_norm {float(norm)!r}", flush=True)
    write_safetensors(a.out_weights, {name: p.detach().numpy() for name, p in params.items()})


if __name__ == "__main__":
    main()
