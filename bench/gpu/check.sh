#!/usr/bin/env bash
# One-shot GPU check of cuda-bindings and the model's CUDA backend, for a machine with a GPU and PyTorch but no Java
# (the `device` tool's).
#
#   bench/gpu/check.sh prepare   here: builds the jars and a jlinked JDK 25 runtime into bench/gpu/prepared (git-ignored,
#                                under 64 MiB together) and prints the device call that runs the check
#   bench/gpu/check.sh run [PART...]
#                                there: the parts in order, all three by default (model first: its numbers matter
#                                most), within $CHECK_SECONDS (default 360) in all. The results are written to a work
#                                folder and come back as $OUT/check.tgz, with model.md and gemm.md beside it: the device
#                                returns few files from $OUT.
#     tests  the cuda-bindings tests, the `gpu` ones included (Panamax's kernels through CudaKernel, next to the same
#            kernels on the emulated device), and the model's GpuTransformerTest (CudaBackend on the GPU against the
#            CPU backend), GpuBackendTest (every comparison of CudaBackendTest with the CPU, on the GPU) and
#            GpuPrecisionTest (its TF32 and BF16 products against float64): tests.txt, model-tests.txt
#     gemm   GEMM through Panamax's cuBLAS binding next to torch.matmul on the same shapes, FP32 and BF16,
#            n = 1024…8192, and the per-call overhead of small products: panamax.csv, torch.csv, gemm.md
#     model  a GPT-2 124M training step (batch 8 × 1024) on CudaBackend next to PyTorch eager doing the same step, at
#            each products' precision in $CHECK_PRECISIONS (default "fp32 tf32 bf16": FP32, TF32 inputs, BF16 inputs
#            with FP32 accumulation, on both sides), and greedy decode (FP32) of the llama2.c 110M shape next to a
#            PyTorch loop, on the same weights, then Panamax's decode of the same weights as GGUF block formats
#            ($CHECK_DECODE_WEIGHTS, default "q8_0 q4_0"): model-*.txt (each program's output), model.csv, model.md
#   CHECK_TINY=1 bench/gpu/check.sh run model
#                                here: the model part at its tiny shapes on the emulated device and PyTorch's CPU, to
#                                check the script without a GPU (python3 must have torch)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
prepared="$root/bench/gpu/prepared"
sizes=(1024 2048 4096 8192)
limit_mib=64

prepare() {
    source "$root/.mvn/find-jdk.sh"
    cd "$root"
    ./mvnw -q -B -DskipTests -Dspotless.check.skip=true -Dmaven.javadoc.skip=true package -pl cuda-bindings,model,bench -am
    rm -rf "$prepared"
    mkdir -p "$prepared/lib"
    cp cuda-bindings/target/panamax-cuda-bindings-*[0-9T].jar "$prepared/lib/cuda-bindings.jar"
    cp kernels/target/panamax-kernels-*-tests.jar "$prepared/lib/kernels-tests.jar"
    cp kernels/target/panamax-kernels-*[0-9T].jar "$prepared/lib/kernels.jar"
    cp model/target/panamax-model-*[0-9T].jar "$prepared/lib/model.jar"
    "$JAVA_HOME/bin/jar" --create --file "$prepared/lib/model-tests.jar" -C model/target/test-classes .
    "$JAVA_HOME/bin/jar" --create --file "$prepared/lib/cuda-bindings-tests.jar" -C cuda-bindings/target/test-classes .
    (cd bench/target/classes && "$JAVA_HOME/bin/jar" --create --file "$prepared/lib/bench-gpu.jar" \
        dev/panamax/bench/{CublasGemm,BenchArguments,GpuTrainStep,GpuDecode}*.class)
    ./mvnw -q -B dependency:copy -Dartifact=org.junit.platform:junit-platform-console-standalone:1.14.1 \
        -DoutputDirectory="$prepared/lib"
    "$JAVA_HOME/bin/jlink" --add-modules java.base,java.logging,jdk.zipfs,jdk.unsupported,jdk.incubator.vector,jdk.management \
        --output "$prepared/runtime" --strip-debug --no-man-pages --no-header-files --compress=zip-9
    # The model's stories260K test reads ../shared/data, which does not travel: a copy does.
    if [ -f "$root/../shared/data/stories260K.bin" ]; then
        mkdir -p "$prepared/data"
        cp "$root/../shared/data/stories260K.bin" "$prepared/data/"
    fi
    # What travels is the working tree (tracked files and untracked ones git does not ignore) and the carried folder
    # together, with a margin under the limit.
    local mib tracked
    tracked=$(cd "$root" && git ls-files -z --cached --others --exclude-standard | du -cb --files0-from=- 2>/dev/null |
        tail -n 1 | cut -f1)
    mib=$(($(du -sb "$prepared" | cut -f1) / 1048576 + tracked / 1048576))
    if ((mib >= limit_mib - 4)); then
        echo "check.sh: $prepared and the tracked files are $mib MiB, too close to the $limit_mib MiB that travels" >&2
        exit 1
    fi
    echo "prepared $prepared ($mib MiB with the tracked files). On the GPU machine, from the repository root:"
    echo "  device run: command 'bench/gpu/check.sh run', carry ['bench/gpu/prepared'], timeout_s 420"
    echo "  (the script stops its parts by itself after \$CHECK_SECONDS, default 360 s, leaving time for a rerun)"
}

