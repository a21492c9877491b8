# shellcheck shell=bash
# Sourced by hack/testenv and hack/helm: run a long `go build -v` and say it is alive.
#
#   go_build_heartbeat LABEL DIR GO-BUILD-ARGS...
#
# Runs `go build -v GO-BUILD-ARGS...` in DIR. `-v` makes go name each package as it
# compiles it; every HEARTBEAT_SECONDS (30) a line on stderr gives the elapsed time, the
# number of packages compiled so far and the latest one, so a newcomer watching a cold
# build (10-20 min on 2 cores) sees it is not stuck. On failure the last lines of go's
# output (the compiler errors) are shown. Exit status: go's.
go_build_heartbeat() {
  local label=$1 dir=$2; shift 2
  local out pid rc start every=${HEARTBEAT_SECONDS:-30} next
  out=$(mktemp)
  start=$SECONDS
  (cd "$dir" && exec go build -v "$@") >"$out" 2>&1 &
  pid=$!
  next=$((SECONDS + every))
  while kill -0 "$pid" 2>/dev/null; do
    if ((SECONDS >= next)); then
      printf '%s: still building (%dm%02ds elapsed, %d packages compiled, now %s)\n' \
        "$label" $(((SECONDS - start) / 60)) $(((SECONDS - start) % 60)) \
        "$(grep -c '^[a-z]' "$out" || true)" "$(tail -n 1 "$out")" >&2
      next=$((SECONDS + every))
    fi
    sleep 1
  done
  rc=0
  wait "$pid" || rc=$?
  if ((rc != 0)); then
    printf '%s: go build failed (exit %d); last lines:\n' "$label" "$rc" >&2
    tail -n 40 "$out" >&2
  fi
  rm -f "$out"
  return "$rc"
}
