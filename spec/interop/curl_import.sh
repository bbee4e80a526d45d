#!/bin/sh
# A lead import exactly as the Marketo docs show it with curl: token, upload
# with `curl -F file=@leads.csv`, status, failures. Needs MARKETO_BASE_URL,
# MARKETO_CLIENT_ID, MARKETO_CLIENT_SECRET; takes the CSV file as $1.
# Prints each answer on its own line after a tag, for the spec to check.
set -eu
base=$MARKETO_BASE_URL
file=$1

token_json=$(curl -sS "$base/identity/oauth/token?grant_type=client_credentials&client_id=$MARKETO_CLIENT_ID&client_secret=$MARKETO_CLIENT_SECRET")
echo "TOKEN $token_json" | sed 's/"access_token":"[^"]*"/"access_token":"(hidden)"/'
token=$(printf '%s' "$token_json" | sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p')

created=$(curl -sS -H "Authorization: Bearer $token" -F format=csv -F "file=@$file" \
    "$base/bulk/v1/leads.json")
echo "CREATED $created"
batch=$(printf '%s' "$created" | sed -n 's/.*"batchId":\([0-9]*\).*/\1/p')

tries=0
while :; do
    status=$(curl -sS -H "Authorization: Bearer $token" "$base/bulk/v1/leads/batch/$batch.json")
    case $status in
        *'"status":"Complete"'*|*'"status":"Failed"'*) break ;;
    esac
    tries=$((tries + 1))
    [ "$tries" -lt 500 ] || { echo "TIMEOUT $status"; exit 1; }
    sleep 0.05
done
echo "STATUS $status"

out=$(mktemp)
trap 'rm -f "$out"' EXIT
code=$(curl -sS -o "$out" -w '%{http_code} %{content_type}' \
    -H "Authorization: Bearer $token" "$base/bulk/v1/leads/batch/$batch/failures.json")
echo "FAILURES $code"
cat "$out"
