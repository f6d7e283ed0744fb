# incidentflow worker / API image (see docker-compose.temporal.yml).
#   docker build -t incidentflow:local .
#   docker run --rm incidentflow:local                     # worker (default)
#   docker run --rm -p 8080:8080 incidentflow:local incidentflow api
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

WORKDIR /app

# README* is optional in the glob (pyproject.toml's `readme` needs it when present).
COPY pyproject.toml README* ./
COPY domain ./domain
COPY incidentflow ./incidentflow
COPY workflows ./workflows
COPY activities ./activities
COPY workers ./workers
COPY config ./config
COPY runbooks ./runbooks
COPY slack-app-manifest.yaml ./

RUN pip install --no-cache-dir . \
    && rm -rf build ./*.egg-info

# Non-root; /app itself is writable so local state (e.g. .incidentflow/) can be created.
RUN useradd --create-home --uid 10001 --user-group incidentflow \
    && chown incidentflow:incidentflow /app
USER incidentflow

EXPOSE 8080
CMD ["incidentflow", "worker"]
