# One image for the gateway core, the edge agent and the simulator (command chooses).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY alerting ./alerting
COPY edge ./edge
COPY gateway ./gateway
COPY config ./config
RUN pip install --no-cache-dir .
# hazgw stops cleanly on SIGTERM (drains, flushes, acknowledges, closes); say so explicitly,
# and give it the time in docker-compose.yml (stop_grace_period).
STOPSIGNAL SIGTERM
ENTRYPOINT ["hazgw"]
