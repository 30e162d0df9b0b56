"""A secure local cluster: SASL/SCRAM-SHA-512 listeners, optional TLS, ACLs enforced.

``tidings dev up --secure`` (and the tests' secure fixture) run the brokers with:

- clients on ``SASL_PLAINTEXT`` (``SASL_SSL`` with ``--tls``), SCRAM-SHA-512 only;
- KRaft's ``StandardAuthorizer`` with ``allow.everyone.if.no.acl.found=false``: a
  principal may do only what an ACL allows;
- an admin super-user (``User:admin``), whose SCRAM credential is written at format time
  (``kafka-storage format --add-scram``), because the brokers themselves talk to each
  other as that user before any API could create one;
- the controller quorum on its own loopback listener with SASL/PLAIN, its one user
  (``User:controller``, also a super-user: brokers reach the controllers as it) known
  from the JAAS configuration alone.

Every password is random, made at the cluster's first start, and kept in
``<state dir>/credentials.json`` (mode 600), never in topology.yaml. Service users
(``User:<service>``) are created on the running cluster with the admin's credentials
(:func:`ensure_users`), so a cluster can gain the principals of a new topology.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import secrets
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from tidings.errors import TidingsError

CREDENTIALS_FILE = "credentials.json"
TLS_DIR = "tls"
ADMIN_PROPERTIES = "admin.properties"
MECHANISM = "SCRAM-SHA-512"
ADMIN_USER = "admin"
CONTROLLER_USER = "controller"
_SCRAM_ITERATIONS = 4096
_JAAS_SCRAM = "org.apache.kafka.common.security.scram.ScramLoginModule"
_JAAS_PLAIN = "org.apache.kafka.common.security.plain.PlainLoginModule"


class SecurityError(TidingsError):
    """A secure cluster's credentials are missing, unreadable or refused."""


@dataclass(frozen=True)
class Credentials:
    """One SASL user."""

    username: str
    password: str = field(repr=False)

    @property
    def principal(self) -> str:
        """How ACLs name this user."""
        return f"User:{self.username}"


def new_password() -> str:
    """A random password of URL-safe characters (safe inside JAAS quotes and the
    ``--add-scram`` syntax)."""
    return secrets.token_urlsafe(24)


