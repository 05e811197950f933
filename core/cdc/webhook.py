"""The webhook receiver: takes changes posted by H2 triggers and produces them.

API::

    receiver = WebhookReceiver(settings, port=0, prefix="h2")
    url = receiver.start()       # http://127.0.0.1:PORT/changes
    receiver.token               # per-run secret; the trigger sends X-CDC-Token
    receiver.stats               # received, produced, refused
    receiver.prepare("APP", ["ORDERS"])  # create the topics before changes come
    receiver.stop()

then ``triggers.add_rule(conn, CaptureRule(..., mode="webhook",
webhook_url=url, webhook_token=receiver.token))``; from the command line
``cdc-studio webhook run`` prints both.

This is the source notes' path, kept beside the outbox because its failure
modes are real and worth seeing: the trigger posts when the row changes,
before the commit, so changes of transactions that roll back are produced
anyway; and a change made while this receiver is down is lost (the trigger
logs it on the server and lets the transaction go on). Events are re-encoded
here from the posted JSON (``source.path`` is ``"webhook"``); only the
outbox path keeps every value's text exactly as the trigger wrote it.
The receiver listens on 127.0.0.1 only.
"""

from __future__ import annotations

import hmac
import json
import logging
import secrets
import threading
import time
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from confluent_kafka import Producer

from core.cdc.events import topic_for
from core.cdc.relay import TransientToInfo, ensure_topics
from core.settings import Settings

log = logging.getLogger(__name__)
_client_log = logging.getLogger(__name__ + ".librdkafka")
_client_log.addFilter(TransientToInfo())
PATH = "/changes"


@dataclass
class WebhookStats:
    """Counts of the receiver since it started."""

    received: int = 0
    produced: int = 0
    refused: int = 0
    failed: int = 0


class WebhookReceiver:
    """HTTP on 127.0.0.1 -> Kafka, with a per-run token."""

    def __init__(
        self,
        settings: Settings,
        *,
        port: int = 0,
        prefix: str = "h2",
        partitions: int = 3,
        replication_factor: int = 3,
        token: str | None = None,
        bootstrap_servers: str = "",
    ) -> None:
        self.settings = settings
        self.port = port
        self.prefix = prefix
        self.partitions = partitions
        self.replication_factor = replication_factor
        self.token = token or secrets.token_urlsafe(18)
        self.bootstrap = bootstrap_servers or settings.bootstrap_servers
        self.database = settings.h2.database
        self.stats = WebhookStats()
        self._lock = threading.Lock()
        self._topics: set[str] = set()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._producer: Producer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{PATH}"

    def start(self) -> str:
        """Listen and return the URL to give the capture rule."""
        config: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "partitioner": "murmur2_random",
            "logger": _client_log,
        }
        self._producer = Producer(config)
        handler = type("Handler", (_Handler,), {"receiver": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="webhook-receiver", daemon=True
        )
        self._thread.start()
        log.info("webhook receiver listening on %s", self.url)
        return self.url

    def stop(self) -> None:
        """Stop listening; changes posted from now on are lost."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None
        if self._producer is not None:
            self._producer.flush(30)
            self._producer = None
        log.info("webhook receiver stopped")

    def prepare(self, schema: str, tables: list[str]) -> None:
        """Create the topics of ``tables`` now, before the first change is posted.

        Otherwise the first post waits for topic creation while the trigger's
        HTTP client waits for the answer, and a slow cluster turns that wait
        into a lost change that has nothing to do with the receiver being down.
        """
        topics = {topic_for(self.prefix, schema, table) for table in tables}
        ensure_topics(self.bootstrap, topics, self.partitions, self.replication_factor)
        with self._lock:
            self._topics |= topics

    def flush(self, timeout: float = 30) -> int:
        """Wait for produced events to be acknowledged; how many are left."""
        return 0 if self._producer is None else self._producer.flush(timeout)

    def accept(self, token: str, body: bytes) -> int:
        """Check and produce one posted change; the HTTP status to answer."""
        if not hmac.compare_digest(token.encode(), self.token.encode()):
            with self._lock:
                self.stats.refused += 1
            return 401
        try:
            change = json.loads(body)
            schema, table = str(change["schema"]), str(change["table"])
        except (ValueError, KeyError, TypeError):
            return 400
        topic = topic_for(self.prefix, schema, table)
        with self._lock:
            self.stats.received += 1
            if topic not in self._topics:
                ensure_topics(
                    self.bootstrap, {topic}, self.partitions, self.replication_factor
                )
                self._topics.add(topic)
            self._produce(topic, schema, table, change)
        return 202

    def _produce(
        self, topic: str, schema: str, table: str, change: dict[str, Any]
    ) -> None:
        key = change.get("key")
        envelope = {
            "op": change.get("op"),
            "before": change.get("before"),
            "after": change.get("after"),
            "source": {
                "db": self.database,
                "schema": schema,
                "table": table,
                "path": "webhook",
                "changed_ms": change.get("changed_at_ms"),
            },
            "ts_ms": int(time.time() * 1000),
        }
        extra: dict[str, Any] = {} if key is not None else {"partition": 0}
        if self._producer is None:
            return
        self._producer.produce(
            topic,
            key=None
            if key is None
            else json.dumps(key, separators=(",", ":"), ensure_ascii=False).encode(),
            value=json.dumps(
                envelope, separators=(",", ":"), ensure_ascii=False
            ).encode(),
            on_delivery=self._delivered,
            **extra,
        )
        self._producer.poll(0)

    def _delivered(self, err: Any, msg: Any) -> None:
        if err is None:
            self.stats.produced += 1
        else:
            self.stats.failed += 1
            log.error("webhook event not produced to %s: %s", msg.topic(), err)

    def to_json(self) -> dict[str, Any]:
        return {"url": self.url, **asdict(self.stats)}


class _Handler(BaseHTTPRequestHandler):
    receiver: WebhookReceiver

    def do_POST(self) -> None:
        if self.path != PATH:
            self.send_error(404)
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        status = self.receiver.accept(self.headers.get("X-CDC-Token", ""), body)
        self.send_response(status)
        # One request per connection, said out loud: a client that pooled the
        # connection would reuse it after we closed it and lose that change.
        self.send_header("Connection", "close")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("webhook: " + format, *args)
