# Grafana's published dashboard types (npm @grafana/schema) and the TypeScript compiler, for
# tests/deploy/test_grafana_dashboard.py: ops/grafana/tidings.json must type-check as a
# Dashboard under `tsc --noEmit --strict`. Installed once into the cache.
GRAFANA_SCHEMA_VERSION=13.2.3
TYPESCRIPT_VERSION=5.9.3
_dir="$TIDINGS_CACHE/npm/grafana-schema-$GRAFANA_SCHEMA_VERSION-ts-$TYPESCRIPT_VERSION"
if [ ! -f "$_dir/.complete" ]; then
  if ! command -v npm >/dev/null; then
    echo "tools: npm is missing; the Grafana dashboard check skips" >&2
    return 1
  fi
  mkdir -p "$_dir"
  echo '{"private": true}' > "$_dir/package.json"
  echo "tools: npm install @grafana/schema@$GRAFANA_SCHEMA_VERSION typescript@$TYPESCRIPT_VERSION"
  ( cd "$_dir" && npm install --no-audit --no-fund --ignore-scripts --silent \
      "@grafana/schema@$GRAFANA_SCHEMA_VERSION" "typescript@$TYPESCRIPT_VERSION" ) \
    || { echo "tools: npm install failed; the Grafana dashboard check skips" >&2; return 1; }
  touch "$_dir/.complete"
fi
ln -sfn "$_dir" "$TIDINGS_CACHE/npm/grafana-schema"
