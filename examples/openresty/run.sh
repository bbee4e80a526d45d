#!/bin/sh
# examples/openresty/run.sh [PORT]: renders nginx.conf into a scratch directory
# (logs, pid and temp files go there) and runs nginx in the foreground with the
# example app; Ctrl-C stops it. MARKETO_* variables are passed to the worker.
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
port=${1:-8080}
prefix=$(mktemp -d /tmp/marketo-nginx.XXXXXX)
mkdir -p "$prefix/tmp"
sed -e "s|@ROOT@|$root|g" -e "s|@PREFIX@|$prefix|g" -e "s|@PORT@|$port|g" \
    "$root/examples/openresty/nginx.conf" > "$prefix/nginx.conf"
echo "nginx on http://127.0.0.1:$port, logs in $prefix" >&2
exec nginx -p "$prefix" -c "$prefix/nginx.conf" -g 'daemon off;'
