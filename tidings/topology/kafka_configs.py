"""What we know about Kafka topic configs, so a typo is caught before the broker sees it."""

from __future__ import annotations

from tidings.durations import parse_duration

NUMERIC = frozenset(
    {
        "delete.retention.ms", "file.delete.delay.ms", "flush.messages", "flush.ms",
        "index.interval.bytes", "local.retention.bytes", "local.retention.ms",
        "max.compaction.lag.ms", "max.message.bytes", "message.timestamp.after.max.ms",
        "message.timestamp.before.max.ms", "min.compaction.lag.ms", "min.insync.replicas",
        "retention.bytes", "retention.ms", "segment.bytes", "segment.index.bytes",
        "segment.jitter.ms", "segment.ms", "compression.gzip.level", "compression.lz4.level",
        "compression.zstd.level",
    }
)
FRACTIONAL = frozenset({"min.cleanable.dirty.ratio"})
BOOLEAN = frozenset(
    {
        "preallocate", "remote.storage.enable", "unclean.leader.election.enable",
        "remote.log.copy.disable", "remote.log.delete.on.disable",
    }
)
TEXT = frozenset(
    {
        "cleanup.policy", "compression.type", "message.timestamp.type",
        "follower.replication.throttled.replicas", "leader.replication.throttled.replicas",
    }
)
KNOWN = NUMERIC | FRACTIONAL | BOOLEAN | TEXT

#: Configs whose lower value deletes data that exists today (``-1`` means unlimited).
RETENTION = frozenset({"retention.ms", "retention.bytes", "local.retention.ms",
                       "local.retention.bytes"})
#: Configs that make sense only on the declared topic, not on its retry/DLQ/replay copies.
COMPACTION_ONLY = frozenset(
    {"cleanup.policy", "min.compaction.lag.ms", "max.compaction.lag.ms",
     "min.cleanable.dirty.ratio", "delete.retention.ms"}
)


def normalize(key: str, value: object) -> str:
    """The string Kafka would report for ``value``; raises ``ValueError`` for a bad value."""
    if key in BOOLEAN:
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower()
        raise ValueError(f"{key} must be true or false, not {value!r}")
    if key in NUMERIC:
        if isinstance(value, bool):
            raise ValueError(f"{key} must be a number, not {value!r}")
        if isinstance(value, int):
            return str(value)
        if isinstance(value, str):
            text = value.strip()
            if text.lstrip("-").isdigit():
                return str(int(text))
            if key.endswith(".ms"):
                try:
                    return str(parse_duration(text).millis)
                except ValueError:
                    pass
                raise ValueError(
                    f"{key} must be milliseconds or a duration like 14d, not {value!r}"
                )
        raise ValueError(f"{key} must be a whole number, not {value!r}")
    if key in FRACTIONAL:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(float(value))
        raise ValueError(f"{key} must be a number, not {value!r}")
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def as_number(key: str, value: str) -> float | None:
    """A comparable number for ``value``, with ``-1`` on retention meaning infinity."""
    try:
        number = float(value)
    except ValueError:
        return None
    if key in RETENTION and number < 0:
        return float("inf")
    return number
