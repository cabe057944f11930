# pacer-stream worker image.
#   docker build -t pacer-stream:0.1.0 .
#   docker run pacer-stream:0.1.0            # = pacer-stream worker
# Two stages: wheels are built with a compiler in the first, the runtime stage has no
# build tools. Only the files needed to install the package are copied in, so the local
# virtualenv and service data never enter the image.
FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY pacer_stream ./pacer_stream
RUN pip wheel --wheel-dir /wheels .

FROM python:3.11-slim-bookworm
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    PACER_WORKER_DATA_DIR=/data PACER_WORKER_WEB_PORT=6066
COPY --from=build /wheels /wheels
RUN pip install --no-index --find-links=/wheels pacer-stream \
 && rm -rf /wheels \
 && groupadd --system --gid 10001 pacer \
 && useradd --system --uid 10001 --gid pacer --home-dir /data --no-create-home pacer \
 && mkdir -p /data \
 && chown pacer:pacer /data
# Runs as a numeric non-root user (Kubernetes runAsNonRoot can verify it) and works
# with a read-only root filesystem: only /data (faust table cache) and /tmp are written.
USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
EXPOSE 6066
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:6066/healthz', timeout=4)"]
ENTRYPOINT ["pacer-stream"]
CMD ["worker"]
