#!/usr/bin/env bash
# Runs every test of pdns-ha: installs what the tests need (Debian bookworm),
# checks formatting and lints, then runs the unit and integration tests
# against a real PowerDNS, memcached and Kamailio on loopback ports, and a
# 3-minute fault soak (scripts/soak.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh

need_packages pdns-server pdns-backend-pipe pdns-backend-bind memcached bind9-dnsutils kamailio sip-tester e2fsprogs

echo "== cargo fmt --check"
cargo fmt --check
echo "== cargo clippy"
cargo clippy --quiet --all-targets -- -D warnings
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
scripts/soak.sh 3 2>&1 | tee -a "$log" || status=$?
# One closing line for the whole run (cargo prints one per test binary).
awk '/^test result:/ { p += $4; f += $6 } END { printf "pdns-ha: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
