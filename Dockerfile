# Collect: docker build -t collect . && docker run -p 8000:8000 -v collect-data:/data collect

# Build stage: install the package and its runtime dependencies (no dev extras) into a venv.
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN python -m venv /opt/collect \
 && /opt/collect/bin/pip install . \
 && /opt/collect/bin/collect --help > /dev/null

# Runtime stage: the venv only, run by a non-root user that owns /data.
FROM python:3.11-slim
# The server listens on 0.0.0.0 inside the container, so it runs open on purpose
# (COLLECT_ALLOW_OPEN=1); set COLLECT_API_KEYS before publishing the port beyond this host.
ENV PATH=/opt/collect/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    COLLECT_DATA_DIR=/data \
    COLLECT_DATABASE_URL=sqlite+aiosqlite:////data/collect.db \
    COLLECT_ALLOW_OPEN=1
RUN groupadd --system --gid 10001 collect \
 && useradd --system --uid 10001 --gid collect --home-dir /data --no-create-home \
      --shell /usr/sbin/nologin collect \
 && mkdir /data \
 && chown collect:collect /data
COPY --from=build /opt/collect /opt/collect
USER collect
WORKDIR /data
VOLUME /data
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]
CMD ["collect", "serve", "--host", "0.0.0.0", "--port", "8000"]
