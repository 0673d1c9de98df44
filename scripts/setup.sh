#!/usr/bin/env bash
# Installs everything outbid needs on a fresh Debian 12 machine (Python 3.11, Java 17, Maven
# present): system packages (as root), a virtualenv with outbid and its test extras, and the
# Apache Kafka jars from Maven Central. Safe to run again: each step is skipped when done.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
for pair in redis-server:redis-server kcat:kcat chromium:chromium openssl:openssl; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || need+=("${pair##*:}")
done
if ((${#need[@]})); then
  if [[ $(id -u) -eq 0 ]]; then
    echo "==> apt-get install ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    apt-get install -y -q "${need[@]}" >/dev/null
  else
    echo "missing system packages; run: sudo apt-get install -y ${need[*]}" >&2
    exit 1
  fi
fi
for tool in java mvn python3; do
  command -v "$tool" >/dev/null || { echo "$tool is required (Debian: apt-get install -y openjdk-17-jdk-headless maven python3-venv)" >&2; exit 1; }
done
# Go builds SeaweedFS, the S3-compatible server the snapshot-store tests run against.
command -v go >/dev/null || { echo "go is required to build SeaweedFS for the tests (its go.mod asks for Go 1.26.6 or newer; Debian 12 packages 1.19)" >&2; exit 1; }

if [[ ! -x .venv/bin/python ]]; then
  echo "==> python3 -m venv .venv"
  python3 -m venv .venv
fi
stamp=.venv/.outbid-installed
if [[ ! -f $stamp || pyproject.toml -nt $stamp ]]; then
  echo "==> pip install -e .[test,bench]"
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e '.[test,bench]'
  touch "$stamp"
fi
echo "==> Apache Kafka jars (Maven Central) and SeaweedFS (Go module proxy), cached in ~/.cache/outbid"
.venv/bin/outbid dev fetch
