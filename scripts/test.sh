#!/usr/bin/env bash
# Runs every test of pdns-ha: installs what the tests need (Debian bookworm),
# checks formatting and lints, then runs the unit and integration tests
# against a real PowerDNS, memcached and Kamailio on loopback ports.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh

need_packages pdns-server pdns-backend-pipe memcached bind9-dnsutils kamailio sip-tester

echo "== cargo fmt --check"
cargo fmt --check
echo "== cargo clippy"
cargo clippy --quiet --all-targets -- -D warnings
echo "== cargo test"
cargo test --all-targets 2>&1
