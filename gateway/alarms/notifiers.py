"""Delivery channels of the outbox: MQTT, webhook, e-mail, file (``NOTIFIERS`` is the
registry).

Each ``send`` returns only once the receiving side has taken the message (PUBACK, HTTP 2xx,
SMTP accepted) and raises otherwise, so the outbox retries it.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import re
import smtplib
import time
from collections.abc import Callable, Iterator, Mapping
from email.message import EmailMessage
from email.utils import make_msgid

import aiohttp
import orjson

from alerting.escalation import FILE_TARGET, Contacts
from edge.mqtt import MqttConnection, MqttSettings
from gateway.alarms.outbox import Notifier, PermanentDeliveryError
from gateway.settings import NotifySettings

SIGNATURE_HEADER = "X-Hazgw-Signature"
MIN_SECRET_CHARS = 16
# what a receiver should accept: signatures at most this old (a captured delivery replayed
# later is refused; the idempotency key drops a copy within the window)
SIGNATURE_MAX_AGE_S = 300


def signature(secret: bytes, key: str, body: bytes, t: int) -> str:
    """The webhook signature header value ``t=<unix s>,v1=<hex>``: HMAC-SHA256 over
    ``<t>.<idempotency key>.<body>``, so neither the time nor the key can be changed and a
    captured delivery cannot be sent again later."""
    mac = hmac.new(secret, f"{t}.{key}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def verify(secret: bytes, header: str, key: str, body: bytes, now_s: float,
           max_age_s: float = SIGNATURE_MAX_AGE_S) -> bool:
    """A receiver's check of ``signature`` (the README shows the same in a few lines)."""
    try:
        parts = dict(p.split("=", 1) for p in header.split(","))
        t = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs(now_s - t) > max_age_s:
        return False
    return hmac.compare_digest(signature(secret, key, body, t), f"t={t},v1={parts.get('v1')}")


def _header(text: object) -> str:
    """A value fit for a mail header: control characters (CR/LF from register text made a
    message that could never be sent) become spaces."""
    return "".join(" " if ord(c) < 32 or 127 <= ord(c) < 160 else c for c in str(text))[:200]


def subject(doc: dict[str, object]) -> str:
    """The subject of a notification, by its kind."""
    src = doc.get("hazard_source")
    code = src.get("code") if isinstance(src, dict) else None
    colour = doc.get("warning_colour")
    kind = doc.get("kind", "escalation")
    if kind == "register_overdue":
        text = (f"Hazard register: entry {doc.get('entry')} overdue ({doc.get('level')}) at "
                f"{code}: {doc.get('title')}")
    elif kind in ("shelved", "out_of_service"):
        what = "shelved" if kind == "shelved" else "taken out of service"
        text = f"[{colour}] {doc.get('point')} at {code} {what} by {doc.get('by')}"
    else:
        text = (f"[{colour}] {doc.get('alarm_level')} {doc.get('point')} at {code} "
                f"(escalation step {doc.get('step')})")
    return _header(text)


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
    """POSTs the JSON with the idempotency key and a signature over time, key and body; a
    redirect is not followed (the body and signature would go where the config never said)."""

    def __init__(self, s: NotifySettings) -> None:
        self._secret = s.webhook_secret.get_secret_value().encode()
        self._timeout = aiohttp.ClientTimeout(total=s.webhook_timeout_s)

    async def send(self, target: str, key: str, payload: bytes) -> None:
        headers = {"Content-Type": "application/json", "Idempotency-Key": key,
                   SIGNATURE_HEADER: signature(self._secret, key, payload, int(time.time()))}
        async with aiohttp.ClientSession(timeout=self._timeout) as http, \
                http.post(target, data=payload, headers=headers, allow_redirects=False) as r:
            if not 200 <= r.status < 300:
                where = f" to {r.headers.get('Location', '?')} (not followed)" \
                    if 300 <= r.status < 400 else ""
                msg = f"HTTP {r.status}{where}: {(await r.text())[:200]}"
                if 400 <= r.status < 500 and r.status not in (408, 425, 429):
                    raise PermanentDeliveryError(msg)   # the receiver will not take it
                raise ConnectionError(msg)

    def close(self) -> None:
        """Nothing held open: a session per message."""


