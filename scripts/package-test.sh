#!/usr/bin/env bash
# The Debian package, end to end. Builds it with cargo-deb (installed if
# missing) and runs lintian; then, as root: installs it with dpkg, checks
# what it installed and made (the pdns-ha user and group, /var/lib/pdns-ha,
# the collector's unit neither enabled nor started), applies the example
# site as the pdns-ha user, runs PowerDNS as pdns with the packaged pdns.d
# snippet on a loopback port and checks its answers, removes the package
# (configuration and database stay), purges it and checks that nothing of it
# is left. Without root it stops after lintian, and says so.
#
# It refuses to run over a pdns-ha it did not install: a /usr/bin/pdns-ha,
# user or directory not from the package, or an installed package with a
# database. A package left installed without a database (an interrupted
# run) is purged first.
#
# Exit status 0: passed; 1: failed. It never uses systemctl (containers).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
need_packages lintian adduser pdns-server pdns-backend-pipe bind9-dnsutils

started=$(date +%s)
fail() {
    echo "package-test: FAILED: $*" >&2
    exit 1
}

if ! command -v cargo-deb >/dev/null; then
    # A debug build without the xz feature (packages are then gzip'd):
    # 35 s on 2 cores instead of 3 minutes; the package is the same but for
    # its compression.
    echo "installing cargo-deb"
    cargo install cargo-deb --version 3.8.0 --locked --quiet --debug --no-default-features
fi

echo "== cargo deb"
# cargo-deb builds the release binary (fat LTO: a few minutes on 2 cores)
# and prints the package's path last.
deb=$(cargo deb | tail -n 1)
[ -f "$deb" ] || fail "cargo deb made no package"
built=$(date +%s)
# A new version in Cargo.toml needs its debian/changelog entry.
version=$(dpkg-deb -f "$deb" Version)
[ "$(sed -n '1s/^pdns-ha (\([^)]*\)).*/\1/p' debian/changelog)" = "$version" ] ||
    fail "debian/changelog's first entry is not $version"

echo "== lintian $(basename "$deb")"
# The tags this package keeps are overridden in debian/lintian-overrides,
# each with its reason (README, "The Debian package"); anything else fails.
lintian --fail-on error,warning,info --info "$deb" || fail "lintian"

if [ "$(id -u)" -ne 0 ]; then
    echo "package-test: not root: built and checked with lintian; install, answers and purge NOT tested"
    exit 0
fi

# --- Nothing of a pdns-ha not installed by this package may be touched.
pkg_state() { dpkg-query -W -f='${db:Status-Status}' pdns-ha 2>/dev/null || true; }
case $(pkg_state) in
"" | not-installed) ;;
*)
    [ -e /var/lib/pdns-ha/pdns-ha.db ] &&
        fail "pdns-ha is installed with a database (/var/lib/pdns-ha/pdns-ha.db): this test purges the package; run it elsewhere or purge it yourself"
    echo "purging the pdns-ha package left by an earlier run"
    dpkg --purge pdns-ha >/dev/null
    ;;
esac
for path in /usr/bin/pdns-ha /etc/pdns-ha /var/lib/pdns-ha /lib/systemd/system/pdns-ha-collect.service \
    /etc/powerdns/pdns.d/pdns-ha.conf /etc/powerdns/pdns.d/pdns-ha.conf.example; do
    [ ! -e "$path" ] || fail "$path exists but not from the package: not touching it"
done
getent passwd pdns-ha >/dev/null && fail "a user pdns-ha exists but not from the package: not touching it"
getent group pdns-ha >/dev/null && fail "a group pdns-ha exists but not from the package: not touching it"

tmp=$(mktemp -d)
pdns_pid=""
cleanup() {
    if [ -n "$pdns_pid" ]; then
        kill -TERM -- "-$pdns_pid" 2>/dev/null || true
        wait "$pdns_pid" 2>/dev/null || true
    fi
    case $(pkg_state) in
    "" | not-installed) ;;
    *) dpkg --purge pdns-ha >/dev/null 2>&1 || echo "package-test: could not purge pdns-ha" >&2 ;;
    esac
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "== dpkg -i"
dpkg -i "$deb" >"$tmp/dpkg.log" 2>&1 || {
    cat "$tmp/dpkg.log" >&2
    fail "dpkg -i"
}

