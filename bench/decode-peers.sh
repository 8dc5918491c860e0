#!/usr/bin/env bash
# Greedy decode of the same random llama2.c weights by Panamax's CLI and its peers, side by side, at each thread count.
# It builds no peer: give the paths of binaries built elsewhere (see bench/peers/README.md).
#
#   bench/decode-peers.sh [--shape 110M|15M] [--threads "1 2"] [--tokens N] [--runs R] [--work DIR]
#       [--panamax PATH/bin/panamax] [--run PATH/llama2.c/run] [--tokenizer PATH/tokenizer.bin]
#       [--llama-completion PATH/llama-completion] [--llama-bench PATH/llama-bench]
#       [--convert PATH/llama-convert-llama2c-to-ggml]
#
# Panamax's weights come from its benchmark code (RandomCheckpoint, the file GenerateBench and DecodeProfile use), the
# GGUF from llama.cpp's own converter of llama2.c files, which writes float32 tensors. llama-completion runs greedy with
# a float32 KV cache, as Panamax and run.c keep theirs; llama-bench takes no f32 cache type (-ctk accepts f16, bf16 and
# the quantised types), so its tg N line uses its default f16 cache. Panamax, run.c and llama-completion (-n N each)
# generate N tokens after BOS, and their texts are compared with Panamax's. Each prints its own decode rate: Panamax the
# decode steps after the first token, run.c every token after the first, llama-completion its eval time; Panamax's CLI
# run also pays the JVM's start-up and warm-up, which its time to first token shows.
# run.c takes its threads from OMP_NUM_THREADS, which only a build with OpenMP (llama2.c's `make runomp`) reads: a
# thread count above 1 is refused for a binary that does not link libgomp, and the table's header says how the binary
# was built, as far as it records that. A peer that fails ends the script with the end of its output.
# Jlama reads Hugging Face safetensors only; there is no converter of llama2.c files to it here, so it is not run.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$root/.mvn/find-jdk.sh"
source "$root/bench/cli-runs.sh"
shape=110M threads="1 2" tokens=200 runs=3 work=${TMPDIR:-/tmp}/panamax-decode-peers
panamax=$root/model/target/panamax/bin/panamax run_c= tokenizer= llama_bench= llama_completion= convert=
while [ $# -gt 0 ]; do
  case $1 in
    --shape) shape=$2 ;; --threads) threads=$2 ;; --tokens) tokens=$2 ;; --runs) runs=$2 ;; --work) work=$2 ;;
    --panamax) panamax=$2 ;; --run) run_c=$2 ;; --tokenizer) tokenizer=$2 ;;
    --llama-bench) llama_bench=$2 ;; --llama-completion) llama_completion=$2 ;; --convert) convert=$2 ;;
    *) echo "decode-peers: unknown argument $1 (see the comment at the top of $0)" >&2; exit 2 ;;
  esac
  shift 2
done
[ -x "$panamax" ] || { echo "decode-peers: no Panamax CLI at $panamax (./mvnw -DskipTests package)" >&2; exit 2; }
if [ -n "$run_c" ]; then
  require_openmp "$run_c" $threads
  [ -n "$tokenizer" ] || tokenizer=$(dirname "$run_c")/tokenizer.bin
fi
jar=$root/bench/target/benchmarks.jar
[ -f "$jar" ] || { echo "decode-peers: no $jar (bench/run builds it)" >&2; exit 2; }
mkdir -p "$work"
weights=$work/llama2c-$shape-random.bin
if [ ! -f "$weights" ]; then
  # Its standard error (the JDK's incubator warning) is shown only when it fails.
  "$JAVA_HOME/bin/java" --add-modules jdk.incubator.vector -cp "$jar" dev.panamax.bench.RandomCheckpoint "$shape" \
    "$weights" 2>"$weights.err" || { cat "$weights.err" >&2; rm -f "$weights"; exit 1; }
