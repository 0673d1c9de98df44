# The outbid worker image: `faust -A app worker`, plus the `outbid` CLI (topics apply, produce, verify).
FROM python:3.11-slim-bookworm

ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# rocksdict ships manylinux wheels; nothing to compile.
WORKDIR /srv/outbid
COPY pyproject.toml README.md topics.yaml ./
COPY app ./app
COPY agents ./agents
COPY tables ./tables
COPY infra ./infra
RUN pip install . && useradd --create-home outbid && mkdir -p /data && chown outbid /data
USER outbid
ENV OUTBID_TOPICS_FILE=/srv/outbid/topics.yaml OUTBID_STATE_DIR=/data
EXPOSE 6066
CMD ["faust", "-A", "app", "--datadir", "/data/worker", "worker", "-l", "info", "--web-host", "0.0.0.0", "--web-port", "6066"]
