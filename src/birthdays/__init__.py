"""The article's web service: JSON documents (birthdays of famous physicists) in MongoDB.

::

    cli.py       the ``birthdays`` command: serve, mongo
    config.py    command line and link variables -> ServeConfig
    server.py    connections, idle ones closed at the limit, graceful stop, worker processes
    h1parse.py   request heads and bodies parsed by llhttp (httptools), checked as RFC 9112 says
    httpwire.py  request bodies read on demand, responses written on asyncio streams
    ratelog.py   log lines that clients can cause, rate-limited
    app.py       routes and content negotiation
    documents.py strict JSON in, text/JSON/NDJSON out, arrival-ordered ids
    store.py     the DocumentStore seam: MongoDB with group commit
    mongo.py     mongod or secantusdb for machines without MongoDB
    openapi.py   the API description served at /openapi.json

It never imports netplumb: it runs on its own, in a netplumb host, in a container or a pod.
"""

__version__ = "1.0.0"
