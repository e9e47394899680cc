# consent-gateway as a reverse proxy. Build: docker build -t consent-gateway .
# Run:   docker run -p 8000:8000 -v consent-data:/data \
#          -e CONSENT_GATEWAY_SECRET_KEYS="$(consent-gateway keys generate)" \
#          -e CONSENT_GATEWAY_PROXY_UPSTREAM=http://site:8080 consent-gateway
# (Not built in this project's CI: no Docker engine runs there.)
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml README.md hatch_build.py ./
COPY consent_gateway ./consent_gateway
COPY static ./static
COPY config ./config
# A C compiler for the install only: it builds the compiled rewriter core (mypyc), then goes.
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev \
    && pip install ".[fast]" \
    && apt-get purge -y --auto-remove gcc libc6-dev && rm -rf /var/lib/apt/lists/* \
    && python -c "import consent_gateway; print('rewriter core:', *consent_gateway.compiled.core_path())" \
    && rm -rf /src \
    && useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin gateway \
    && mkdir -p /data \
    && chown gateway /data

USER gateway
WORKDIR /data
# The SQLite consent log, the spool and (without CONSENT_GATEWAY_SECRET_KEYS) the signing key.
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/_consent/health')"
CMD ["consent-gateway", "proxy", "--host", "0.0.0.0", "--port", "8000"]