expect() { # WHAT GOT WANTED
    [ "$2" = "$3" ] || fail "$1: got '$2', expected '$3'"
}
# The files.
[ -x /usr/bin/pdns-ha ] || fail "no /usr/bin/pdns-ha"
/usr/bin/pdns-ha --version >/dev/null || fail "/usr/bin/pdns-ha --version"
grep -qx 'ExecStart=/usr/bin/pdns-ha collect --db /var/lib/pdns-ha/pdns-ha.db' \
    /lib/systemd/system/pdns-ha-collect.service || fail "the unit's ExecStart"
grep -qx 'pipe-command=/usr/bin/pdns-ha pipe --db /var/lib/pdns-ha/pdns-ha.db' \
    /etc/powerdns/pdns.d/pdns-ha.conf.example || fail "the snippet's pipe-command"
[ -f /etc/pdns-ha/site.toml.example ] || fail "no /etc/pdns-ha/site.toml.example"
[ ! -e /etc/powerdns/pdns.d/pdns-ha.conf ] || fail "the snippet is active"
expect conffiles "$(dpkg-query -W -f='${Conffiles}\n' pdns-ha | awk 'NF { print $1 }' | sort | tr '\n' ' ')" \
    "/etc/pdns-ha/site.toml.example /etc/powerdns/pdns.d/pdns-ha.conf.example "
