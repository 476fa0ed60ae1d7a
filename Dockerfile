# Weaver gateway image: the core and every first-party plugin; flags decide what loads.
FROM python:3.12-slim

WORKDIR /app

# asyncpg and cryptography ship wheels; gcc and libpq-dev cover platforms without them.
RUN apt-get update && apt-get install -y --no-install-recommends \
    gcc \
    libpq-dev \
    && rm -rf /var/lib/apt/lists/*

COPY pyproject.toml README.md ./
COPY weaver/ weaver/
COPY plugins/ plugins/
RUN pip install --no-cache-dir . \
    ./plugins/weaver_mindsdb ./plugins/weaver_neo4j ./plugins/weaver_pg ./plugins/weaver_redis_guard

RUN adduser --disabled-password --gecos '' appuser \
    && mkdir -p /var/lib/weaver && chown appuser /var/lib/weaver
USER appuser
ENV WEAVER_DATA_DIR=/var/lib/weaver

EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/health/live').status != 200)"

# Two workers share the port (SO_REUSEPORT); raise to CPU cores x 2 in production.
CMD ["weaver", "serve", "--host", "0.0.0.0", "--port", "8000", "--workers", "2"]
