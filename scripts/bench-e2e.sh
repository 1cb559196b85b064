#!/usr/bin/env bash
# End-to-end benchmark: pdns-ha against PowerDNS's own LUA records, both
# answering the same latency-ordered SIP SRV per client /24 from the same data.
# Not a test: it prints a table of figures, and exits 0 unless something
# failed to run or an answer was wrong.
#
#  - pdns-ha: pdns_server with exactly the settings of pdns.conf.example
#    (on a loopback port), the coprocesses reading a database made by
#    `pdns-ha apply` and `pdns-ha ingest`.
#  - LUA: pdns_server with the bind backend and enable-lua-records=shared
#    (one Lua state per thread, kept between queries), the same common
#    settings (threads, caches, ECS), and `_sip._udp` as a LUA SRV record
#    whose code loads a table of the same latencies per /24 once per thread
#    (dofile) and orders the nodes by them with pdns-ha's tiers.
#
# Before measuring, both servers are asked for the same client networks and
# must give the same records. Then, for each count of client networks, each
# server is started alone, warmed up, and loaded by examples/dnsload.rs
# (every query with its own ECS /24, a fixed number in flight) for DURATION
# seconds, while its CPU time and context switches are read from /proc.
# Nothing is pinned: pdns_server, the coprocesses and the load generator
# share the machine's cores, as in production. With ROUNDS > 1 the servers
# alternate, and the run with the median q/s of each is shown.
#
# With DNSSEC=1 each server also runs with its zone signed by PowerDNS
# (online signing, NSEC3 narrow, one ECDSA P-256 key made by `pdnsutil
# secure-zone` before the server starts): pdns-ha with a gsqlite3 keystore
# (as the README sets it up), LUA records with the bind backend's
# `bind-dnssec-db`. Every query then sets the DNSSEC OK bit and every answer
# must carry its RRSIG. The script prints, per server, the q/s without and
# with signing, PowerDNS's `signatures` counter (signatures computed during
# the measured run, not taken from its signature cache) and the size of its
# signature cache, and the number of distinct SRV RRsets the clients got
# (what the cache has to hold).
#
# Environment: DURATION (10 s per measurement), ROUNDS (3), NETWORKS
# ("1 10000 100000": client /24s asked in turn), DATA_NETWORKS (100000:
# /24s with latency data, the same for both servers), INFLIGHT (32 queries
# in flight), WARMUP (2 s before each measurement), DNSSEC (0; 1: also
# measure signed zones), LUA_EXEC_LIMIT (see below).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
need_packages pdns-server pdns-backend-pipe bind9-dnsutils procps python3
DNSSEC=${DNSSEC:-0}
SERVERS="ha lua"
if [ "$DNSSEC" = 1 ]; then
    need_packages pdns-backend-sqlite3 pdns-backend-bind sqlite3
    SERVERS="ha lua ha_dnssec lua_dnssec"
fi

export RUST_LOG=${RUST_LOG:-warn}
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-3}
NETWORKS=${NETWORKS:-1 10000 100000}
DATA_NETWORKS=${DATA_NETWORKS:-100000}
INFLIGHT=${INFLIGHT:-32}
WARMUP=${WARMUP:-2}
# LUA_EXEC_LIMIT, if set, becomes lua-records-exec-limit (instructions per
# query, 0: no limit). Unset, PowerDNS's default (1000) applies: PowerDNS 4.7
# then runs `debug.sethook` before every LUA record. With LuaJIT (as in
# Debian's build) that limit did not stop the loading of the table, nor a
# 100,000-step loop.
LUA_EXEC_LIMIT=${LUA_EXEC_LIMIT:-}

cargo build --release --quiet --bin pdns-ha --example dnsload
TARGET=$(cd "${CARGO_TARGET_DIR:-target}" && pwd)
BIN=$TARGET/release/pdns-ha
LOAD=$TARGET/release/examples/dnsload
TICK=$(getconf CLK_TCK)

DIR=$(mktemp -d /tmp/pdns-ha-e2e.XXXXXX)
PDNS_PID=""
cleanup() {
    if [ -n "$PDNS_PID" ]; then
        kill "$PDNS_PID" 2>/dev/null || true
        wait "$PDNS_PID" 2>/dev/null || true
    fi
    rm -rf "$DIR"
}
trap cleanup EXIT

