// The HTTP half of the API: users, conversations, participants, messages, reactions, errors and
// tokens, against a real natter-local (in memory and on DynamoDB).
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { Session, NatterError } from "natter-client";
import { conversation, mintToken, sessions, startServer, stores, unique, SIGNING_SECRET } from "./harness.mjs";

for (const store of stores()) {
  describe(`HTTP API (${store})`, () => {
    let server;
    const s = sessions(Session);
    before(async () => {
      server = await startServer({ store });
    });
    after(async () => {
      s.closeAll();
      await server?.stop();
    });

    test("userId comes from the token's sub; users get and set", async () => {
      const alice = unique("alice:github");
      const session = s.open(server, alice);
      assert.equal(session.userId, alice);
      assert.equal(await session.user(alice).get(), null, "a user never written is null");
      await session.user(alice).set({ name: "Alice", photoUrl: "https://example.com/a.png", custom: { team: "blue" } });
      const user = await session.user(alice).get();
      assert.deepEqual(user, { id: alice, name: "Alice", photoUrl: "https://example.com/a.png", role: "default", custom: { team: "blue" } });
      await session.user(alice).set({ name: null });
      assert.equal((await session.user(alice).get()).name, null);
    });

    test("refused calls reject with NatterError carrying code, status and message", async () => {
      const alice = unique("alice");
      const session = s.open(server, alice);
      const refused = await session.user(alice).set({ role: "moderator" }).then(
        () => null,
        (e) => e,
      );
      assert.ok(refused instanceof NatterError, `${refused}`);
      assert.ok(refused instanceof Error);
      assert.equal(refused.code, "forbidden");
      assert.equal(refused.status, 403);
      assert.ok(refused.message.length > 0);
      const other = await session.user(unique("bob")).get().then(
        () => null,
        (e) => e,
      );
      assert.equal(other?.code, "forbidden", "reading another user is refused, not null");
      const invalid = await session.user("has/slash").set({ name: "x" }).then(
        () => null,
        (e) => e,
      );
      assert.equal(invalid?.status, 400);
      assert.equal(invalid?.code, "invalid_request");
    });

    test("conversations: set, get, get of a missing one or as a non-participant is null, participants", async () => {
      const alice = unique("alice");
      const bob = unique("bob");
      const carol = unique("carol");
      const a = s.open(server, alice);
      const b = s.open(server, bob);
      const c = s.open(server, carol);
      const id = unique("lunch");
      const conv = a.conversation(id);
      assert.equal(conv.id, id);
      assert.equal(await conv.get(), null);
      await conv.set({ subject: "Lunch?", custom: { place: "canteen" }, participants: [bob] });
      const snapshot = await conv.get();
      assert.equal(snapshot.id, id);
      assert.equal(snapshot.subject, "Lunch?");
      assert.deepEqual(snapshot.custom, { place: "canteen" });
      assert.deepEqual(snapshot.participants, { [alice]: { access: "ReadWrite" }, [bob]: { access: "ReadWrite" } });
      assert.equal(typeof snapshot.createdAt, "number");
      assert.equal(await c.conversation(id).get(), null, "a non-participant sees nothing");

      await conv.participant(carol).set({ access: "Read" });
      assert.equal((await c.conversation(id).get()).participants[carol].access, "Read");
      const readOnly = await c.conversation(id).send("may I?").then(
        () => null,
        (e) => e,
      );
      assert.equal(readOnly?.code, "forbidden");
      assert.equal(readOnly?.status, 403);
      await c.conversation(id).participant(carol).delete();
      assert.equal(await c.conversation(id).get(), null, "carol left");
      assert.ok((await b.conversation(id).get()).participants[bob]);
    });

    test("messages: send, get, edit, delete, replies, idempotency", async () => {
      const alice = unique("alice");
      const bob = unique("bob");
      const id = await conversation(server, [alice, bob]);
      const a = s.open(server, alice);
      const b = s.open(server, bob);
      const conv = a.conversation(id);

      const ref = await conv.send("*hi* there");
      assert.equal(ref.conversationId, id);
      assert.match(ref.id, /^msg_/);
      const sent = await ref.get();
      assert.equal(sent.plaintext, "hi there");
      assert.deepEqual(sent.content, [{ type: "text", children: [{ type: "bold", children: ["hi"] }, " there"] }]);
      assert.equal(sent.sender.id, alice);
      assert.equal(sent.origin, "web");
      assert.equal(sent.editedAt, null);

      const reply = await b.conversation(id).send({ text: "yes", referencedMessage: ref, custom: { mood: "good" } });
      const replied = await reply.get();
      assert.equal(replied.referencedMessage.id, ref.id);
      assert.deepEqual(replied.custom, { mood: "good" });
      const reply2 = await b.conversation(id).send({ content: [{ type: "text", children: ["by id"] }], referencedMessage: ref.id });
      assert.equal((await reply2.get()).referencedMessage.id, ref.id);

      const key = unique("key");
      const first = await conv.send({ text: "once", idempotencyKey: key });
      const again = await conv.send({ text: "once", idempotencyKey: key });
      assert.equal(again.id, first.id, "the same idempotency key gives the same message");

      await ref.edit("*edited*");
      const edited = await conv.message(ref.id).get();
      assert.equal(edited.plaintext, "edited");
      assert.equal(typeof edited.editedAt, "number");
      await ref.edit({ custom: { pinned: "yes" } });
      assert.deepEqual((await ref.get()).custom, { pinned: "yes" });
      await ref.edit({ custom: { pinned: null } });
      assert.deepEqual((await ref.get()).custom, {});

      const notMine = await b.conversation(id).message(ref.id).edit("mine now").then(
        () => null,
        (e) => e,
      );
      assert.equal(notMine?.code, "forbidden");

      await ref.delete();
      assert.equal(await ref.get(), null, "a deleted message is null");
      await ref.delete(); // deleting a missing message succeeds
      assert.equal(await conv.message("msg_doesnotexist").get(), null);
      assert.equal(await s.open(server, unique("eve")).conversation(id).message(first.id).get(), null, "not a participant");
    });

    test("reactions: add, remove, idempotent, counted per user, bad emoji refused", async () => {
      const alice = unique("alice");
      const bob = unique("bob");
      const id = await conversation(server, [alice, bob]);
      const a = s.open(server, alice);
      const b = s.open(server, bob);
      const ref = await a.conversation(id).send("react to me");
      const thumbs = ref.reaction("👍");
      assert.equal(thumbs.emoji, "👍");
      assert.equal(thumbs.messageId, ref.id);
      assert.equal(thumbs.conversationId, id);
      await thumbs.add();
      await thumbs.add();
      await b.conversation(id).message(ref.id).reaction("👍").add();
      await b.conversation(id).message(ref.id).reaction(":cat_roomba:").add();
      assert.deepEqual((await ref.get()).reactions, [
        { emoji: "👍", count: 2, currentUserReacted: true },
        { emoji: ":cat_roomba:", count: 1, currentUserReacted: false },
      ]);
      await thumbs.remove();
      await thumbs.remove();
      assert.deepEqual((await ref.get()).reactions, [
        { emoji: "👍", count: 1, currentUserReacted: false },
        { emoji: ":cat_roomba:", count: 1, currentUserReacted: false },
      ]);
      const bad = await ref.reaction("not an emoji").add().then(
        () => null,
        (e) => e,
      );
      assert.ok(bad instanceof NatterError);
      assert.equal(bad.status, 400);
    });

    test("tokenFetcher is called at start and again when a call gets 401", async () => {
      const alice = unique("alice");
      let calls = 0;
      const session = s.open(server, alice, {
        tokenFetcher: async () => {
          calls++;
          // The first token is signed with the wrong secret, so the server refuses it.
          return calls === 1 ? mintToken(alice, { secret: "not-the-signing-secret-0123456789" }) : mintToken(alice);
        },
      });
      await new Promise((r) => setTimeout(r, 0));
      assert.equal(calls, 1, "called at start");
      await session.user(alice).set({ name: "Alice" });
      assert.equal(calls, 2, "called again after the 401");
      assert.equal((await session.user(alice).get()).name, "Alice");
      assert.equal(calls, 2, "the good token is kept");
      assert.equal(session.userId, alice);

      // An expired token is refused too, and renewed.
      let expiredCalls = 0;
      const renewed = s.open(server, alice, {
        tokenFetcher: async () => (++expiredCalls === 1 ? mintToken(alice, { exp: Math.floor(Date.now() / 1000) - 10 }) : mintToken(alice)),
      });
      assert.equal((await renewed.user(alice).get()).name, "Alice");
      assert.equal(expiredCalls, 2);
    });

    test("without a tokenFetcher a refused token rejects with unauthorized", async () => {
      const alice = unique("alice");
      const session = new Session({ url: server.url, token: mintToken(alice, { secret: SIGNING_SECRET + "x" }) });
      const e = await session.user(alice).get().then(
        () => null,
        (e) => e,
      );
      assert.ok(e instanceof NatterError);
      assert.equal(e.status, 401);
      assert.equal(e.code, "unauthorized");
      session.close();
    });
  });
}
