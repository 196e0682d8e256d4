# otel-chargy: build the wheels (the project's and its dependencies') in one stage,
# install them in a slim one without build tools.
FROM python:3.11.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY otel_chargy ./otel_chargy
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11.11-slim-bookworm
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links /wheels otel-chargy && rm -rf /wheels
# The original exporter ran as uid 1001; so does this one, never as root.
RUN useradd --uid 1001 --gid 0 --no-create-home --shell /usr/sbin/nologin otel-chargy
USER 1001:0
EXPOSE 9000
# No curl in the slim image: Python asks /healthz.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:9000/healthz', timeout=4).status != 200)"]
ENTRYPOINT ["otel-chargy"]
