#!/usr/bin/env bash
# The append path measured with wrk (Debian's `wrk`, a lean C load generator): 64 keep-alive
# connections posting progress to one session, for each store, and beside it Redis doing the
# comparable job: `redis-benchmark` (Debian's redis-tools) sending XADD to a stream trimmed like
# the session's retention, non-pipelined, with the same client count, against a `redis-server`
# started here on a free loopback port (without persistence, and with an everysec AOF).
# Usage: run-append-wrk.sh BUILD_DIR
# Environment: STORES [memory sqlite-normal sqlite-full]  CLIENTS [64]  DURATION_S [8]
#   BENCH_REPEATS [3]  MESSAGE_BYTES [100]  REDIS_REQUESTS [400000]  WRITE_DOCS [1]
#   BENCH_OUT [docs/benchmarks.md]  GATEWAY_FLAGS (added to the gateway's command line)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build_dir=$(cd "${1:-$root/build}" && pwd)
gateway_bin=$build_dir/tau-gateway
stores=${STORES:-memory sqlite-normal sqlite-full}
clients=${CLIENTS:-64}
duration_s=${DURATION_S:-8}
repeats=${BENCH_REPEATS:-3}
export MESSAGE_BYTES=${MESSAGE_BYTES:-100}
redis_requests=${REDIS_REQUESTS:-400000}
write_docs=${WRITE_DOCS:-1}
out_doc=${BENCH_OUT:-$root/docs/benchmarks.md}
heading="## Append path with wrk and Redis XADD (make bench)"
# The gateway's default retention (--max-events-per-session); the Redis stream is trimmed alike.
retention=256
# shellcheck source=bench/lib.sh
source "$root/bench/lib.sh"
for tool in wrk redis-server redis-benchmark; do
  command -v "$tool" >/dev/null || { echo "$tool missing: run make deps" >&2; exit 1; }
done
work=$(mktemp -d -p "$build_dir" bench-append-wrk.XXXXXX)
trap 'stop_all; rm -rf "$work"' EXIT
trap 'exit 130' INT TERM

store_flags() {
  case $1 in
    memory) echo "--store memory" ;;
    sqlite-normal) echo "--store sqlite --durability normal" ;;
    sqlite-full) echo "--store sqlite --durability full" ;;
    *) echo "unknown store $1" >&2; exit 2 ;;
  esac
}

results=$work/results.txt
message=$(head -c "$MESSAGE_BYTES" /dev/zero | tr '\0' x)
run_redis() {  # variant repeat
  local port pid line persistence=(--save "" --appendonly no)
  [ "$1" = redis-aof ] && persistence=(--save "" --appendonly yes --appendfsync everysec)
  rm -rf "$work/redis" && mkdir -p "$work/redis"
  for _ in 1 2 3; do
    port=$(free_port)
    redis-server --bind 127.0.0.1 --port "$port" --dir "$work/redis" "${persistence[@]}" \
      >"$work/redis/server.log" 2>&1 &
    pid=$!
    started_pids+=("$pid")
    wait_for_port "$port" "$pid" && break
    stop_pid "$pid"
    pid=""
  done
  [ -n "$pid" ] || { cat "$work/redis/server.log" >&2; exit 1; }
  # CSV: "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms",
  # "p99_latency_ms","max_latency_ms"
  line=$(redis-benchmark -h 127.0.0.1 -p "$port" -c "$clients" -n "$redis_requests" -P 1 --csv \
    XADD tau:bench MAXLEN '~' "$retention" '*' message "$message" | tail -1 | tr -d '"')
  echo "$line" | awk -F, -v label="$1 $2" '{ printf "%s {\"requests_per_second\":%s,\"requests\":%d,\"errors\":0,\"latency_p50_us\":%d,\"latency_p99_us\":%d,\"latency_max_us\":%d}\n", label, $2, '"$redis_requests"', $5 * 1000, $7 * 1000, $8 * 1000 }' >>"$results"
  echo "   $1 run $2: $(tail -1 "$results")" >&2
  stop_pid "$pid"
}

for repeat in $(seq "$repeats"); do
  for store in $stores; do
    state=$work/state-$store-$repeat
    mkdir -p "$state"
    # shellcheck disable=SC2046
    start_gateway "$gateway_bin" --auth-mode localhost-dev --threads 1 \
      --rate-limit-max-requests 1000000000000 --state-dir "$state" $(store_flags "$store") \
      ${GATEWAY_FLAGS:-}
    session=$(open_bench_session wrk)
    line=$(wrk -t1 -c"$clients" -d"${duration_s}s" -s "$root/bench/progress.lua" \
      "http://127.0.0.1:$gateway_port/gateway/external-coding-agent/sessions/$session/progress" |
      tail -1)
    echo "$store $repeat $line" >>"$results"
    echo "   wrk $store run $repeat: $line" >&2
    stop_pid "$gateway_pid"
  done
  run_redis redis "$repeat"
  run_redis redis-aof "$repeat"
done

field() { grep "^$1 " "$results" | json_field "$2"; }
rate() { field "$1" requests_per_second | median; }
section=$work/section.md
{
  echo "$heading"
  echo
  echo "Written by \`make bench\` (\`bench/run-append-wrk.sh\`) on $(date -u '+%Y-%m-%d %H:%M UTC');"
  echo "do not edit by hand, rerun it."
  echo
  echo "- Machine: $(machine_description)."
  echo "- Gateway: commit $(git -C "$root" rev-parse --short HEAD), \`--threads 1 --auth-mode localhost-dev\`,"
  echo "  default retention; one session; the client is [wrk](https://github.com/wg/wrk):"
  echo "  \`wrk -t1 -c$clients -d${duration_s}s -s bench/progress.lua http://127.0.0.1:\$PORT/gateway/external-coding-agent/sessions/\$ID/progress\`"
  echo "  ($MESSAGE_BYTES-byte messages)."
  echo "- Redis $(redis-server --version | sed -E 's/.*v=([0-9.]+).*/\1/'): \`redis-benchmark -c $clients -n $redis_requests -P 1 XADD tau:bench MAXLEN ~ $retention * message <$MESSAGE_BYTES bytes>\`"
  echo "  against \`redis-server --save ''\` with \`--appendonly no\` (*redis*) or"
  echo "  \`--appendonly yes --appendfsync everysec\` (*redis-aof*)."
  echo "- Everything unpinned on the 2 cores (the load generator shares them). Median of $repeats"
  echo "  runs; latency from wrk and from redis-benchmark (which reports it to 8 µs)."
  echo
  echo "| store | appends/s (median) | spread | p50 µs | p99 µs | ÷ memory | ÷ redis |"
  echo "|---|---:|---|---:|---:|---:|---:|"
  for store in $stores redis redis-aof; do
    echo "| $store | $(rate "$store" | cut -d. -f1) | $(field "$store" requests_per_second | spread) |" \
      "$(field "$store" latency_p50_us | median) | $(field "$store" latency_p99_us | median) |" \
      "$(ratio "$(rate "$store")" "$(rate memory)") | $(ratio "$(rate "$store")" "$(rate redis)") |"
  done
  echo
  raw_results "$results"
} >"$section"

if [ "$write_docs" = 1 ]; then
  "$root/bench/replace-section.sh" "$out_doc" "$heading" "$section"
  echo "wrote the wrk/Redis append-path section of $out_doc" >&2
fi
cat "$section"