@dataclass(frozen=True)
class ClusterSecurity:
    """The secrets and settings of one secure local cluster (``credentials.json``)."""

    tls: bool
    admin: Credentials
    controller: Credentials
    #: username -> credentials, for the service users created on the cluster.
    users: Mapping[str, Credentials] = field(default_factory=dict)
    #: The CA certificate that signed the brokers' certificate (``--tls`` only).
    ca_path: Path | None = None

    @classmethod
    def generate(cls, state_dir: Path, tls: bool) -> ClusterSecurity:
        """New passwords (and, with ``tls``, a throwaway CA and broker certificate)."""
        ca_path = write_tls_material(state_dir / TLS_DIR) if tls else None
        return cls(tls, Credentials(ADMIN_USER, new_password()),
                   Credentials(CONTROLLER_USER, new_password()), {}, ca_path)

    @property
    def protocol(self) -> str:
        """``security.protocol`` of the client listener."""
        return "SASL_SSL" if self.tls else "SASL_PLAINTEXT"

    @property
    def listener(self) -> str:
        """The client listener's name (Kafka names listeners after their protocol)."""
        return self.protocol

    def user(self, username: str) -> Credentials:
        """The credentials of ``username`` (``admin`` included)."""
        if username == ADMIN_USER:
            return self.admin
        found = self.users.get(username)
        if found is None:
            known = ", ".join([ADMIN_USER, *sorted(self.users)])
            raise SecurityError(f"no user {username!r} on this secure cluster (users: {known})")
        return found

    def with_users(self, users: Mapping[str, Credentials]) -> ClusterSecurity:
        return replace(self, users={**self.users, **users})

    def client_properties(self, who: Credentials | None = None) -> dict[str, str]:
        """librdkafka properties to connect as ``who`` (the admin by default)."""
        who = who or self.admin
        props = {"security.protocol": self.protocol, "sasl.mechanism": MECHANISM,
                 "sasl.username": who.username, "sasl.password": who.password}
        if self.ca_path is not None:
            props["ssl.ca.location"] = str(self.ca_path)
        return props

    def environment(self, bootstrap: str, who: Credentials | None = None) -> dict[str, str]:
        """``KAFKA_BOOTSTRAP_SERVERS`` and ``TIDINGS_KAFKA_*`` (see tidings.settings)."""
        env = {"KAFKA_BOOTSTRAP_SERVERS": bootstrap}
        for key, value in self.client_properties(who).items():
            env["TIDINGS_KAFKA_" + key.upper().replace(".", "_")] = value
        return env

    def java_client_properties(self) -> str:
        """The admin's client config for Kafka's own tools (``--command-config``)."""
        lines = [f"security.protocol={self.protocol}", f"sasl.mechanism={MECHANISM}",
                 f"sasl.jaas.config={_jaas(_JAAS_SCRAM, self.admin)}"]
        if self.ca_path is not None:
            lines += ["ssl.truststore.type=PEM", f"ssl.truststore.location={self.ca_path}"]
        return "\n".join(lines) + "\n"

    def scram_format_argument(self) -> str:
        """``--add-scram`` for ``kafka-storage format``: the admin, known from the start."""
        return (f"{MECHANISM}=[name={self.admin.username},password={self.admin.password},"
                f"iterations={_SCRAM_ITERATIONS}]")

    def server_properties(self) -> dict[str, object]:
        """What a node's ``server.properties`` adds for SASL, TLS and authorization."""
        listener = self.listener.lower()
        settings: dict[str, object] = {
            "sasl.enabled.mechanisms": MECHANISM,
            f"listener.name.{listener}.sasl.enabled.mechanisms": MECHANISM,
            "sasl.mechanism.inter.broker.protocol": MECHANISM,
            f"listener.name.{listener}.{MECHANISM.lower()}.sasl.jaas.config":
                _jaas(_JAAS_SCRAM, self.admin),
            "sasl.mechanism.controller.protocol": "PLAIN",
            "listener.name.controller.sasl.enabled.mechanisms": "PLAIN",
            "listener.name.controller.plain.sasl.jaas.config": _jaas(
                _JAAS_PLAIN, self.controller,
                f'user_{self.controller.username}="{self.controller.password}"'),
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "allow.everyone.if.no.acl.found": "false",
            "super.users": f"{self.admin.principal};{self.controller.principal}",
        }
        if self.ca_path is not None:
            tls_dir = self.ca_path.parent
            settings.update({
                "ssl.keystore.type": "PEM",
                "ssl.keystore.location": str(tls_dir / "broker.pem"),
                "ssl.truststore.type": "PEM",
                "ssl.truststore.location": str(tls_dir / "ca.pem"),
                "ssl.client.auth": "none",
            })
        return settings

    # -- the file ----------------------------------------------------------------------

    def to_json(self) -> str:
        def user(c: Credentials) -> dict[str, str]:
            return {"username": c.username, "password": c.password}

        return json.dumps({
            "tls": self.tls,
            "protocol": self.protocol,
            "mechanism": MECHANISM,
            "ca_location": str(self.ca_path) if self.ca_path else None,
            "admin": user(self.admin),
            "controller": user(self.controller),
            "users": {name: user(c) for name, c in sorted(self.users.items())},
        }, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> ClusterSecurity:
        data = json.loads(text)

        def user(entry: Mapping[str, str]) -> Credentials:
            return Credentials(str(entry["username"]), str(entry["password"]))

        ca = data.get("ca_location")
        return cls(bool(data["tls"]), user(data["admin"]), user(data["controller"]),
                   {name: user(entry) for name, entry in data.get("users", {}).items()},
                   Path(ca) if ca else None)


def credentials_path(state_dir: Path) -> Path:
    return Path(state_dir) / CREDENTIALS_FILE


def save_security(state_dir: Path, security: ClusterSecurity) -> Path:
    """Write ``credentials.json`` readable by its owner only (and the tools' admin config)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    path = credentials_path(state_dir)
    for target, text in ((path, security.to_json()),
                         (state_dir / ADMIN_PROPERTIES, security.java_client_properties())):
        tmp = target.with_name(target.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        tmp.replace(target)
    return path


def load_security(state_dir: Path) -> ClusterSecurity | None:
    """The secure cluster's credentials in ``state_dir``; None for a plain cluster."""
    path = credentials_path(state_dir)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise SecurityError(f"cannot read {path}: {exc.strerror}") from None
    try:
        return ClusterSecurity.from_json(text)
    except (ValueError, KeyError, TypeError):
        raise SecurityError(f"{path} is not a credentials file tidings wrote; start the "
                            "cluster again with `tidings dev up --fresh --secure`") from None


def _jaas(module: str, who: Credentials, extra: str = "") -> str:
    tail = f" {extra}" if extra else ""
    return f'{module} required username="{who.username}" password="{who.password}"{tail};'


# -- users on a running cluster --------------------------------------------------------------


def ensure_users(admin_config: Mapping[str, Any], users: Iterable[Credentials],
                 timeout: float = 30.0) -> None:
    """Create (or reset the password of) each SCRAM user, then wait until each can log in.

    ``admin_config`` connects as a super-user. Raises :class:`SecurityError` when the
    cluster refuses.
    """
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import (
        ScramCredentialInfo,
        ScramMechanism,
        UserScramCredentialAlteration,
        UserScramCredentialUpsertion,
    )

    from tidings.kafka_clients import admin_client

    wanted = list(users)
    if not wanted:
        return
    admin = admin_client(admin_config)
    info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, _SCRAM_ITERATIONS)
    upserts: list[UserScramCredentialAlteration] = [
        UserScramCredentialUpsertion(u.username, info, u.password.encode()) for u in wanted]
    futures = admin.alter_user_scram_credentials(upserts, request_timeout=timeout)
    for name, future in futures.items():
        try:
            future.result(timeout=timeout)
        except KafkaException as exc:
            raise SecurityError(f"could not create SCRAM user {name}: "
                                f"{exc.args[0].str()}") from None
    base = {k: v for k, v in admin_config.items()
            if k not in ("sasl.username", "sasl.password")}
    for user in wanted:
        _wait_for_login({**base, "sasl.username": user.username,
                         "sasl.password": user.password}, user, timeout)


