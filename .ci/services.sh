#!/usr/bin/env bash
# Start each service the suite needs if it does not answer, then wait until it does.
# Commands from shared/SERVICES.md; run as root on the dev and CI machines.
set -uo pipefail

answers() {  # host port
  (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}

ensure() {  # name port start-command...
  local name=$1 port=$2; shift 2
  if answers 127.0.0.1 "$port"; then return 0; fi
  echo "services: $name is down on :$port, starting it"
  "$@" || echo "services: starting $name failed" >&2
  for _ in $(seq 1 60); do
    answers 127.0.0.1 "$port" && { echo "services: $name is up"; return 0; }
    sleep 1
  done
  echo "services: $name did not come up on :$port" >&2
  return 1
}

status=0
ensure postgresql 5432 bash -c 'pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start' || status=1
ensure redis 6379 redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log || status=1
ensure rabbitmq 5672 rabbitmq-server -detached || status=1
ensure mariadb 3306 start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd || status=1
exit $status
