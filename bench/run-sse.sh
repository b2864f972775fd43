#!/usr/bin/env bash
# SSE fan-out benchmark (`make bench-sse`): the gateway's follow streams against Nchan.
#
# For each stream count N and each load (a paced one for latency, a saturating one for
# throughput) it starts a fresh gateway, opens one session and runs build/sse_load against its
# follow stream; then starts a fresh nginx with Nchan (one worker, own config in a temp dir, a
# channel with the same message buffer as the gateway's retention) and runs the same load. Every
# configuration runs BENCH_REPEATS times (default 3); the report gives the median of each figure.
# The figures go into docs/benchmarks.md, replacing its previous "## SSE fan-out" section.
#
# Usage: bench/run-sse.sh [BUILD_DIR]   (environment: BENCH_REPEATS, BENCH_OUT)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build_dir=${1:-$root/build}
# free_port; this script keeps its own server start and stop.
# shellcheck source=bench/lib.sh
source "$root/bench/lib.sh"
gateway_bin=$build_dir/tau-gateway
load_bin=$build_dir/sse_load
repeats=${BENCH_REPEATS:-3}
out_doc=${BENCH_OUT:-$root/docs/benchmarks.md}

# Loads: "name streams events rate". Paced: one event every 0.25-0.5 s, so each event's fan-out
# finishes before the next (pure fan-out latency). Saturating: 500,000 deliveries/s offered.
loads=(
  "paced 1000 20 4"
  "saturating 1000 500 1000"
  "paced 10000 10 2"
  "saturating 10000 50 50"
)
retention=1000  # gateway --max-events-per-session and nchan_message_buffer_length (>= every M)

for bin in "$gateway_bin" "$load_bin"; do
  [ -x "$bin" ] || { echo "missing $bin: run make build" >&2; exit 1; }
done
command -v nginx >/dev/null || { echo "nginx missing: make bench-sse installs nginx-light" >&2; exit 1; }
nchan_module=""
for dir in /usr/lib/nginx/modules /usr/share/nginx/modules; do
  [ -f "$dir/ngx_nchan_module.so" ] && { nchan_module=$dir/ngx_nchan_module.so; break; }
done
[ -n "$nchan_module" ] || { echo "ngx_nchan_module.so not found (libnginx-mod-nchan)" >&2; exit 1; }

# 10,000 streams need 10,000+ descriptors in each process. Raise the soft limit as far as allowed.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
nofile=$(ulimit -n)

work=$(mktemp -d /tmp/tau-bench-sse.XXXXXX)
server_pid=""
stop_server() {
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
  fi
}
cleanup() { stop_server; rm -rf "$work"; }
trap cleanup EXIT
trap 'exit 130' INT TERM


wait_for_log() {  # file pattern: wait up to 10 s for a line matching pattern
  for _ in $(seq 100); do
    grep -q "$2" "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "timed out waiting for '$2' in $1:" >&2
  cat "$1" >&2
  return 1
}

gateway_cmd=("$gateway_bin" --auth-mode localhost-dev --bind 127.0.0.1:0 --threads 2
  --rate-limit-max-requests 100000000 --max-streams 20000 --max-events-per-session "$retention"
  --state-dir "$work/gateway-state")

start_gateway() {
  # A fresh state dir every run: the store keeps the session (and its events) across restarts,
  # and every stream would then begin with a replay of the previous runs.
  rm -rf "$work/gateway-state"
  : >"$work/gateway.log"
  "${gateway_cmd[@]}" >"$work/gateway.log" 2>&1 &
  server_pid=$!
  wait_for_log "$work/gateway.log" "listening on http://"
  gateway_port=$(sed -n -E 's|.*listening on http://127\.0\.0\.1:([0-9]+).*|\1|p' "$work/gateway.log" | head -1)
}

