#!/usr/bin/env bash
# Fetches the training text of Panamax's built-in model: Debian's `fortunes` package (public-domain and freely
# redistributable quotations), without its ASCII-art files, as plain text files in one directory.
#   model/data/fortunes.sh [DIR]     (default: model/data/fortunes, git-ignored)
# Uses the machine's configured Debian package sources; needs apt-get and dpkg-deb, not root.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out=${1:-$root/fortunes}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && apt-get download fortunes >/dev/null)
dpkg-deb -x "$work"/fortunes_*.deb "$work/x"
mkdir -p "$out"
for f in "$work"/x/usr/share/games/fortunes/*; do
  name=$(basename "$f")
  case "$name" in
    *.dat | *.u8 | art | ascii-art) ;;
    *) cp "$f" "$out/$name" ;;
  esac
done
echo "fortunes: $(ls "$out" | wc -l) files, $(cat "$out"/* | wc -c) bytes in $out"
