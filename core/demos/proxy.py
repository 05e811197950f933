"""A loopback TCP proxy for Kafka that drops produce responses on purpose.

It listens on one loopback port per broker and forwards to that broker. The
client is bootstrapped on the proxy; every Metadata response is rewritten so
that each broker's port is its proxy port, so the client never reaches a
broker around the proxy. Chosen Produce responses are dropped and the
connection cut, as a network failure right after the broker wrote the batch
would: the producer cannot know the write happened and sends it again.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass

from core.errors import DemoError, PortBusyError

log = logging.getLogger(__name__)

API_PRODUCE = 0
API_METADATA = 3
# Metadata versions from which the message is "flexible" (compact encodings
# and tagged fields).
_METADATA_FLEXIBLE = 9


@dataclass
class ProxyStats:
    produce_requests: int = 0
    dropped: int = 0
    metadata_rewritten: int = 0


class KafkaProxy:
    """Forward 127.0.0.1:<proxy port> to 127.0.0.1:<broker port>, per broker.

    ``drop`` is asked for each Produce request (its 1-based number) whether its
    response should be dropped; ``on_drop`` hears of each drop.
    """

    def __init__(
        self,
        broker_ports: dict[int, int],
        drop: Callable[[int], bool],
        base_port: int = 0,
        on_drop: Callable[[int], None] | None = None,
    ) -> None:
        self._broker_ports = dict(broker_ports)
        self._drop = drop
        self._on_drop = on_drop
        self._base_port = base_port
        self.stats = ProxyStats()
        self._lock = threading.Lock()
        self._listeners: dict[int, socket.socket] = {}
        self._port_map: dict[int, int] = {}  # broker port -> proxy port
        self._sockets: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()

    @property
    def bootstrap(self) -> str:
        return ",".join(f"127.0.0.1:{p}" for p in self._port_map.values())

    def start(self) -> KafkaProxy:
        for n, (broker_id, port) in enumerate(sorted(self._broker_ports.items())):
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            wanted = self._base_port + n if self._base_port else 0
            try:
                listener.bind(("127.0.0.1", wanted))
            except OSError as exc:
                listener.close()
                self.stop()
                raise PortBusyError(
                    f"The demo proxy cannot listen on port {wanted}: {exc.strerror}",
                    hint="set demos.proxy_base_port to free ports, or to 0",
                ) from exc
            listener.listen(16)
            listener.settimeout(0.3)
            self._listeners[broker_id] = listener
            self._port_map[port] = listener.getsockname()[1]
            self._spawn(self._accept, f"proxy-accept-{broker_id}", listener, port)
        log.info("demo proxy listening: %s", self._port_map)
        return self

    def stop(self) -> None:
        self._stopping.set()
        with self._lock:
            sockets = list(self._sockets) + list(self._listeners.values())
        for sock in sockets:
            _close(sock)
        for thread in self._threads:
            thread.join(5)
        self._threads.clear()

    def __enter__(self) -> KafkaProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _spawn(self, target: Callable[..., None], name: str, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept(self, listener: socket.socket, broker_port: int) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", broker_port), 5)
            except OSError:
                _close(client)
                continue
            for sock in (client, upstream):
                sock.settimeout(None)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._sockets.update((client, upstream))
            pending: dict[int, tuple[int, int]] = {}
            self._spawn(self._requests, "proxy-requests", client, upstream, pending)
            self._spawn(self._responses, "proxy-responses", upstream, client, pending)

    def _requests(
        self,
        client: socket.socket,
        upstream: socket.socket,
        pending: dict[int, tuple[int, int]],
    ) -> None:
        """Client to broker: note each request's API and version, pass it on."""
        try:
            while True:
                frame = _read_frame(client)
                if frame is None:
                    break
                api_key, version, correlation = struct.unpack_from(">hhi", frame, 4)
                pending[correlation] = (api_key, version)
                upstream.sendall(frame)
        except OSError:
            pass
        finally:
            self._cut(client, upstream)

    def _responses(
        self,
        upstream: socket.socket,
        client: socket.socket,
        pending: dict[int, tuple[int, int]],
    ) -> None:
        """Broker to client: rewrite Metadata, drop chosen Produce responses."""
        try:
            while True:
                frame = _read_frame(upstream)
                if frame is None:
                    break
                (correlation,) = struct.unpack_from(">i", frame, 4)
                api_key, version = pending.pop(correlation, (-1, -1))
                if api_key == API_METADATA:
                    try:
                        frame = self._rewrite_metadata(frame, version)
                    except DemoError as exc:
                        log.warning("demo proxy: %s; cutting the connection", exc)
                        break
                elif api_key == API_PRODUCE and self._should_drop():
                    log.info(
                        "demo proxy dropped a produce response and cut the connection"
                    )
                    break
                client.sendall(frame)
        except OSError:
            pass
        finally:
            self._cut(client, upstream)

    def _should_drop(self) -> bool:
        with self._lock:
            self.stats.produce_requests += 1
            number = self.stats.produce_requests
            drop = self._drop(number)
            if drop:
                self.stats.dropped += 1
        if drop and self._on_drop:
            self._on_drop(number)
        return drop

    def _cut(self, *sockets: socket.socket) -> None:
        with self._lock:
            for sock in sockets:
                self._sockets.discard(sock)
        for sock in sockets:
            _close(sock)

    def _rewrite_metadata(self, frame: bytes, version: int) -> bytes:
        data = bytearray(frame)
        try:
            for offset, port in broker_port_offsets(data, version):
                proxied = self._port_map.get(port)
                if proxied is None:
                    raise DemoError(f"Metadata names broker port {port}, not proxied")
                struct.pack_into(">i", data, offset, proxied)
        except (struct.error, IndexError) as exc:
            raise DemoError(f"Cannot parse a Metadata v{version} response") from exc
        with self._lock:
            self.stats.metadata_rewritten += 1
        return bytes(data)


