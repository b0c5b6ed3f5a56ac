# The production image: ONNX Runtime serving an exported model, no TensorFlow
# (docs/deploying.md#the-image).
#   make image                              (deploy/container.sh build: base images, then this)
#   docker run -p 8080:8080 logo-detection  serves the default model (the committed ONNX export)
#   docker run -p 8080:8080 -v DIR:/mnt/models:ro logo-detection   serves DIR's exported model
# Wikimedia CI builds blubber.yaml's variants instead, which make the same image.
#
# BASE_IMAGE: any Debian bookworm (Python 3.11) image with python3, python3-venv and
# ca-certificates, e.g. the one `deploy/container.sh base` bootstraps from Debian's registry, or
# python:3.11-slim-bookworm. BUILD_BASE_IMAGE: the same plus whatever the build stages need to
# reach PyPI (a proxy's CA, pip settings); it is never a layer of the published image.
ARG BASE_IMAGE=logo-detection-base:bookworm
ARG BUILD_BASE_IMAGE=${BASE_IMAGE}

# The serving stack alone in a virtualenv: the serving lock (make lock), every package pinned and
# checked against its hashes.
FROM ${BUILD_BASE_IMAGE} AS serving-stack
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PATH=/opt/venv/bin:$PATH
RUN python3 -m venv /opt/venv
COPY requirements-serving.txt /src/
RUN pip install --no-compile --require-hashes -r /src/requirements-serving.txt

# The server package as it is (no TensorFlow code in it: tests/test_layout.py), installed into
# the serving stack; built with the locked setuptools (no build isolation), so nothing unhashed
# is downloaded.
FROM serving-stack AS serving-build
COPY pyproject.toml README.md /src/
COPY model_server /src/model_server
RUN pip install --no-deps --no-build-isolation --no-compile /src \
    && python3 -m compileall -q -j 0 --invalidation-mode unchecked-hash /opt/venv/lib \
    && python3 -c "import model_server.logo_detection.settings"

# The published image: the clean base, the virtualenv, the default model's committed ONNX export
# and its JSON (models/: tests/test_export.py proves they are the export of the .keras, so no
# TensorFlow is installed to build the image).
FROM ${BASE_IMAGE} AS production
RUN useradd --uid 900 --user-group --create-home --shell /usr/sbin/nologin runuser
# KServe's storage initializer (or `docker run -v DIR:/mnt/models`) mounts a model over this
# directory, which hides the default; without a mount, the default is what is served. Copied
# before the virtualenv: a change to the server's code leaves this layer cached.
COPY models/logo_detection.onnx models/logo_detection.json /mnt/models/
COPY --from=serving-build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    MODEL_PATH=/mnt/models \
    HTTP_PORT=8080
USER 900:900
WORKDIR /home/runuser
EXPOSE 8080
ENTRYPOINT ["python3", "-m", "model_server.logo_detection"]
