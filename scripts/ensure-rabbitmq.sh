#!/usr/bin/env bash
# Make sure RabbitMQ answers on 127.0.0.1:5672: install Debian's package if it
# is missing, start it if it is down, and wait until it accepts connections.
set -euo pipefail
sudo=""; [[ $(id -u) == 0 ]] || sudo=sudo

port_open() { timeout 1 bash -c '</dev/tcp/127.0.0.1/5672' 2>/dev/null; }

if port_open && rabbitmqctl -q status >/dev/null 2>&1; then
  exit 0
fi
if ! command -v rabbitmq-server >/dev/null; then
  echo "installing rabbitmq-server" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends rabbitmq-server >/dev/null
fi
if ! rabbitmqctl -q status >/dev/null 2>&1; then
  echo "starting rabbitmq-server" >&2
  $sudo rabbitmq-server -detached || true
fi
for _ in $(seq 1 120); do
  if port_open && rabbitmqctl -q await_startup >/dev/null 2>&1; then
    echo "RabbitMQ is ready on 127.0.0.1:5672" >&2
    exit 0
  fi
  sleep 1
done
echo "RabbitMQ did not become ready on 127.0.0.1:5672 within 120 s" >&2
exit 1