write_nginx_conf() {  # port
  mkdir -p "$work/nginx"
  cat >"$work/nginx/nginx.conf" <<EOF
load_module $nchan_module;
worker_processes 1;
worker_rlimit_nofile $nofile;
daemon off;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 30000; }
http {
  access_log off;
  client_body_temp_path $work/nginx/body;
  proxy_temp_path $work/nginx/proxy;
  fastcgi_temp_path $work/nginx/fastcgi;
  uwsgi_temp_path $work/nginx/uwsgi;
  scgi_temp_path $work/nginx/scgi;
  server {
    listen 127.0.0.1:$1 backlog=4096;
    location ~ ^/pub/(\w+)\$ {
      nchan_publisher;
      nchan_channel_id \$1;
      nchan_message_buffer_length $retention;
    }
    location ~ ^/sub/(\w+)\$ {
      nchan_subscriber eventsource;
      nchan_channel_id \$1;
    }
  }
}
EOF
}

start_nchan() {
  for _ in 1 2 3; do
    nchan_port=$(free_port)
    write_nginx_conf "$nchan_port"
    : >"$work/nginx/error.log"
    nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" 2>>"$work/nginx/error.log" &
    server_pid=$!
    for _ in $(seq 50); do
      nchan_worker=$(pgrep -P "$server_pid" | head -1 || true)
      [ -n "$nchan_worker" ] && curl -s -o /dev/null "http://127.0.0.1:$nchan_port/pub/probe" && return 0
      kill -0 "$server_pid" 2>/dev/null || break
      sleep 0.1
    done
    stop_server
  done
  echo "nginx did not start:" >&2
  cat "$work/nginx/error.log" >&2
  return 1
}

results=$work/results.txt
failures=$work/failures.txt
logs_dir=$build_dir/bench-sse-logs
: >"$results"
: >"$failures"
run_load() {  # server load streams events rate repeat
  local server=$1 load=$2 streams=$3 events=$4 rate=$5 repeat=$6 stream_url publish_url format pid
  if [ "$server" = gateway ]; then
    start_gateway
    local api="http://127.0.0.1:$gateway_port/gateway/external-coding-agent"
    local sid
    sid=$(curl -sf -H 'Content-Type: application/json' -d '{"workspace_id":"bench"}' "$api/sessions" |
      sed -E 's/.*"session_id":"([^"]+)".*/\1/')
    stream_url="$api/sessions/$sid/stream?follow=true"
    publish_url="$api/sessions/$sid/progress"
    format=gateway
    pid=$server_pid
  else
    start_nchan
    stream_url="http://127.0.0.1:$nchan_port/sub/bench"
    publish_url="http://127.0.0.1:$nchan_port/pub/bench"
    format=nchan
    pid=$nchan_worker
  fi
  local cmd=("$load_bin" --stream-url "$stream_url" --publish-url "$publish_url"
    --publish-format "$format" --streams "$streams" --events "$events" --rate "$rate" --pid "$pid"
    --label "$server/$load/$streams/$repeat")
  local label="$server/$load/$streams/$repeat"
  echo "== $server, $load, N=$streams, M=$events, R=$rate/s, run $repeat/$repeats" >&2
  local line status=0 server_note=""
  line=$("${cmd[@]}" 2>"$work/load.err") || status=$?
  sed 's/^/   /' "$work/load.err" >&2
  if ! kill -0 "$server_pid" 2>/dev/null; then
    local server_status=0
    wait "$server_pid" 2>/dev/null || server_status=$?
    server_pid=""
    server_note="$server exited with status $server_status during the run"
    echo "   $server_note" >&2
  fi
  if [ "$status" -ne 0 ]; then
    # Keep the evidence: the temp dir goes away at the end.
    local keep="$logs_dir/${label//\//-}"
    mkdir -p "$keep"
    cp "$work/load.err" "$keep/sse_load.err"
    [ "$server" = gateway ] && cp "$work/gateway.log" "$keep/gateway.log"
    [ "$server" = nchan ] && cp "$work/nginx/error.log" "$keep/nginx-error.log"
    [ -n "$server_note" ] && echo "$server_note" >"$keep/server-exit.txt"
    echo "   incomplete run (sse_load status $status): left out of the medians; logs in $keep" >&2
    echo "$label sse_load status $status${server_note:+; $server_note}${line:+; ${line#RESULT }}" >>"$failures"
  fi
  stop_server
  [ -n "$line" ] && [ "$status" -eq 0 ] && echo "$server $load $streams $events $rate $line" >>"$results"
  # Remember one exact command line of each kind for the report.
  if [ "$repeat" -eq 1 ]; then
    local arg printable=()
    for arg in "${cmd[@]}"; do
      if [[ $arg =~ [^A-Za-z0-9_./:=@%+-] ]]; then printable+=("'$arg'"); else printable+=("$arg"); fi
    done
    echo "${printable[*]}" >>"$work/commands-$server.txt"
  fi
  return 0
}

