# Sourced by the scripts: installs the Debian packages that are missing.
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
