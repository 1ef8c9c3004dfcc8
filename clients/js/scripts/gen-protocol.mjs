#!/usr/bin/env node
// Generates src/protocol.ts (the WebSocket frame and snapshot types) from the JSON Schema that the
// server's frame types generate (docs/protocol.schema.json), so that client and server share one
// definition of every frame.
//
//   node scripts/gen-protocol.mjs           rewrite src/protocol.ts
//   node scripts/gen-protocol.mjs --check   exit 1 when src/protocol.ts is not what the schema gives
//
// It covers the subset of JSON Schema the server's generator emits: $ref into $defs, oneOf/anyOf,
// const, enum, type (also as a list), object properties/required/additionalProperties, array
// items, the `true` schema, and a $ref or properties beside a oneOf (an intersection).
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
export const schemaPath = join(here, "..", "..", "..", "docs", "protocol.schema.json");
export const outputPath = join(here, "..", "src", "protocol.ts");

const REF_PREFIX = "#/$defs/";

function comment(text, indent) {
  if (!text) return "";
  const lines = text.split("\n").map((l) => l.replace(/\*\//g, "*\\/"));
  return `${indent}/**\n${lines.map((l) => `${indent} *${l ? " " + l : ""}`).join("\n")}\n${indent} */\n`;
}

function propertyName(name) {
  return /^[A-Za-z_$][A-Za-z0-9_$]*$/.test(name) ? name : JSON.stringify(name);
}

/** `type` in parentheses when it has a top-level `|` or `&` (outside braces, brackets and strings). */
function wrap(type) {
  let depth = 0;
  let quoted = false;
  for (let i = 0; i < type.length; i++) {
    const c = type[i];
    if (quoted) {
      if (c === "\\") i++;
      else if (c === '"') quoted = false;
    } else if (c === '"') quoted = true;
    else if ("{([".includes(c)) depth++;
    else if ("})]".includes(c)) depth--;
    else if (depth === 0 && (c === "|" || c === "&")) return `(${type})`;
  }
  return type;
}

function union(types) {
  const unique = [...new Set(types)];
  return unique.length === 1 ? unique[0] : unique.map(wrap).join(" | ");
}

class Generator {
  constructor(schema) {
    this.schema = schema;
    this.defs = schema.$defs ?? {};
    /** Named types made from titled members of a oneOf (e.g. `HelloFrame`), in order. */
    this.extra = [];
  }

  ref(ref) {
    if (!ref.startsWith(REF_PREFIX)) throw new Error(`unsupported $ref ${ref}`);
    const name = ref.slice(REF_PREFIX.length);
    if (!(name in this.defs)) throw new Error(`$ref to a missing definition ${ref}`);
    return name;
  }

  /** The TypeScript type of `s`, written at `indent` (for the lines of object types). */
  type(s, indent) {
    if (s === true || s === undefined) return "unknown";
    if (s === false) return "never";
    const parts = [];
    if (s.$ref) parts.push(this.ref(s.$ref));
    const own = this.ownType(s, indent);
    if (own !== null) parts.push(own);
    const alternatives = s.oneOf ?? s.anyOf;
    if (alternatives) {
      parts.push(
        union(
          alternatives.map((member) => {
            if (member && typeof member === "object" && member.title && member.type === "object") {
              this.extra.push([member.title, member]);
              return member.title;
            }
            return this.type(member, indent);
          }),
        ),
      );
    }
    if (parts.length === 0) return "unknown";
    return parts.length === 1 ? parts[0] : parts.map(wrap).join(" & ");
  }

  /** The type from `const`, `enum`, `type` and `properties`, or null when the schema has none. */
  ownType(s, indent) {
    if ("const" in s) return JSON.stringify(s.const);
    if (s.enum) return union(s.enum.map((v) => JSON.stringify(v)));
    const types = Array.isArray(s.type) ? s.type : s.type ? [s.type] : [];
    if (types.length === 0) {
      return s.properties ? this.object(s, indent) : null;
    }
    return union(
      types.map((t) => {
        switch (t) {
          case "string":
            return "string";
          case "integer":
          case "number":
            return "number";
          case "boolean":
            return "boolean";
          case "null":
            return "null";
          case "array":
            return `${wrap(this.type(s.items, indent))}[]`;
          case "object":
            return this.object(s, indent);
          default:
            throw new Error(`unsupported type ${t}`);
        }
      }),
    );
  }

  object(s, indent) {
    const props = s.properties ?? {};
    const names = Object.keys(props);
    const required = new Set(s.required ?? []);
    const extra = s.additionalProperties;
    if (names.length === 0) {
      if (extra && typeof extra === "object") {
        return `{ [key: string]: ${this.type(extra, indent)} }`;
      }
      if (s.oneOf || s.anyOf || s.$ref) return null;
      return extra === false ? "Record<string, never>" : "{ [key: string]: unknown }";
    }
    const inner = indent + "  ";
    const lines = names.map((name) => {
      const p = props[name];
      const doc = p && typeof p === "object" ? comment(p.description, inner) : "";
      const optional = required.has(name) ? "" : "?";
      return `${doc}${inner}${propertyName(name)}${optional}: ${this.type(p, inner)};`;
    });
    if (extra && typeof extra === "object") {
      lines.push(`${inner}[key: string]: ${this.type(extra, inner)};`);
    }
    return `{\n${lines.join("\n")}\n${indent}}`;
  }

  declaration(name, s) {
    const body = this.type(s, "");
    return `${comment(s.description, "")}export type ${name} = ${body};\n`;
  }

  generate() {
    const out = [];
    for (const [name, s] of Object.entries(this.defs)) {
      out.push(this.declaration(name, s));
      while (this.extra.length > 0) {
        const [title, member] = this.extra.shift();
        out.push(this.declaration(title, { ...member, title: undefined }));
      }
    }
    const root = { description: this.schema.description, oneOf: this.schema.oneOf };
    out.push(this.declaration("ProtocolFrame", root));
    return [
      "// Generated by scripts/gen-protocol.mjs from docs/protocol.schema.json (itself generated from",
      "// the server's shared/src/protocol.rs). Do not edit: run `npm run generate` in clients/js.",
      "",
      out.join("\n"),
    ].join("\n");
  }
}

/** The TypeScript source for a schema's text. */
export function generate(schemaText) {
  return new Generator(JSON.parse(schemaText)).generate();
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const source = generate(readFileSync(schemaPath, "utf8"));
  if (process.argv.includes("--check")) {
    let current = "";
    try {
      current = readFileSync(outputPath, "utf8");
    } catch {}
    if (current !== source) {
      console.error(
        "src/protocol.ts is stale: it differs from what docs/protocol.schema.json generates; run `npm run generate`",
      );
      process.exit(1);
    }
    console.log("src/protocol.ts is current");
  } else {
    writeFileSync(outputPath, source);
    console.log(`wrote ${outputPath}`);
  }
}
