# mcsdns: one small image, runs as a non-root user on unprivileged ports.
# The Service maps port 53 to 5353 (see manifests/deployment.yaml).
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY mcsdns ./mcsdns
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim
COPY --from=build /install /usr/local
RUN useradd --system --uid 65532 --no-create-home mcsdns
USER 65532
EXPOSE 5353/udp 5353/tcp 8080/tcp
ENV PYTHONUNBUFFERED=1
ENTRYPOINT ["mcsdns", "serve"]
CMD ["--source", "kube", "--listen", "0.0.0.0:5353", "--http", "0.0.0.0:8080"]
