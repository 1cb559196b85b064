#!/usr/bin/env bash
# Measures one `pdns-ha collect` (release build) against a fake fleet on
# loopback: N fake FreeSWITCH event sockets + N SIP OPTIONS responders
# (examples/fake_fleet.rs), all in one site file. Prints the collector's CPU
# share, RSS, max RSS and thread count over the window, then what the store
# holds (from `pdns-ha status --json`), then how long SIGTERM took.
#
# Usage: scripts/bench-collector.sh [NODES [SECONDS]]
#   NODES    nodes in the site (default 200)
#   SECONDS  measuring window (default 60), after WARMUP seconds
# Environment: PROBE_MS (probe_interval_ms, default 5000), HEARTBEAT_MS (the
# fake FreeSWITCH heartbeat interval, default 20000 as FreeSWITCH),
# REG_POLL_MS (registration_poll_interval_ms, default 30000), HANGUPS (hang-up
# events a second each fake FreeSWITCH sends, default 0: realistic ones of
# about 5 KB, every channel variable as a URL-encoded header), WARMUP
# (default 10), KEEP=1 keeps the work directory, BUILD=0 uses the binaries
# already built.
#
# The collector's CPU per 1,000 hang-up events a second: compare a run with
# HANGUPS against one without (same NODES), e.g.
#   HANGUPS=500 scripts/bench-collector.sh 2 20   # 1,000 events/s in all
#
# Everything it starts is stopped by PID on exit (also on Ctrl-C or error).
set -euo pipefail
cd "$(dirname "$0")/.."

NODES=${1:-200}
SECONDS_WINDOW=${2:-60}
PROBE_MS=${PROBE_MS:-5000}
HEARTBEAT_MS=${HEARTBEAT_MS:-20000}
REG_POLL_MS=${REG_POLL_MS:-30000}
HANGUPS=${HANGUPS:-0}
WARMUP=${WARMUP:-10}

for tool in cargo jq; do
    command -v "$tool" >/dev/null || { echo "bench-collector: needs $tool" >&2; exit 2; }
done

if [ "${BUILD:-1}" != 0 ]; then
    echo "== building (release)"
    cargo build --release --quiet --bin pdns-ha --example fake_fleet
fi
TARGET=$(cargo metadata --format-version 1 --no-deps | jq -r .target_directory)
BIN="$TARGET/release/pdns-ha"
FLEET="$TARGET/release/examples/fake_fleet"

WORK=$(mktemp -d -t pdns-ha-bench.XXXXXX)
DB="$WORK/pdns-ha.db"
FLEET_PID=""
COLLECT_PID=""
cleanup() {
    # Only what this script started, by PID.
    if [ -n "$COLLECT_PID" ] && kill -0 "$COLLECT_PID" 2>/dev/null; then
        kill -KILL "$COLLECT_PID" 2>/dev/null || true
        wait "$COLLECT_PID" 2>/dev/null || true
    fi
    if [ -n "$FLEET_PID" ] && kill -0 "$FLEET_PID" 2>/dev/null; then
        kill -TERM "$FLEET_PID" 2>/dev/null || true
        wait "$FLEET_PID" 2>/dev/null || true
    fi
    if [ "${KEEP:-}" = 1 ]; then
        echo "kept $WORK"
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "== starting the fake fleet: $NODES nodes (heartbeat every $HEARTBEAT_MS ms, $HANGUPS hang-up events/s each)"
"$FLEET" "$NODES" "$HEARTBEAT_MS" "$HANGUPS" >"$WORK/fleet.txt" 2>"$WORK/fleet.log" &
FLEET_PID=$!
for _ in $(seq 1 300); do
    [ "$(wc -l <"$WORK/fleet.txt")" -ge "$NODES" ] && break
    kill -0 "$FLEET_PID" 2>/dev/null || { cat "$WORK/fleet.log" >&2; exit 1; }
    sleep 0.1
done
[ "$(wc -l <"$WORK/fleet.txt")" -ge "$NODES" ] || { echo "the fleet did not start" >&2; exit 1; }

# The site: every node with its event socket and SIP probe, a load and a
# latency service over all of them.
{
    cat <<EOF
[zone."bench.example.com"]
ns = ["ns1.bench.example.com"]
hostmaster = "hostmaster.example.com"

[collector]
probe_interval_ms = $PROBE_MS
registration_poll_interval_ms = $REG_POLL_MS

EOF
    # Lines: nodeNNN esl=127.0.0.1:PORT sip=udp:127.0.0.1:PORT
    while read -r name esl sip; do
        printf '[node.%s]\nhost = "%s.bench.example.com"\nipv4 = ["127.0.0.1"]\nesl = "%s"\nesl_password = "ClueCon"\nsip_probe = "%s"\n\n' \
            "$name" "$name" "${esl#esl=}" "${sip#sip=}"
    done <"$WORK/fleet.txt"
    names=$(awk '{printf "%s\"%s\"", (NR>1 ? ", " : ""), $1}' "$WORK/fleet.txt")
    printf '[service."_sip._udp.bench.example.com"]\npolicy = "latency"\nport = 5060\nnodes = [%s]\n\n' "$names"
    printf '[service."_sip._tcp.bench.example.com"]\npolicy = "load"\nport = 5060\nnodes = [%s]\n\n' "$names"
    printf '[service."_sips._tcp.bench.example.com"]\npolicy = "quality"\nport = 5061\nnodes = [%s]\n' "$names"
} >"$WORK/site.toml"
"$BIN" apply "$WORK/site.toml" --db "$DB" >/dev/null

# CPU ticks (utime + stime) of a process.
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
status_field() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }
HZ=$(getconf CLK_TCK)

