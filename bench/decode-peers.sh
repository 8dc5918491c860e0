#!/usr/bin/env bash
# Greedy decode of the same random llama2.c weights by Panamax's CLI and its peers, side by side, at each thread count.
# It builds no peer: give the paths of binaries built elsewhere (see bench/peers/README.md).
#
#   bench/decode-peers.sh [--shape 110M|15M] [--threads "1 2"] [--tokens N] [--runs R] [--work DIR]
#       [--panamax PATH/bin/panamax] [--run PATH/llama2.c/run(omp)] [--tokenizer PATH/tokenizer.bin]
#       [--llama-bench PATH/llama-bench --convert PATH/llama-convert-llama2c-to-ggml]
#
# Panamax's weights come from its benchmark code (RandomCheckpoint, the file GenerateBench and DecodeProfile use), the
# GGUF from llama.cpp's own converter of llama2.c files, which writes float32 tensors; llama-bench runs with a float32
# KV cache. Panamax and run.c (-n N each) generate N tokens after BOS, and their texts are compared.
# Each prints its own decode rate: Panamax the decode steps after the first token, run.c every token after the first,
# llama-bench tg N; Panamax's CLI run also pays the JVM's start-up and warm-up, which its time to first token shows.
# Jlama reads Hugging Face safetensors only; there is no converter of llama2.c files to it here, so it is not run.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$root/.mvn/find-jdk.sh"
shape=110M threads="1 2" tokens=200 runs=3 work=${TMPDIR:-/tmp}/panamax-decode-peers
panamax=$root/model/target/panamax/bin/panamax run_c= tokenizer= llama_bench= convert=
while [ $# -gt 0 ]; do
  case $1 in
    --shape) shape=$2 ;; --threads) threads=$2 ;; --tokens) tokens=$2 ;; --runs) runs=$2 ;; --work) work=$2 ;;
    --panamax) panamax=$2 ;; --run) run_c=$2 ;; --tokenizer) tokenizer=$2 ;;
    --llama-bench) llama_bench=$2 ;; --convert) convert=$2 ;;
    *) echo "decode-peers: unknown argument $1 (see the comment at the top of $0)" >&2; exit 2 ;;
  esac
  shift 2
done
[ -x "$panamax" ] || { echo "decode-peers: no Panamax CLI at $panamax (./mvnw -DskipTests package)" >&2; exit 2; }
if [ -n "$run_c" ] && [ -z "$tokenizer" ]; then
  tokenizer=$(dirname "$run_c")/tokenizer.bin
fi
jar=$root/bench/target/benchmarks.jar
[ -f "$jar" ] || { echo "decode-peers: no $jar (bench/run builds it)" >&2; exit 2; }
mkdir -p "$work"
weights=$work/llama2c-$shape-random.bin
if [ ! -f "$weights" ]; then
  "$JAVA_HOME/bin/java" --add-modules jdk.incubator.vector -cp "$jar" dev.panamax.bench.RandomCheckpoint "$shape" \
    "$weights" 2>/dev/null
fi
gguf=$work/llama2c-$shape-random-f32.gguf
if [ -n "$llama_bench" ] && [ ! -f "$gguf" ]; then
  [ -n "$convert" ] || { echo "decode-peers: --llama-bench needs --convert (llama-convert-llama2c-to-ggml)" >&2; exit 2; }
  "$convert" --copy-vocab-from-model "${tokenizer:?--llama-bench needs --tokenizer or --run}" --llama2c-model "$weights" \
    --llama2c-output-model "$gguf" >"$work/convert.log" 2>&1
fi

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR) print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }
tokenizer_args=()
[ -n "$tokenizer" ] && tokenizer_args=(--tokenizer "$tokenizer")

echo "# greedy decode, $shape llama2.c shape, random weights ($weights), $tokens tokens, $runs runs each"
printf '%-12s %7s %12s %s\n' peer threads median runs
for t in $threads; do
  rates=() firsts=()
  for ((r = 0; r < runs; r++)); do
    "$panamax" generate -m "$weights" "${tokenizer_args[@]}" -n "$tokens" --temperature 0 -t "$t" \
      >"$work/panamax.out" 2>"$work/panamax.err"
    rates+=("$(sed -n 's/.*decode: [0-9]* tokens, \([0-9.]*\) tokens\/s.*/\1/p' "$work/panamax.err")")
    firsts+=("$(sed -n 's/.*first token after \([0-9]*\) ms.*/\1/p' "$work/panamax.err")")
  done
  printf '%-12s %7s %12s %s   (first token after ms: %s)\n' panamax "$t" \
    "$(printf '%s\n' "${rates[@]}" | median)" "${rates[*]}" "${firsts[*]}"
  if [ -n "$run_c" ]; then
    rates=()
    for ((r = 0; r < runs; r++)); do
      OMP_NUM_THREADS=$t "$run_c" "$weights" -z "$tokenizer" -t 0 -n "$tokens" -i "" \
        >"$work/run_c.out" 2>"$work/run_c.err"
      rates+=("$(sed -n 's/achieved tok\/s: \([0-9.]*\)/\1/p' "$work/run_c.err")")
    done
    same=differs
    if cmp -s <(tr -d '[:space:]' <"$work/panamax.out") <(tr -d '[:space:]' <"$work/run_c.out"); then same=same; fi
    printf '%-12s %7s %12s %s   (text %s as Panamax'"'"'s)\n' "$(basename "$run_c")" "$t" \
      "$(printf '%s\n' "${rates[@]}" | median)" "${rates[*]}" "$same"
  fi
  if [ -n "$llama_bench" ]; then
    "$llama_bench" -m "$gguf" -p 0 -n "$tokens" -t "$t" -r "$runs" -ctk f32 -ctv f32 -o csv \
      >"$work/llama_bench.csv" 2>"$work/llama_bench.err"
    avg=$(awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) { gsub(/"/, "", $i); if ($i == "avg_ts") c = i } }
      NR == 2 { gsub(/"/, "", $c); print $c }' "$work/llama_bench.csv")
    printf '%-12s %7s %12s %s\n' llama-bench "$t" "$avg" "(mean of $runs, tg$tokens)"
  fi
done
echo "# outputs and logs: $work"