NODES="mtl1 tor1 van1"
cat > "$DIR/site.toml" <<'SITE'
[zone."voip.example.com"]
ns = ["ns1.voip.example.com"]
hostmaster = "hostmaster.voip.example.com"
[node.mtl1]
host = "mtl1.voip.example.com"
ipv4 = ["198.51.100.10"]
[node.tor1]
host = "tor1.voip.example.com"
ipv4 = ["192.0.2.30"]
[node.van1]
host = "van1.voip.example.com"
ipv4 = ["203.0.113.20"]
[service."_sip._udp.voip.example.com"]
policy = "latency"
port = 5060
ttl = 30
nodes = ["mtl1", "tor1", "van1"]
[policy]
# The data must stay fresh for the whole run (default 900 s).
latency_max_age_s = 86400
SITE

# The same zone for the bind backend, the SRV as a LUA record. Its code runs
# in the thread's shared Lua state: the first query of each thread loads
# sip.lua (the function and the table), later ones only call sip_srv.
cat > "$DIR/voip.example.com.zone" <<ZONE
\$ORIGIN voip.example.com.
@         3600 IN SOA ns1.voip.example.com. hostmaster.voip.example.com. 1 10800 3600 604800 60
@         3600 IN NS  ns1.voip.example.com.
mtl1      3600 IN A   198.51.100.10
tor1      3600 IN A   192.0.2.30
van1      3600 IN A   203.0.113.20
_sip._udp 30   IN LUA SRV ";if not sip_srv then dofile('$DIR/sip.lua') end return sip_srv(bestwho)"
ZONE
echo "zone \"voip.example.com\" { type master; file \"$DIR/voip.example.com.zone\"; };" > "$DIR/named.conf"

# sip.lua: pdns-ha's latency policy for one service, in Lua. Nodes in site
# order; sorted by latency (site order between equals); a node shares the
# SRV priority of its tier's leader when within max(5 ms, 10 % of the
# leader's); weight 100; no data for the /24: site order, one tier each.
cat > "$DIR/sip.lua" <<'LUA'
local hosts = { "mtl1.voip.example.com.", "tor1.voip.example.com.", "van1.voip.example.com." }
local static = {}
for i, h in ipairs(hosts) do static[i] = (i - 1) .. " 100 5060 " .. h end
local lat = {}
function sip_srv(who)
  local l = lat[who:toString():match("^%d+%.%d+%.%d+")]
  if not l then return static end
  local o = { 1, 2, 3 }
  table.sort(o, function(x, y)
    if l[x] ~= l[y] then return l[x] < l[y] end
    return x < y
  end)
  local res, tier, best = {}, 0, nil
  for i = 1, #o do
    local ms = l[o[i]]
    if not best then
      best = ms
    elseif ms > best + math.max(5, best * 10 / 100) then
      tier = tier + 1
      best = ms
    end
    res[i] = tier .. " 100 5060 " .. hosts[o[i]]
  end
  return res
end
-- Latency (ms) of mtl1, tor1, van1 per client /24, keyed "a.b.c", in
-- functions of 5000 entries each (Lua limits the constants of one function).
LUA

# The data: DATA_NETWORKS client /24s (the k-th is 10+k/65536.k/256%256.k%256.0/24,
# as dnsload asks them), a latency from 5 to 99 ms for each node, varied so
# that every order of the three nodes occurs. One awk pass writes the metric
# lines for `pdns-ha ingest` and the Lua table.
"$BIN" --db "$DIR/ha.db" apply "$DIR/site.toml" >/dev/null
awk -v n="$DATA_NETWORKS" -v lua="$DIR/sip.lua" -v nodes="$NODES" 'BEGIN {
    split(nodes, node, " ")
    for (k = 0; k < n; k++) {
        if (k % 5000 == 0) printf "do local function f()\n" >> lua
        net = sprintf("%d.%d.%d", 10 + int(k / 65536), int(k / 256) % 256, k % 256)
        m = 5 + (k * 37) % 95; t = 5 + (k * 59 + 17) % 95; v = 5 + (k * 83 + 41) % 95
        printf "latency %s %s.0/24 %d\nlatency %s %s.0/24 %d\nlatency %s %s.0/24 %d\n",
            node[1], net, m, node[2], net, t, node[3], net, v
        printf "lat[\"%s\"]={%d,%d,%d}\n", net, m, t, v >> lua
        if (k % 5000 == 4999 || k == n - 1) printf "end f() end\n" >> lua
    } }' | "$BIN" --db "$DIR/ha.db" ingest >/dev/null