class EmailNotifier:
    """Sends one message per notification; its Message-ID derives from the key."""

    def __init__(self, s: NotifySettings) -> None:
        self._s = s

    def _send(self, target: str, key: str, payload: bytes) -> None:
        try:
            self._send_once(target, key, payload)
        except (smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused, ValueError) as exc:
            raise PermanentDeliveryError(f"{type(exc).__name__}: {exc}") from exc
        except smtplib.SMTPResponseException as exc:
            if 500 <= exc.smtp_code < 600:     # 5xx: refused for good; 4xx: try again
                raise PermanentDeliveryError(f"SMTP {exc.smtp_code}: {exc.smtp_error!r}") \
                    from exc
            raise

    def _send_once(self, target: str, key: str, payload: bytes) -> None:
        doc = orjson.loads(payload)
        msg = EmailMessage()
        msg["From"] = _header(self._s.smtp_from)
        msg["To"] = _header(target)
        msg["Subject"] = subject(doc)
        msg["Message-ID"] = make_msgid(idstring=hashlib.sha256(key.encode()).hexdigest()[:32],
                                       domain="hazgw")
        msg["X-Hazgw-Key"] = key
        msg.set_content(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode())
        with smtplib.SMTP(self._s.smtp_host, self._s.smtp_port,
                          timeout=self._s.smtp_timeout_s) as smtp:
            # a login never crosses the wire in clear: STARTTLS whenever one is set
            if self._s.smtp_starttls or self._s.smtp_username:
                smtp.starttls()
            if self._s.smtp_username:
                pw = self._s.smtp_password.get_secret_value() if self._s.smtp_password else ""
                smtp.login(self._s.smtp_username, pw)
            smtp.send_message(msg)

    async def send(self, target: str, key: str, payload: bytes) -> None:
        await asyncio.to_thread(self._send, target, key, payload)

    def close(self) -> None:
        """Nothing held open: a connection per message."""


class FileNotifier:
    """Appends each notification as one JSON line (``{"key", "at_ms", "message"}``) to a file
    of the notification directory, synced before it counts as sent: a local sink for the demo,
    a test or a site whose alarm relay reads files. A retry after a crash may append a line
    twice; the key tells them apart."""

    def __init__(self, s: NotifySettings) -> None:
        self._dir = s.file_dir

    def _append(self, target: str, key: str, payload: bytes) -> None:
        if not re.match(FILE_TARGET, target):       # checked by the config too
            raise PermanentDeliveryError(f"file target {target!r} is not a file name")
        self._dir.mkdir(parents=True, exist_ok=True)
        line = orjson.dumps({"key": key, "at_ms": int(time.time() * 1000),
                             "message": orjson.Fragment(payload)}) + b"\n"
        with open(self._dir / target, "ab") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())

    async def send(self, target: str, key: str, payload: bytes) -> None:
        await asyncio.to_thread(self._append, target, key, payload)

    def close(self) -> None:
        """Nothing held open: the file is opened per message."""


NOTIFIERS: dict[str, Callable[[MqttSettings, NotifySettings], Notifier]] = {
    "mqtt": lambda m, s: MqttNotifier(m),
    "webhook": lambda m, s: WebhookNotifier(s),
    "email": lambda m, s: EmailNotifier(s),
    "file": lambda m, s: FileNotifier(s),
}


def webhook_secret_problem(contacts: Contacts, s: NotifySettings) -> str | None:
    """Why the site's webhooks cannot be signed as they must be, or None."""
    hooks = [c.target for role in (contacts.default, *contacts.sources.values())
             for cs in role.values() for c in cs if c.channel == "webhook"]
    if hooks and len(s.webhook_secret.get_secret_value()) < MIN_SECRET_CHARS:
        return (f"HAZGW_NOTIFY__WEBHOOK_SECRET is empty or under {MIN_SECRET_CHARS} "
                f"characters while the site sends to {len(hooks)} webhook(s) (first: "
                f"{hooks[0]}): refusing to send unsigned or weakly signed notifications")
    return None


class Notifiers(Mapping[str, Notifier]):
    """One notifier per channel of the registry, made when first used: a site that sends
    no MQTT notifications never connects to a broker for them (the demo has none)."""

    def __init__(self, mqtt_settings: MqttSettings, s: NotifySettings) -> None:
        self._mqtt, self._s = mqtt_settings, s
        self._made: dict[str, Notifier] = {}

    def __getitem__(self, channel: str) -> Notifier:
        if channel not in self._made:
            self._made[channel] = NOTIFIERS[channel](self._mqtt, self._s)
        return self._made[channel]

    def __iter__(self) -> Iterator[str]:
        return iter(NOTIFIERS)

    def __len__(self) -> int:
        return len(NOTIFIERS)

    def made(self) -> list[Notifier]:
        """The notifiers made so far (to close)."""
        return list(self._made.values())


def build_notifiers(mqtt_settings: MqttSettings, s: NotifySettings) -> Notifiers:
    """The notifiers of every channel of the registry, each made when first used."""
    return Notifiers(mqtt_settings, s)
