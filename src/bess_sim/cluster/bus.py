"""The only nats-py import: connection, JetStream streams, publish, subscribe, request–reply.

Kept thin so agent.py and headend.py read as the protocol (docs/scale-out.md) and the NATS
client could be swapped in one place."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from types import TracebackType

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    KeyValueConfig,
    StorageType,
    StreamConfig,
)
from nats.js.client import JetStreamContext
from nats.js.errors import BadRequestError, KeyNotFoundError, NoKeysError, NotFoundError
from nats.js.kv import KeyValue

from .wire import Subjects

log = logging.getLogger("bess_sim.cluster")

#: JetStream duplicate window: a re-publish of the same message id inside it is stored once.
DUPLICATE_WINDOW_S = 120.0
#: Streams keep an hour of telemetry (a headend restarted within it catches up).
STREAM_MAX_AGE_S = 3600.0

Handler = Callable[[bytes], Awaitable[None]]
Responder = Callable[[bytes], Awaitable[bytes]]


class BusUnavailableError(Exception):
    """No answer: no responder on the subject, or none within the timeout."""


class Delivery:
    """One message of a durable consumer: acknowledge it once it is safely handled."""

    __slots__ = ("_msg", "data")

    def __init__(self, msg: Msg) -> None:
        self._msg = msg
        self.data = msg.data

    async def ack(self) -> None:
        await self._msg.ack()

    async def in_progress(self) -> None:
        """Still being handled: restart the consumer's ack timer (no redelivery yet)."""
        await self._msg.in_progress()


class DurableConsumer:
    """A durable pull consumer (explicit acks): its position survives the process, so a
    restarted reader resumes at the first message it did not acknowledge."""

    def __init__(self, sub: JetStreamContext.PullSubscription) -> None:
        self._sub = sub

    async def fetch(self, batch: int, timeout_s: float) -> list[Delivery]:
        """Up to ``batch`` messages; [] when none arrive within ``timeout_s``. Raises
        ``BusUnavailableError`` while NATS is unreachable."""
        try:
            msgs = await self._sub.fetch(batch, timeout=timeout_s)
        except NatsTimeoutError:
            return []
        except Exception as exc:  # disconnected, consumer gone while NATS restarts ...
            raise BusUnavailableError(f"fetch: {type(exc).__name__}: {exc}") from None
        return [Delivery(m) for m in msgs]


