# The Acceso application image: one image for `acceso web`, `acceso worker` and `acceso migrate`.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    ACCESO_DATA_DIR=/var/lib/acceso \
    ACCESO_PORTALS_FILE=/etc/acceso/portals.toml \
    GUNICORN_CMD_ARGS="--logger-class portal.logs.GunicornLogger"

WORKDIR /src
COPY pyproject.toml ./
COPY portal ./portal
COPY workflows ./workflows
COPY activities ./activities
COPY web ./web
COPY cli ./cli
COPY worker.py ./
COPY config/portals.toml /etc/acceso/portals.toml
# Install, then compile the translations inside the installed package while still root (the app
# runs as an unprivileged user and cannot write there), and drop the sources so only the
# installed copy can be imported.
RUN pip install . \
    && cd / && python -c "from web.i18n import compile_catalogs; compile_catalogs()" \
    && rm -rf /src \
    && useradd --system --uid 10001 --home-dir /var/lib/acceso --create-home acceso

WORKDIR /var/lib/acceso
USER acceso
EXPOSE 5000
CMD ["acceso", "web", "--host", "0.0.0.0", "--port", "5000"]
