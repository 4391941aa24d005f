#!/usr/bin/env bash
# Builds tlschat into one executable, dist/tlschat; with targets, dist/tlschat-<target> instead.
#
#   ./build.sh                              this machine's binary
#   ./build.sh linux-arm64 darwin-arm64     cross-compiled binaries (windows-x64 gets .exe)
#
# Cross-compiling needs the target's Bun runtime (same Bun version as node_modules/.bin/bun).
# Bun downloads it into its cache; offline, put it at $TLSCHAT_RUNTIME_DIR/bun-<target>[.exe].
# TLSCHAT_DOWNLOAD_TIMEOUT (seconds, default 300) bounds that download.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")"
BUN=node_modules/.bin/bun
if [[ ! -x $BUN ]]; then
  echo "build.sh: $BUN is missing; run npm install first" >&2
  exit 1
fi

# Without the two --no-compile-autoload flags the binary would read .env and bunfig.toml from
# whatever directory it is started in; bunfig's `preload` would even run code from there.
# --bytecode needs --format=esm, or top-level await in main.ts breaks.
FLAGS=(--compile --minify --bytecode --format=esm
  --no-compile-autoload-dotenv --no-compile-autoload-bunfig)
# The chat database's checkpoint worker is loaded by path at run time, so it is an entry point of
# its own (embedded at its path under src/).
ENTRIES=(src/main.ts src/store/sqlite/checkpoint-worker.ts)

human_size() {
  awk -v b="$(wc -c <"$1")" 'BEGIN {
    if (b >= 1048576) printf "%.1f MiB", b / 1048576
    else if (b >= 1024) printf "%.1f KiB", b / 1024
    else printf "%d B", b }'
}

if [[ $# -eq 0 ]]; then
  out=dist/tlschat
  "$BUN" build "${ENTRIES[@]}" "${FLAGS[@]}" --outfile "$out" >/dev/null
  echo "$out  $(human_size "$out")  version $("$out" --version)"
  exit 0
fi

bun_version=$("$BUN" --version)
with_timeout=()
if command -v timeout >/dev/null; then with_timeout=(timeout "${TLSCHAT_DOWNLOAD_TIMEOUT:-300}"); fi
log=$(mktemp)
trap 'rm -f "$log"' EXIT

failed=0
for target in "$@"; do
  if [[ ! $target =~ ^(linux|darwin|windows)-(x64|arm64)(-baseline|-modern)?(-musl)?$ ]]; then
    echo "cannot build $target: not a target name like linux-x64, linux-arm64-musl, darwin-arm64, windows-x64" >&2
    failed=1
    continue
  fi
  exe=""
  [[ $target == windows-* ]] && exe=.exe
  out="dist/tlschat-$target$exe"

  runtime=()
  if [[ -n ${TLSCHAT_RUNTIME_DIR:-} ]]; then
    path="$TLSCHAT_RUNTIME_DIR/bun-$target$exe"
    if [[ ! -f $path ]]; then
      echo "cannot build $target: $path does not exist (it must be Bun $bun_version for $target)" >&2
      failed=1
      continue
    fi
    runtime=(--compile-executable-path="$path")
  fi

  status=0
  # ${a[@]+"${a[@]}"}: an empty array is "unbound" to set -u in the bash 3.2 that macOS ships.
  ${with_timeout[@]+"${with_timeout[@]}"} "$BUN" build "${ENTRIES[@]}" "${FLAGS[@]}" \
    --target="bun-$target" ${runtime[@]+"${runtime[@]}"} --outfile "$out" >"$log" 2>&1 || status=$?
  if [[ $status -eq 0 ]]; then
    echo "$out  $(human_size "$out")"
  elif [[ $status -eq 124 ]] || grep -q "Failed to download" "$log"; then
    echo "cannot build $target: its Bun runtime is not on this machine and there is no network;" \
      "set TLSCHAT_RUNTIME_DIR to a directory holding bun-$target$exe (Bun $bun_version)" >&2
    failed=1
  else
    echo "cannot build $target: $(grep -m1 -i 'error' "$log" || tail -n1 "$log")" >&2
    failed=1
  fi
done
exit "$failed"