fi
gguf=$work/llama2c-$shape-random-f32.gguf
if [ -n "$llama_bench$llama_completion" ] && [ ! -f "$gguf" ]; then
  [ -n "$convert" ] || { echo "decode-peers: llama.cpp needs --convert (llama-convert-llama2c-to-ggml)" >&2; exit 2; }
  "$convert" --copy-vocab-from-model "${tokenizer:?llama.cpp needs --tokenizer or --run}" --llama2c-model "$weights" \
    --llama2c-output-model "$gguf" >"$work/convert.log" 2>&1 || failed $? "$convert" "$work/convert.log"
fi

# "text the same as" or "text differs from", comparing FILE with Panamax's last output, white space aside.
same_text() {
  if cmp -s <(tr -d '[:space:]' <"$work/panamax.out") <(tr -d '[:space:]' <"$1"); then
    echo "text the same as"
  else
    echo "text differs from"
  fi
}
tokenizer_args=()
[ -n "$tokenizer" ] && tokenizer_args=(--tokenizer "$tokenizer")

echo "# greedy decode, $shape llama2.c shape, random weights ($weights), $tokens tokens, $runs runs each"
[ -z "$run_c" ] || describe_build "$run_c"
printf '%-12s %7s %12s %s\n' peer threads median runs
for t in $threads; do
  rates=() firsts=()
  for ((r = 0; r < runs; r++)); do
    logged "$work/panamax.out" "$work/panamax.err" "$panamax" generate -m "$weights" "${tokenizer_args[@]}" \
      -n "$tokens" --temperature 0 -t "$t"
    rates+=("$(decode_rate "$work/panamax.err")")
    firsts+=("$(first_token_ms "$work/panamax.err")")
  done
  printf '%-12s %7s %12s %s   (first token after ms: %s)\n' panamax "$t" \
    "$(printf '%s\n' "${rates[@]}" | median)" "${rates[*]}" "${firsts[*]}"
  if [ -n "$run_c" ]; then
    rates=()
    for ((r = 0; r < runs; r++)); do
      OMP_NUM_THREADS=$t logged "$work/run_c.out" "$work/run_c.err" "$run_c" "$weights" -z "$tokenizer" -t 0 \
        -n "$tokens" -i ""
      rates+=("$(decode_rate "$work/run_c.err")")
    done
    printf '%-12s %7s %12s %s   (%s Panamax'"'"'s)\n' "$(basename "$run_c")" "$t" \
      "$(printf '%s\n' "${rates[@]}" | median)" "${rates[*]}" "$(same_text "$work/run_c.out")"
  fi
  if [ -n "$llama_completion" ]; then
    rates=()
    for ((r = 0; r < runs; r++)); do
      logged "$work/llama_completion.out" "$work/llama_completion.err" "$llama_completion" -m "$gguf" -p "" \
        -n "$tokens" -t "$t" --temp 0 -ctk f32 -ctv f32 -no-cnv </dev/null
      rates+=("$(sed -n 's/.* eval time = .*, *\([0-9.]*\) tokens per second.*/\1/p' "$work/llama_completion.err" \
        | grep -v '^$' | tail -1)")
    done
    printf '%-12s %7s %12s %s   (f32 KV cache; %s Panamax'"'"'s)\n' llama-compl. "$t" \
      "$(printf '%s\n' "${rates[@]}" | median)" "${rates[*]}" "$(same_text "$work/llama_completion.out")"
  fi
  if [ -n "$llama_bench" ]; then
    logged "$work/llama_bench.csv" "$work/llama_bench.err" "$llama_bench" -m "$gguf" -p 0 -n "$tokens" -t "$t" \
      -r "$runs" -o csv
    avg=$(awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) { gsub(/"/, "", $i); if ($i == "avg_ts") c = i } }
      NR == 2 { gsub(/"/, "", $c); print $c }' "$work/llama_bench.csv")
    printf '%-12s %7s %12s %s\n' llama-bench "$t" "$avg" "(mean of $runs, tg$tokens, f16 KV cache)"
  fi
done
echo "# outputs and logs: $work"
