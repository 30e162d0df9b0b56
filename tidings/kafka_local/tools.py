"""Kafka's own command-line tools, as small scripts next to a local cluster.

``tidings dev up`` writes ``<state_dir>/bin/kafka-topics``,
``kafka-consumer-groups`` and the other scripts below. Each runs the tool's main
class from the Maven Central ``kafka-tools`` jars (same version as the broker) on
the Java that runs the broker, exactly as Kafka's ``bin/*.sh`` would, so operators
use the commands they know::

    .tidings/dev/bin/kafka-consumer-groups --bootstrap-server 127.0.0.1:19092 --list
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from pathlib import Path

from tidings.kafka_local.artifacts import KAFKA_VERSION, ensure_kafka_libs, ensure_kafka_tools
from tidings.kafka_local.java import find_java

#: Script name -> (main class, classpath: "tools" = kafka-tools, "libs" = the broker's).
TOOLS: Mapping[str, tuple[str, str]] = {
    "kafka-topics": ("org.apache.kafka.tools.TopicCommand", "tools"),
    "kafka-consumer-groups": ("org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
                              "tools"),
    "kafka-console-producer": ("org.apache.kafka.tools.ConsoleProducer", "tools"),
    "kafka-console-consumer": ("org.apache.kafka.tools.consumer.ConsoleConsumer", "tools"),
    "kafka-get-offsets": ("org.apache.kafka.tools.GetOffsetShell", "tools"),
    "kafka-delete-records": ("org.apache.kafka.tools.DeleteRecordsCommand", "tools"),
    # kafka-configs is still Scala, in the broker's own jar.
    "kafka-configs": ("kafka.admin.ConfigCommand", "libs"),
}

LOG_CONFIG = "tools-log4j2.properties"
_LOG_CONFIG_TEXT = """\
# Kafka's tools print their results on stdout; log only warnings, to stderr.
status = warn
appender.stderr.type = Console
appender.stderr.name = STDERR
appender.stderr.target = SYSTEM_ERR
appender.stderr.layout.type = PatternLayout
appender.stderr.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.stderr.ref = STDERR
"""


def tools_bin_dir(state_dir: Path) -> Path:
    """Where the scripts of a local cluster's state dir live."""
    return Path(state_dir) / "bin"


def render_script(name: str, java: Path, classpath: Path, log_config: Path) -> str:
    """The shell script that runs tool ``name``; ``$JAVA`` overrides the Java."""
    main_class, _ = TOOLS[name]
    return (
        "#!/bin/sh\n"
        f"# {name} from Apache Kafka {KAFKA_VERSION}, written by `tidings dev up`.\n"
        f'exec "${{JAVA:-{java}}}" -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \\\n'
        # Keys and values typed at the console producer are UTF-8 whatever the locale.
        "  -Dfile.encoding=UTF-8 -Dstdout.encoding=UTF-8 \\\n"
        f"  -Dlog4j2.configurationFile={shlex.quote(str(log_config))} \\\n"
        # The JVM expands a trailing '*' itself: quoted, the shell must not.
        f"  -cp {shlex.quote(str(classpath) + '/*')} {main_class} \"$@\"\n"
    )


def write_tool_scripts(bin_dir: Path, java: Path | None = None) -> list[Path]:
    """Fetch the tools once (cached like the broker jars) and write their scripts.

    Returns the scripts written. Raises :class:`~tidings.errors.TidingsError` when Java
    or the download is missing.
    """
    java = java or find_java().path
    classpaths = {"tools": ensure_kafka_tools(), "libs": ensure_kafka_libs()}
    bin_dir.mkdir(parents=True, exist_ok=True)
    log_config = bin_dir / LOG_CONFIG
    log_config.write_text(_LOG_CONFIG_TEXT, encoding="utf-8")
    written = []
    for name, (_, which) in TOOLS.items():
        script = bin_dir / name
        tmp = script.with_name(script.name + ".tmp")
        tmp.write_text(render_script(name, java, classpaths[which], log_config),
                       encoding="utf-8")
        tmp.chmod(0o755)
        tmp.replace(script)
        written.append(script)
    return written
