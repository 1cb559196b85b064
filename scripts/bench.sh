#!/usr/bin/env bash
# Benchmarks of the pdns-ha coprocess. Not a test: it prints figures and
# ratios, and exits 0 unless something failed to run.
#
#  1. Pipe throughput, one question at a time as PowerDNS sends them, driver
#     and coprocess pinned to one core (taskset -c 0), against a coprocess
#     that does nothing (the floor).
#  2. Memory: resident memory after the questions (VmRSS/VmHWM), heap peak
#     (valgrind massif), and with 1,000 vs 1,000,000 client networks of
#     latency data in the database.
#  3. End to end: dnsperf against pdns_server running pdns-ha with the
#     settings of pdns.conf.example, and with one pipe backend (no standby).
#
# Environment: QUESTIONS (100000), RUNS (3, the median is kept),
# BIG_NETWORKS (1000000), DNSPERF_SECONDS (10).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
need_packages valgrind time dnsperf pdns-server pdns-backend-pipe bind9-dnsutils memcached

export RUST_LOG=${RUST_LOG:-warn}
QUESTIONS=${QUESTIONS:-100000}
RUNS=${RUNS:-3}
BIG_NETWORKS=${BIG_NETWORKS:-1000000}
DNSPERF_SECONDS=${DNSPERF_SECONDS:-10}

cargo build --release --quiet --bin pdns-ha --example pipe_bench --example null_pipe
BIN=$(pwd)/target/release/pdns-ha
BENCH=$(pwd)/target/release/examples/pipe_bench
NULL=$(pwd)/target/release/examples/null_pipe

DIR=$(mktemp -d /tmp/pdns-ha-bench.XXXXXX)
PDNS_PID=""
MC_PID=""
cleanup() {
    [ -n "$PDNS_PID" ] && kill "$PDNS_PID" 2>/dev/null || true
    [ -n "$MC_PID" ] && kill "$MC_PID" 2>/dev/null || true
    rm -rf "$DIR"
}
trap cleanup EXIT

cat > "$DIR/site.toml" <<'SITE'
[zone."voip.example.com"]
ns = ["ns1.voip.example.com"]
hostmaster = "hostmaster.voip.example.com"
[node.mtl1]
host = "mtl1.voip.example.com"
ipv4 = ["198.51.100.10"]
[node.van1]
host = "van1.voip.example.com"
ipv4 = ["203.0.113.20"]
[node.tor1]
host = "tor1.voip.example.com"
ipv4 = ["192.0.2.30"]
[service."_sip._udp.voip.example.com"]
policy = "latency"
port = 5060
nodes = ["mtl1", "tor1", "van1"]
[service."_sip._tcp.voip.example.com"]
policy = "static"
port = 5060
nodes = ["mtl1", "tor1", "van1"]
SITE

# Latency for N client networks 10.x.y.0/24 (the networks pipe_bench asks
# about), three nodes each.
make_db() { # DB N [SITE]
    "$BIN" --db "$1" apply "${3:-$DIR/site.toml}" >/dev/null
    awk -v n="$2" 'BEGIN {
        for (k = 0; k < n; k++) {
            a = 10 + int(k / 65536); b = int(k / 256) % 256; c = k % 256
            printf "latency mtl1 %d.%d.%d.1 %d\n", a, b, c, 5 + k % 40
            printf "latency van1 %d.%d.%d.1 %d\n", a, b, c, 5 + (k * 7) % 40
            printf "latency tor1 %d.%d.%d.1 %d\n", a, b, c, 5 + (k * 13) % 40
        } }' | "$BIN" --db "$1" ingest 2>/dev/null
}

# Runs pipe_bench RUNS times; prints the median run's line.
bench() { # pipe_bench options... -- command...
    for _ in $(seq "$RUNS"); do
        taskset -c 0 "$BENCH" --questions "$QUESTIONS" "$@"
    done | sort -t= -k3 -n | sed -n "$(((RUNS + 1) / 2))p"
}
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p"; }

echo "== building a database with 1000 client networks"
make_db "$DIR/small.db" 1000
echo "== building a database with $BIG_NETWORKS client networks"
t0=$(date +%s)
make_db "$DIR/big.db" "$BIG_NETWORKS"
echo "ingested $((BIG_NETWORKS * 3)) samples in $(($(date +%s) - t0)) s; database $(du -m "$DIR/big.db" | cut -f1) MiB, latency snapshot $(du -m "$DIR/big.db-latency" | cut -f1) MiB"
"$BIN" --db "$DIR/big.db" status | grep '^latency snapshot'

