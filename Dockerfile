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
    PYTHONUNBUFFERED=1
USER timestep
VOLUME ["/data"]
EXPOSE 50051
# Set PG_CONNECTION_URI to use an external PostgreSQL; otherwise an embedded one keeps its data in /data.
CMD ["timestep", "serve", "--host", "0.0.0.0", "--port", "50051"]
