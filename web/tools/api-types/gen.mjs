#!/usr/bin/env node
// OpenAPI JSON (file argument, or stdin) -> TypeScript types on stdout, via openapi-typescript.
//
// This lives in its own package because openapi-typescript builds its output with the
// TypeScript 5 compiler API, which TypeScript 7 (the front end's type checker) no longer
// ships; npm installs the two side by side (TypeScript 5 only under this folder).
import { readFileSync } from "node:fs";
import openapiTS, { astToString } from "openapi-typescript";

const [source = "/dev/stdin"] = process.argv.slice(2);
let schema;
try {
  schema = JSON.parse(readFileSync(source, "utf8"));
} catch (err) {
  console.error(`inficond-gen-api-types: cannot read an OpenAPI JSON from ${source}: ${err.message}`);
  process.exit(2);
}
const ast = await openapiTS(schema, { rootTypes: true, rootTypesNoSchemaPrefix: true, alphabetize: false });
process.stdout.write(astToString(ast));