def _wait_for_login(config: Mapping[str, Any], user: Credentials, timeout: float) -> None:
    # The credential reaches every broker through the metadata log: a moment after the
    # controller accepted it, the first login may still be refused.
    from confluent_kafka import KafkaException

    from tidings.kafka_clients import admin_client

    deadline = time.monotonic() + timeout
    while True:
        admin = admin_client({**config, "socket.connection.setup.timeout.ms": 3000})
        try:
            admin.list_topics(timeout=3)
            return
        except KafkaException as exc:
            if time.monotonic() > deadline:
                raise SecurityError(f"SCRAM user {user.username} cannot log in: "
                                    f"{exc.args[0].str()}") from None
        time.sleep(0.2)


# -- TLS ------------------------------------------------------------------------------------


def write_tls_material(directory: Path, days: int = 30) -> Path:
    """A throwaway CA and a broker certificate for 127.0.0.1/localhost, as PEM files.

    Writes ``ca.pem`` (the clients' trust anchor) and ``broker.pem`` (the broker's
    unencrypted PKCS#8 key and its certificate chain, Kafka's PEM keystore) and returns
    the CA's path. Nothing here is meant to outlive a laptop's cluster.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    directory.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    until = now + dt.timedelta(days=days)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tidings local CA")])
    ca_cert = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
        .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now).not_valid_after(until)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                     False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now).not_valid_after(until)
        .add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH,
                                              x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    ca_path = directory / "ca.pem"
    ca_path.write_bytes(ca_cert.public_bytes(pem))
    keystore = key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())
    keystore += cert.public_bytes(pem) + ca_cert.public_bytes(pem)
    fd = os.open(directory / "broker.pem", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(keystore)
    return ca_path
