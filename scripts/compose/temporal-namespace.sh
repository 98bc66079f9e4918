#!/bin/sh
# One-shot, after the server is up: the namespace and Berth's typed search attributes (idempotent).
set -eu
temporal operator namespace describe -n "$TEMPORAL_NAMESPACE" >/dev/null 2>&1 || temporal operator namespace create -n "$TEMPORAL_NAMESPACE" --retention 30d
for attr in CustomerId=Keyword Plan=Keyword Stage=Keyword ServerId=Keyword NeedsAttention=Bool; do
  temporal operator search-attribute create -n "$TEMPORAL_NAMESPACE" --name "${attr%=*}" --type "${attr#*=}" || true
done
