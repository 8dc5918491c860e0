#!/usr/bin/python3
"""GPT-2 (124M shape) training-step timing on CPU with plain PyTorch.

Peer of llm.c's train_gpt2.c: one step = forward (incl. cross-entropy loss)
+ zero_grad + backward + AdamW step, fp32, random weights, random tokens.

usage: train_step.py NTHREADS [--steps 6] [--warmup 2] [--B 4] [--T 64] ...
Run with Debian's /usr/bin/python3 (python3-torch 1.13 + OpenBLAS).
"""
import argparse, math, os, statistics, sys, time

import torch
import torch.nn as nn
import torch.nn.functional as F

p = argparse.ArgumentParser()
p.add_argument("threads", type=int)
p.add_argument("--steps", type=int, default=6, help="total steps incl. warm-up")
p.add_argument("--warmup", type=int, default=2, help="first N steps discarded")
p.add_argument("--B", type=int, default=4)
p.add_argument("--T", type=int, default=64)
p.add_argument("--L", type=int, default=12)
p.add_argument("--NH", type=int, default=12)
p.add_argument("--C", type=int, default=768)
p.add_argument("--V", type=int, default=50257,
               help="vocab (llm.c's lm head runs over padded Vp=50304; pass --V 50304 to match its FLOPs exactly)")
p.add_argument("--maxT", type=int, default=1024)
p.add_argument("--foreach", action="store_true",
               help="AdamW(foreach=True); default is torch 1.13's CPU default (per-tensor loop)")
p.add_argument("--seed", type=int, default=1337)
a = p.parse_args()

torch.set_num_threads(a.threads)
torch.manual_seed(a.seed)


class Block(nn.Module):
    def __init__(self, C, NH, maxT):
        super().__init__()
        self.NH = NH
        self.ln_1 = nn.LayerNorm(C)
        self.c_attn = nn.Linear(C, 3 * C)
        self.c_proj = nn.Linear(C, C)
        self.ln_2 = nn.LayerNorm(C)
        self.c_fc = nn.Linear(C, 4 * C)
        self.mlp_c_proj = nn.Linear(4 * C, C)
        self.register_buffer("mask", torch.tril(torch.ones(maxT, maxT, dtype=torch.bool)), persistent=False)

    def attn(self, x):
        B, T, C = x.shape
        hs = C // self.NH
        q, k, v = self.c_attn(x).split(C, dim=2)
        q = q.view(B, T, self.NH, hs).transpose(1, 2)  # (B, NH, T, hs)
        k = k.view(B, T, self.NH, hs).transpose(1, 2)
        v = v.view(B, T, self.NH, hs).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hs))
        att = att.masked_fill(~self.mask[:T, :T], float("-inf"))
        att = F.softmax(att, dim=-1)
        y = (att @ v).transpose(1, 2).contiguous().view(B, T, C)
        return self.c_proj(y)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        x = x + self.mlp_c_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))
        return x


class GPT(nn.Module):
    def __init__(self, V, maxT, L, NH, C):
        super().__init__()
        self.wte = nn.Embedding(V, C)
        self.wpe = nn.Embedding(maxT, C)
        self.h = nn.ModuleList([Block(C, NH, maxT) for _ in range(L)])
        self.ln_f = nn.LayerNorm(C)
        # init like llm.c's train_gpt2.py: N(0,0.02), residual projections scaled by 1/sqrt(2L),
        # biases 0, layernorm weight 1 / bias 0 (nn.LayerNorm default)
        for name, m in self.named_modules():
            if isinstance(m, nn.Linear):
                std = 0.02 / math.sqrt(2 * L) if name.endswith("c_proj") else 0.02
                nn.init.normal_(m.weight, 0.0, std)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Embedding):
                nn.init.normal_(m.weight, 0.0, 0.02)

    def forward(self, idx, targets):
        B, T = idx.shape
        pos = torch.arange(T, dtype=torch.long)
        x = self.wte(idx) + self.wpe(pos)
        for blk in self.h:
            x = blk(x)
        x = self.ln_f(x)
        logits = F.linear(x, self.wte.weight)  # tied lm head
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))


model = GPT(a.V, a.maxT, a.L, a.NH, a.C)
model.train()
nparams = sum(p.numel() for p in model.parameters())
# llm.c AdamW: lr 1e-4, beta1 0.9, beta2 0.999, eps 1e-8, weight_decay 0.0 (torch default wd would be 0.01)
opt_kwargs = dict(lr=1e-4, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
if a.foreach:
    opt_kwargs["foreach"] = True
opt = torch.optim.AdamW(model.parameters(), **opt_kwargs)

g = torch.Generator().manual_seed(a.seed)
data = torch.randint(0, min(a.V, 50257), (a.steps, a.B, a.T + 1), generator=g)
batches = [(d[:, :-1].contiguous(), d[:, 1:].contiguous()) for d in data]

print(f"torch {torch.__version__} threads={torch.get_num_threads()} "
      f"B={a.B} T={a.T} L={a.L} NH={a.NH} C={a.C} V={a.V} params={nparams} "
      f"steps={a.steps} warmup(discarded)={a.warmup} foreach={a.foreach}", flush=True)

rows = []
for step in range(a.steps):
    x, y = batches[step]
    t0 = time.perf_counter()
    loss = model(x, y)
    t1 = time.perf_counter()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    t2 = time.perf_counter()
    opt.step()
    t3 = time.perf_counter()
    r = ((t1 - t0) * 1e3, (t2 - t1) * 1e3, (t3 - t2) * 1e3, (t3 - t0) * 1e3)
    rows.append(r)
    print(f"step {step}: train loss {loss.item():f} (took {r[3]:.3f} ms: "
          f"fwd {r[0]:.1f} bwd {r[1]:.1f} opt {r[2]:.1f})", flush=True)

timed = rows[a.warmup:]
if timed:
    med = [statistics.median(c) for c in zip(*timed)]
    mean_total = statistics.fmean(r[3] for r in timed)
    print(f"RESULT torch threads={a.threads} B={a.B} T={a.T} steps_timed={len(timed)} "
          f"median_ms={med[3]:.3f} mean_ms={mean_total:.3f} min_ms={min(r[3] for r in timed):.3f} "
          f"median_fwd_ms={med[0]:.3f} median_bwd_ms={med[1]:.3f} median_opt_ms={med[2]:.3f}")
