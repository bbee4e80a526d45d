#!/bin/sh
# ensure-deps.sh - install the Debian 12 packages marketo-bulk needs, or say
# exactly how to. Run by `make demo`, `make test` and .ci/run.
set -eu

PACKAGES="make gcc clang pkg-config curl python3 python3-requests procps time openssl
lua5.4 liblua5.4-dev libcurl4-openssl-dev zlib1g-dev lua-cjson lua-busted lua-check lua-socket luarocks
redis-server lua-nginx-redis
luajit2 libluajit2-5.1-dev libclang-rt-14-dev
nginx-light libnginx-mod-http-lua libnginx-mod-http-ndk
chromium"

missing=""
for p in $PACKAGES; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
[ -z "$missing" ] && exit 0

line="apt-get install -y --no-install-recommends$missing"
if [ "$(id -u)" = 0 ]; then
    echo "ensure-deps: installing:$missing" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
else
    echo "ensure-deps: missing Debian packages:$missing" >&2
    echo "ensure-deps: run as root:  sudo apt-get update && sudo $line" >&2
    exit 1
fi