free_port() { python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# pdns-ha: exactly pdns.conf.example, on a loopback port.
conf_ha() { pdns_conf "$BIN" "$DIR/ha.db" "$1" "$DIR/run"; }
# LUA: the settings of pdns.conf.example that are not about the pipe
# backend (threads, caches, ECS, address), and the bind backend. The zone
# cache stays on (its default): only the pipe backend needs it off.
conf_lua() {
    pdns_conf "$BIN" "$DIR/ha.db" "$1" "$DIR/run" | sed -e '/^pipe-/d' -e '/^zone-cache-refresh-interval=/d' \
        -e "s|^launch=.*|launch=bind\nbind-config=$DIR/named.conf\nenable-lua-records=shared|"
    [ -z "$LUA_EXEC_LIMIT" ] || echo "lua-records-exec-limit=$LUA_EXEC_LIMIT"
}
# Signed: pdns-ha with the keystore of the README's DNSSEC section (the
# commented lines of pdns.conf.example), LUA with the bind backend's DNSSEC
# database.
conf_ha_dnssec() {
    conf_ha "$1" | sed -e 's/^launch=.*/launch=pipe,pipe:standby,gsqlite3/'
    echo "gsqlite3-database=$DIR/keys.sqlite3"
    echo "gsqlite3-dnssec=yes"
}
conf_lua_dnssec() {
    conf_lua "$1"
    echo "bind-dnssec-db=$DIR/bind-dnssec.sqlite3"
}
# Secures the zone of SERVER (ha_dnssec|lua_dnssec) with pdnsutil, as the
# README says: NSEC3 narrow first, then the key; the server is not running.
secure() { # SERVER
    rm -rf "$DIR/secure" && mkdir -p "$DIR/secure"
    "conf_$1" 0 > "$DIR/secure/pdns.conf"
    pdnsutil --config-dir="$DIR/secure" set-nsec3 voip.example.com '1 0 0 -' narrow >/dev/null 2>&1
    pdnsutil --config-dir="$DIR/secure" secure-zone voip.example.com >/dev/null 2>&1
    pdnsutil --config-dir="$DIR/secure" show-zone voip.example.com 2>/dev/null | grep -q 'NARROW hashed NSEC3' ||
        { echo "could not secure the zone for $1" >&2; exit 1; }
}
# A PowerDNS statistic of the running server (pdns_control show NAME).
pdns_stat() { pdns_control --socket-dir="$DIR/run" show "$1" 2>/dev/null || echo 0; }
start_server() { # ha|lua
    PORT=$(free_port)
    rm -rf "$DIR/run" && mkdir -p "$DIR/run"
    "conf_$1" "$PORT" > "$DIR/run/pdns.conf"
    pdns_server --config-dir="$DIR/run" --daemon=no --guardian=no --disable-syslog >"$DIR/pdns-$1.log" 2>&1 &
    PDNS_PID=$!
    for _ in $(seq 50); do
        dig @127.0.0.1 -p "$PORT" +short +time=1 +tries=1 voip.example.com SOA 2>/dev/null | grep -q . && return 0
        sleep 0.2
    done
    echo "pdns_server ($1) did not start:" >&2
    tail -20 "$DIR/pdns-$1.log" >&2
    exit 1
}
stop_server() {
    kill "$PDNS_PID"
    wait "$PDNS_PID" 2>/dev/null || true
    PDNS_PID=""
}
# The records for client network k, sorted: "PRIORITY WEIGHT PORT TARGET".
answers() { # K
    local net
    net=$(awk -v k="$1" 'BEGIN { printf "%d.%d.%d.0/24", 10 + int(k / 65536), int(k / 256) % 256, k % 256 }')
    echo "$net: $(dig @127.0.0.1 -p "$PORT" +short +subnet="$net" _sip._udp.voip.example.com SRV | sort | paste -sd, -)"
}
# Per process, summed over its threads: ROLE PID UTIME STIME CTXT_SWITCHES
# (ticks), for pdns_server and each coprocess; and the whole machine's busy
# ticks, to see how much else was running.
snapshot() {
    one() { # ROLE PID
        local stat csw
        stat=$(cat "/proc/$2/stat" 2>/dev/null) || return 0
        csw=$(cat /proc/"$2"/task/*/status 2>/dev/null |
            awk '/^(non)?voluntary_ctxt_switches:/ { s += $2 } END { print s + 0 }')
        echo "$1 $2 $(echo "${stat##*) }" | awk '{ print $12, $13 }') $csw"
    }
    one pdns "$PDNS_PID"
    local c
    for c in $(ps -o pid= --ppid "$PDNS_PID"); do one coproc "$c"; done
    awk '/^cpu / { print "machine 0", $2 + $3 + $4 + $7 + $8, 0, 0 }' /proc/stat
}
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p"; }

# The memory of the coprocesses after a run: NETWORKS COPROCESSES
# PSS_TOTAL_KIB RSS_MAX_KIB RSS_ANON_MAX_KIB (PSS counts a shared page once
# across all processes that map it).
memory() { # NETWORKS
    local c
    for c in $(ps -o pid= --ppid "$PDNS_PID"); do
        awk '/^Pss:/ { p = $2 } END { printf "%d ", p }' "/proc/$c/smaps_rollup" 2>/dev/null || continue
        awk '/^VmRSS:/ { r = $2 } /^RssAnon:/ { a = $2 } END { print r, a }' "/proc/$c/status"
    done | awk -v n="$1" '{ k++; p += $1; if ($2 > r) r = $2; if ($3 > a) a = $3 }
        END { print n, k, p, r, a }'
}

# One measurement: appends to results "NETS SERVER ROUND fields...".
measure() { # SERVER NETWORKS ROUND
    local out before after sigs0 sigs1 sigcache signed=()
    case $1 in *_dnssec) signed=(--dnssec) ;; esac
    start_server "$1"
    "$LOAD" --port "$PORT" --networks "$2" --seconds "$WARMUP" --inflight "$INFLIGHT" "${signed[@]}" >/dev/null || true
    before=$(snapshot)
    sigs0=$(pdns_stat signatures)
    out=$("$LOAD" --port "$PORT" --networks "$2" --seconds "$DURATION" --inflight "$INFLIGHT" "${signed[@]}") || {
        echo "wrong or missing answers from $1 with $2 networks: $out" >&2
        tail -5 "$DIR/pdns-$1.log" >&2
        exit 1
    }
    after=$(snapshot)
    sigs1=$(pdns_stat signatures)
    sigcache=$(pdns_stat signature-cache-size)
    [ "$1" = ha ] && memory "$2" >> "$DIR/memory"
    stop_server
    # CPU seconds and context switches used during the run, by role:
    # PDNS_USER PDNS_SYS PDNS_CSW COPROC_USER COPROC_SYS COPROC_CSW COPROCS MACHINE_BUSY
    local cpu
    cpu=$(printf '%s\n--\n%s\n' "$before" "$after" | awk -v tick="$TICK" '
        $1 == "--" { a = 1; next }
        !a { u[$2] = $3; s[$2] = $4; c[$2] = $5; next }
        { U[$1] += ($3 - u[$2]) / tick; S[$1] += ($4 - s[$2]) / tick; C[$1] += $5 - c[$2]; if ($1 == "coproc") n++ }
        END { printf "%.2f %.2f %d %.2f %.2f %d %d %.2f", U["pdns"], S["pdns"], C["pdns"], U["coproc"], S["coproc"], C["coproc"], n, U["machine"] }')
    # NETWORKS SERVER ROUND QPS P50_US P99_US ANSWERED (cpu fields) LOAD_USER LOAD_SYS
    # SIGNATURES_MADE SIGNATURE_CACHE_SIZE DISTINCT_ANSWERS
    echo "$2 $1 $3 $(echo "$out" | field qps) $(echo "$out" | field p50_us) $(echo "$out" | field p99_us)" \
        "$(echo "$out" | field answered) $cpu $(echo "$out" | field cpu_user_s) $(echo "$out" | field cpu_sys_s)" \
        "$((sigs1 - sigs0)) $sigcache $(echo "$out" | field distinct_answers)" >> "$DIR/results"
    printf '  round %s %-10s %6s networks: %6s q/s, p50 %5s us, p99 %6s us\n' "$3" "$1" "$2" \
        "$(echo "$out" | field qps)" "$(echo "$out" | field p50_us)" "$(echo "$out" | field p99_us)"
}

echo "== $(nproc) cores; pdns_server $(pdns_server --version 2>&1 | sed -n 's/.*Authoritative Server \([^ ]*\).*/\1/p')," \
    "$DATA_NETWORKS client /24s of latency data, $INFLIGHT queries in flight, $DURATION s per run"

echo "== same answers from both servers"
# The last one, 200.0.0.0/24, has no data at any level: site order.
SAMPLE="0 1 2 3 4 5 6 7 255 256 4242 65535 65536 $((DATA_NETWORKS - 1)) $((190 * 65536))"
start_server ha
for k in $SAMPLE; do answers "$k"; done > "$DIR/answers-ha"
stop_server
start_server lua
for k in $SAMPLE; do answers "$k"; done > "$DIR/answers-lua"
scope=$(dig @127.0.0.1 -p "$PORT" +subnet=10.0.1.0/24 _sip._udp.voip.example.com SRV | sed -n 's/.*CLIENT-SUBNET: //p')
stop_server
head -3 "$DIR/answers-lua" | sed 's/^/  /'
if ! diff "$DIR/answers-ha" "$DIR/answers-lua" >/dev/null; then
    echo "the servers answer differently (< pdns-ha, > LUA):" >&2
    diff "$DIR/answers-ha" "$DIR/answers-lua" >&2
    exit 1
fi
[ "$(cut -d: -f2 "$DIR/answers-ha" | sort -u | wc -l)" -gt 1 ] ||
    { echo "every network got the same records: the data does not vary" >&2; exit 1; }
echo "  $(wc -l < "$DIR/answers-ha") networks: the same records; LUA's ECS scope: $scope"

if [ "$DNSSEC" = 1 ]; then
    echo "== securing both zones (NSEC3 narrow, secure-zone)"
    sqlite3 "$DIR/keys.sqlite3" < /usr/share/pdns-backend-sqlite3/schema/schema.sqlite3.sql
    sqlite3 "$DIR/keys.sqlite3" "INSERT INTO domains (name, type) VALUES ('voip.example.com', 'NATIVE')"
    secure ha_dnssec
    rm -rf "$DIR/secure" && mkdir -p "$DIR/secure"
    conf_lua_dnssec 0 > "$DIR/secure/pdns.conf"
    pdnsutil --config-dir="$DIR/secure" create-bind-db "$DIR/bind-dnssec.sqlite3" >/dev/null 2>&1
    secure lua_dnssec
    for s in ha_dnssec lua_dnssec; do
        start_server "$s"
        for k in $SAMPLE; do answers "$k"; done > "$DIR/answers-$s"
        sig=$(dig @127.0.0.1 -p "$PORT" +dnssec +subnet=10.0.1.0/24 _sip._udp.voip.example.com SRV | awk '$4 == "RRSIG" && $5 == "SRV"' | wc -l)
        stop_server
        diff "$DIR/answers-ha" "$DIR/answers-$s" >/dev/null ||
            { echo "$s answers differently from the unsigned servers:" >&2; diff "$DIR/answers-ha" "$DIR/answers-$s" >&2; exit 1; }
        [ "$sig" = 1 ] || { echo "$s: no RRSIG over the SRV records" >&2; exit 1; }
    done
    echo "  both signed servers: the same records, with an RRSIG SRV"
fi

echo "== measuring"
for round in $(seq "$ROUNDS"); do
    for nets in $NETWORKS; do
        for s in $SERVERS; do measure "$s" "$nets" "$round"; done
    done
done

# The run with the median q/s of each (networks, server), then the tables.
echo
echo "== results: median of $ROUNDS round(s) by q/s; $INFLIGHT queries in flight; p50/p99 in ms"
awk -v cores="$(nproc)" -v dur="$DURATION" -v servers="$SERVERS" '
    # 12345 -> "12 345" (mawk has no {n} in regular expressions)
    function grp(x) {
        x = sprintf("%d", x)
        while (x ~ /[0-9][0-9][0-9][0-9]/) sub(/[0-9][0-9][0-9]( |$)/, " &", x)
        return x
    }
    # The median row of KEY by q/s, split into R.
    function median(key, r,   i, j, t, n, ix) {
        n = cnt[key]
        for (i = 1; i <= n; i++) ix[i] = i
        for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++)
            if (row[key, ix[j]] + 0 < row[key, ix[i]] + 0) { t = ix[i]; ix[i] = ix[j]; ix[j] = t }
        split(row[key, ix[int((n + 1) / 2)]], r, " ")
    }
    {
        key = $1 SUBSEP $2
        row[key, ++cnt[key]] = $4 " " $0
        if (!($1 in seen)) { seen[$1] = 1; nets[++nn] = $1 }
    }
    END {
        name["ha"] = "pdns-ha"; name["lua"] = "LUA shared"
        name["ha_dnssec"] = "pdns-ha, signed"; name["lua_dnssec"] = "LUA shared, signed"
        ns = split(servers, srv, " ")
        print "| client /24s | server | q/s | p50 | p99 | pdns-ha ÷ LUA |"
        print "| ---: | --- | ---: | ---: | ---: | ---: |"
        for (i = 1; i <= nn; i++) for (w = 1; w <= ns; w += 2) {
            median(nets[i] SUBSEP srv[w], h); median(nets[i] SUBSEP srv[w + 1], l)
            printf "| %s | %s | %s | %.2f | %.2f | **%.2f** |\n", grp(nets[i]), name[srv[w]], grp(h[1]), h[6] / 1000, h[7] / 1000, (l[1] > 0 ? h[1] / l[1] : 0)
            printf "| %s | %s | %s | %.2f | %.2f | |\n", grp(nets[i]), name[srv[w + 1]], grp(l[1]), l[6] / 1000, l[7] / 1000
        }
        if (ns > 2) {
            print ""
            print "The cost of signing: q/s signed ÷ unsigned; signatures PowerDNS computed"
            print "during the measured run (its `signatures` counter) and its signature cache"
            print "at the end; distinct SRV RRsets the clients got (what needs a signature)."
            print ""
            print "| client /24s | server | q/s unsigned | q/s signed | signed ÷ unsigned | signatures computed | signature cache entries | distinct SRV RRsets |"
            print "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |"
            for (i = 1; i <= nn; i++) for (w = 1; w <= 2; w++) {
                median(nets[i] SUBSEP srv[w], u); median(nets[i] SUBSEP srv[w + 2], g)
                printf "| %s | %s | %s | %s | **%.2f** | %s | %s | %s |\n", grp(nets[i]), name[srv[w]], grp(u[1]), grp(g[1]),
                    (u[1] > 0 ? g[1] / u[1] : 0), grp(g[19]), grp(g[20]), grp(g[21])
            }
        }
        print ""
        print "Where the CPU goes, per answered query: µs of user + system time, and context"
        print "switches (voluntary + involuntary, all threads); cores: ours (the server"
        printf "being measured and the load generator) and other processes, of %d.\n\n", cores
        print "| client /24s | server | pdns_server µs | coprocesses µs | load generator µs | pdns_server ctx sw | coprocesses ctx sw | cores ours / others |"
        print "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |"
        # r: 1 qps, 2 networks, 3 server, 4 round, 5 qps, 6 p50, 7 p99, 8 answered,
        # 9-11 pdns_server user sys csw, 12-14 coprocesses user sys csw,
        # 15 coprocesses, 16 machine busy, 17-18 load generator user sys,
        # 19 signatures computed, 20 signature cache size, 21 distinct answers
        for (i = 1; i <= nn; i++) for (w = 1; w <= ns; w++) {
            median(nets[i] SUBSEP srv[w], r)
            q = r[8] > 0 ? r[8] : 1
            ours = (r[9] + r[10] + r[12] + r[13] + r[17] + r[18]) / dur
            others = r[16] / dur - ours
            printf "| %s | %s | %.1f + %.1f | %s | %.1f + %.1f | %.2f | %s | %.2f / %.2f |\n", grp(nets[i]), name[r[3]],
                r[9] * 1e6 / q, r[10] * 1e6 / q,
                (r[15] > 0 ? sprintf("%.1f + %.1f", r[12] * 1e6 / q, r[13] * 1e6 / q) : "none"),
                r[17] * 1e6 / q, r[18] * 1e6 / q, r[11] / q,
                (r[15] > 0 ? sprintf("%.2f", r[14] / q) : "none"), ours, (others > 0 ? others : 0)
            if (others > busiest) busiest = others
        }
        if (busiest > 0.25)
            printf "\nOther processes used up to %.2f of the %d cores during a run: the figures are\nskewed by them (see the rounds above, and run again on a quiet machine).\n", busiest, cores
    }' "$DIR/results"
echo
echo "Memory of pdns-ha's coprocesses at the end of its last run (KiB; PSS counts a page"
echo "shared by several processes once in all):"
echo
echo "| client /24s | coprocesses | PSS, all | RSS, largest | private (RssAnon), largest |"
echo "| ---: | ---: | ---: | ---: | ---: |"
awk '{ last[$1] = $0; if (!($1 in seen)) { seen[$1] = 1; order[++n] = $1 } }
    END { for (i = 1; i <= n; i++) { split(last[order[i]], m, " "); printf "| %s | %s | %s | %s | %s |\n", m[1], m[2], m[3], m[4], m[5] } }' "$DIR/memory"
