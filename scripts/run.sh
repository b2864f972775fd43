#!/usr/bin/env bash
# `make run`: starts the gateway on 127.0.0.1:8787 in token mode. Without a token from the
# environment it generates one once, prints it with a curl example, and keeps it under the state
# dir so the next `make run` reuses it. The token travels in the environment, not argv, so it
# does not show in `ps`.
set -euo pipefail

binary=$1
state_dir=${TAU_GATEWAY_STATE_DIR:-.tau/gateway}
bind=${TAU_GATEWAY_BIND:-127.0.0.1:8787}
token_file=$state_dir/make-run-token

if [ -z "${TAU_GATEWAY_AUTH_TOKEN:-}" ]; then
  mkdir -p "$state_dir"
  if [ -s "$token_file" ]; then
    echo "tau-gateway: reusing the token stored in $token_file"
  else
    (umask 077 && od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$token_file")
    token=$(cat "$token_file")
    cat <<BANNER
tau-gateway: generated an auth token (shown only this once; stored in $token_file):

  $token

Try it:

  curl -s -H "Authorization: Bearer $token" http://$bind/gateway/status

BANNER
  fi
  TAU_GATEWAY_AUTH_TOKEN=$(cat "$token_file")
  export TAU_GATEWAY_AUTH_TOKEN
fi

exec "$binary" --bind "$bind" --state-dir "$state_dir" --auth-mode token
