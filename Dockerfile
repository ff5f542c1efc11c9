# The Acceso application image: one image for `acceso web`, `acceso worker` and `acceso migrate`.
# It installs with scripts/install.sh, the same recipe tests/test_install_recipe.py runs into a
# fresh virtualenv and then drives through a registration; .dockerignore says what the build
# context holds, and that test builds from exactly those files.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/acceso/bin:$PATH \
    ACCESO_DATA_DIR=/var/lib/acceso \
    ACCESO_PORTALS_FILE=/etc/acceso/portals.toml

COPY . /src
# Install into /opt/acceso (translations compiled inside the installed package while still
# root: the app runs unprivileged and cannot write there), then drop the sources so only the
# installed copy can be imported.
RUN sh /src/scripts/install.sh /opt/acceso /src \
    && install -D -m 0644 /src/config/portals.toml /etc/acceso/portals.toml \
    && rm -rf /src \
    && useradd --system --uid 10001 --home-dir /var/lib/acceso --create-home acceso

WORKDIR /var/lib/acceso
USER acceso
EXPOSE 5000
CMD ["acceso", "web", "--host", "0.0.0.0", "--port", "5000"]