started=$(date -u '+%Y-%m-%d %H:%M UTC')
for repeat in $(seq "$repeats"); do
  for spec in "${loads[@]}"; do
    read -r load streams events rate <<<"$spec"
    run_load gateway "$load" "$streams" "$events" "$rate" "$repeat"
    run_load nchan "$load" "$streams" "$events" "$rate" "$repeat"
  done
done

# ---- report -------------------------------------------------------------------------------
field() {  # key: values of key from RESULT lines on stdin
  sed -n -E "s/.* $1=([^ ]+).*/\1/p"
}
median() {  # of the numbers on stdin
  sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "n/a"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
spread() {  # decimals: min–max of the numbers on stdin
  sort -g | awk -v d="$1" 'NR == 1 { lo = $1 } { hi = $1 } END { f = "%." d "f"; if (NR) printf f "–" f, lo, hi; else printf "n/a" }'
}
select_runs() { awk -v s="$1" -v l="$2" -v n="$3" '$1 == s && $2 == l && $3 == n' "$results"; }
figure() {  # server load streams key -> median
  select_runs "$1" "$2" "$3" | field "$4" | median
}
ratio() {  # a b -> a/b with two decimals
  awk -v a="$1" -v b="$2" 'BEGIN { if (a == "n/a" || b == "n/a" || b + 0 == 0) print "n/a"; else printf "%.2f", a / b }'
}
fmt() {  # number with the given decimals
  awk -v v="$1" -v d="$2" 'BEGIN { if (v == "n/a") print v; else printf "%." d "f", v }'
}
le() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a != "n/a" && a + 0 <= b + 0) }'; }
ge() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a != "n/a" && a + 0 >= b + 0) }'; }

