#!/usr/bin/env bash
# Fuzzes every parser: runs each target under fuzz/fuzz_targets for SECONDS
# (default 60) from its corpus in fuzz/corpus/TARGET, and prints per target
# the inputs executed and the time taken. Exits non-zero if a target found a
# crash (its input is in fuzz/artifacts/TARGET).
# Builds in $CARGO_TARGET_DIR/fuzz when CARGO_TARGET_DIR is set.
# Usage: scripts/fuzz.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
case $seconds in
'' | *[!0-9]*) echo "usage: $0 [SECONDS]" >&2; exit 2 ;;
esac

# libFuzzer needs a nightly toolchain and cargo-fuzz.
command -v rustup >/dev/null && ! rustup run nightly rustc --version >/dev/null 2>&1 &&
    rustup toolchain install nightly --profile minimal
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "installing: cargo-fuzz" >&2
    cargo install --quiet --locked cargo-fuzz
fi

dir=()
[ -n "${CARGO_TARGET_DIR:-}" ] && dir=(--target-dir "$CARGO_TARGET_DIR/fuzz")

targets=(metric_line pipe_lines site_text sip_response esl_event)
# The pipe target sees lines longer than proto::MAX_LINE (4096 bytes).
declare -A max_len=([pipe_lines]=9000 [site_text]=8192)

logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
echo "== building the fuzz targets" >&2
cargo +nightly fuzz build "${dir[@]}" >"$logs/build.log" 2>&1 || {
    tail -n 30 "$logs/build.log" >&2
    exit 1
}
failed=()
for t in "${targets[@]}"; do
    log=$logs/$t.log
    args=(-max_total_time="$seconds" -print_final_stats=1)
    [ -n "${max_len[$t]:-}" ] && args+=(-max_len="${max_len[$t]}")
    start=$(date +%s)
    status=0
    cargo +nightly fuzz run "${dir[@]}" "$t" -- "${args[@]}" >"$log" 2>&1 || status=$?
    elapsed=$(($(date +%s) - start))
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    if [ "$status" -eq 0 ]; then
        printf '%-13s ok     %10s executions in %4d s\n' "$t" "${execs:-?}" "$elapsed"
    else
        printf '%-13s CRASH  %10s executions in %4d s\n' "$t" "${execs:-?}" "$elapsed"
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