# The user, the group, the directory.
IFS=: read -r _ _ uid gid _ home shell < <(getent passwd pdns-ha) || fail "no user pdns-ha"
[ "$uid" -lt 1000 ] || fail "pdns-ha is not a system user (uid $uid)"
expect "pdns-ha's group" "$(getent group pdns-ha | cut -d: -f3)" "$gid"
expect "pdns-ha's home" "$home" /var/lib/pdns-ha
expect "pdns-ha's shell" "$shell" /usr/sbin/nologin
id -nG pdns | tr ' ' '\n' | grep -qx pdns-ha || fail "pdns is not in the group pdns-ha"
expect /var/lib/pdns-ha "$(stat -c '%U:%G %a' /var/lib/pdns-ha)" "pdns-ha:pdns-ha 2770"
# The collector: not enabled, not running.
ls /etc/systemd/system/*/pdns-ha-collect.service >/dev/null 2>&1 && fail "the collector is enabled"
pgrep -u pdns-ha >/dev/null && fail "a process runs as pdns-ha after install"
if [ -d /run/systemd/system ]; then
    systemctl is-active --quiet pdns-ha-collect.service && fail "the collector is running"
fi

echo "== the example site, applied as pdns-ha"
runuser -u pdns-ha -- sh -c 'umask 007; pdns-ha apply /etc/pdns-ha/site.toml.example --db /var/lib/pdns-ha/pdns-ha.db' ||
    fail "pdns-ha apply of the example site"
# apply creates the database 0666 less the umask: group-writable for pdns.
expect "the database" "$(stat -c '%U:%G %a' /var/lib/pdns-ha/pdns-ha.db)" "pdns-ha:pdns-ha 660"

echo "== PowerDNS with the packaged snippet, as pdns"
# Debian's layout: pdns.conf with launch= and include-dir, the snippet
# renamed to .conf in pdns.d; the listening address on the command line.
chmod 755 "$tmp"
mkdir "$tmp/pdns.d" "$tmp/run"
chown pdns "$tmp/run"
printf 'launch=\ninclude-dir=%s/pdns.d\n' "$tmp" >"$tmp/pdns.conf"
cp /etc/powerdns/pdns.d/pdns-ha.conf.example "$tmp/pdns.d/pdns-ha.conf"
ask() { dig @127.0.0.1 -p "$port" +short +time=1 +tries=1 "$@"; }
for _ in 1 2 3; do
    port=$((20000 + RANDOM % 40000))
    # Its own process group (setsid), pdns with its groups (--init-groups),
    # as systemd's User=pdns does.
    setsid setpriv --reuid=pdns --regid=pdns --init-groups \
        pdns_server --config-dir="$tmp" --daemon=no --guardian=no --disable-syslog \
        --local-address=127.0.0.1 --local-port="$port" --socket-dir="$tmp/run" \
        >"$tmp/pdns.log" 2>&1 </dev/null &
    pdns_pid=$!
    for _ in $(seq 50); do
        kill -0 "$pdns_pid" 2>/dev/null || break
        [ -n "$(ask voip.example.com SOA 2>/dev/null)" ] && break 2
        sleep 0.2
    done
    kill -TERM -- "-$pdns_pid" 2>/dev/null || true
    wait "$pdns_pid" 2>/dev/null || true
    pdns_pid=""
    grep -q "Address already in use" "$tmp/pdns.log" || break
done
[ -n "$pdns_pid" ] || {
    cat "$tmp/pdns.log" >&2
    fail "PowerDNS did not answer"
}
soa=$(ask voip.example.com SOA)
[[ $soa =~ ^ns1\.voip\.example\.com\.\ hostmaster\.example\.com\.\ [0-9]+\ 10800\ 3600\ 604800\ 60$ ]] ||
    fail "SOA: got '$soa'"
# Health unknown and no latency yet: both nodes, in site order.
expect SRV "$(ask _sip._udp.voip.example.com SRV | sort | tr '\n' ' ')" \
    "0 100 5060 mtl1.voip.example.com. 1 100 5060 van1.voip.example.com. "
expect "mtl1's A" "$(ask mtl1.voip.example.com A)" 198.51.100.10
echo "answers: SOA '$soa', SRV mtl1 then van1"
# The coprocesses, as pdns, write the client networks they see into the
# database (every 5 s): the group shares it.
seen=""
for _ in $(seq 20); do
    ask +subnet=192.0.2.0/24 _sip._udp.voip.example.com SRV >/dev/null || true
    seen=$(runuser -u pdns-ha -- pdns-ha status --db /var/lib/pdns-ha/pdns-ha.db | sed -n 's/^seen client networks: //p')
    [ "${seen:-0}" -gt 0 ] && break
    sleep 0.5
done
[ "${seen:-0}" -gt 0 ] || fail "the coprocesses (user pdns) recorded no client network in the database"
kill -TERM -- "-$pdns_pid"
wait "$pdns_pid" 2>/dev/null || true
pdns_pid=""

echo "== dpkg -r: the configuration and the database stay"
dpkg -r pdns-ha >/dev/null
[ ! -e /usr/bin/pdns-ha ] || fail "dpkg -r left /usr/bin/pdns-ha"
[ ! -e /lib/systemd/system/pdns-ha-collect.service ] || fail "dpkg -r left the unit"
for path in /etc/pdns-ha/site.toml.example /etc/powerdns/pdns.d/pdns-ha.conf.example /var/lib/pdns-ha/pdns-ha.db; do
    [ -e "$path" ] || fail "dpkg -r removed $path"
done
getent passwd pdns-ha >/dev/null || fail "dpkg -r removed the user pdns-ha"

echo "== dpkg --purge: nothing is left"
dpkg --purge pdns-ha >/dev/null
for path in /usr/bin/pdns-ha /etc/pdns-ha /var/lib/pdns-ha /lib/systemd/system/pdns-ha-collect.service \
    /etc/powerdns/pdns.d/pdns-ha.conf.example /usr/share/doc/pdns-ha; do
    [ ! -e "$path" ] || fail "purge left $path"
done
getent passwd pdns-ha >/dev/null && fail "purge left the user pdns-ha"
getent group pdns-ha >/dev/null && fail "purge left the group pdns-ha"
case $(pkg_state) in
"" | not-installed) ;;
*) fail "the package's state after purge: $(pkg_state)" ;;
esac

echo "package-test: passed (build $((built - started)) s, lintian and install tests $(($(date +%s) - built)) s)"
