# mcsdns: a small image that runs as a non-root user on unprivileged ports.
# The Service maps port 53 to 5353 (see manifests/deployment.yaml).
#
# The base is pinned to its full version tag. Pin its digest too
# (python:3.11.17-slim-bookworm@sha256:...) where a registry can be reached to
# read it: docker buildx imagetools inspect python:3.11.17-slim-bookworm
ARG PYTHON_IMAGE=python:3.11.17-slim-bookworm

# Build stage: the wheel of this tree and its dependencies, in a venv.
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_ROOT_USER_ACTION=ignore VENV=/opt/mcsdns
WORKDIR /src
COPY pyproject.toml README.md ./
COPY scripts/install-image.sh scripts/
COPY mcsdns mcsdns/
RUN scripts/install-image.sh "$VENV"

# Run stage: the same base, and only the venv.
FROM ${PYTHON_IMAGE}
COPY --from=build /opt/mcsdns /opt/mcsdns
ENV PATH=/opt/mcsdns/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
USER 65532:65532
EXPOSE 5353/udp 5353/tcp 8080/tcp
ENTRYPOINT ["mcsdns", "serve"]
CMD ["--source", "kube", "--listen", "0.0.0.0:5353", "--http", "0.0.0.0:8080"]