echo "== pipe throughput, $QUESTIONS questions one at a time, pinned to core 0 (median of $RUNS)"
floor=$(bench -- taskset -c 0 "$NULL")
static=$(bench --qname _sip._tcp.voip.example.com -- taskset -c 0 "$BIN" pipe --db "$DIR/small.db")
lat1=$(bench --qname _sip._udp.voip.example.com --subnets 1 -- taskset -c 0 "$BIN" pipe --db "$DIR/small.db")
lat1k=$(bench --qname _sip._udp.voip.example.com --subnets 1000 -- taskset -c 0 "$BIN" pipe --db "$DIR/small.db")
latmiss=$(RUNS=1 bench --qname _sip._udp.voip.example.com --subnets 1000000 -- taskset -c 0 "$BIN" pipe --db "$DIR/small.db")
# The uncached path with the latency data of BIG_NETWORKS networks: every
# question a network with data, not asked recently; from the snapshot, then
# through SQLite (the snapshot moved away, as before snapshots existed).
latbig=$(bench --qname _sip._udp.voip.example.com --subnets "$BIG_NETWORKS" -- taskset -c 0 "$BIN" pipe --db "$DIR/big.db")
mv "$DIR/big.db-latency" "$DIR/big.db-latency.away"
latsql=$(bench --qname _sip._udp.voip.example.com --subnets "$BIG_NETWORKS" -- taskset -c 0 "$BIN" pipe --db "$DIR/big.db")
mv "$DIR/big.db-latency.away" "$DIR/big.db-latency"
f=$(echo "$floor" | field qps)
report() { # NAME LINE
    local q
    q=$(echo "$2" | field qps)
    printf '%-44s %8s qps  ratio %.3f  median %6s us  p99 %6s us  rss %s KiB (private %s)\n' "$1" "$q" \
        "$(awk -v a="$q" -v b="$f" 'BEGIN { print a / b }')" "$(echo "$2" | field median_us)" \
        "$(echo "$2" | field p99_us)" "$(echo "$2" | field rss_kib)" "$(echo "$2" | field anon_kib)"
}
report "floor (do-nothing coprocess)" "$floor"
report "static SRV" "$static"
report "latency SRV with ECS, 1 network" "$lat1"
report "latency SRV with ECS, 1000 networks" "$lat1k"
report "latency SRV with ECS, every question new" "$latmiss"
report "  the same, $BIG_NETWORKS networks with data" "$latbig"
report "  the same, read through SQLite" "$latsql"

echo
echo "== heap (valgrind massif), 20000 latency questions over 1000 networks"
awk 'BEGIN { print "HELO\t5"; for (i = 0; i < 20000; i++) { k = (i * 7919) % 1000;
    printf "Q\t_sip._udp.voip.example.com\tIN\tANY\t-1\t10.%d.%d.1\t127.0.0.1\t10.%d.%d.0/24\n", int(k/256), k%256, int(k/256), k%256 } }' > "$DIR/questions.txt"
valgrind --tool=massif --massif-out-file="$DIR/massif.out" "$BIN" pipe --db "$DIR/small.db" < "$DIR/questions.txt" > /dev/null 2>&1
peak=$(grep mem_heap_B "$DIR/massif.out" | cut -d= -f2 | sort -n | tail -1)
echo "heap peak: $((peak / 1024)) KiB"
/usr/bin/time -v "$BIN" pipe --db "$DIR/small.db" < "$DIR/questions.txt" 2> "$DIR/time.txt" > /dev/null
echo "max resident (time -v): $(sed -n 's/.*Maximum resident set size (kbytes): //p' "$DIR/time.txt") KiB"

echo
echo "== memory with $BIG_NETWORKS client networks in the database"
small=$(RUNS=1 bench --qname _sip._udp.voip.example.com --subnets "$BIG_NETWORKS" -- taskset -c 0 "$BIN" pipe --db "$DIR/small.db")
big=$(RUNS=1 bench --qname _sip._udp.voip.example.com --subnets "$BIG_NETWORKS" -- taskset -c 0 "$BIN" pipe --db "$DIR/big.db")
rs=$(echo "$small" | field hwm_kib)
rb=$(echo "$big" | field hwm_kib)
report "latency SRV, 1000 networks in db" "$small"
report "latency SRV, $BIG_NETWORKS networks in db" "$big"
echo "peak resident: $rs KiB with 1000 networks, $rb KiB with $BIG_NETWORKS: difference $((rb - rs)) KiB"
long=$(RUNS=1 QUESTIONS=1000000 bench --qname _sip._udp.voip.example.com --subnets 100000 -- taskset -c 0 "$BIN" pipe --db "$DIR/big.db")
echo "after 1000000 questions over 100000 networks ($BIG_NETWORKS in db): resident $(echo "$long" | field rss_kib) KiB," \
    "private (RssAnon) $(echo "$long" | field anon_kib) KiB"

