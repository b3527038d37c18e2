# syntax=docker/dockerfile:1.7
# Image of one FastAPI service (gateway, survey, ingest or alerts). Build from the repository root (the context needs
# libs/ and constraints.txt), naming the service and its port:
#   docker build -f deploy/docker/service.Dockerfile --build-arg SERVICE=alerts --build-arg PORT=8003 -t cx-alerts:0.1.0 .
# Runs as the non-root user 10001 with a read-only root filesystem (only /tmp needs to be writable).
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ARG SERVICE
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /app
RUN test -n "${SERVICE}" && python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
COPY constraints.txt ./
COPY libs/cx-protos libs/cx-protos
COPY libs/cx-common libs/cx-common
COPY services/${SERVICE} services/${SERVICE}
# The service is installed in editable mode so that `cx-<service> migrate` finds alembic.ini and migrations/ under
# /app/services/<service>; the runtime stage keeps the same paths. /opt/venv/bin/cx-service names the service's CLI
# so that ENTRYPOINT stays in exec form.
RUN pip install -c constraints.txt ./libs/cx-protos ./libs/cx-common \
 -e "./services/${SERVICE}" \
 && python -m compileall -q /opt/venv "/app/services/${SERVICE}/src" "/app/services/${SERVICE}/migrations" \
 && ln -s "cx-${SERVICE}" /opt/venv/bin/cx-service

FROM ${PYTHON_IMAGE} AS runtime
ARG SERVICE
ARG PORT
LABEL org.opencontainers.image.title="cx-${SERVICE}" \
      org.opencontainers.image.description="CX platform ${SERVICE} service" \
      org.opencontainers.image.source="https://github.com/cx-platform/cx"
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    CX_SERVICE_PORT=${PORT}
RUN groupadd --system --gid 10001 cx \
 && useradd --system --uid 10001 --gid cx --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin cx
COPY --from=build /opt/venv /opt/venv
COPY --from=build /app/services/${SERVICE} /app/services/${SERVICE}
WORKDIR /app/services/${SERVICE}
USER 10001:10001
EXPOSE ${PORT}
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import os,urllib.request;urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ['CX_SERVICE_PORT'], timeout=2)"]
ENTRYPOINT ["cx-service"]
CMD ["serve", "--host", "0.0.0.0"]
