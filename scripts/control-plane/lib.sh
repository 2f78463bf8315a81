# Sourced by stop.sh and node-stop.sh: stopping a process by its pid, safely.
# shellcheck shell=bash

# cp_owns PID DIR: the process's command line names DIR, so the pid is still one we
# started (not a pid reused after a crash or a reboot).
cp_owns() {
  [[ -n "$1" && -n "$2" && -r "/proc/$1/cmdline" ]] && grep -qF -- "$2" <<<"$(tr '\0' ' ' <"/proc/$1/cmdline")"
}

# cp_stop_pid NAME PID DIR: SIGTERM, up to 10 s to exit, then SIGKILL; a pid that is not
# ours (see cp_owns) is left alone. Logs with the caller's log().
cp_stop_pid() {
  local name="$1" pid="$2" dir="$3"
  if ! cp_owns "$pid" "$dir"; then
    [[ -n "$pid" ]] && log "$name (pid $pid) not running"
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null
  for _ in $(seq 1 40); do
    cp_owns "$pid" "$dir" || { log "$name (pid $pid) stopped"; return 0; }
    # reap zombies if we happen to be the parent
    wait "$pid" 2>/dev/null
    sleep 0.25
  done
  log "$name (pid $pid) did not stop in 10s; SIGKILL"
  kill -KILL "$pid" 2>/dev/null
  sleep 0.2
}
