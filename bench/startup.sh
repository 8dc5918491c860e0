#!/usr/bin/env bash
# Start-up, time to first token and decode rate of short CLI runs, with and without the distribution's ahead-of-time
# cache and JIT settings, next to llama2.c's run.c when given:
#
#   bench/startup.sh [--image DIR] [--model FILE --tokenizer FILE] [--tokens N] [--threads T] [--runs R]
#       [--run PATH/llama2.c/run] [--flags "JVM FLAGS"]
#
# Without --model it writes the 15M llama2.c shape with random weights (RandomCheckpoint). Variants: "aot" is
# bin/panamax as shipped (lib/panamax.aot in use, and its JIT settings), "no-aot" the same launcher on a view of the
# image without the cache, "plain" the image's java with neither (the module flags alone), and with --flags a fourth,
# "aot+flags", bin/panamax with those JVM options added (e.g. "-XX:CompileThresholdScaling=0.25").
# Each line gives the median over the runs of the wall time of the whole process, of the time from the JVM's start to
# the first token, and of the decode rate the CLI prints; run.c's wall time is of its whole process too. run.c takes its
# threads from OMP_NUM_THREADS, which only a build with OpenMP (llama2.c's `make runomp`) reads: --threads above 1 is
# refused for a binary that does not link libgomp, and the header says how the binary was built, as far as it records
# that. A run that fails ends the script with the end of its output.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$root/.mvn/find-jdk.sh"
source "$root/bench/cli-runs.sh"
image=$root/model/target/panamax model= tokenizer= tokens=200 threads=1 runs=5 run_c= flags=
while [ $# -gt 0 ]; do
  case $1 in
    --image) image=$2 ;; --model) model=$2 ;; --tokenizer) tokenizer=$2 ;; --tokens) tokens=$2 ;;
    --threads) threads=$2 ;; --runs) runs=$2 ;; --run) run_c=$2 ;; --flags) flags=$2 ;;
    *) echo "startup: unknown argument $1 (see the comment at the top of $0)" >&2; exit 2 ;;
  esac
  shift 2
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if [ -z "$model" ]; then
  model=$work/llama2c-15M-random.bin
  # Its standard error (the JDK's incubator warning) is shown only when it fails, say for want of the jar.
  "$JAVA_HOME/bin/java" --add-modules jdk.incubator.vector -cp "$root/bench/target/benchmarks.jar" \
    dev.panamax.bench.RandomCheckpoint 15M "$model" 2>"$work/random.err" || { cat "$work/random.err" >&2; exit 1; }
fi
if [ -n "$run_c" ]; then
  require_openmp "$run_c" "$threads"
  [ -n "$tokenizer" ] || tokenizer=$(dirname "$run_c")/tokenizer.bin
fi
args=(generate -m "$model" -n "$tokens" --temperature 0 -t "$threads")
[ -n "$tokenizer" ] && args+=(--tokenizer "$tokenizer")
millis() { echo $(($(date +%s%N) / 1000000)); }

# One variant: runs "$@" $runs times and prints the medians.
measure() {
  local name=$1
  shift
  local walls=() firsts=() rates=()
  for ((r = 0; r < runs; r++)); do
    local start end
    start=$(millis)
    logged "$work/out" "$work/err" "$@"
    end=$(millis)
    walls+=($((end - start)))
    firsts+=("$(first_token_ms "$work/err")")
    rates+=("$(decode_rate "$work/err")")
  done
  printf '%-10s %10s %16s %14s\n' "$name" "$(printf '%s\n' "${walls[@]}" | median)" \
    "$(printf '%s\n' "${firsts[@]}" | grep . | median || true)" "$(printf '%s\n' "${rates[@]}" | median)"
}

echo "# $tokens tokens from $model, $threads thread(s), median of $runs runs"
[ -z "$run_c" ] || describe_build "$run_c"
printf '%-10s %10s %16s %14s\n' variant "wall ms" "first token ms" "decode tok/s"
# The image without its cache: links to everything in it but lib/panamax.aot, and a copy of the launcher, which finds
# its files beside itself (the java launcher resolves its link to find the runtime).
view=$work/no-aot
mkdir -p "$view/bin" "$view/lib"
for entry in "$image"/*; do
  case ${entry##*/} in bin | lib) ;; *) ln -s "$entry" "$view/" ;; esac
done
for entry in "$image"/lib/*; do
  [ "${entry##*/}" = panamax.aot ] || ln -s "$entry" "$view/lib/"
done
ln -s "$image/bin/java" "$view/bin/java"
cp "$image/bin/panamax" "$view/bin/panamax"

measure aot "$image/bin/panamax" "${args[@]}"
measure no-aot "$view/bin/panamax" "${args[@]}"
measure plain "$image/bin/java" --add-modules jdk.incubator.vector \
  --enable-native-access=dev.panamax.cuda,dev.panamax.model -m dev.panamax.model/dev.panamax.model.cli.Panamax "${args[@]}"
if [ -n "$flags" ]; then
  JDK_JAVA_OPTIONS=$flags measure aot+flags "$image/bin/panamax" "${args[@]}"
fi
if [ -n "$run_c" ]; then
  OMP_NUM_THREADS=$threads measure run.c "$run_c" "$model" -z "$tokenizer" -t 0 -n "$tokens" -i ""
fi
