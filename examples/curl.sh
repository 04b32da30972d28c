#!/usr/bin/env bash
# Run with: examples/curl.sh http://127.0.0.1:8080   (a gateway from `cargo run --release -- --interop`)
#
# The state store over the Connect protocol with nothing but curl: unary calls as JSON, a
# compare-and-set conflict (an error object with its typed detail), and a streaming Watch
# (Connect envelopes: a flag byte and a 4-byte big-endian length before each JSON message).
set -euo pipefail
origin="${1:-http://127.0.0.1:8080}"
S="$origin/portway.state.v1.StateService"
prefix="examples/curl/$$"

call() { # METHOD JSON: a unary Connect call; prints the response, fails on an HTTP error.
  curl -sS --fail-with-body -X POST -H 'content-type: application/json' -d "$2" "$S/$1"
  echo
}

# envelope JSON: one Connect envelope (printf's octal escapes write the length bytes).
envelope() {
  local n=${#1} # the messages here are ASCII, so characters are bytes
  printf "\\000\\$(printf %03o $((n >> 24 & 255)))\\$(printf %03o $((n >> 16 & 255)))\\$(printf %03o $((n >> 8 & 255)))\\$(printf %03o $((n & 255)))%s" "$1"
}

echo "== health"
curl -sS --fail "$origin/healthz"

echo "== a watch of $prefix/ (server streaming, in the background)"
watch_out=$(mktemp)
trap 'kill $watch_pid 2>/dev/null || true; rm -f "$watch_out"' EXIT
envelope "{\"key\":\"$prefix/\",\"prefix\":true}" |
  curl -sSN --data-binary @- -H 'content-type: application/connect+json' "$S/Watch" >"$watch_out" &
watch_pid=$!
# The first message says the watch is registered; wait for it (no sleeping on a guess).
for _ in $(seq 200); do grep -q '"created":true' "$watch_out" && break; sleep 0.05; done
grep -q '"created":true' "$watch_out" || { echo "the watch did not start" >&2; exit 1; }

echo "== put, get"
call Put "{\"key\":\"$prefix/doc\",\"value\":{\"title\":\"hello\",\"tags\":[\"a\",\"b\"]}}"
call Get "{\"key\":\"$prefix/doc\"}"

echo "== compare-and-set that does not hold (expectedRevision 0: only if absent)"
status=$(curl -sS -o /tmp/portway-cas.$$ -w '%{http_code}' -X POST -H 'content-type: application/json' \
  -d "{\"key\":\"$prefix/doc\",\"expectedRevision\":\"0\"}" "$S/Put")
echo "HTTP $status: $(cat /tmp/portway-cas.$$)"
grep -q '"code":"failed_precondition"' /tmp/portway-cas.$$ && grep -q 'portway.state.v1.ConflictDetail' /tmp/portway-cas.$$
rm -f /tmp/portway-cas.$$

echo "== a transaction"
call Txn "{\"compare\":[{\"key\":\"$prefix/doc\",\"target\":\"VERSION\",\"version\":\"1\"}],\"success\":[{\"put\":{\"key\":\"$prefix/txn\",\"value\":true}}]}"

echo "== list (server streaming)"
envelope "{\"prefix\":\"$prefix/\"}" |
  curl -sS --data-binary @- -H 'content-type: application/connect+json' "$S/List" | tr -c '[:print:]' '\n' | grep -o '{.*'

echo "== what the watch saw"
for _ in $(seq 200); do grep -q "$prefix/txn" "$watch_out" && break; sleep 0.05; done
tr -c '[:print:]' '\n' <"$watch_out" | grep -o '{.*'
grep -q "$prefix/txn" "$watch_out" || { echo "the watch missed the transaction" >&2; exit 1; }
echo ok