echo
echo "== memcached: latency SRV over 8192 networks, decisions kept 100 ms in process (so most are not)"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
sed 's/^\[service."_sip._udp/[policy]\ndecision_cache_ms = 100\n\n&/' "$DIR/site.toml" > "$DIR/site-mc.toml"
make_db "$DIR/mc.db" 8192 "$DIR/site-mc.toml"
MC_PORT=$(free_port)
taskset -c 0 memcached -p "$MC_PORT" -l 127.0.0.1 -U 0 -u nobody -t 1 -m 64 &
MC_PID=$!
sleep 0.5
mc() { taskset -c 0 "$BENCH" --questions 8192 --subnets 8192 --qname _sip._udp.voip.example.com -- taskset -c 0 "$BIN" pipe --db "$DIR/mc.db" "$@"; }
report "no memcached (computed)" "$(mc)"
report "memcached, first process (misses)" "$(mc --memcached "127.0.0.1:$MC_PORT")"
report "memcached, second process (hits)" "$(mc --memcached "127.0.0.1:$MC_PORT")"
kill "$MC_PID"; wait "$MC_PID" 2>/dev/null || true; MC_PID=""
report "memcached down (connection refused)" "$(mc --memcached "127.0.0.1:$MC_PORT")"

echo
echo "== end to end: dnsperf against pdns_server with pdns-ha ($DNSPERF_SECONDS s each)"
echo "_sip._udp.voip.example.com SRV" > "$DIR/dyn.txt"
echo "_sip._tcp.voip.example.com SRV" > "$DIR/static.txt"
# Names that do not exist: the first coprocess answers nothing, so PowerDNS
# asks the standby too (then caches the NXDOMAIN for negquery-cache-ttl).
for i in $(seq 1 200000); do echo "nx$i.voip.example.com A"; done > "$DIR/nx.txt"
start_pdns() { # CONF
    PORT=$(free_port)
    rm -rf "$DIR/pdns" && mkdir -p "$DIR/pdns"
    echo "$1" | sed "s|^local-port=.*|local-port=$PORT|" > "$DIR/pdns/pdns.conf"
    pdns_server --config-dir="$DIR/pdns" --daemon=no --guardian=no --disable-syslog >"$DIR/pdns.log" 2>&1 &
    PDNS_PID=$!
    for _ in $(seq 50); do dig @127.0.0.1 -p "$PORT" +short +time=1 +tries=1 voip.example.com SOA >/dev/null 2>&1 && break; sleep 0.2; done
}
stop_pdns() { kill "$PDNS_PID"; wait "$PDNS_PID" 2>/dev/null || true; PDNS_PID=""; }
perf() { # NAME FILE [dnsperf options]; sets QPS
    local name=$1 file=$2
    shift 2
    local out
    out=$(dnsperf -s 127.0.0.1 -p "$PORT" -d "$file" -l "$DNSPERF_SECONDS" -c 4 -q 20 "$@" 2>&1)
    QPS=$(echo "$out" | sed -n 's/.*Queries per second: *\([0-9.]*\).*/\1/p')
    printf '%-58s %s qps, avg latency %s s, lost %s\n' "$name" "$QPS" \
        "$(echo "$out" | sed -n 's/.*Average Latency (s): *\([0-9.]*\).*/\1/p')" \
        "$(echo "$out" | sed -n 's/.*Queries lost: *\([0-9]*\).*/\1/p')"
}
# Exactly the settings of pdns.conf.example, on a loopback port...
EXAMPLE=$(pdns_conf "$BIN" "$DIR/big.db" 0 "$DIR/pdns")
# ... and the same with one pipe backend (no standby), to show its cost.
SINGLE=$(echo "$EXAMPLE" | sed -e 's/^launch=pipe,pipe:standby$/launch=pipe/' -e '/^pipe-standby-/d')
# ECS option (code 8): family 1, source /24, scope 0, 10.0.1.
ECS="-E 8:000118000a0001"
start_pdns "$EXAMPLE"
perf "pdns.conf.example: latency SRV, ECS (not cacheable)" "$DIR/dyn.txt" $ECS || true
dyn_standby=$QPS
perf "pdns.conf.example: NXDOMAIN names" "$DIR/nx.txt" || true
nx_standby=$QPS
perf "pdns.conf.example: static SRV (PowerDNS packet cache)" "$DIR/static.txt" || true
stop_pdns
start_pdns "$SINGLE"
perf "one backend, no standby: latency SRV, ECS" "$DIR/dyn.txt" $ECS || true
dyn_single=$QPS
perf "one backend, no standby: NXDOMAIN names" "$DIR/nx.txt" || true
nx_single=$QPS
stop_pdns
awk -v a="$dyn_standby" -v b="$dyn_single" -v c="$nx_standby" -v d="$nx_single" 'BEGIN {
    if (b > 0) printf "standby / no standby: latency SRV %.2f", a / b
    if (d > 0) printf ", NXDOMAIN names %.2f", c / d
    print ""
}'
