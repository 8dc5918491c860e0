#!/usr/bin/env bash
# Compares Panamax with llama.cpp on the same GGUF files (see README.md). It builds nothing of llama.cpp: give it a
# llama.cpp build directory (the one holding bin/llama-tokenize, bin/llama-completion, bin/llama-perplexity and
# bin/llama-convert-llama2c-to-ggml).
#
# usage: bench/peers/llamacpp/compare.sh LLAMA_CPP_BUILD_DIR [stories260K.bin] [run.c greedy ids file]
# SECTIONS="tokenizer greedy converter quality" (the default) picks what runs; THREADS (default 1) the threads.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../../.." && pwd)
bin=$(cd "$1" && pwd)/bin
stories=${2:-$root/../shared/data/stories260K.bin}
runc_ids=${3:-}
threads=${THREADS:-1}
sections=" ${SECTIONS:-tokenizer greedy converter quality} "
want() { [[ $sections == *" $1 "* ]]; }
work=$(mktemp -d)
echo "work directory: $work"
panamax="$root/model/bin/panamax"
source "$root/.mvn/find-jdk.sh"
"$root/mvnw" -q -f "$root/pom.xml" -pl model -am test-compile >&2
cp="$root/kernels/target/classes:$root/cuda-bindings/target/classes:$root/model/target/classes:$root/model/target/test-classes"
"$JAVA_HOME/bin/java" --add-modules jdk.incubator.vector -cp "$cp" "$here/Fixtures.java" "$work" "$stories" 2>/dev/null
px() { "$panamax" "$@" 2>/dev/null; }
same_text() { python3 -c "import sys; a,b=(open(f,'rb').read().rstrip(b'\n') for f in sys.argv[1:3]); print('identical' if a==b else 'DIFFERENT')" "$1" "$2"; }

if want tokenizer; then
  echo "== tokenizer: panamax tokenize vs llama-tokenize --ids (BOS as the file says, special tokens parsed)"
  texts=("the hello world" " the  all" "all 123 café!" "héllo 中文 😀" "<s>the</s>all" $'\n\tthe' "lol" ""
    "hello<unk>world<|endoftext|>1234567" $'  12 1212\n\n wo' "Hello World" "It's 3.14159, isn't it? 'S'LL"
    "<|endoftext|>Once upon a time" $'Tab\there, CRLF\r\nend   ')
  vocabs=("$work/spm.gguf" "$work/gpt2.gguf" "$work/llama3.gguf")
  for v in llama-spm gpt-2 phi-3 starcoder refact; do
    [ -f "$1/../models/ggml-vocab-$v.gguf" ] && vocabs+=("$(cd "$1/../models" && pwd)/ggml-vocab-$v.gguf")
  done
  for vocab in "${vocabs[@]}"; do
    same=0; total=0
    for text in "${texts[@]}"; do
      printf '%s' "$text" > "$work/text.txt"
      want=$("$bin/llama-tokenize" -m "$vocab" -f "$work/text.txt" --ids --log-disable 2>/dev/null | tr -d '[],')
      got=$(px tokenize --model "$vocab" --file "$work/text.txt")
      total=$((total + 1))
      if [ "$want" = "$got" ]; then same=$((same + 1)); else echo "  $(basename "$vocab") $(printf '%q' "$text"): llama.cpp [$want] panamax [$got]"; fi
    done
    echo "  $(basename "$vocab"): $same of $total texts give the same ids"
  done
fi

# The first N greedy tokens from BOS on FILE as text, llama.cpp's (f32 KV cache, flash attention off or as given)
# against Panamax's, both stopping at the file's EOS (--ignore-eos would forbid EOS, changing the greedy choice); with
# run.c's ids given, Panamax's ids against those, over the ids both have (run.c stops at BOS, Panamax at EOS).
greedy() {
  local file=$1 n=$2 fa=${3:-off}
  "$bin/llama-completion" -m "$file" -p "" -n "$n" --temp 0 -ctk f32 -ctv f32 -fa "$fa" -no-cnv \
    -t "$threads" 2>/dev/null > "$work/llamacpp.txt"
  px generate --model "$file" --temperature 0 -n "$n" --threads "$threads" > "$work/panamax.txt"
  echo "  up to $n tokens as text vs llama.cpp (flash attention $fa): $(same_text "$work/llamacpp.txt" "$work/panamax.txt")"
  if [ -n "$runc_ids" ] && [ "$fa" = off ]; then
    px generate --model "$file" --temperature 0 -n "$n" --threads "$threads" --print-ids | tr ' ' '\n' \
      | grep -v '^$' > "$work/panamax.ids"
    # Read through a substitution: head stopping early must not fail the pipeline under pipefail.
    head -n "$n" < <(tr ' ' '\n' < "$runc_ids" | grep -v '^$' || true) > "$work/runc.ids"
    local both
    both=$(( $(wc -l < "$work/runc.ids") < $(wc -l < "$work/panamax.ids") ? $(wc -l < "$work/runc.ids") \
      : $(wc -l < "$work/panamax.ids") ))
    if [ "$both" -eq 0 ]; then
      echo "  ids vs run.c: no ids to compare (run.c's or Panamax's list is empty)"
    elif diff -q <(head -"$both" "$work/runc.ids") <(head -"$both" "$work/panamax.ids") >/dev/null; then
      echo "  the first $both ids vs run.c: identical"; else echo "  the first $both ids vs run.c: DIFFERENT"; fi
  fi
}

