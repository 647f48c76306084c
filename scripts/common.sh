# shellcheck shell=bash
# Helpers shared by scripts/services, scripts/cluster and scripts/demo,
# sourced (not run) after the sourcing script sets PROG, its name in
# messages: the local servers' ports, messages, clocks, processes and
# ports.  One copy, so that the scripts cannot drift apart again.

# The ports of the local test servers (scripts/services starts them there;
# `scripts/services env` prints them as export lines for the rest).  Each
# can be moved (SLUICE_*_PORT, as tests/integration/harness.h and
# tests/fault/faultlib.py read them) to run a second set beside the usual
# one.
PG_PORT=${SLUICE_PG_PORT:-55432}
REDIS_PORT=${SLUICE_REDIS_PORT:-56379}
KAFKA_PORT=${SLUICE_KAFKA_PORT:-59092}

err() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() { err "$*"; exit 1; }

now_ms() { date +%s%3N; }
elapsed() { # START_MS -> "1.23 s"
	local ms=$(($(now_ms) - $1))
	printf '%d.%02d s' $((ms / 1000)) $((ms % 1000 / 10))
}

# True when something listens on TCP port $1 on the loopback address.
port_busy() {
	if command -v ss >/dev/null 2>&1; then
		[ -n "$(ss -Hltn "sport = :$1" 2>/dev/null)" ]
	else
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
	fi
}

# True when pid $1 exists and is not a zombie (daemons here are reparented to
# pid 1, which may be slow to reap them).
pid_alive() {
	local stat
	[ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null || return 1
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	stat=${stat##*) }
	[ "${stat%% *}" != Z ]
}

# Read a pid file and print the pid if that process is alive and its command
# line contains $2 (guards against a recycled pid).
live_pid() { # PIDFILE PATTERN
	local pid
	[ -f "$1" ] || return 1
	pid=$(head -n1 "$1" 2>/dev/null | tr -dc '0-9')
	pid_alive "$pid" || return 1
	tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$2" || return 1
	printf '%s\n' "$pid"
}

log_tail() { # FILE [LINES, 40]
	if [ -f "$1" ]; then
		err "last lines of $1:"
		tail -n "${2:-40}" "$1" >&2 || true
	fi
}
