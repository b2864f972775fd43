#!/usr/bin/env bash
# REST read path (`make bench`): GET of one session's detail under wrk, side by side with nginx
# returning a JSON body of the same size and with OpenCode's server answering GET /session/{id},
# then the gateway's scaling from one I/O thread to two.
#
# One core each: every server runs under `taskset -c 0` (all its threads) and wrk under
# `taskset -c 1`, with the same settings (wrk -t1 -cCONNECTIONS -dDURATION_S, after a 2 s
# warm-up). The gateway runs with --threads 1 and token auth (a valid Bearer token on every
# request); nginx with one worker. Access logs as each server has them by default (the
# gateway's JSON lines to a file, nginx's combined log to a file), and a second pair with both
# off. The scaling rows run unpinned. Configurations interleave, BENCH_REPEATS rounds; the
# tables give medians and the min–max spread.
#
# Usage: bench/run-rest.sh [BUILD_DIR]
# Environment: CONNECTIONS [64]  DURATION_S [10]  BENCH_REPEATS [3]  WRITE_DOCS [1]
#   BENCH_OUT [docs/benchmarks.md]  OPENCODE [bench/opencode/node_modules/.bin/opencode]
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build_dir=$(cd "${1:-$root/build}" && pwd)
gateway_bin=$build_dir/tau-gateway
connections=${CONNECTIONS:-64}
duration_s=${DURATION_S:-10}
repeats=${BENCH_REPEATS:-3}
write_docs=${WRITE_DOCS:-1}
out_doc=${BENCH_OUT:-$root/docs/benchmarks.md}
opencode_bin=${OPENCODE:-$root/bench/opencode/node_modules/.bin/opencode}
heading="## REST read path (make bench)"
report=$root/bench/wrk_report.lua
# shellcheck source=bench/lib.sh
source "$root/bench/lib.sh"
for tool in wrk nginx taskset; do
  command -v "$tool" >/dev/null || { echo "$tool missing: run make deps" >&2; exit 1; }
done
[ -x "$opencode_bin" ] || { echo "$opencode_bin missing: make bench installs it" >&2; exit 1; }

work=$(mktemp -d -p "$build_dir" bench-rest.XXXXXX)
trap 'stop_all; rm -rf "$work"' EXIT
trap 'exit 130' INT TERM
token=bench-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
results=$work/results.txt
: >"$results"

measure() {  # label wrk_prefix url [wrk args...]: warm-up, then one measured run into $results
  local label=$1 prefix=$2 url=$3 line
  shift 3
  # shellcheck disable=SC2086
  $prefix wrk -t1 -c"$connections" -d2s "$@" "$url" >/dev/null
  # shellcheck disable=SC2086
  line=$($prefix wrk -t1 -c"$connections" -d"${duration_s}s" -s "$report" "$@" "$url" | tail -1)
  echo "$label $line" >>"$results"
  echo "   $label: $line" >&2
}

gateway_flags=(--auth-mode token --auth-token "$token" --rate-limit-max-requests 1000000000000
  --store memory)
auth=(-H "Authorization: Bearer $token")

run_gateway() {  # label threads pinned(0|1) [extra gateway flags...]
  local label=$1 threads=$2 pinned=$3 session
  shift 3
  mkdir -p "$work/state"
  GATEWAY_PREFIX=$([ "$pinned" = 1 ] && echo "taskset -c 0" || true) \
    start_gateway "$gateway_bin" "${gateway_flags[@]}" --threads "$threads" \
    --state-dir "$work/state" "$@"
  session=$(open_bench_session rest "${auth[@]}")
  local url="http://127.0.0.1:$gateway_port/gateway/external-coding-agent/sessions/$session"
  [ -f "$work/body.json" ] || curl -sf "${auth[@]}" "$url" >"$work/body.json"
  measure "$label" "$([ "$pinned" = 1 ] && echo "taskset -c 1" || true)" "$url" "${auth[@]}"
  stop_pid "$gateway_pid"
  rm -rf "$work/state"
}

write_nginx_conf() {  # port access_log(on|off)
  local body log
  # The gateway's own answer, as a single-quoted nginx string.
  body=$(sed -e "s/\\\\/\\\\\\\\/g" -e "s/'/\\\\'/g" "$work/body.json")
  log=$([ "$2" = on ] && echo "access_log $work/nginx/access.log;" || echo "access_log off;")
  mkdir -p "$work/nginx"
  cat >"$work/nginx/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 4096; }
http {
  $log
  client_body_temp_path $work/nginx/body;
  proxy_temp_path $work/nginx/proxy;
  fastcgi_temp_path $work/nginx/fastcgi;
  uwsgi_temp_path $work/nginx/uwsgi;
  scgi_temp_path $work/nginx/scgi;
  server {
    listen 127.0.0.1:$1 backlog=4096;
    location / {
      default_type application/json;
      return 200 '$body';
    }
  }
}
CONF
}

