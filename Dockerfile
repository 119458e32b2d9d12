# Multi-stage build: install into a virtualenv, then copy only that into a slim runtime image
# that runs as a non-root user. Same install step as the README: `pip install .`.
FROM python:3.11-slim AS build
WORKDIR /src
RUN python -m venv /opt/timestep
COPY pyproject.toml README.md ./
COPY server ./server
COPY clients/python ./clients/python
RUN /opt/timestep/bin/pip install --no-cache-dir --upgrade pip \
 && /opt/timestep/bin/pip install --no-cache-dir .

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 timestep \
 && mkdir -p /data && chown timestep:timestep /data
COPY --from=build /opt/timestep /opt/timestep
ENV PATH=/opt/timestep/bin:$PATH \
    TIMESTEP_DATA_DIR=/data \
    TIMESTEP_HEALTH_PORT=50052 \
    PYTHONUNBUFFERED=1
USER timestep
VOLUME ["/data"]
# gRPC, and HTTP (Connect, gRPC-Web and the console; TIMESTEP_HTTP_PORT, 0 turns it off).
EXPOSE 50051 8080
# The gRPC health check (overall status): NOT_SERVING while draining on SIGTERM, so the container
# turns unhealthy as soon as it stops taking calls. It asks the plaintext, health-only port on
# loopback (TIMESTEP_HEALTH_PORT), which needs no credentials whatever TLS, mTLS or API keys the
# main port requires.
HEALTHCHECK --interval=10s --timeout=8s --start-period=60s --retries=3 \
  CMD ["timestep", "health", "--target", "127.0.0.1:50052", "--timeout", "5"]
# Environment (see `timestep serve --help` and the README's "Operating Timestep"):
#   TIMESTEP_API_KEYS  'tenant:sha256:<hex>' entries (`timestep api-keys create --tenant NAME`); the
#                      service refuses to listen on 0.0.0.0 without keys unless given
#                      --allow-unauthenticated
#   PG_CONNECTION_URI  an external PostgreSQL; otherwise an embedded one keeps its data in /data
#   OPENAI_API_KEY, OPENAI_BASE_URL, OLLAMA_HOST, OLLAMA_API_KEY, FIRECRAWL_API_KEY  model and tool access
#   TIMESTEP_LOCAL_MODEL, TIMESTEP_LOCAL_MODEL_THREADS  the local model (`local/…`), which this image
#                      leaves out (no `local` extra: no llama.cpp compile); without OPENAI_API_KEY the
#                      example agents' runs fail, naming `pip install 'timestep[local]'`
#   TIMESTEP_TLS_CERT, TIMESTEP_TLS_KEY, TIMESTEP_TLS_CLIENT_CA  TLS / mTLS
#   TIMESTEP_HTTP_PORT, TIMESTEP_CORS_ORIGINS  the HTTP port (8080) and the browser origins
#                      other than its own allowed to call it (comma-separated)
#   TIMESTEP_LOG_FORMAT=json, TIMESTEP_METRICS_PORT  operations
#   TIMESTEP_HEALTH_PORT, TIMESTEP_HEALTH_HOST  the plaintext health-only port (set: 50052 on
#                      loopback, for the HEALTHCHECK; TIMESTEP_HEALTH_HOST=0.0.0.0 for a
#                      Kubernetes gRPC probe)
CMD ["timestep", "serve", "--host", "0.0.0.0", "--port", "50051"]
