#!/usr/bin/env python3
"""Reads llama-perplexity's --kl-divergence-base file ("_logits_", n_ctx, n_vocab, n_chunk, the int32 tokens, then
per chunk the scored positions' log-probabilities as a float scale, a float minimum and n_vocab uint16).

usage: logits.py tokens BASE OUT.bin   write the tokens as an llm.c token file (for panamax perplexity --data)
       logits.py top1 BASE             print each chunk's top-1 ids, one line per chunk (as --print-top1 does)
       logits.py agree A B             the share of positions where two such top-1 listings agree
"""
import struct, sys

def read(path):
    with open(path, "rb") as f:
        data = f.read()
    assert data[:8] == b"_logits_", "not a llama-perplexity logits file"
    n_ctx, n_vocab, n_chunk = struct.unpack_from("<iii", data, 8)
    tokens = struct.unpack_from("<%di" % (n_ctx * n_chunk), data, 20)
    return data, n_ctx, n_vocab, n_chunk, tokens, 20 + 4 * n_ctx * n_chunk

def agree(a, b):
    def rows(path):
        return [line.split() for line in open(path) if line.strip() and line[0].isdigit()]
    pairs = [(x, y) for la, lb in zip(rows(a), rows(b)) for x, y in zip(la, lb)]
    print("%.2f%% of %d positions" % (100 * sum(x == y for x, y in pairs) / len(pairs), len(pairs)))

def main():
    if sys.argv[1] == "agree":
        agree(sys.argv[2], sys.argv[3])
        return
    data, n_ctx, n_vocab, n_chunk, tokens, at = read(sys.argv[2])
    if sys.argv[1] == "tokens":
        header = struct.pack("<iii", 20240520, 1, len(tokens)) + bytes(4 * 253)
        with open(sys.argv[3], "wb") as f:
            f.write(header + struct.pack("<%dH" % len(tokens), *tokens))
        return
    nv = 2 * ((n_vocab + 1) // 2) + 4
    per_chunk = n_ctx - 1 - n_ctx // 2
    for c in range(n_chunk):
        ids = []
        for p in range(per_chunk):
            q = struct.unpack_from("<%dH" % n_vocab, data, at + 8)
            ids.append(max(range(n_vocab), key=lambda v: (q[v], -v)))
            at += 2 * nv
        print(" ".join(map(str, ids)))

main()
