#!/usr/bin/env bash
# Replay (`make bench`): the time to stream a session's 1,000 retained events over loopback, as
# the server sees it (the access log's duration_ms for the stream request: from its header to
# the last byte written) and as a client sees it (curl's time_total, connection included).
# A fresh gateway with --max-events-per-session 1000 gets 1,000 progress events (MESSAGE_BYTES
# each) from one curl process over one connection, then REPLAYS replays of the whole session.
# Usage: bench/run-replay.sh [BUILD_DIR]
# Environment: STORE [sqlite]  EVENTS [1000]  REPLAYS [50]  MESSAGE_BYTES [100]  WRITE_DOCS [1]
#   BENCH_OUT [docs/benchmarks.md]
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build_dir=$(cd "${1:-$root/build}" && pwd)
gateway_bin=$build_dir/tau-gateway
store=${STORE:-sqlite}
events=${EVENTS:-1000}
replays=${REPLAYS:-50}
message_bytes=${MESSAGE_BYTES:-100}
write_docs=${WRITE_DOCS:-1}
out_doc=${BENCH_OUT:-$root/docs/benchmarks.md}
heading="## Replay of 1,000 events (make bench)"
# shellcheck source=bench/lib.sh
source "$root/bench/lib.sh"
work=$(mktemp -d -p "$build_dir" bench-replay.XXXXXX)
trap 'stop_all; rm -rf "$work"' EXIT
trap 'exit 130' INT TERM

start_gateway "$gateway_bin" --auth-mode localhost-dev --threads 1 --store "$store" \
  --max-events-per-session "$events" --rate-limit-max-requests 1000000000000 \
  --state-dir "$work/state" --log-format json
session=$(open_bench_session replay)
api="http://127.0.0.1:$gateway_port/gateway/external-coding-agent/sessions/$session"

# One curl process, one keep-alive connection, EVENTS appends.
message=$(head -c "$message_bytes" /dev/zero | tr '\0' x)
{
  # Options in a curl config apply to every URL in it (data given twice would be joined).
  echo "data = \"{\\\"message\\\":\\\"$message\\\"}\""
  echo "header = \"Content-Type: application/json\""
  for _ in $(seq "$events"); do
    echo "url = \"$api/progress\""
    echo "output = /dev/null"
  done
} >"$work/appends.curl"
curl -sf -K "$work/appends.curl"

client_ms=$work/client_ms.txt
: >"$client_ms"
replay_bytes=0
for _ in $(seq "$replays"); do
  curl -sf -o "$work/replay.txt" -w '%{time_total}\n' "$api/stream" |
    awk '{ printf "%.3f\n", $1 * 1000 }' >>"$client_ms"
  replay_bytes=$(wc -c <"$work/replay.txt")
done
replayed=$(grep -c '^id: ' "$work/replay.txt")
[ "$replayed" = "$events" ] || { echo "a replay carried $replayed events, not $events" >&2; exit 1; }
stop_pid "$gateway_pid"  # its access log is complete once it has stopped
server_ms=$work/server_ms.txt
grep '"route":"/gateway/external-coding-agent/sessions/{session_id}/stream"' "$work/gateway.log" |
  json_field duration_ms >"$server_ms"

percentile() {  # p < file
  sort -n | awk -v p="$1" '{ v[NR] = $1 } END { i = int(NR * p / 100 + 0.5); if (i < 1) i = 1; print v[i] }'
}
section=$work/section.md
{
  echo "$heading"
  echo
  echo "Written by \`make bench\` (\`bench/run-replay.sh\`) on $(date -u '+%Y-%m-%d %H:%M UTC'); do not"
  echo "edit by hand, rerun it."
  echo
  echo "- Machine: $(machine_description)."
  echo "- Gateway: commit $(git -C "$root" rev-parse --short HEAD), \`--threads 1 --store $store"
  echo "  --max-events-per-session $events\`. One session holding $events progress events"
  echo "  ($message_bytes-byte messages); each replay is \`GET .../sessions/{id}/stream\` (no follow),"
  echo "  $replay_bytes bytes of event stream, by a new \`curl\` each time, $replays times."
  echo "- *server*: the access log's \`duration_ms\` for the stream request (from its header to"
  echo "  the last byte handed to the socket). *client*: curl's \`time_total\` (connect included)."
  echo
  echo "| measured | p50 ms | p90 ms | max ms |"
  echo "|---|---:|---:|---:|"
  echo "| server | $(percentile 50 <"$server_ms") | $(percentile 90 <"$server_ms") | $(percentile 100 <"$server_ms") |"
  echo "| client | $(percentile 50 <"$client_ms") | $(percentile 90 <"$client_ms") | $(percentile 100 <"$client_ms") |"
} >"$section"

if [ "$write_docs" = 1 ]; then
  "$root/bench/replace-section.sh" "$out_doc" "$heading" "$section"
  echo "wrote the replay section of $out_doc" >&2
fi
cat "$section"
