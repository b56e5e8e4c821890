#!/usr/bin/env bash
# Make sure a Docker engine answers and a Compose client exists (SageMaker local mode runs
# Compose). Missing parts come from Debian (docker.io, docker-compose) when run as root; a
# stopped engine is started (systemd when it runs, else dockerd in the background, logging
# to DOCKERD_LOG). Exits non-zero with the reason and the fix when that is not possible.
#
#   scripts/ensure-docker.sh [--registry]
#       --registry   also Debian's docker-registry (the OCI registry the push tests run on
#                    loopback); only its binary is wanted, so its own service is kept off
#   env: DOCKERD_LOG, DOCKER_START_TIMEOUT (seconds, default 60)
set -euo pipefail

log=${DOCKERD_LOG:-/var/log/earthseg-dockerd.log}
timeout=${DOCKER_START_TIMEOUT:-60}
pidfile=/var/run/docker.pid

say() { echo "ensure-docker: $*"; }
die() {
    echo "ensure-docker: error: $*" >&2
    exit 1
}
is_root() { [ "$(id -u)" -eq 0 ]; }
engine_answers() { docker info >/dev/null 2>&1; }
dockerd_path() { PATH=$PATH:/usr/sbin:/sbin command -v dockerd; } # sbin: absent from users' PATH
have_compose() {
    command -v docker-compose >/dev/null 2>&1 || docker compose version >/dev/null 2>&1
}

with_registry=
case "${1:-}" in
    --registry) with_registry=1 ;;
    "") ;;
    *) die "usage: $0 [--registry]" ;;
esac

# 1. Binaries: the client, the daemon (only needed when we have to start one), Compose, and
#    with --registry docker-registry.
missing=()
if ! command -v docker >/dev/null 2>&1 || { ! engine_answers && ! dockerd_path >/dev/null; }; then
    missing+=(docker.io)
fi
if ! command -v docker >/dev/null 2>&1 || ! have_compose; then
    missing+=(docker-compose)
fi
if [ -n "$with_registry" ] && ! command -v docker-registry >/dev/null 2>&1; then
    missing+=(docker-registry)
fi

if [ ${#missing[@]} -gt 0 ]; then
    is_root || die "missing ${missing[*]}: install them (Debian/Ubuntu: sudo apt-get install ${missing[*]})" \
        "or run this script as root"
    say "installing ${missing[*]} from Debian"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}" >/dev/null
    if [[ " ${missing[*]} " == *" docker-registry "* ]]; then
        # Its package starts an open registry on :5000 where services may start: stop that.
        if [ -d /run/systemd/system ]; then
            systemctl disable --now docker-registry.service >/dev/null 2>&1 || true
        elif [ -x /etc/init.d/docker-registry ]; then
            /etc/init.d/docker-registry stop >/dev/null 2>&1 || true
            update-rc.d docker-registry disable >/dev/null 2>&1 || true
        fi
    fi
fi

if engine_answers; then
    exit 0
fi

# 2. No engine answers: start one.
if [ -n "${DOCKER_HOST:-}" ] && [ "$DOCKER_HOST" != unix:///var/run/docker.sock ]; then
    die "DOCKER_HOST=$DOCKER_HOST does not answer 'docker info'; start that engine or unset DOCKER_HOST"
fi
is_root || die "no Docker engine answers 'docker info' (and not root, so not starting one):" \
    "start it (sudo systemctl start docker, or sudo $0) and make sure you may use" \
    "/var/run/docker.sock (sudo usermod -aG docker \$USER)"

daemon_pid=
started_here=
if [ -s "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    daemon_pid=$(cat "$pidfile")
    say "dockerd (pid $daemon_pid) is running but not answering yet; waiting"
elif [ -d /run/systemd/system ] && systemctl cat docker.service >/dev/null 2>&1; then
    say "starting docker.service with systemctl"
    systemctl start docker.service || true
else
    say "starting dockerd in the background (log: $log)"
    mkdir -p "$(dirname "$log")"
    # setsid: the daemon must outlive this script, make, and Ctrl-C on the calling terminal.
    setsid nohup "$(dockerd_path)" >>"$log" 2>&1 </dev/null &
    daemon_pid=$!
    started_here=1
fi

reason="did not answer 'docker info' within ${timeout}s"
for ((waited = 0; waited < timeout; waited++)); do
    if engine_answers; then
        say "Docker engine answers after ${waited}s"
        exit 0
    fi
    if [ -n "$daemon_pid" ] && ! kill -0 "$daemon_pid" 2>/dev/null; then
        reason="exited after ${waited}s (dockerd pid $daemon_pid)"
        break
    fi
    sleep 1
done

echo "ensure-docker: error: the Docker engine $reason." >&2
if [ -n "$started_here" ]; then
    echo "--- last lines of $log ---" >&2
    tail -n 30 "$log" >&2
elif [ -d /run/systemd/system ]; then
    echo "--- journalctl -u docker.service ---" >&2
    journalctl -u docker.service -n 30 --no-pager >&2 || true
fi
exit 1