if want greedy; then
  echo "== greedy continuation of BOS on the F32 file written by panamax quantize's writer"
  greedy "$work/stories260K-f32.gguf" 256 off
  greedy "$work/stories260K-f32.gguf" 256 on
fi

if want converter; then
  echo "== the same on the F32 file written by llama.cpp's llama2.c converter (its context is 128)"
  "$bin/llama-convert-llama2c-to-ggml" --copy-vocab-from-model "$work/tok512-fixture.bin" --llama2c-model "$stories" \
    --llama2c-output-model "$work/converted.gguf" >/dev/null 2>&1
  greedy "$work/converted.gguf" 127 off
fi

if want quality; then
  echo "== teacher-forced quality of Q8_0 and Q4_0 against F32 (text sampled from the F32 model, windows of 128)"
  : > "$work/data.txt"
  for seed in 1 2 3 4 5; do
    px generate --model "$work/stories260K-f32.gguf" --temperature 1 --top-p 1 --seed "$seed" -n 300 >> "$work/data.txt"
  done
  ppl() { "$bin/llama-perplexity" -m "$1" -f "$work/data.txt" -c 128 -b 128 -fa off -t "$threads" "${@:2}" 2>&1; }
  ppl "$work/stories260K-f32.gguf" --kl-divergence-base "$work/base-f32.kld" > "$work/llamacpp-f32.log"
  echo "  llama.cpp F32: $(grep -o 'Final estimate: PPL = [0-9.]* +/- [0-9.]*' "$work/llamacpp-f32.log")"
  python3 "$here/logits.py" tokens "$work/base-f32.kld" "$work/tokens.bin"
  python3 "$here/logits.py" top1 "$work/base-f32.kld" > "$work/llamacpp-f32.top1"
  px perplexity --model "$work/stories260K-f32.gguf" --data "$work/tokens.bin" --context 128 --print-top1 > "$work/panamax-f32.out"
  echo "  panamax F32:   $(grep -o 'perplexity: [0-9.]*' "$work/panamax-f32.out") ($(grep windows "$work/panamax-f32.out"))"
  agree() { python3 "$here/logits.py" agree "$1" "$2"; }
  echo "  top-1 of panamax F32 vs llama.cpp F32: $(agree "$work/panamax-f32.out" "$work/llamacpp-f32.top1")"
  for q in q8_0 q4_0; do
    ppl "$work/stories260K-$q.gguf" --kl-divergence-base "$work/base-f32.kld" --kl-divergence > "$work/llamacpp-$q.log"
    ppl "$work/stories260K-$q.gguf" --kl-divergence-base "$work/base-$q.kld" > /dev/null
    python3 "$here/logits.py" top1 "$work/base-$q.kld" > "$work/llamacpp-$q.top1"
    px perplexity --model "$work/stories260K-$q.gguf" --base "$work/stories260K-f32.gguf" --data "$work/tokens.bin" \
      --context 128 --print-top1 > "$work/panamax-$q.out"
    echo "  $q llama.cpp: $(grep -E 'Mean PPL\(Q\)|Mean ln\(PPL\(Q\)/PPL\(base\)\)|Mean +KLD|Same top p' "$work/llamacpp-$q.log" | tr -s ' ' | paste -sd';')"
    echo "  $q panamax:   $(grep -o 'perplexity: [0-9.]*' "$work/panamax-$q.out"); $(grep -o 'top-1 agreement.*' "$work/panamax-$q.out")"
    echo "  $q top-1 of panamax vs llama.cpp on the same file: $(agree "$work/panamax-$q.out" "$work/llamacpp-$q.top1")"
  done
fi
