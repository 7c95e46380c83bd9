# The database: the article's docker-network-demo/mongodb image, as `birthdays mongo` (mongod
# when the image has it, else secantusdb, a MongoDB wire-protocol server on WiredTiger).
#
#   docker build -f deploy/docker/database.Dockerfile -t birthdays/database .   (repo root)
#   docker run -d --name mongodb birthdays/database
#
# With a registry at hand, the official image is a drop-in replacement on the same port and
# data path: docker run -d --name mongodb mongo:7.0
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /opt/birthdays
COPY pyproject.toml README.md ./
COPY bin ./bin
COPY src ./src
RUN pip install --no-cache-dir --no-deps . \
 && pip install --no-cache-dir "pymongo>=4.9" "secantusdb>=0.7.0b3" \
 && useradd --system --uid 10001 --no-create-home birthdays \
 && mkdir -p /data/db && chown 10001 /data/db

USER 10001
VOLUME ["/data/db"]
EXPOSE 27017

# As the article's mongod image: the server in ENTRYPOINT, its data path in CMD. The launcher
# execs the server, so SIGTERM reaches it and it stops cleanly.
ENTRYPOINT ["birthdays", "mongo", "--host", "0.0.0.0", "--port", "27017"]
CMD ["--data", "/data/db"]
