"""Delivery channels of the outbox: MQTT, webhook, e-mail (``NOTIFIERS`` is the registry).

Each ``send`` returns only once the receiving side has taken the message (PUBACK, HTTP 2xx,
SMTP accepted) and raises otherwise, so the outbox retries it.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import smtplib
from collections.abc import Callable
from email.message import EmailMessage
from email.utils import make_msgid

import aiohttp
import orjson

from edge.mqtt import MqttConnection, MqttSettings
from gateway.alarms.outbox import Notifier
from gateway.settings import NotifySettings

SIGNATURE_HEADER = "X-Hazgw-Signature"


def signature(secret: bytes, body: bytes) -> str:
    """The webhook signature header value: ``sha256=`` + HMAC-SHA256 of the body, hex."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


class MqttNotifier:
    """Publishes at QoS 1 and waits for the broker's PUBACK."""

    def __init__(self, s: MqttSettings, timeout_s: float = 10.0) -> None:
        self.conn = MqttConnection("notify", s, persistent=False)
        self.conn.start()
        self._timeout_s = timeout_s

    async def send(self, target: str, key: str, payload: bytes) -> None:
        await self.conn.publish_acked(target, payload, self._timeout_s)

    def close(self) -> None:
        """Disconnect and stop paho's thread."""
        self.conn.stop()


class WebhookNotifier:
    """POSTs the JSON with an HMAC-SHA256 signature and the idempotency key."""

    def __init__(self, s: NotifySettings) -> None:
        self._secret = s.webhook_secret.get_secret_value().encode()
        self._timeout = aiohttp.ClientTimeout(total=s.webhook_timeout_s)

    async def send(self, target: str, key: str, payload: bytes) -> None:
        headers = {"Content-Type": "application/json", "Idempotency-Key": key,
                   SIGNATURE_HEADER: signature(self._secret, payload)}
        async with aiohttp.ClientSession(timeout=self._timeout) as http, \
                http.post(target, data=payload, headers=headers) as r:
            if not 200 <= r.status < 300:
                raise ConnectionError(f"HTTP {r.status}: {(await r.text())[:200]}")

    def close(self) -> None:
        """Nothing held open: a session per message."""


class EmailNotifier:
    """Sends one message per notification; its Message-ID derives from the key."""

    def __init__(self, s: NotifySettings) -> None:
        self._s = s

    def _send(self, target: str, key: str, payload: bytes) -> None:
        doc = orjson.loads(payload)
        msg = EmailMessage()
        msg["From"] = self._s.smtp_from
        msg["To"] = target
        msg["Subject"] = (f"[{doc.get('warning_colour', '')}] {doc.get('alarm_level')} "
                          f"{doc.get('point')} at {doc.get('hazard_source', {}).get('code')} "
                          f"(step {doc.get('step')})")
        msg["Message-ID"] = make_msgid(idstring=hashlib.sha256(key.encode()).hexdigest()[:32],
                                       domain="hazgw")
        msg["X-Hazgw-Key"] = key
        msg.set_content(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode())
        with smtplib.SMTP(self._s.smtp_host, self._s.smtp_port,
                          timeout=self._s.smtp_timeout_s) as smtp:
            if self._s.smtp_starttls:
                smtp.starttls()
            if self._s.smtp_username:
                pw = self._s.smtp_password.get_secret_value() if self._s.smtp_password else ""
                smtp.login(self._s.smtp_username, pw)
            smtp.send_message(msg)

    async def send(self, target: str, key: str, payload: bytes) -> None:
        await asyncio.to_thread(self._send, target, key, payload)

    def close(self) -> None:
        """Nothing held open: a connection per message."""


NOTIFIERS: dict[str, Callable[[MqttSettings, NotifySettings], Notifier]] = {
    "mqtt": lambda m, s: MqttNotifier(m),
    "webhook": lambda m, s: WebhookNotifier(s),
    "email": lambda m, s: EmailNotifier(s),
}


def build_notifiers(mqtt_settings: MqttSettings, s: NotifySettings) -> dict[str, Notifier]:
    """One notifier per channel of the registry."""
    return {channel: make(mqtt_settings, s) for channel, make in NOTIFIERS.items()}
