"""The Markdown table of bench/gpu/check.sh's model part, from the outputs its four programs left in a folder.

Reads model-{train,decode}-{panamax,torch}*.txt (the training step once per precision, model-train-WHO-PRECISION.txt):
each program's CSV result line (WHO,BENCH,SHAPE,PRECISION,VALUE,UNIT),
the lines saying where it ran, and the greedy tokens of the decode runs. Writes model.csv beside them and prints the
table: Panamax's speed over PyTorch's (time ratio inverted for ms/step) next to the issue's target.

A speed is only worth comparing if both computed the same thing: when both decode runs reported a rate, their greedy
tokens must be the same, every one: the two run the same weights in FP32, where rounding alone changes a greedy choice
only at a near tie, rarely in a run. Otherwise the decode row says FAILED, a FAILED line after the table says where
the tokens part, and the exit status is 1, so that the run needs a look before its speed is quoted.
"""
import os
import sys

TARGETS = {"train": 1.0, "decode": 1.5}  # Panamax's speed over PyTorch eager's, the targets
TITLES = {"train": "GPT-2 training step (fwd + bwd + clip + AdamW)", "decode": "greedy decode after a 16-token prefill"}


def read(folder, prefix):
    """The lines of every output file whose name starts with prefix, in name order."""
    lines = []
    for name in sorted(os.listdir(folder)):
        if name.startswith(prefix) and name.endswith(".txt"):
            lines += open(os.path.join(folder, name), encoding="utf-8", errors="replace").read().splitlines()
    return lines


def main(folder):
    results, where, tokens = {}, [], {}
    csv_lines = []
    for bench in ("train", "decode"):
        for who in ("panamax", "torch"):
            for line in read(folder, f"model-{bench}-{who}"):
                fields = line.split(",")
                if len(fields) == 6 and fields[0] == who and fields[1] == bench:
                    csv_lines.append(line)
                    results[(bench, fields[2], fields[3], who)] = (float(fields[4]), fields[5])
                elif line.startswith("tokens: "):
                    tokens[who] = line.split()[1:]
                elif (line.startswith("backend: ") or line.startswith("torch ")) and line not in where:
                    where.append(line)
    with open(os.path.join(folder, "model.csv"), "w") as f:
        f.writelines(line + "\n" for line in csv_lines)
    failure = decode_failure(results, tokens)
    print("| benchmark | shape | precision | Panamax | PyTorch eager | Panamax speed ÷ PyTorch speed | target "
          "| same output |")
    print("|---|---|---|---:|---:|---:|---:|---|")
    rows = sorted({key[:3] for key in results}, key=lambda k: (k[0] != "train", k))
    for bench, shape, precision in rows:
        p = results.get((bench, shape, precision, "panamax"))
        t = results.get((bench, shape, precision, "torch"))
        cells = [f"{v[0]:g} {v[1]}" if v else "–" for v in (p, t)]
        if p and t:
            speed = t[0] / p[0] if p[1] == "ms/step" else p[0] / t[0]
            ratio = f"{speed:.2f}×"
        else:
            ratio = "–"
        if bench != "decode" or not (p and t):
            same = "–"
        elif failure:
            same = "**FAILED**"
        else:
            same = f"yes ({len(tokens['panamax'])} greedy tokens)"
        # A block format's decode has no PyTorch peer here, so no target against it.
        target = "–" if any(w in BLOCK_FORMATS for w in shape.split()) else f"≥ {TARGETS[bench]}×"
        print(f"| {TITLES[bench]} | {shape} | {precision} | {cells[0]} | {cells[1]} | {ratio} | {target} | {same} |")
    missing = [f"{b}/{w}" for b in ("train", "decode") for w in ("panamax", "torch")
               if not any(k[0] == b and k[3] == w for k in results)]
    if missing:
        print(f"\nNo result from: {', '.join(missing)} (see model-*.txt).")
    print("\nPrecision is that of the products only (Panamax's --precision; torch_train_step.py's docstring says how "
          "PyTorch matches it): FP32; TF32 inputs (cuBLAS's FAST_TF32, PyTorch's allow_tf32); BF16 inputs rounded "
          "to nearest even with FP32 accumulation (PyTorch also rounds each product's result to bfloat16). "
          "Decode runs FP32.")
    quantized = quantized_ratios(results)
    if quantized:
        print("\nPanamax's decode of the same weights in GGUF block formats (kept in their format on the device), "
              "over its float32 decode: " + "; ".join(quantized) + ".")
    if failure:
        print(f"\nFAILED: {failure}")
    elif "panamax" in tokens and "torch" in tokens:
        print(f"\nGreedy tokens on the same llama2.c weights: Panamax's and PyTorch's {len(tokens['panamax'])} agree.")
    print("\nRan on:\n" + "\n".join(f"- {line}" for line in where))
    return 1 if failure else 0


BLOCK_FORMATS = ("F16", "BF16", "Q8_0", "Q4_0")


def quantized_ratios(results):
    """'Q8_0: 2.10× (…)' for each Panamax decode of a block format whose float32 decode of the same shape ran."""
    ratios = []
    for (bench, shape, precision, who), value in sorted(results.items()):
        words = shape.split()
        formats = [w for w in words if w in BLOCK_FORMATS]
        if bench != "decode" or who != "panamax" or not formats:
            continue
        f32 = results.get((bench, " ".join(w for w in words if w not in BLOCK_FORMATS), precision, who))
        if f32:
            ratios.append(f"{formats[0]} {value[0] / f32[0]:.2f}× ({value[0]:g} against {f32[0]:g} {value[1]})")
    return ratios


def decode_failure(results, tokens):
    """Why the two decode runs' outputs do not match, or None if they do or not both ran."""
    ran = {who for (bench, _, _, who) in results if bench == "decode"}
    if ran != {"panamax", "torch"}:
        return None  # the missing side is reported as missing; there is nothing to compare
    missing = [who for who in ("panamax", "torch") if who not in tokens]
    if missing:
        return f"no greedy tokens from {' or '.join(missing)}, so the decode outputs were not compared"
    a, b = tokens["panamax"], tokens["torch"]
    if a == b:
        return None
    first = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    return (f"the greedy tokens differ: Panamax generated {len(a)}, PyTorch {len(b)}, the first difference at token "
            f"{first} (Panamax {a[first] if first < len(a) else 'none'}, PyTorch {b[first] if first < len(b) else 'none'})")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