def broker_port_offsets(
    frame: bytes | bytearray, version: int
) -> list[tuple[int, int]]:
    """Where each broker's port sits in a Metadata response frame, and its value.

    ``frame`` starts with the 4-byte size. Only the start of the body is read:
    the header, the throttle time (v3+) and the brokers array.
    """
    flexible = version >= _METADATA_FLEXIBLE
    pos = 4 + 4  # size, correlation id
    if flexible:
        pos = _skip_tagged_fields(frame, pos)
    if version >= 3:
        pos += 4  # throttle_time_ms
    if flexible:
        count, pos = _uvarint(frame, pos)
        count -= 1
    else:
        (count,) = struct.unpack_from(">i", frame, pos)
        pos += 4
    found = []
    for _ in range(max(count, 0)):
        pos += 4  # node_id
        pos = _skip_string(frame, pos, flexible)
        (port,) = struct.unpack_from(">i", frame, pos)
        found.append((pos, port))
        pos += 4
        if version >= 1:
            pos = _skip_string(frame, pos, flexible)  # rack, nullable
        if flexible:
            pos = _skip_tagged_fields(frame, pos)
    return found


def _uvarint(data: bytes | bytearray, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def _skip_string(data: bytes | bytearray, pos: int, flexible: bool) -> int:
    if flexible:
        length, pos = _uvarint(data, pos)
        return pos + max(length - 1, 0)
    (length,) = struct.unpack_from(">h", data, pos)
    return pos + 2 + max(length, 0)


def _skip_tagged_fields(data: bytes | bytearray, pos: int) -> int:
    count, pos = _uvarint(data, pos)
    for _ in range(count):
        _, pos = _uvarint(data, pos)
        size, pos = _uvarint(data, pos)
        pos += size
    return pos


def _read_frame(sock: socket.socket) -> bytes | None:
    header = _read_exact(sock, 4)
    if header is None:
        return None
    (size,) = struct.unpack(">i", header)
    body = _read_exact(sock, size)
    return None if body is None else header + body


def _read_exact(sock: socket.socket, size: int) -> bytes | None:
    chunks = []
    while size:
        chunk = sock.recv(min(size, 1 << 16))
        if not chunk:
            return None
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()
