#!/usr/bin/env bash
# Runs every test of pdns-ha: installs what the tests need (Debian bookworm),
# checks formatting and lints, then runs the unit and integration tests
# against a real PowerDNS, memcached and Kamailio on loopback ports, a
# 3-minute fault soak (scripts/soak.sh), the Debian package
# (scripts/package-test.sh), and the fuzz targets briefly: with
# libFuzzer for 5 s each when a nightly toolchain is installed, and always
# their committed inputs on stable.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh

need_packages pdns-server pdns-backend-pipe pdns-backend-bind pdns-backend-sqlite3 memcached bind9-dnsutils kamailio kamailio-tls-modules openssl sip-tester e2fsprogs chromium-headless-shell lintian adduser

# The fuzz crate is a workspace of its own; it shares the main build's
# directory (same dependencies, built once).
fuzz_cargo=(--manifest-path fuzz/Cargo.toml --no-default-features --target-dir "${CARGO_TARGET_DIR:-$PWD/target}")

echo "== cargo fmt --check"
cargo fmt --check
cargo fmt --check --manifest-path fuzz/Cargo.toml
echo "== cargo clippy"
cargo clippy --quiet --all-targets -- -D warnings
cargo clippy --quiet "${fuzz_cargo[@]}" --all-targets -- -D warnings
echo "== cargo test"
# The packages above are installed: a test that would skip without
# pdns_server or dig fails instead.
export PDNS_HA_REQUIRE_PDNS=1
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# Every test binary runs, even after one failed.
status=0
cargo test --all-targets --no-fail-fast 2>&1 | tee "$log" || status=$?
echo "== fault soak, 3 minutes (scripts/soak.sh)"
# Meanwhile, the Debian package's release build (fat LTO: about 2 minutes
# of both cores) at idle priority: the soak leaves most of the CPU unused,
# and a process at idle priority only gets what the soak does not take.
# The package stage below then finds it built (a failure shows there).
relog=$(mktemp)
(chrt -i 0 nice -n 19 cargo build --release --quiet >"$relog" 2>&1 || true) &
release_build=$!
scripts/soak.sh 3 2>&1 | tee -a "$log" || status=$?
wait "$release_build"
rm -f "$relog"
# One closing line for the whole run (cargo prints one per test binary).
awk '/^test result:/ { p += $4; f += $6 } END { printf "pdns-ha: %d passed, %d failed\n", p, f }' "$log"

# The Debian package: cargo deb (its release build made during the soak),
# lintian, and as root: install, answers through PowerDNS, remove, purge.
echo "== Debian package (scripts/package-test.sh)"
start=$(date +%s)
scripts/package-test.sh || status=1
echo "Debian package: $(($(date +%s) - start)) s"

# The fuzz targets: every committed input (fuzz/corpus, fuzz/regressions)
# through each target's checks, on stable; then, with a nightly toolchain,
# libFuzzer for 5 s per target from a copy of the corpus (nothing is
# written into the tree). On 2 cores: about 1 min for the replay, about
# 3 min to build the targets, 40 s to run them, 1.5 min to install
# cargo-fuzz if it is missing.
echo "== fuzz targets: committed inputs (stable)"
start=$(date +%s)
cargo test --quiet "${fuzz_cargo[@]}" || status=1
fuzz_done="committed inputs replayed on stable"
if rustup run nightly rustc --version >/dev/null 2>&1; then
    echo "== fuzz targets: libFuzzer, 5 s each (nightly)"
    fuzz_status=0
    # Without AddressSanitizer: a third less build time for 5 s runs.
    scripts/fuzz.sh --scratch --no-sanitizer 5 || fuzz_status=$?
    case $fuzz_status in
    0) fuzz_done="$fuzz_done; libFuzzer 5 s per target" ;;
    3) fuzz_done="$fuzz_done; libFuzzer could not be set up, not run" ;;
    *) fuzz_done="$fuzz_done; libFuzzer found a crash" status=1 ;;
    esac
else
    fuzz_done="$fuzz_done; no nightly toolchain: libFuzzer not run"
fi
echo "fuzz: $fuzz_done ($(($(date +%s) - start)) s)"
exit "$status"
