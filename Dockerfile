# Parley as a container: see docs/deploy.md and compose.yaml.
# The database and parley.toml live on the /data volume; secrets come from the environment
# (compose reads them from .env). Build: docker build -t parley .
ARG PYTHON_IMAGE=python:3.11-slim
FROM ${PYTHON_IMAGE}

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# The same install steps the tests run (tests/test_install.py): build the wheel, install it
# into /opt/parley with its dependencies.
COPY pyproject.toml setup.py MANIFEST.in README.md /src/
COPY bot /src/bot
COPY cogs /src/cogs
COPY prompts /src/prompts
COPY docker/install.sh /src/docker/install.sh
RUN sh /src/docker/install.sh /src /opt/parley && rm -rf /src

# A non-root user owning only the data volume.
RUN useradd --uid 10001 --user-group --no-create-home --home-dir /data --shell /usr/sbin/nologin parley \
    && mkdir -p /data && chown parley:parley /data

ENV PATH=/opt/parley/bin:$PATH \
    PARLEY_CONFIG=/data/parley.toml \
    PARLEY_DB_PATH=/data/parley.db \
    PARLEY_CONSOLE=off
USER parley
WORKDIR /data
VOLUME ["/data"]

# Healthy while the database answers (sources, mention counts, outbox).
HEALTHCHECK --interval=60s --timeout=20s --start-period=60s --retries=3 CMD ["parley", "status"]
STOPSIGNAL SIGTERM
CMD ["parley", "run"]
