#!/usr/bin/env bash
# govlink-healthcheck [PATH]: asks this container's govlink admin server for PATH
# (default /healthz; /readyz for readiness) and succeeds only on HTTP 200.
#
# The runtime image has bash but no curl or wget, so this speaks HTTP over bash's
# /dev/tcp. The port comes from GOVLINK_ADMIN_ADDR (the image sets 0.0.0.0:9464); the
# server is reached on the loopback address, which a server bound to 0.0.0.0 or to
# 127.0.0.1 both answer on.
set -uo pipefail

path=${1:-/healthz}
addr=${GOVLINK_ADMIN_ADDR-0.0.0.0:9464}
if [[ -z ${addr//[[:space:]]/} ]]; then
    echo "govlink-healthcheck: GOVLINK_ADMIN_ADDR is empty: the admin server is off, nothing to ask" >&2
    exit 1
fi
port=${addr##*:}
if [[ ! $port =~ ^[0-9]+$ ]]; then
    echo "govlink-healthcheck: no port in GOVLINK_ADMIN_ADDR=$addr" >&2
    exit 1
fi

if ! exec 3<>"/dev/tcp/127.0.0.1/$port"; then
    echo "govlink-healthcheck: nothing listens on 127.0.0.1:$port" >&2
    exit 1
fi
# One write for the whole request; a server that answers early and closes must not kill
# this check with SIGPIPE unseen.
trap '' PIPE
printf -v request 'GET %s HTTP/1.1\r\nHost: 127.0.0.1:%s\r\nConnection: close\r\n\r\n' "$path" "$port"
printf '%s' "$request" >&3
if ! IFS= read -r -t 3 status <&3; then
    echo "govlink-healthcheck: no answer from 127.0.0.1:$port$path within 3s" >&2
    exit 1
fi
status=${status%$'\r'}
# The body says why a check fails (e.g. which dependency is not ready): show it.
if [[ $status != *" 200 "* && $status != *" 200" ]]; then
    echo "govlink-healthcheck: $path answered: $status" >&2
    timeout 1 cat <&3 | tail -c 500 >&2
    exit 1
fi
exit 0
