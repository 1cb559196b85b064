# Sourced by the scripts: installs the Debian packages that are missing, and
# writes a pdns.conf from pdns.conf.example.
# Usage: need_packages PACKAGE ...
need_packages() {
    local missing=() pkg
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "installing: ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq
    # Package scripts may try to start services (pdns, kamailio); in a
    # container without an init system that fails harmlessly.
    $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# Prints pdns.conf.example (the settings the README tells users to run) with
# this machine's paths, on 127.0.0.1:PORT, with its control socket in DIR.
# Usage: pdns_conf BIN DB PORT DIR [EXTRA ARGS FOR pdns-ha pipe]
pdns_conf() {
    local bin=$1 db=$2 port=$3 dir=$4
    shift 4
    local extra=${*:+ $*}
    sed -e "s|^\(pipe\(-standby\)\?-command\)=.*|\1=$bin pipe --db $db$extra|" \
        -e '/^local-\(address\|port\)=/d' \
        -e '/^#/d' -e '/^$/d' \
        "$(dirname "${BASH_SOURCE[0]}")/../pdns.conf.example"
    echo "local-address=127.0.0.1"
    echo "local-port=$port"
    echo "socket-dir=$dir"
}
