#!/usr/bin/env bash
# Agent-session overhead: what one active agent session costs the gateway itself (not the agent's
# process). The agent is the scripted ACP agent of the tests (tests/support/fake_agents), so the
# figures are the gateway's share: spawning and supervising, parsing the agent's lines, typed
# events, turns taken from the queue.
#   memory: gateway RSS with SESSIONS agent sessions idle after one turn, minus RSS before, / SESSIONS
#   CPU:    gateway CPU time (user + system) over TURNS turns of one session, / TURNS
# Usage: bench/run-agents.sh [BUILD_DIR]   (SESSIONS=40 TURNS=500)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
sessions=${SESSIONS:-40}
turns=${TURNS:-500}
work=$(mktemp -d)
source bench/lib.sh
trap 'stop_all; rm -rf "$work"' EXIT

cat >"$work/gateway.toml" <<TOML
default_agent = "fake"
workspace-root = "$work/ws"
rate-limit-max-requests = 100000000
max-active-sessions = $((sessions + 1))
[agents.fake]
protocol = "acp"
command = "$(command -v node)"
args = ["$PWD/tests/support/fake_agents/fake_acp_agent.mjs"]
TOML
port=$(free_port)
"$build/tau-gateway" --auth-mode localhost-dev --config "$work/gateway.toml" --bind "127.0.0.1:$port" \
  --state-dir "$work/state" --log-level warn >"$work/gateway.log" 2>&1 &
gateway=$!
started_pids+=("$gateway")
api=http://127.0.0.1:$port/gateway/external-coding-agent
until curl -sf "http://127.0.0.1:$port/healthz" >/dev/null; do sleep 0.1; done

rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$gateway/status"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$gateway/stat"; }
turns_ended() {  # session id: the agent's turns_completed, from the session's detail
  curl -s "$api/sessions/$1" | sed -nE 's/.*"turns_completed":([0-9]+).*/\1/p'
}
open() {  # workspace prompt -> session id
  curl -s -H 'Content-Type: application/json' -d "{\"workspace_id\":\"$1\",\"prompt\":\"$2\"}" \
    "$api/sessions" | sed -E 's/.*"session_id":"([^"]+)".*/\1/'
}

# Warm up (first spawn, allocator), then measure memory over idle sessions.
first=$(open warmup hello)
until [ "$(turns_ended "$first")" -ge 1 ]; do sleep 0.1; done
before=$(rss_kb)
ids=()
for i in $(seq "$sessions"); do ids+=("$(open "m$i" hello)"); done
for id in "${ids[@]}"; do until [ "$(turns_ended "$id")" -ge 1 ]; do sleep 0.1; done; done
after=$(rss_kb)
per_session_kb=$(( (after - before) / sessions ))

# CPU per turn: TURNS follow-ups queued at once on one session, delivered one per turn.
ticks_before=$(cpu_ticks)
started=$(date +%s.%N)
for i in $(seq "$turns"); do
  curl -s -o /dev/null -H 'Content-Type: application/json' -d "{\"message\":\"echo turn $i\"}" \
    "$api/sessions/$first/followups"
done
until [ "$(turns_ended "$first")" -ge $((turns + 1)) ]; do sleep 0.2; done
elapsed=$(echo "$(date +%s.%N) - $started" | bc)
ticks=$(( $(cpu_ticks) - ticks_before ))
hz=$(getconf CLK_TCK)
cpu_us_per_turn=$(echo "$ticks * 1000000 / $hz / $turns" | bc)

echo "agent sessions: $sessions idle agent sessions: gateway RSS $before -> $after KiB ($per_session_kb KiB per session)"
echo "agent turns: $turns turns in ${elapsed}s, gateway CPU $cpu_us_per_turn us per turn (its HTTP follow-up and 4 events included)"
