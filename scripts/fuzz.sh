#!/usr/bin/env bash
# Fuzzes every parser: runs each target under fuzz/fuzz_targets for SECONDS
# (default 60) from its corpus in fuzz/corpus/TARGET (and the inputs of
# fuzz/regressions/TARGET, if any), and prints per target the inputs
# executed and the time taken. Exits 1 if a target found a crash (its input
# is in fuzz/artifacts/TARGET), 3 if the fuzzer could not be set up (no
# nightly toolchain, cargo-fuzz not installable, build failed).
# Builds in $CARGO_TARGET_DIR/fuzz when CARGO_TARGET_DIR is set.
#
# --scratch: fuzz from a temporary copy of each corpus, so that the
#   inputs found are thrown away and the tree stays as it was (for CI).
# --no-install: do not install a nightly toolchain or cargo-fuzz; exit 3
#   if they are missing.
# --no-sanitizer: build without AddressSanitizer (the default checks the C
#   code too, SQLite): builds in about 2/3 of the time, runs faster; for
#   short smoke runs. Built in a directory of its own.
# TARGET...: only these targets (default: all).
# Usage: scripts/fuzz.sh [--scratch] [--no-install] [--no-sanitizer] [SECONDS [TARGET...]]
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
    echo "usage: $0 [--scratch] [--no-install] [--no-sanitizer] [SECONDS [TARGET...]]" >&2
    exit 2
}
scratch=0
install=1
sanitizer=()
while [ $# -gt 0 ]; do
    case $1 in
    --scratch) scratch=1 ;;
    --no-install) install=0 ;;
    --no-sanitizer) sanitizer=(--sanitizer none) ;;
    -*) usage ;;
    *) break ;;
    esac
    shift
done
seconds=${1:-60}
case $seconds in
'' | *[!0-9]*) usage ;;
esac
[ $# -gt 0 ] && shift

# Every target in fuzz/fuzz_targets, so a new one is never left out.
all=()
for f in fuzz/fuzz_targets/*.rs; do
    t=${f##*/}
    all+=("${t%.rs}")
done
targets=("${all[@]}")
[ $# -gt 0 ] && targets=("$@")
for t in "${targets[@]}"; do
    [ -f "fuzz/fuzz_targets/$t.rs" ] || { echo "no target $t" >&2; usage; }
done
# The pipe target sees lines longer than proto::MAX_LINE (4096 bytes); a
# memcached value is at most cache::memcached::MAX_VALUE (8192 bytes).
declare -A max_len=([pipe_lines]=9000 [site_text]=8192 [memcached_value]=8400)

# libFuzzer needs a nightly toolchain and cargo-fuzz.
if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    if [ "$install" -eq 0 ] || ! command -v rustup >/dev/null; then
        echo "fuzz: no nightly toolchain" >&2
        exit 3
    fi
    rustup toolchain install nightly --profile minimal || exit 3
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    [ "$install" -eq 0 ] && { echo "fuzz: no cargo-fuzz" >&2; exit 3; }
    echo "installing: cargo-fuzz" >&2
    cargo install --quiet --locked cargo-fuzz || exit 3
fi

dir=()
[ -n "${CARGO_TARGET_DIR:-}" ] && dir=(--target-dir "$CARGO_TARGET_DIR/fuzz")
if [ ${#sanitizer[@]} -gt 0 ]; then
    dir=(--target-dir "${CARGO_TARGET_DIR:-$PWD/fuzz/target}/fuzz-no-sanitizer")
fi
dir+=("${sanitizer[@]}")

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "== building the fuzz targets" >&2
start=$(date +%s)
cargo +nightly fuzz build "${dir[@]}" >"$tmp/build.log" 2>&1 || {
    tail -n 30 "$tmp/build.log" >&2
    exit 3
}
echo "built in $(($(date +%s) - start)) s" >&2
failed=()
for t in "${targets[@]}"; do
    log=$tmp/$t.log
    corpus=(fuzz/corpus/"$t")
    if [ "$scratch" -eq 1 ]; then
        mkdir -p "$tmp/corpus"
        cp -r "fuzz/corpus/$t" "$tmp/corpus/$t"
        corpus=("$tmp/corpus/$t")
    fi
    # Read, never written: libFuzzer writes new inputs to the first only.
    [ -d "fuzz/regressions/$t" ] && corpus+=("fuzz/regressions/$t")
    args=(-max_total_time="$seconds" -print_final_stats=1)
    [ -n "${max_len[$t]:-}" ] && args+=(-max_len="${max_len[$t]}")
    start=$(date +%s)
    status=0
    cargo +nightly fuzz run "${dir[@]}" "$t" "${corpus[@]}" -- "${args[@]}" >"$log" 2>&1 || status=$?
    elapsed=$(($(date +%s) - start))
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    if [ "$status" -eq 0 ]; then
        printf '%-15s ok     %10s executions in %4d s\n' "$t" "${execs:-?}" "$elapsed"
    else
        printf '%-15s CRASH  %10s executions in %4d s\n' "$t" "${execs:-?}" "$elapsed"
        grep -m 1 -A 3 "panicked at\|ERROR: libFuzzer\|ERROR: AddressSanitizer" "$log" >&2 || tail -n 20 "$log" >&2
        grep "Test unit written to" "$log" >&2 || true
        failed+=("$t")
    fi
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz: crash in ${failed[*]}" >&2
    exit 1
fi
echo "fuzz: ${#targets[@]} targets, no crash"
