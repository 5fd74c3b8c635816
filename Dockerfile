# bess-sim image: the simulator (tick loop + Modbus TCP slaves + REST/dashboard + DB writer).
# Built by docker-compose.yml; see docs/persistence.md.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
# Dependencies (asyncpg, pymodbus, fastapi, ...) all ship manylinux wheels: no compiler needed.
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install . && useradd --system --uid 10001 bess
COPY assets.yaml register_map.yaml ./

USER bess
# HTTP (REST, dashboard, /metrics) and the Modbus ports of the shipped assets.yaml.
EXPOSE 3001 5020 5021 5022
# Bind all interfaces inside the container; docker publishes the ports.
CMD ["bess-sim", "run", "--http-host", "0.0.0.0", "--modbus-host", "0.0.0.0"]