cpu_model=$(sed -n -E 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
mem_total=$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
git -C "$root" diff --quiet HEAD -- src 2>/dev/null || commit="$commit (src/ with uncommitted changes)"
nginx_version=$(nginx -v 2>&1 | sed 's|.*nginx/||')
nchan_version=$(dpkg-query -W -f='${Version}' libnginx-mod-nchan 2>/dev/null || echo unknown)

section=$work/section.md
{
  echo "## SSE fan-out"
  echo
  echo "Written by \`make bench-sse\` (\`bench/run-sse.sh\`) on $started; do not edit by hand, rerun it."
  echo
  echo "- Machine: $(nproc) cores, $cpu_model, $mem_total RAM, Linux $(uname -r)."
  echo "- Gateway: commit $commit, \`--threads 2\`. Nchan: nginx $nginx_version with"
  echo "  libnginx-mod-nchan $nchan_version, one worker, \`nchan_message_buffer_length $retention\`."
  echo "- The load generator (\`build/sse_load\`, one thread) runs on the same machine as the server"
  echo "  under test, over loopback, and competes with it for the same $(nproc) cores: every delivery"
  echo "  costs a send on the server and a receive in the generator."
  echo "- Each figure is the median of the complete runs out of $repeats; each run starts a fresh"
  echo "  server process. N follow streams on one session (Nchan: one channel) get M events"
  echo "  posted at R events/s over 4 keep-alive connections. Latency is from the moment a post is"
  echo "  sent to its receipt by each stream (steady clock, carried in the event). Deliveries/s = deliveries ÷ (first post →"
  echo "  last delivery). RSS per idle stream = (server VmRSS with N idle streams open − VmRSS"
  echo "  before connecting) ÷ N (for Nchan, the worker process; its shared memory pages count only"
  echo "  as far as the worker touched them)."
  echo "- Loads: *paced* sends one event every 0.25–0.5 s, so each event's fan-out ends before the"
  echo "  next one (latency of one fan-out); *saturating* offers 500,000 deliveries/s (throughput)."
  echo "  Both servers answer a publish only after queueing it to every subscriber, so a saturated"
  echo "  server slows the publisher: the \"post lag\" column is how far the last posts fell behind"
  echo "  their schedule. Latency is measured from the actual send, so it leaves that wait out."
  echo "- CPU columns: CPU time used from the first post to the last delivery ÷ that wall time, for"
  echo "  the server process (Nchan: its worker) and for the load generator; 100 % is one core."
  echo "  *paced* deliveries/s is capped by the offered load (N × R), not by the server."
  echo
  echo "Commands (one run of each; the script picks free ports and opens the session with curl):"
  echo
  echo '```sh'
  echo "${gateway_cmd[*]}" | sed "s|$work|\$TMP|g; s|$root/||g"
  echo "curl -s -H 'Content-Type: application/json' -d '{\"workspace_id\":\"bench\"}' http://127.0.0.1:\$PORT/gateway/external-coding-agent/sessions"
  sed "s|$root/||g" "$work/commands-gateway.txt" 2>/dev/null || true
  echo "nginx -p \$TMP/nginx -c \$TMP/nginx/nginx.conf   # config below"
  sed "s|$root/||g" "$work/commands-nchan.txt" 2>/dev/null || true
  echo '```'
  echo
  echo "<details><summary>nginx.conf</summary>"
  echo
  echo '```nginx'
  sed "s|$work|\$TMP|g" "$work/nginx/nginx.conf"
  echo '```'
  echo
  echo "</details>"
  echo
  echo "| load | N | M | R/s | server | p50 ms | p99 ms | max ms | deliveries/s | RSS/idle stream | post lag ms | server CPU | generator CPU | deliveries (last run) |"
  echo "|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  for spec in "${loads[@]}"; do
    read -r load streams events rate <<<"$spec"
    for server in gateway nchan; do
      p50=$(figure "$server" "$load" "$streams" p50_ms)
      p99=$(figure "$server" "$load" "$streams" p99_ms)
      mx=$(figure "$server" "$load" "$streams" max_ms)
      dps=$(figure "$server" "$load" "$streams" deliveries_per_s)
      rss=$(figure "$server" "$load" "$streams" rss_per_stream_bytes)
      lag=$(figure "$server" "$load" "$streams" max_post_lag_ms)
      scpu=$(figure "$server" "$load" "$streams" server_cpu_pct)
      lcpu=$(figure "$server" "$load" "$streams" load_cpu_pct)
      got=$(select_runs "$server" "$load" "$streams" | tail -1 | awk '{ for (i = 1; i <= NF; i++) { if ($i ~ /^deliveries=/) d = substr($i, 12); if ($i ~ /^expected=/) e = substr($i, 10) } } END { if (d == "") print "n/a"; else print d "/" e }')
      echo "| $load | $streams | $events | $rate | $server | $(fmt "$p50" 1) | $(fmt "$p99" 1) | $(fmt "$mx" 1) | $(fmt "$dps" 0) | $(fmt "$rss" 0) B | $(fmt "$lag" 0) | $(fmt "$scpu" 0) % | $(fmt "$lcpu" 0) % | $got |"
    done
  done
  echo
  echo "Gateway ÷ Nchan (medians; below 1 is better for latency and RSS, above 1 for deliveries/s):"
  echo
  echo "| load | N | p50 | p99 | max | deliveries/s | RSS/idle stream |"
  echo "|---|---:|---:|---:|---:|---:|---:|"
  for spec in "${loads[@]}"; do
    read -r load streams events rate <<<"$spec"
    row="| $load | $streams"
    for key in p50_ms p99_ms max_ms deliveries_per_s rss_per_stream_bytes; do
      row="$row | $(ratio "$(figure gateway "$load" "$streams" "$key")" "$(figure nchan "$load" "$streams" "$key")")"
    done
    echo "$row |"
  done
  echo
  echo "Noise: the range (min–max over the complete runs) of each figure:"
  echo
  echo "| load | N | server | complete runs | p99 ms | deliveries/s | RSS/idle stream B |"
  echo "|---|---:|---|---:|---|---|---|"
  for spec in "${loads[@]}"; do
    read -r load streams events rate <<<"$spec"
    for server in gateway nchan; do
      echo "| $load | $streams | $server | $(select_runs "$server" "$load" "$streams" | wc -l)/$repeats | $(select_runs "$server" "$load" "$streams" | field p99_ms | spread 1) | $(select_runs "$server" "$load" "$streams" | field deliveries_per_s | spread 0) | $(select_runs "$server" "$load" "$streams" | field rss_per_stream_bytes | spread 0) |"
    done
  done
  echo
  if [ -s "$failures" ]; then
    echo "Incomplete runs, left out of the medians (a stream failed or ended, a post failed, or"
    echo "deliveries were missing; their logs were kept under \`$logs_dir\`):"
    echo
    sed 's/^/- /' "$failures"
    echo
  fi
  # Targets of issue 3, judged on the N = 10,000 medians.
  g_rss=$(figure gateway paced 10000 rss_per_stream_bytes)
  g_p99=$(figure gateway paced 10000 p99_ms)
  g_p99_sat=$(figure gateway saturating 10000 p99_ms)
  g_dps=$(figure gateway saturating 10000 deliveries_per_s)
  n_rss=$(figure nchan paced 10000 rss_per_stream_bytes)
  n_p99=$(figure nchan paced 10000 p99_ms)
  n_dps=$(figure nchan saturating 10000 deliveries_per_s)
  verdict() { if "$@"; then echo "met"; else echo "**missed**"; fi; }
  echo "Targets (issue 3) at N = 10,000, gateway medians:"
  echo
  echo "- ≤ 4 KiB of RSS per idle follow stream: $(fmt "$g_rss" 0) B — $(verdict le "$g_rss" 4096);"
  echo "  at least Nchan's ($(fmt "$n_rss" 0) B): $(verdict le "$g_rss" "$n_rss")."
  echo "- p99 post-to-delivery ≤ 50 ms: paced $(fmt "$g_p99" 1) ms — $(verdict le "$g_p99" 50) (saturating"
  echo "  $(fmt "$g_p99_sat" 1) ms); at least Nchan's (paced $(fmt "$n_p99" 1) ms): $(verdict le "$g_p99" "$n_p99")."
  echo "- ≥ 300,000 deliveries/s: $(fmt "$g_dps" 0) — $(verdict ge "$g_dps" 300000); at least Nchan's"
  echo "  ($(fmt "$n_dps" 0)): $(verdict ge "$g_dps" "$n_dps")."
  echo
  sed 's/ RESULT / /' "$results" | raw_results
} >"$section"

"$root/bench/replace-section.sh" "$out_doc" "## SSE fan-out" "$section"
echo "wrote the SSE fan-out section of $out_doc" >&2
cat "$section"
