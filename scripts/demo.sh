#!/usr/bin/env bash
# pdns-ha demo: installs what it needs (Debian), builds, writes a demo site
# with three VoIP nodes, starts PowerDNS with pdns-ha on 127.0.0.1:5300 and
# shows the answers changing with the client's network and the nodes' state,
# then starts the collector with its status page and /metrics on
# 127.0.0.1:9253. PowerDNS and the collector are left running; the last line
# says how to stop them.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
need_packages pdns-server pdns-backend-pipe bind9-dnsutils curl

PORT=${PDNS_HA_DEMO_PORT:-5300}
HTTP_PORT=${PDNS_HA_DEMO_HTTP_PORT:-9253}
DIR=${PDNS_HA_DEMO_DIR:-/tmp/pdns-ha-demo}
cargo build --release --quiet
BIN=$(pwd)/target/release/pdns-ha

for pidfile in "$DIR/pdns.pid" "$DIR/collect.pid"; do
    if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
        echo "stopping the previous demo's $(basename "$pidfile" .pid) (pid $(cat "$pidfile"))"
        kill "$(cat "$pidfile")"
        sleep 1
    fi
done
rm -rf "$DIR" && mkdir -p "$DIR"
DB=$DIR/pdns-ha.db

cat > "$DIR/site.toml" <<SITE
[zone."voip.example.com"]
ns = ["ns1.voip.example.com"]
hostmaster = "hostmaster.voip.example.com"

[node.mtl1]
host = "mtl1.voip.example.com"
ipv4 = ["198.51.100.10"]
max_sessions = 1000

[node.van1]
host = "van1.voip.example.com"
ipv4 = ["203.0.113.20"]
max_sessions = 1000

[node.tor1]
host = "tor1.voip.example.com"
ipv4 = ["192.0.2.30"]
max_sessions = 1000

[service."_sip._udp.voip.example.com"]   # phones: nearest server first
policy = "latency"
port = 5060
nodes = ["mtl1", "tor1", "van1"]

[service."_sip._tcp.voip.example.com"]   # least loaded first
policy = "load"
port = 5060
nodes = ["mtl1", "tor1", "van1"]

[pool."sip.voip.example.com"]            # A record: the least loaded node
policy = "load"
nodes = ["mtl1", "tor1", "van1"]

[network.vancouver]
prefixes = ["24.64.0.0/13"]
prefer = ["van1"]

[collector]                              # its status page and /metrics
http = "127.0.0.1:$HTTP_PORT"
SITE

echo "== pdns-ha apply $DIR/site.toml"
"$BIN" --db "$DB" apply "$DIR/site.toml"

echo "== metrics, as the collector or any agent would send them"
tee "$DIR/metrics.txt" <<'METRICS'
latency van1 24.64.1.10 8.5
latency mtl1 24.64.1.10 71
latency tor1 24.64.1.10 55
latency mtl1 184.161.2.20 6
latency tor1 184.161.2.20 12
latency van1 184.161.2.20 72
load mtl1 600 1000 80
load tor1 150 1000 95
load van1 300 1000 90
METRICS
"$BIN" --db "$DB" ingest "$DIR/metrics.txt"

mkdir -p "$DIR/pdns"
# Exactly the settings of pdns.conf.example, on a loopback port.
pdns_conf "$BIN" "$DB" "$PORT" "$DIR/pdns" > "$DIR/pdns/pdns.conf"
setsid pdns_server --config-dir="$DIR/pdns" --daemon=no --guardian=no --disable-syslog \
    >"$DIR/pdns.log" 2>&1 </dev/null &
echo $! >"$DIR/pdns.pid"
for _ in $(seq 50); do
    dig @127.0.0.1 -p "$PORT" +short +time=1 +tries=1 voip.example.com SOA >/dev/null 2>&1 && break
    sleep 0.2
done

ask() { # TITLE SUBNET NAME TYPE
    echo
    echo "== $1: dig +subnet=$2 $3 $4"
    local out
    out=$(dig @127.0.0.1 -p "$PORT" +norec +subnet="$2" "$3" "$4")
    echo "$out" | awk '/CLIENT-SUBNET/ {print "   ECS " $3 " (the scope is after the last /)"}'
    # PowerDNS shuffles records over UDP: show SRV by priority, then the rest.
    echo "$out" | awk '/^[^;].*\tSRV\t/ {print "   " $0}' | sort -t$'\t' -k5,5n
    echo "$out" | awk '/^[^;].*\tIN\t(A|AAAA)\t/ {print "   " $0}'
}
ask "a phone in Vancouver" 24.64.1.0/24 _sip._udp.voip.example.com SRV
ask "a phone in Montreal" 184.161.2.0/24 _sip._udp.voip.example.com SRV
ask "a network never measured" 192.0.2.0/24 _sip._udp.voip.example.com SRV
ask "least loaded, from anywhere" 192.0.2.0/24 _sip._tcp.voip.example.com SRV
ask "the pool's A record" 192.0.2.0/24 sip.voip.example.com A

echo
echo "== why, for Vancouver: pdns-ha explain"
"$BIN" --db "$DB" explain _sip._udp.voip.example.com SRV --client 24.64.1.0/24

echo
echo "== van1 goes down (as the collector's SIP OPTIONS probe would report)"
echo "health van1 down" | "$BIN" --db "$DB" ingest
sleep 1.5
ask "Vancouver again" 24.64.1.0/24 _sip._udp.voip.example.com SRV
echo "health van1 up" | "$BIN" --db "$DB" ingest

echo
echo "== what changed: pdns-ha log"
"$BIN" --db "$DB" log

echo
echo "== the collector, with its HTTP server: pdns-ha collect"
# The demo's nodes have no event socket or SIP probe to measure: the
# collector only serves the page and /metrics here.
setsid "$BIN" --db "$DB" collect >"$DIR/collect.log" 2>&1 </dev/null &
echo $! >"$DIR/collect.pid"
for _ in $(seq 50); do
    curl -sf "http://127.0.0.1:$HTTP_PORT/metrics" >/dev/null && break
    sleep 0.2
done
curl -sf "http://127.0.0.1:$HTTP_PORT/metrics" |
    grep -E '^pdns_ha_(node_health\{.*state="up"\}|events_total\{kind="(health|apply)"\})' |
    sed 's/^/   /'

echo
echo "PowerDNS with pdns-ha is running on 127.0.0.1:$PORT (log: $DIR/pdns.log)."
echo "Try: dig @127.0.0.1 -p $PORT +subnet=24.64.1.0/24 _sip._udp.voip.example.com SRV"
echo "The status page: http://127.0.0.1:$HTTP_PORT/ (and /metrics, /status.json)."
echo "Stop them with: kill $(cat "$DIR/pdns.pid") $(cat "$DIR/collect.pid")"