echo "== collect: probe every $PROBE_MS ms, registrations every $REG_POLL_MS ms; warm-up ${WARMUP} s, window ${SECONDS_WINDOW} s"
RUST_LOG=warn "$BIN" collect --db "$DB" 2>"$WORK/collect.log" &
COLLECT_PID=$!
sleep "$WARMUP"
kill -0 "$COLLECT_PID" 2>/dev/null || { cat "$WORK/collect.log" >&2; exit 1; }
c0=$(ticks "$COLLECT_PID"); f0=$(ticks "$FLEET_PID"); t0=$(date +%s.%N)
max_threads=0
rss_samples=()
for _ in $(seq 1 "$SECONDS_WINDOW"); do
    sleep 1
    th=$(status_field "$COLLECT_PID" Threads)
    [ "$th" -gt "$max_threads" ] && max_threads=$th
    rss_samples+=("$(status_field "$COLLECT_PID" VmRSS)")
done
c1=$(ticks "$COLLECT_PID"); f1=$(ticks "$FLEET_PID"); t1=$(date +%s.%N)
rss_now=$(status_field "$COLLECT_PID" VmRSS)
rss_max=$(status_field "$COLLECT_PID" VmHWM)
rss_avg=$(printf '%s\n' "${rss_samples[@]}" | awk '{s += $1} END {printf "%d", s / NR}')
wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN {print b - a}')

echo "== collector (pid $COLLECT_PID), $NODES nodes, ${SECONDS_WINDOW} s window"
awk -v c="$((c1 - c0))" -v hz="$HZ" -v w="$wall" 'BEGIN {
    printf "CPU:      %.2f s in %.1f s = %.2f%% of one core\n", c / hz, w, 100 * c / hz / w }'
if [ "$HANGUPS" != 0 ]; then
    awk -v c="$((c1 - c0))" -v hz="$HZ" -v w="$wall" -v r="$((HANGUPS * NODES))" 'BEGIN {
        printf "hang-ups: %d events/s offered = %.2f%% of one core per 1,000 events/s (all work included)\n",
            r, 100 * c / hz / w * 1000 / r }'
fi
echo "RSS:      ${rss_now} kB now, ${rss_avg} kB average, ${rss_max} kB max (VmHWM)"
echo "threads:  ${max_threads} max"
echo "fds:      $(ls "/proc/$COLLECT_PID/fd" | wc -l) open"
awk -v c="$((f1 - f0))" -v hz="$HZ" -v w="$wall" 'BEGIN {
    printf "(fake fleet, same window: %.2f%% of one core)\n", 100 * c / hz / w }'

echo "== stored (pdns-ha status --json)"
"$BIN" status --json --db "$DB" >"$WORK/status.json"
jq -r '
  "collector heartbeat age:    \(.collector_heartbeat_age_s) s",
  "nodes:                      \(.nodes | length)",
  "  with health up:           \([.nodes[] | select(.health == "up")] | length)",
  "  with a probe RTT:         \([.nodes[] | select(.probe_rtt_ms != null)] | length)",
  "  with a fresh load:        \([.nodes[] | select(.sessions != null and .load_age_s <= 90)] | length)",
  "  with latency entries:     \([.nodes[] | select(.latency_networks_fresh > 0)] | length)",
  "  latency networks (fresh): \([.nodes[].latency_networks_fresh] | add)",
  "  health age max:           \([.nodes[].health_age_s] | max) s",
  "  load age max:             \([.nodes[].load_age_s] | max) s"' "$WORK/status.json"
if command -v sqlite3 >/dev/null; then
    echo "call quality samples stored (sum of calls in IPv4 /24 and IPv6 /48 rows): $(sqlite3 "$DB" \
        "SELECT coalesce(sum(calls), 0) FROM quality WHERE (family = 4 AND plen = 24) OR (family = 6 AND plen = 48)")"
    echo "latency samples stored (IPv4 /24 and IPv6 /48 rows, sum of samples): $(sqlite3 "$DB" \
        "SELECT sum(samples) FROM latency WHERE (family = 4 AND plen = 24) OR (family = 6 AND plen = 48)")"
fi
echo "collector log lines (warn and above): $(wc -l <"$WORK/collect.log")"

echo "== SIGTERM"
t0=$(date +%s%N)
kill -TERM "$COLLECT_PID"
set +e
wait "$COLLECT_PID"
rc=$?
set -e
COLLECT_PID=""
echo "exit status $rc after $(( ($(date +%s%N) - t0) / 1000000 )) ms"
