// Validates AsyncAPI documents with the reference parser (@asyncapi/parser), Avro
// payloads included (@asyncapi/avro-schema-parser). Usage: node asyncapi_validate.cjs FILE...
// Prints one JSON line per file: {"file", "errors": [...], "warnings": n, "channels", "operations"}
// and exits 1 when any file has an error. NODE_PATH points at the cached install.
const fs = require("fs");
const { Parser } = require("@asyncapi/parser");
const { AvroSchemaParser } = require("@asyncapi/avro-schema-parser");

async function main() {
  const parser = new Parser();
  parser.registerSchemaParser(AvroSchemaParser());
  let failed = false;
  for (const file of process.argv.slice(2)) {
    const { document, diagnostics } = await parser.parse(fs.readFileSync(file, "utf8"));
    const errors = diagnostics.filter((d) => d.severity === 0)
      .map((d) => `${d.code}: ${d.message} at ${JSON.stringify(d.path)}`.slice(0, 400))
      .slice(0, 30);
    failed = failed || errors.length > 0 || !document;
    console.log(JSON.stringify({
      file,
      errors,
      warnings: diagnostics.filter((d) => d.severity === 1).length,
      channels: document ? document.channels().all().map((c) => c.address()) : [],
      operations: document ? document.operations().all().map((o) => o.id()) : [],
    }));
  }
  process.exitCode = failed ? 1 : 0;  // exit() could cut a piped stdout short
}

main().catch((error) => { console.error(String(error)); process.exitCode = 2; });
