#!/bin/sh
# One-shot, after the server is up: the namespace and Berth's typed search attributes (idempotent).
# A new namespace takes a few seconds to reach every frontend, so each step is retried for a minute.
set -eu
retry() { # what command...: runs the command until it succeeds or says the thing already exists
  what="$1"; shift; n=0
  until out=$("$@" 2>&1) || printf '%s' "$out" | grep -qi 'already exists'; do
    n=$((n + 1))
    if [ "$n" -ge 30 ]; then printf '%s: %s\n' "$what" "$out" >&2; exit 1; fi
    sleep 2
  done
}
temporal operator namespace describe -n "$TEMPORAL_NAMESPACE" >/dev/null 2>&1 ||
  retry "namespace $TEMPORAL_NAMESPACE" temporal operator namespace create -n "$TEMPORAL_NAMESPACE" --retention 30d
for attr in CustomerId=Keyword Plan=Keyword Stage=Keyword ServerId=Keyword NeedsAttention=Bool; do
  retry "search attribute ${attr%=*}" temporal operator search-attribute create -n "$TEMPORAL_NAMESPACE" --name "${attr%=*}" --type "${attr#*=}"
done
echo "namespace $TEMPORAL_NAMESPACE ready with Berth's search attributes"
