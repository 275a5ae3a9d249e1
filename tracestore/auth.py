"""API keys: creation, verification, listing and revocation.

A key looks like ``ts_<43 url-safe characters>`` (256 random bits from :mod:`secrets`). The
store keeps only a per-key salted PBKDF2-HMAC-SHA256 hash and the first characters of the key
(``prefix``), so verifying a key reads exactly one row and compares digests in constant time
(:func:`hmac.compare_digest`). A key belongs to one project and carries scopes:

* ``ingest`` — write traces and outcomes;
* ``read``   — read traces, findings, paths, attribution, digests;
* ``admin``  — manage prices, workflows and keys; implies ``ingest`` and ``read``.

Keys travel as ``Authorization: Bearer <key>`` or as HTTP Basic auth whose password (or user
name) is the key — the Langfuse SDK sends ``Basic base64(public:secret)``.

>>> key = new_key()
>>> key.startswith("ts_") and len(key) == 46
True
>>> salt = "00" * 16
>>> verify_hash(key, salt, hash_key(key, salt))
True
>>> credentials_from_header("Bearer " + key) == key
True
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import logging
import os
import secrets
import socket
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from tracestore.config import Settings
from tracestore.errors import NotFound, TracestoreError, ValidationFailed
from tracestore.store.tables import KEY_T, PROJECT_T

__all__ = [
    "SCOPES",
    "KeyInfo",
    "check_open_mode",
    "create_key",
    "credentials_from_header",
    "has_active_keys",
    "hash_key",
    "is_loopback",
    "list_keys",
    "listening_hosts",
    "new_key",
    "normalise_scopes",
    "public_bind",
    "revoke_key",
    "verify_hash",
    "verify_key",
]

log = logging.getLogger("tracestore.auth")

SCOPES = ("ingest", "read", "admin")

_PREFIX_LEN = 11  # "ts_" + 8 characters = 48 random bits: a unique lookup handle, not a secret
# The key carries 256 random bits, so key stretching adds nothing against brute force (the
# reason GitHub stores its tokens under one SHA-256); 1,000 rounds only make a stolen table a
# little slower to test against a leaked key list, and keep each verification well under 1 ms.
_ROUNDS = 1_000


@dataclass(frozen=True)
class KeyInfo:
    """What the store knows about a key (never the key itself)."""

    id: int
    project_id: int
    project: str
    prefix: str
    scopes: frozenset[str]
    name: str | None
    created_at: float
    revoked_at: float | None


def new_key() -> str:
    """A fresh random key."""
    return "ts_" + secrets.token_urlsafe(32)


def hash_key(key: str, salt: str) -> str:
    """The salted hash stored for ``key`` (hex)."""
    return hashlib.pbkdf2_hmac("sha256", key.encode(), bytes.fromhex(salt), _ROUNDS).hex()


def verify_hash(key: str, salt: str, stored: str) -> bool:
    """Constant-time check of ``key`` against its stored hash."""
    return hmac.compare_digest(hash_key(key, salt), stored)


def credentials_from_header(value: str | None) -> str | None:
    """The key in an ``Authorization`` header (Bearer, or Basic with the key as password or
    user name), else None.

    >>> credentials_from_header("Basic " + base64.b64encode(b"pk-lf-1:ts_abc").decode())
    'ts_abc'
    >>> credentials_from_header("Digest x") is None
    True
    """
    if not value:
        return None
    scheme, _, param = value.strip().partition(" ")
    scheme, param = scheme.lower(), param.strip()
    if scheme == "bearer":
        return param or None
    if scheme == "basic":
        try:
            decoded = base64.b64decode(param, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        user, _, password = decoded.partition(":")
        if password.startswith("ts_") or not user.startswith("ts_"):
            return password or None
        return user
    return None


def normalise_scopes(scopes: Iterable[str]) -> frozenset[str]:
    """Validate scopes; ``admin`` implies the others.

    >>> sorted(normalise_scopes(["admin"]))
    ['admin', 'ingest', 'read']
    """
    out = {s.strip().lower() for s in scopes if s.strip()}
    bad = sorted(out - set(SCOPES))
    if bad or not out:
        raise ValidationFailed(f"unknown or missing scope {bad or ''}; use {', '.join(SCOPES)}")
    if "admin" in out:
        out |= set(SCOPES)
    return frozenset(out)


def create_key(
    session: Session, *, project_id: int, scopes: Iterable[str], name: str | None, now: float
) -> tuple[str, KeyInfo]:
    """Store a new key's hash and return (the key — shown once — and its info)."""
    scope_set = normalise_scopes(scopes)
    key = new_key()
    salt = secrets.token_hex(16)
    row = {
        "project_id": project_id,
        "prefix": key[:_PREFIX_LEN],
        "salt": salt,
        "key_hash": hash_key(key, salt),
        "scopes": ",".join(s for s in SCOPES if s in scope_set),
        "name": name,
        "created_at": now,
    }
    session.execute(KEY_T.insert().values(row))
    info = _infos(session, KEY_T.c.prefix == row["prefix"])[0]
    return key, info


