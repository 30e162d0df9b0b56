# Apicurio Registry (the `schema_registry` test fixture, `tidings dev up --registry`) and
# Kafka's command-line tools (`tidings dev up`, the partitioning and tools tests), fetched
# from Maven Central into $TIDINGS_CACHE like the broker jars. Quick once cached.
command -v mvn >/dev/null || apt_install maven || exit 1
python=.venv/bin/python
[ -x "$python" ] || python=python3
"$python" -m tidings.kafka_local.fetch kafka tools registry >/dev/null
