#!/usr/bin/env bash
# Make sure the MariaDB/MySQL and Redis the tests use are answering; start them if not.
set -euo pipefail

mysql_up() { mariadb -uroot -h127.0.0.1 -e 'SELECT 1' >/dev/null 2>&1 || mysql -uroot -h127.0.0.1 -e 'SELECT 1' >/dev/null 2>&1; }
redis_up() { redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; }

wait_for() {  # wait_for NAME CHECK
  for _ in $(seq 1 60); do "$2" && return 0; sleep 0.5; done
  echo "$1 did not come up" >&2; return 1
}

if ! mysql_up; then
  echo "starting MariaDB"
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
  wait_for MariaDB mysql_up
fi
if ! redis_up; then
  echo "starting Redis"
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no
  wait_for Redis redis_up
fi
echo "MariaDB and Redis are up"
