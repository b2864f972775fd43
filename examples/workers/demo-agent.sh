#!/bin/sh
# A stand-in for a coding agent, for trying worker mode: it greets, echoes each follow-up it reads
# on stdin with a timestamp, and exits when told `exit`. The gateway turns each line it prints
# into a subprocess.stdout event.
echo "demo agent ready in workspace ${TAU_WORKSPACE_ID:-?} (session ${TAU_EXTERNAL_SESSION_ID:-?})"
while IFS= read -r line; do
  if [ "$line" = "exit" ]; then
    echo "bye"
    exit 0
  fi
  echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) received: $line"
done
echo "stdin closed; stopping"