class Bus:
    """One NATS connection (reconnecting forever) with the bess-sim streams ensured."""

    def __init__(self, url: str, subjects: Subjects, name: str) -> None:
        self.url = url
        self.subjects = subjects
        self._name = name
        self._nc: Client | None = None
        self._kv: KeyValue | None = None

    async def __aenter__(self) -> Bus:
        async def on_error(exc: Exception) -> None:
            log.warning("nats: %s", exc)

        async def on_disconnect() -> None:
            log.warning("nats: disconnected from %s", self.url)

        async def on_reconnect() -> None:
            log.info("nats: reconnected to %s", self.url)

        self._nc = await nats.connect(
            self.url,
            name=self._name,
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.5,
            connect_timeout=5,
            error_cb=on_error,
            disconnected_cb=on_disconnect,
            reconnected_cb=on_reconnect,
        )
        log.info("nats: connected to %s as %s", self.url, self._name)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._nc is not None:
            await self._nc.close()
            self._nc = None

    @property
    def nc(self) -> Client:
        assert self._nc is not None, "bus not connected"
        return self._nc

    async def ensure_streams(self) -> None:
        js = self.nc.jetstream()
        s = self.subjects
        for name, subject in (
            (s.telemetry_stream, s.telemetry("*")),
            (s.dispatch_stream, s.dispatch_records("*")),
            (s.faults_stream, s.fault_records("*")),
        ):
            cfg = StreamConfig(
                name=name,
                subjects=[subject],
                storage=StorageType.FILE,
                duplicate_window=DUPLICATE_WINDOW_S,
                max_age=STREAM_MAX_AGE_S,
            )
            try:
                await js.add_stream(cfg)
            except BadRequestError:
                # Exists with another config (an older version): update it in place.
                await js.update_stream(cfg)

    async def active_bucket(self) -> KeyValue:
        """KV bucket of the dispatch in effect per asset (key = asset id), for restarts."""
        if self._kv is None:
            js = self.nc.jetstream()
            self._kv = await js.create_key_value(
                KeyValueConfig(bucket=self.subjects.active_bucket, storage=StorageType.FILE)
            )
        return self._kv

    async def kv_put(self, key: str, value: bytes) -> None:
        await (await self.active_bucket()).put(key, value)

    async def kv_get(self, key: str) -> bytes | None:
        try:
            entry = await (await self.active_bucket()).get(key)
        except KeyNotFoundError:
            return None
        return entry.value or None

    async def kv_delete(self, key: str) -> None:
        # A delete of an absent key only writes a tombstone: no error to handle.
        await (await self.active_bucket()).delete(key)

    async def kv_items(self) -> dict[str, bytes]:
        kv = await self.active_bucket()
        try:
            keys = await kv.keys()
        except NoKeysError:
            return {}
        out = {}
        for key in keys:
            try:
                entry = await kv.get(key)
            except KeyNotFoundError:
                continue
            if entry.value:
                out[key] = entry.value
        return out

    async def last_message(self, stream: str, subject: str) -> bytes | None:
        try:
            msg = await self.nc.jetstream().get_last_msg(stream, subject)
        except NotFoundError:
            return None
        return msg.data

    async def delete_streams(self) -> None:
        js = self.nc.jetstream()
        try:
            await js.delete_key_value(self.subjects.active_bucket)
        except Exception as exc:  # absent already
            log.debug("nats: delete bucket: %s", exc)
        s = self.subjects
        for name in (s.telemetry_stream, s.dispatch_stream, s.faults_stream):
            try:
                await js.delete_stream(name)
            except Exception as exc:  # absent already
                log.debug("nats: delete stream %s: %s", name, exc)

    async def publish_stream(self, subject: str, payload: bytes, msg_id: str) -> None:
        await self.nc.jetstream().publish(
            subject, payload, timeout=5.0, headers={"Nats-Msg-Id": msg_id}
        )

    async def publish(self, subject: str, payload: bytes) -> None:
        await self.nc.publish(subject, payload)

    async def subscribe_stream(
        self, subject: str, handler: Handler, *, last_per_subject: bool = False
    ) -> None:
        """Every message from now on (an ordered, ephemeral consumer: it re-creates itself
        after a NATS restart and never delivers out of order); ``last_per_subject`` starts
        with the newest message already stored on each subject (the state agents published
        before this subscriber came up)."""

        async def cb(msg: Msg) -> None:
            await handler(msg.data)

        await self.nc.jetstream().subscribe(
            subject,
            cb=cb,
            ordered_consumer=True,
            deliver_policy=DeliverPolicy.LAST_PER_SUBJECT
            if last_per_subject
            else DeliverPolicy.NEW,
        )

    async def durable_consumer(
        self, stream: str, subject: str, name: str, ack_wait_s: float
    ) -> DurableConsumer:
        """The durable consumer ``name`` on ``stream`` (created, from the first stored
        message, if it does not exist yet; resumed where it stopped otherwise)."""
        sub = await self.nc.jetstream().pull_subscribe(
            subject,
            durable=name,
            stream=stream,
            config=ConsumerConfig(
                durable_name=name,
                ack_policy=AckPolicy.EXPLICIT,
                deliver_policy=DeliverPolicy.ALL,
                ack_wait=ack_wait_s,
                max_deliver=-1,
            ),
        )
        return DurableConsumer(sub)

    async def subscribe(self, subject: str, handler: Handler) -> None:
        async def cb(msg: Msg) -> None:
            await handler(msg.data)

        await self.nc.subscribe(subject, cb=cb)

    async def serve(self, subject: str, responder: Responder) -> None:
        async def cb(msg: Msg) -> None:
            await msg.respond(await responder(msg.data))

        await self.nc.subscribe(subject, cb=cb)

    async def request(self, subject: str, payload: bytes, timeout_s: float) -> bytes:
        try:
            msg = await self.nc.request(subject, payload, timeout=timeout_s)
        except (NoRespondersError, NatsTimeoutError) as exc:
            raise BusUnavailableError(f"no answer on {subject}: {type(exc).__name__}") from None
        return msg.data