def _infos(session: Session, *where: object) -> list[KeyInfo]:
    k = KEY_T.c
    rows = session.execute(
        select(k.id, k.project_id, PROJECT_T.c.name, k.prefix, k.scopes, k.name, k.created_at,
               k.revoked_at)
        .join(PROJECT_T, PROJECT_T.c.id == k.project_id)
        .where(*where)  # type: ignore[arg-type]
        .order_by(k.id)
    ).all()
    return [KeyInfo(r[0], r[1], r[2], r[3], frozenset(r[4].split(",")), r[5], r[6], r[7])
            for r in rows]


def verify_key(session: Session, key: str) -> KeyInfo | None:
    """The info of an active key, or None for an unknown, malformed or revoked one."""
    if not key.startswith("ts_") or len(key) < _PREFIX_LEN + 8:
        return None
    k = KEY_T.c
    row = session.execute(
        select(k.id, k.salt, k.key_hash)
        .where(k.prefix == key[:_PREFIX_LEN], k.revoked_at.is_(None))
    ).first()
    if row is None or not verify_hash(key, row[1], row[2]):
        return None
    return _infos(session, k.id == row[0])[0]


def list_keys(session: Session, *, project_id: int | None = None) -> list[KeyInfo]:
    """Keys (active and revoked), optionally of one project."""
    where = [] if project_id is None else [KEY_T.c.project_id == project_id]
    return _infos(session, *where)


def revoke_key(session: Session, *, key_id_or_prefix: str, now: float,
               project_id: int | None = None) -> KeyInfo:
    """Revoke a key by its id or prefix (within ``project_id`` when given)."""
    k = KEY_T.c
    match = k.id == int(key_id_or_prefix) if key_id_or_prefix.isdigit() else (
        k.prefix == key_id_or_prefix[:_PREFIX_LEN])
    where = [match] if project_id is None else [match, k.project_id == project_id]
    found = _infos(session, *where)
    if not found:
        raise NotFound(f"no key {key_id_or_prefix!r}")
    session.execute(update(KEY_T).where(k.id == found[0].id, k.revoked_at.is_(None))
                    .values(revoked_at=now))
    return _infos(session, k.id == found[0].id)[0]


def has_active_keys(session: Session) -> bool:
    """Whether any unrevoked key exists (no keys + a loopback bind = open dev mode)."""
    return session.execute(
        select(KEY_T.c.id).where(KEY_T.c.revoked_at.is_(None)).limit(1)
    ).first() is not None


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address.

    >>> is_loopback("127.0.0.1"), is_loopback("::1"), is_loopback("0.0.0.0")
    (True, True, False)
    """
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def listening_hosts() -> list[str]:
    """The addresses of the TCP sockets this process listens on, read from its own file
    descriptors (``/proc/self/fd`` on Linux, ``/dev/fd`` elsewhere): what the server is bound
    to, however it was started (``tracestore serve``, ``uvicorn --factory``, gunicorn)."""
    fd_dir = "/proc/self/fd" if os.path.isdir("/proc/self/fd") else "/dev/fd"
    try:
        fds = [int(n) for n in os.listdir(fd_dir) if n.isdigit()]
    except OSError:
        return []
    hosts = []
    for fd in fds:
        try:
            if not stat.S_ISSOCK(os.fstat(fd).st_mode):
                continue
            with socket.socket(fileno=os.dup(fd)) as sock:  # a duplicate: ours to close
                if (sock.family in (socket.AF_INET, socket.AF_INET6)
                        and sock.type == socket.SOCK_STREAM
                        and sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)):
                    hosts.append(str(sock.getsockname()[0]))
        except OSError:  # closed meanwhile, or not a socket we may inspect
            continue
    return hosts


def public_bind(server: tuple[str, int | None] | list[Any] | None) -> str | None:
    """The first non-loopback address the server listens on, or None when every listening
    socket is loopback. ``server`` is the ASGI scope's ``server`` (the local address of the
    connection: a request can arrive over loopback on a server bound to 0.0.0.0, so the
    listening sockets are read too). In-process test clients and Unix sockets have no IP
    address there and no listening TCP socket, and count as local."""
    host = str(server[0]) if server else ""
    candidates = [host] if _is_ip(host) else []
    candidates += listening_hosts()
    return next((h for h in candidates if not is_loopback(h)), None)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def check_open_mode(engine: Engine, settings: Settings) -> bool:
    """At start: True (and a warning in the log) when the server runs open — no keys and a
    loopback bind; False when keys are required; raises when bound elsewhere without keys."""
    with Session(engine) as session:
        if has_active_keys(session):
            log.info("API keys required on every route but /healthz")
            return False
    if not is_loopback(settings.host):
        raise TracestoreError(
            f"refusing to serve on {settings.host}: no API keys exist. Create one with "
            "`tracestore keys create --project P --scope admin`, or bind to 127.0.0.1"
        )
    log.warning("no API keys: running OPEN (no auth) on project %r while the server listens "
                "on loopback only (host setting %s; a request arriving on any other listening "
                "address is refused); create a key with `tracestore keys create` to require "
                "keys", settings.project, settings.host)
    return True
