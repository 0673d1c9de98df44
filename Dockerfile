# The outbid worker image: `faust -A app worker`, plus the `outbid` CLI (topics apply, produce, verify).
# Benchmarks (bench/) and the native dev stack (Java, infra/) are not part of it: they run from a
# source checkout. tests/integration/test_image_contents.py installs this file set as below.
FROM python:3.11-slim-bookworm

ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# rocksdict ships manylinux wheels; nothing to compile.
WORKDIR /srv/outbid
COPY pyproject.toml README.md topics.yaml ./
COPY app ./app
COPY agents ./agents
COPY tables ./tables
RUN pip install . && useradd --create-home outbid && mkdir -p /data && chown outbid /data
USER outbid
# Listen on every interface (the container's port is published), but advertise the container's
# host name: a worker's canonical URL (faust web_host, default the host name) goes into its
# Kafka client id, and the other workers forward requests there. Set --web-host or
# OUTBID_FAUST_WEB_HOST to a name the other workers resolve if the host name is not one.
ENV OUTBID_TOPICS_FILE=/srv/outbid/topics.yaml OUTBID_STATE_DIR=/data OUTBID_WEB_BIND=0.0.0.0
EXPOSE 6066
CMD ["faust", "-A", "app", "--datadir", "/data/worker", "worker", "-l", "info", "--web-port", "6066"]