# Prints -D options pointing at the libcudart and libcublas that PyTorch's pip packages bring, so that Panamax and
# torch.matmul run the same cuBLAS.
pip_libraries() {
    python3 - <<'PY' 2>/dev/null || true
import glob, os, site
roots = site.getsitepackages() + [site.getusersitepackages()]
# CUDA 13's wheels keep both in nvidia/cu13/lib; CUDA 11 and 12's in a folder each.
for prop, patterns in (
        ("cudart", ("nvidia/cu13/lib/libcudart.so.13", "nvidia/cuda_runtime/lib/libcudart.so.1[12]")),
        ("cublas", ("nvidia/cu13/lib/libcublas.so.13", "nvidia/cublas/lib/libcublas.so.1[12]"))):
    for pattern in patterns:  # in order of preference, the newest match of the first that matches
        found = sorted(f for r in roots for f in glob.glob(os.path.join(r, pattern)))
        if found:
            print(f"-Dpanamax.cuda.{prop}={found[-1]}")
            break
PY
}

run() {
    local parts=("$@")
    ((${#parts[@]})) || parts=(model gemm tests)
    local part
    for part in "${parts[@]}"; do
        case $part in
            tests | gemm | model) ;;
            *) echo "check.sh: unknown part ($part); the parts are tests, gemm and model" >&2; return 2 ;;
        esac
    done
    returned=${OUT:-$root/bench/gpu/out}
    out=$(mktemp -d "${TMPDIR:-/tmp}/panamax-check-XXXXXX")
    mkdir -p "$returned"
    deadline=$((SECONDS + ${CHECK_SECONDS:-360}))
    # Whatever happens, the results come back in one archive, with the two tables beside it.
    trap 'tar -czf "$returned/check.tgz" -C "$out" . 2>/dev/null; cp "$out"/model.md "$out"/gemm.md "$returned"/ 2>/dev/null; true' EXIT
    if [ -f "$prepared/data/stories260K.bin" ] && [ ! -f "$root/../shared/data/stories260K.bin" ]; then
        mkdir -p "$root/../shared/data" && cp "$prepared/data/stories260K.bin" "$root/../shared/data/"
    fi
    java="$prepared/runtime/bin/java"
    lib="$prepared/lib"
    flags=(--enable-native-access=ALL-UNNAMED --add-modules jdk.incubator.vector)
    local pip
    read -ra pip <<<"$(pip_libraries | tr '\n' ' ')"
    flags+=("${pip[@]}")
    echo "== $(nvidia-smi -L 2>/dev/null || echo 'no nvidia-smi'); java flags: ${flags[*]}"
    local status=0
    for part in "${parts[@]}"; do
        "$part" || status=1
    done
    return $status
}

# Runs a command under timeout for at most $1 seconds, cut to the run's deadline; refuses once the deadline has passed
# (timeout 0 would mean no limit at all).
within() {
    local left=$((deadline - SECONDS))
    local limit=$((left < $1 ? left : $1))
    shift
    if ((limit <= 0)); then
        echo "check.sh: no time left for ${*##*/}" >&2
        return 1
    fi
    timeout "$limit" "$@"
}

# Fails when JUnit's summary in FILE counts aborted tests: a GPU test that finds no CUDA aborts, and JUnit exits 0.
no_aborted() {
    if grep -qE '\[ *[1-9][0-9]* tests aborted' "$1"; then
        echo "check.sh: $(basename "$1"): tests aborted (CUDA not found?): $(grep -E 'tests aborted' "$1")" >&2
        return 1
    fi
}

tests() {
    local status=0
    (cd "$root/cuda-bindings" && within 150 "$java" "${flags[@]}" -jar "$lib"/junit-platform-console-standalone-*.jar execute \
        --class-path "$lib/cuda-bindings.jar:$lib/cuda-bindings-tests.jar:$lib/kernels.jar:$lib/kernels-tests.jar" \
        --scan-class-path "$lib/cuda-bindings-tests.jar" --details=tree --disable-banner) 2>&1 | tee "$out/tests.txt" ||
        status=1
    no_aborted "$out/tests.txt" || status=1
    (cd "$root/model" && within 240 "$java" "${flags[@]}" -jar "$lib"/junit-platform-console-standalone-*.jar execute \
        --class-path "$lib/model.jar:$lib/model-tests.jar:$lib/cuda-bindings.jar:$lib/kernels.jar:$lib/kernels-tests.jar" \
        --select-class dev.panamax.model.generate.GpuTransformerTest \
        --select-class dev.panamax.model.backend.GpuBackendTest \
        --select-class dev.panamax.model.backend.GpuPrecisionTest --details=tree --disable-banner) 2>&1 |
        tee "$out/model-tests.txt" || status=1
    no_aborted "$out/model-tests.txt" || status=1
    return $status
}

gemm() {
    local status=0
    within 120 "$java" "${flags[@]}" -cp "$lib/cuda-bindings.jar:$lib/bench-gpu.jar" \
        dev.panamax.bench.CublasGemm "${sizes[@]}" | tee "$out/panamax.csv" || status=1
    PYTHONUNBUFFERED=1 within 90 python3 "$root/bench/gpu/torch_gemm.py" "${sizes[@]}" |
        tee "$out/torch.csv" || status=1
    python3 - "$out" <<'PY' | tee "$out/gemm.md"
import csv, os, sys
out = sys.argv[1]
rows = {}
for name in ("panamax.csv", "torch.csv"):
    path = os.path.join(out, name)
    for who, typ, n, value, rate in csv.reader(open(path)) if os.path.exists(path) else []:
        rows.setdefault((who.split("-")[1] if "-" in who else "large", typ, int(n)), {})[who.split("-")[0]] = (float(value), rate)
print("| type | n | Panamax ms | Panamax TFLOP/s | torch ms | torch TFLOP/s | Panamax ÷ torch time |\n|---|---:|---:|---:|---:|---:|---:|")
for (kind, typ, n), cell in sorted(rows.items()):
    if kind != "large":
        continue
    p, t = cell.get("panamax", (float("nan"), "")), cell.get("torch", (float("nan"), ""))
    print(f"| {typ} | {n} | {p[0]:.3f} | {p[1]} | {t[0]:.3f} | {t[1]} | {p[0] / t[0]:.2f} |")
print("\nSmall products, host µs per call (stream kept busy):\n\n| type | n | Panamax | torch |\n|---|---:|---:|---:|")
for (kind, typ, n), cell in sorted(rows.items()):
    if kind == "small":
        print(f"| {typ} | {n} | {cell.get('panamax', ('–',))[0]} | {cell.get('torch', ('–',))[0]} |")
PY
    return $status
}

# Runs one model benchmark program (Java or Python) under a time limit, cut to the run's deadline; its output goes to
# the console and to FILE.
benchmark() {
    local file=$1 limit=$2
    shift 2
    PYTHONUNBUFFERED=1 within "$limit" "$@" 2>&1 | tee "$out/$file"
}

model() {
    local cp="$lib/model.jar:$lib/cuda-bindings.jar:$lib/kernels.jar:$lib/bench-gpu.jar"
    local shape=() backend=cuda device=cuda train_steps=(--steps 8 --warmup 2) decode_runs=(--steps 3 --warmup 1)
    if [ -n "${CHECK_TINY:-}" ]; then
        shape=(--tiny) backend=emulated device=cpu train_steps=(--steps 2 --warmup 1) decode_runs=(--steps 1 --warmup 1)
    fi
    local weights
    weights=$(mktemp "${TMPDIR:-/tmp}/panamax-check-llama-XXXXXX.bin")
    local status=0
    local precision
    for precision in ${CHECK_PRECISIONS:-fp32 tf32 bf16}; do
        case $precision in
            fp32 | tf32 | bf16) ;;
            *) echo "check.sh: CHECK_PRECISIONS holds $precision; the precisions are fp32, tf32 and bf16" >&2; return 2 ;;
        esac
        benchmark "model-train-panamax-$precision.txt" 180 "$java" "${flags[@]}" -cp "$cp" \
            dev.panamax.bench.GpuTrainStep --backend "$backend" --precision "$precision" "${shape[@]}" \
            "${train_steps[@]}" || status=1
        benchmark "model-train-torch-$precision.txt" 100 python3 "$root/bench/gpu/torch_train_step.py" \
            --device "$device" --precision "$precision" "${shape[@]}" "${train_steps[@]}" || status=1
    done
    benchmark model-decode-panamax.txt 150 "$java" "${flags[@]}" -cp "$cp" dev.panamax.bench.GpuDecode \
        --backend "$backend" "${shape[@]}" "${decode_runs[@]}" --checkpoint "$weights" || status=1
    benchmark model-decode-torch.txt 120 python3 "$root/bench/gpu/torch_decode.py" \
        --device "$device" "${shape[@]}" "${decode_runs[@]}" --checkpoint "$weights" || status=1
    # The same weights as GGUF block formats, kept in their format on the GPU (no PyTorch peer: its rows show –).
    local type
    for type in ${CHECK_DECODE_WEIGHTS:-q8_0 q4_0}; do
        benchmark "model-decode-panamax-$type.txt" 150 "$java" "${flags[@]}" -cp "$cp" dev.panamax.bench.GpuDecode \
            --backend "$backend" "${shape[@]}" "${decode_runs[@]}" --weights "$type" || status=1
    done
    rm -f "$weights"
    python3 "$root/bench/gpu/model_table.py" "$out" | tee "$out/model.md" || status=1
    return $status
}

case ${1:-} in
    prepare) prepare ;;
    run) run "${@:2}" ;;
    *) echo "usage: bench/gpu/check.sh prepare|run" >&2; exit 2 ;;
esac