run_nginx() {  # label access_log(on|off)
  local port pid
  for _ in 1 2 3; do
    port=$(free_port)
    write_nginx_conf "$port" "$2"
    taskset -c 0 nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" 2>>"$work/nginx/error.log" &
    pid=$!
    started_pids+=("$pid")
    if wait_for_port "$port" "$pid"; then
      [ "$(curl -s "http://127.0.0.1:$port/x" | wc -c)" = "$(wc -c <"$work/body.json")" ] ||
        { echo "nginx answers a body of another size" >&2; exit 1; }
      measure "$1" "taskset -c 1" "http://127.0.0.1:$port/x"
      stop_pid "$pid"
      return 0
    fi
    stop_pid "$pid"
  done
  echo "nginx did not start:" >&2
  cat "$work/nginx/error.log" >&2
  exit 1
}

run_opencode() {  # label
  local port pid session
  mkdir -p "$work/opencode-home" "$work/opencode-project"
  for _ in 1 2 3; do
    port=$(free_port)
    (cd "$work/opencode-project" && HOME=$work/opencode-home exec taskset -c 0 "$opencode_bin" \
      serve --port "$port" --hostname 127.0.0.1 >"$work/opencode.log" 2>&1) &
    pid=$!
    started_pids+=("$pid")
    if wait_for_port "$port" "$pid"; then
      # Its first request hangs while the server starts up offline (it fails to fetch
      # models.dev and retries); later requests are answered, so ask again until one is.
      session=""
      for _ in $(seq 40); do
        session=$(curl -sf -m 5 -H 'Content-Type: application/json' -d '{}' \
          "http://127.0.0.1:$port/session" | sed -E 's/^\{"id":"([^"]+)".*/\1/') && break
      done
      [ -n "$session" ] || { echo "opencode serve never opened a session" >&2; exit 1; }
      curl -sf "http://127.0.0.1:$port/session/$session" >"$work/opencode-body.json"
      measure "$1" "taskset -c 1" "http://127.0.0.1:$port/session/$session"
      stop_pid "$pid"
      return 0
    fi
    stop_pid "$pid"
  done
  echo "opencode serve did not start:" >&2
  cat "$work/opencode.log" >&2
  exit 1
}

for round in $(seq "$repeats"); do
  echo "round $round of $repeats" >&2
  run_gateway gateway-1core 1 1
  run_nginx nginx-1core on
  run_gateway gateway-1core-nolog 1 1 --log-level warn
  run_nginx nginx-1core-nolog off
  run_opencode opencode-1core
  run_gateway gateway-threads-1 1 0
  run_gateway gateway-threads-2 2 0
done

field_of() { grep "^$1 " "$results" | json_field "$2"; }
rate() { field_of "$1" requests_per_second | median; }
row() {  # label description
  local errors
  errors=$(field_of "$1" errors | awk '{ s += $1 } END { print s + 0 }')
  echo "| $2 | $(rate "$1" | cut -d. -f1) | $(field_of "$1" requests_per_second | spread) |" \
    "$(field_of "$1" latency_p50_us | median) | $(field_of "$1" latency_p99_us | median) | $errors |"
}
nginx_version=$(nginx -v 2>&1 | sed 's|.*nginx/||')
opencode_version=$("$opencode_bin" --version 2>/dev/null || echo unknown)
body_bytes=$(wc -c <"$work/body.json")
section=$work/section.md
{
  echo "$heading"
  echo
  echo "Written by \`make bench\` (\`bench/run-rest.sh\`) on $(date -u '+%Y-%m-%d %H:%M UTC'); do not"
  echo "edit by hand, rerun it."
  echo
  echo "- Machine: $(machine_description)."
  echo "- Gateway: commit $(git -C "$root" rev-parse --short HEAD), \`--threads 1\`, \`--store memory\`, token"
  echo "  auth (every request carries a valid Bearer token), \`GET /gateway/external-coding-agent/sessions/{id}\`"
  echo "  ($body_bytes-byte JSON body). nginx $nginx_version (nginx-light), one worker, \`return 200\` of the"
  echo "  gateway's own body. OpenCode $opencode_version (\`opencode serve\`, npm \`opencode-ai\` pinned in"
  echo "  \`bench/opencode/\`), \`GET /session/{id}\` ($(wc -c <"$work/opencode-body.json")-byte body)."
  echo "- One core each: the server under \`taskset -c 0\` (all its threads: the gateway's logging"
  echo "  and store threads too), wrk under \`taskset -c 1\`:"
  echo "  \`wrk -t1 -c$connections -d${duration_s}s -s bench/wrk_report.lua [-H 'Authorization: Bearer …'] URL\`"
  echo "  after a 2 s warm-up. *log on*: each server's default access log, to a file; *log off*: the"
  echo "  gateway with \`--log-level warn\`, nginx with \`access_log off\`."
  echo "- Median of $repeats interleaved rounds (spread: min–max requests/s); latency from wrk."
  echo
  echo "| server | requests/s | spread | p50 µs | p99 µs | errors |"
  echo "|---|---:|---|---:|---:|---:|"
  row gateway-1core "gateway, 1 core, log on"
  row nginx-1core "nginx, 1 core, log on"
  row gateway-1core-nolog "gateway, 1 core, log off"
  row nginx-1core-nolog "nginx, 1 core, log off"
  row opencode-1core "OpenCode, 1 core"
  echo
  echo "| ratio of medians | requests/s |"
  echo "|---|---:|"
  echo "| gateway ÷ nginx, log on | $(ratio "$(rate gateway-1core)" "$(rate nginx-1core)") |"
  echo "| gateway ÷ nginx, log off | $(ratio "$(rate gateway-1core-nolog)" "$(rate nginx-1core-nolog)") |"
  echo "| gateway ÷ OpenCode | $(ratio "$(rate gateway-1core)" "$(rate opencode-1core)") |"
  echo
  echo "Scaling, unpinned (the gateway and wrk share both cores), log on:"
  echo
  echo "| gateway | requests/s | spread | p50 µs | p99 µs | errors |"
  echo "|---|---:|---|---:|---:|---:|"
  row gateway-threads-1 "\`--threads 1\`"
  row gateway-threads-2 "\`--threads 2\`"
  echo
  raw_results "$results"
} >"$section"

if [ "$write_docs" = 1 ]; then
  "$root/bench/replace-section.sh" "$out_doc" "$heading" "$section"
  echo "wrote the REST read-path section of $out_doc" >&2
fi
cat "$section"
