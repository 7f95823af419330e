# ticket-intake: slim Python image, non-root, `intake serve`: SMTP on 2525, HTTP on 8025.
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
    INTAKE_WEB__LISTEN=0.0.0.0:8025 \
    INTAKE_WEB__AUTH__USERS_FILE=/var/lib/intake/staff.passwd \
    INTAKE_DATABASE__URL=sqlite:////var/lib/intake/intake.db \
    INTAKE_OUTBOUND__DIRECTORY=/var/lib/intake/outbox
COPY --from=build /wheels /wheels
RUN pip install /wheels/*.whl 'psycopg[binary]>=3.1' && rm -rf /wheels \
 && useradd --system --home-dir /var/lib/intake --create-home --shell /usr/sbin/nologin intake
USER intake
WORKDIR /var/lib/intake
VOLUME ["/var/lib/intake"]
EXPOSE 2525 8025
# `intake health` reads the same settings as the daemon (smtp.port, web.listen, the store),
# so a changed port needs no change here: it probes the listener, the daemon's /healthz and
# the readiness checks.
HEALTHCHECK --interval=30s --timeout=15s --start-period=15s --retries=3 \
  CMD ["intake", "health"]
CMD ["intake", "serve"]
