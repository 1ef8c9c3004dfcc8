// src/protocol.ts must be exactly what docs/protocol.schema.json (generated from the server's
// frame types) generates, so that the client's frame types cannot drift from the server's.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { generate, outputPath, schemaPath } from "../scripts/gen-protocol.mjs";

test("src/protocol.ts is what the server's protocol schema generates", () => {
  const expected = generate(readFileSync(schemaPath, "utf8"));
  const committed = readFileSync(outputPath, "utf8");
  assert.ok(
    committed === expected,
    "src/protocol.ts is stale: docs/protocol.schema.json changed; run `npm run generate` in clients/js and commit it",
  );
});

test("the generator follows the schema: a changed frame changes the types", () => {
  const schema = JSON.parse(readFileSync(schemaPath, "utf8"));
  const before = generate(JSON.stringify(schema));
  assert.match(before, /export type MessageSnapshot = \{[^}]*\n  plaintext: string;/);
  assert.match(before, /export type TruncatedMessage = \{[\s\S]*?truncated: true;/);
  assert.match(before, /\(ReactionPush & \{\n  type: "reaction.added";\n\}\)/);
  schema.$defs.MessageSnapshot.properties.pinned = { type: ["boolean", "null"] };
  schema.$defs.MessageSnapshot.required.push("pinned");
  const after = generate(JSON.stringify(schema));
  assert.notEqual(after, before);
  assert.match(after, /\n  pinned: boolean \| null;\n/);
});

test("every frame type the client reads is generated", () => {
  const source = readFileSync(outputPath, "utf8");
  for (const name of [
    "ClientFrame",
    "ServerFrame",
    "HelloReply",
    "InboxReply",
    "SubscriptionReply",
    "MessagePush",
    "MessageDeletedPush",
    "ReactionPush",
    "InboxMessageSnapshot",
    "InboxDeletedPush",
    "MessageSnapshot",
    "UserSnapshot",
    "ReferencedMessageSnapshot",
    "ReactionSnapshot",
    "FrameMessage",
    "ErrorBody",
  ]) {
    assert.match(source, new RegExp(`export type ${name} =`), name);
  }
});
