# The birthday web service: the article's docker-network-demo/webserver image.
#
#   docker build -f deploy/docker/webserver.Dockerfile -t birthdays/webserver .   (repo root)
#   docker run -d --name webserver1 --link mongodb:mongo birthdays/webserver
#
# Only the package and what `birthdays serve` imports are installed (pymongo, uvloop), not
# netplumb's own dependencies nor the database server.
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /opt/birthdays
COPY pyproject.toml README.md ./
COPY bin ./bin
COPY src ./src
RUN pip install --no-cache-dir --no-deps . \
 && pip install --no-cache-dir "pymongo>=4.9" "uvloop>=0.19" \
 && useradd --system --uid 10001 --no-create-home birthdays

USER 10001
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=2s \
  CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)"

# The shell form, as in the article: only it expands the link variables. `exec` makes the
# service PID 1, so `docker stop`'s SIGTERM reaches it (a shell would not pass it on).
CMD exec birthdays serve 8080 $MONGO_PORT_27017_TCP_ADDR $MONGO_PORT_27017_TCP_PORT
