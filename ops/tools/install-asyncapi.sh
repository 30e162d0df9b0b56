# The reference AsyncAPI parser, for the test that validates `tidings docs asyncapi`
# (tests/unit/test_docs_asyncapi.py). Installed once into a cached npm prefix; the test
# finds it through $TIDINGS_CACHE/npm/asyncapi/node_modules and skips, saying why,
# when it is not there.
ASYNCAPI_PARSER_VERSION=3.6.6
ASYNCAPI_AVRO_VERSION=3.1.0
prefix="$TIDINGS_CACHE/npm/asyncapi"
stamp="$prefix/.installed-$ASYNCAPI_PARSER_VERSION-$ASYNCAPI_AVRO_VERSION"
[ -e "$stamp" ] && return 0
command -v npm >/dev/null 2>&1 || apt_install nodejs npm || return 1
mkdir -p "$prefix"
echo "tools: npm install @asyncapi/parser@$ASYNCAPI_PARSER_VERSION @asyncapi/avro-schema-parser@$ASYNCAPI_AVRO_VERSION"
npm install --prefix "$prefix" --no-audit --no-fund --loglevel=error \
  "@asyncapi/parser@$ASYNCAPI_PARSER_VERSION" \
  "@asyncapi/avro-schema-parser@$ASYNCAPI_AVRO_VERSION" >/dev/null \
  || { echo "tools: npm install of the AsyncAPI parser failed" >&2; return 1; }
touch "$stamp"
