"""The PyTorch side of bench/gpu/check.sh: torch.matmul on the shapes CublasGemm runs, same CSV lines."""
import sys
import time

import torch


def timed(a, b, reps):
    for _ in range(2):
        torch.matmul(a, b)
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(reps):
        torch.matmul(a, b)
    end.record()
    end.synchronize()
    return start.elapsed_time(end) / reps


def per_call(a, b, calls=20000):
    for _ in range(calls):
        torch.matmul(a, b)
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(calls):
        torch.matmul(a, b)
    torch.cuda.synchronize()
    return (time.perf_counter() - t0) * 1e6 / calls


def main(sizes):
    torch.backends.cuda.matmul.allow_tf32 = False  # FP32 as cuBLAS's default math mode computes it
    print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, {torch.cuda.get_device_name(0)}", file=sys.stderr)
    for name, dtype in (("FLOAT", torch.float32), ("BFLOAT16", torch.bfloat16)):
        for n in sizes:
            a = torch.rand(n, n, device="cuda", dtype=dtype) * 2 - 1
            b = torch.rand(n, n, device="cuda", dtype=dtype) * 2 - 1
            ms = timed(a, b, max(3, int(4e12 / (2.0 * n ** 3))))
            print(f"torch,{name},{n},{ms:.4f},{2.0 * n ** 3 / ms / 1e9:.2f}")
        for n in (16, 64):
            a = torch.rand(n, n, device="cuda", dtype=dtype)
            print(f"torch-small,{name},{n},{per_call(a, a):.3f},")


if __name__ == "__main__":
    main([int(n) for n in sys.argv[1:]])
