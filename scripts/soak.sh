#!/usr/bin/env bash
# The fault soak: a real PowerDNS with pdns-ha and memcached, the collector
# against a fake fleet, a steady DNS load over 2000 client networks and an
# agent feeding `ingest`, while a fault happens every 4 seconds (see
# tests/soak.rs). Every answer is checked; prints the report and exits
# non-zero on any wrong answer, unexplained SERVFAIL or timeout, lost
# metric, memory growth or panic.
# Usage: scripts/soak.sh [MINUTES]   (default 3; PDNS_HA_SOAK_QPS, default 300)
# Writes the report to $PDNS_HA_SOAK_REPORT too when set.
set -euo pipefail
cd "$(dirname "$0")/.."
minutes=${1:-3}
case $minutes in
'' | *[!0-9.]*) echo "usage: $0 [MINUTES]" >&2; exit 2 ;;
esac
. scripts/deps.sh
need_packages pdns-server pdns-backend-pipe memcached bind9-dnsutils e2fsprogs

export PDNS_HA_REQUIRE_PDNS=1 PDNS_HA_SOAK_MINUTES=$minutes
# The debug build scripts/test.sh already made (the release profile's
# link-time optimisation would add minutes): the soak checks answers and
# memory growth, not speed.
cargo test --quiet --test soak -- --ignored --nocapture
