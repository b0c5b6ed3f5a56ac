# The production image, for builds outside Wikimedia (Wikimedia CI builds blubber.yaml's
# `production` variant, which makes the same image from Wikimedia's base images).
#   docker build -t logo-detection .        (or: make image)
#   docker run -p 8080:8080 -v /path/to/model_dir:/mnt/models:ro logo-detection
# The model is not in the image: KServe's storage initializer puts it in /mnt/models.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# Stage 1: a virtualenv with the pinned runtime stack and the package itself.
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY requirements.txt ./
RUN pip install -r requirements.txt
COPY pyproject.toml README.md ./
COPY model_server ./model_server
RUN pip install --no-deps . && python3 -c "import model_server.logo_detection.settings"

# Stage 2: the runtime: the virtualenv only, no compilers, no sources, no tests.
FROM ${PYTHON_IMAGE} AS production
RUN useradd --uid 900 --user-group --create-home --shell /usr/sbin/nologin runuser
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    MODEL_PATH=/mnt/models \
    HTTP_PORT=8080
USER 900:900
WORKDIR /home/runuser
EXPOSE 8080
ENTRYPOINT ["python3", "-m", "model_server.logo_detection"]
