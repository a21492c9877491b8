# One image for both programs: `tradeplane-operator` and `tradeplane-runtime`.
# Build stage compiles wheels (asyncpg and friends may need a compiler); the final stage
# has only the virtualenv, no compiler, no pip cache, and runs as a non-root user.
FROM python:3.11-slim-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml requirements.lock README.md ./
COPY operator ./operator
COPY module_runtime ./module_runtime
RUN python -m venv /opt/tradeplane \
    && /opt/tradeplane/bin/pip install --no-cache-dir --upgrade pip==25.3 \
    && /opt/tradeplane/bin/pip install --no-cache-dir -c requirements.lock . \
    && /opt/tradeplane/bin/pip uninstall -y pip

FROM python:3.11-slim-bookworm
ENV PATH=/opt/tradeplane/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
COPY --from=build /opt/tradeplane /opt/tradeplane
RUN useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin tradeplane
USER 10001
EXPOSE 8080
ENTRYPOINT []
CMD ["tradeplane-runtime", "run"]
