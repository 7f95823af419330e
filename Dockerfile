# ticket-intake: slim Python image, non-root, `intake serve` on port 2525.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY intake ./intake
COPY parsing ./parsing
COPY store ./store
COPY templates ./templates
COPY config ./config
RUN pip install --no-cache-dir build && python -m build --wheel --outdir /wheels .

FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    INTAKE_SMTP__HOST=0.0.0.0 \
    INTAKE_DATABASE__URL=sqlite:////var/lib/intake/intake.db \
    INTAKE_OUTBOUND__DIRECTORY=/var/lib/intake/outbox
COPY --from=build /wheels /wheels
RUN pip install /wheels/*.whl 'psycopg[binary]>=3.1' && rm -rf /wheels \
 && useradd --system --home-dir /var/lib/intake --create-home --shell /usr/sbin/nologin intake
USER intake
WORKDIR /var/lib/intake
VOLUME ["/var/lib/intake"]
EXPOSE 2525
HEALTHCHECK --interval=30s --timeout=10s --start-period=10s --retries=3 \
  CMD ["intake", "health", "--listen", "127.0.0.1:2525"]
CMD ["intake", "serve"]
