# Weaver gateway image: the core and every first-party plugin; flags decide what loads.
# `docker build .` builds the production image (the last stage); docker-compose.dev.yml
# builds the `dev` stage, which runs the mounted sources and restarts when they change.
FROM python:3.12-slim AS runtime

WORKDIR /app

# Every compiled dependency (asyncpg, cryptography, uvloop, orjson, pydantic-core,
# sqlglotc, watchfiles) ships manylinux wheels for x86_64 and aarch64, and the rest is
# pure Python: the image needs no compiler and no headers.
COPY pyproject.toml README.md ./
COPY weaver/ weaver/
COPY plugins/ plugins/
# The sentry extra: SENTRY_DSN reports errors instead of only logging that it cannot.
RUN pip install --no-cache-dir './[sentry]' \
    ./plugins/weaver_mindsdb ./plugins/weaver_neo4j ./plugins/weaver_pg ./plugins/weaver_redis_guard ./plugins/weaver_trino

RUN adduser --disabled-password --gecos '' --uid 10001 appuser \
    && mkdir -p /var/lib/weaver && chown 10001 /var/lib/weaver
USER 10001
ENV WEAVER_DATA_DIR=/var/lib/weaver

EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/health/live').status != 200)"]

# Two workers share the port (SO_REUSEPORT); raise to CPU cores x 2 in production.
CMD ["weaver", "serve", "--host", "0.0.0.0", "--port", "8000", "--workers", "2"]


# Development: docker-compose.dev.yml mounts ./weaver and ./plugins over the copies in
# /app; PYTHONPATH puts them ahead of the installed packages, and --reload restarts the
# gateway when a file changes.
FROM runtime AS dev
USER 0
RUN pip install --no-cache-dir './[reload]'
USER 10001
ENV PYTHONPATH=/app:/app/plugins/weaver_mindsdb/src:/app/plugins/weaver_neo4j/src:/app/plugins/weaver_pg/src:/app/plugins/weaver_redis_guard/src:/app/plugins/weaver_trino/src
CMD ["weaver", "serve", "--host", "0.0.0.0", "--port", "8000", "--reload"]


FROM runtime AS production
