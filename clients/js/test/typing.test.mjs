// Typing indicators through the client: markAsTyping (throttled, fire and forget) and
// subscribeTyping ({users: [UserSnapshot]}, typing longest first, never the subscriber), over a
// real natter-local.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { Session } from "natter-client";
import { conversation, eventually, recordingWebSocket, sessions, sleep, startServer, stores, unique } from "./harness.mjs";

/** A callback that keeps every typing snapshot it was given. */
function recorder() {
  const calls = [];
  const cb = (typing) => calls.push(typing);
  cb.calls = calls;
  cb.last = () => calls[calls.length - 1];
  return cb;
}

const typers = (sub) => (sub.state.type === "active" ? sub.state.latestSnapshot.users.map((u) => u.id) : null);

/** Calls markAsTyping every second until stopped, as a keyboard would (the client throttles). */
function keepTyping(conv) {
  conv.markAsTyping();
  const timer = setInterval(() => conv.markAsTyping(), 1000);
  return () => clearInterval(timer);
}

for (const store of stores()) {
  describe(`typing (${store})`, () => {
    let server;
    const s = sessions(Session);
    before(async () => {
      // Connections live a minute here, not 3 s: the server says who types only when that
      // changes, so a push that a reconnect drops is not read back (reconnects are not what
      // these tests are about; test/reconnect.test.mjs has those).
      server = await startServer({ store, args: ["--ws-max-lifetime", "60"] });
    });
    after(async () => {
      s.closeAll();
      await server?.stop();
    });

    test("A types: B sees A's UserSnapshot, A never sees A, a send stops it at once", async () => {
      const alice = unique("alice");
      const bob = unique("bob");
      const id = await conversation(server, [alice, bob]);
      const a = s.open(server, alice);
      const b = s.open(server, bob);
      await a.user(alice).set({ name: "Alice", custom: { team: "x" } });
      await a.conversation(id).send("hi"); // so that bob has seen alice's UserSnapshot
      const aliceSnapshot = await a.user(alice).get();

      const bobSees = recorder();
      const bobTyping = b.conversation(id).subscribeTyping(bobSees);
      assert.deepEqual(bobTyping.state, { type: "pending" });
      const active = await bobTyping.connected;
      assert.deepEqual(active.latestSnapshot, { users: [] });
      assert.equal(bobSees.calls.length, 1, "called once when active");
      const aliceSees = recorder();
      const aliceTyping = a.conversation(id).subscribeTyping(aliceSees);
      await aliceTyping.connected;

      const stop = keepTyping(a.conversation(id));
      try {
        await eventually(() => typers(bobTyping)?.[0] === alice, { what: "bob seeing alice type", timeout: 20000 });
        assert.deepEqual(bobTyping.state.latestSnapshot, { users: [aliceSnapshot] }, "alice's UserSnapshot");
        assert.deepEqual(bobSees.last(), bobTyping.state.latestSnapshot);

        // bob types too: alice sees bob only, bob sees alice only.
        const stopBob = keepTyping(b.conversation(id));
        try {
          await eventually(() => typers(aliceTyping)?.[0] === bob, { what: "alice seeing bob type", timeout: 20000 });
          assert.deepEqual(typers(aliceTyping), [bob]);
        } finally {
          stopBob();
        }
        await b.conversation(id).send("bob sent");
        await eventually(() => typers(aliceTyping)?.length === 0, { what: "bob's send ending his typing" });
        for (const call of aliceSees.calls) {
          assert.ok(!call.users.some((u) => u.id === alice), "alice's own callback never lists alice");
        }
        for (const call of bobSees.calls) assert.ok(!call.users.some((u) => u.id === bob));
      } finally {
        stop();
      }

      // A sends: B sees nobody, well before the 10 s would have run out.
      const sentAt = Date.now();
      await a.conversation(id).send("sent");
      await eventually(() => typers(bobTyping)?.length === 0, { what: "alice's send ending her typing", timeout: 8000 });
      assert.ok(Date.now() - sentAt < 8000);

      bobTyping.unsubscribe();
      aliceTyping.unsubscribe();
      assert.deepEqual(await bobTyping.terminated, { type: "unsubscribed" });
    });

    test("typing stops about 10 s after the last call; the client sends one frame per 3 s", async () => {
      const alice = unique("alice");
      const bob = unique("bob");
      const id = await conversation(server, [alice, bob]);
      const rec = recordingWebSocket();
      const sent = [];
      class Counting extends rec.WebSocket {
        send(data) {
          if (JSON.parse(data).action === "typing") sent.push(Date.now());
          super.send(data);
        }
      }
      const a = s.open(server, alice, { WebSocket: Counting });
      const b = s.open(server, bob);
      const bobSees = recorder();
      const bobTyping = b.conversation(id).subscribeTyping(bobSees);
      await bobTyping.connected;
      // Let alice's socket open, then call it 30 times in 1.5 s.
      a.conversation(id).markAsTyping();
      await eventually(() => sent.length === 1, { what: "the first typing frame" });
      for (let i = 0; i < 30; i++) {
        a.conversation(id).markAsTyping();
        await sleep(50);
      }
      assert.equal(sent.length, 1, "one frame for calls within 3 s");
      const lastCall = Date.now();
      await eventually(() => typers(bobTyping)?.[0] === alice, { what: "bob seeing alice type", timeout: 20000 });
      // Without a participant's name in any message bob saw, the snapshot has the id only.
      assert.deepEqual(bobTyping.state.latestSnapshot.users, [{ id: alice, name: null, photoUrl: null, role: "default", custom: {} }]);
      await eventually(() => typers(bobTyping)?.length === 0, { what: "the typing ending by itself", timeout: 30000 });
      const endedAfter = Date.now() - lastCall;
      assert.ok(endedAfter >= 5000, `typing ended ${endedAfter} ms after the last call: it lasts about 10 s`);
      assert.ok(bobSees.calls.some((c) => c.users.length === 1), "the callback saw alice");
      assert.deepEqual(bobSees.last(), { users: [] });
      bobTyping.unsubscribe();
    });

    test("subscribeTyping: shared per conversation, errors for strangers, nothing after unsubscribe", async () => {
      const alice = unique("alice");
      const bob = unique("bob");
      const id = await conversation(server, [alice, bob]);
      const a = s.open(server, alice);
      const b = s.open(server, bob);
      const one = recorder();
      const two = recorder();
      const first = b.conversation(id).subscribeTyping(one);
      const second = b.conversation(id).subscribeTyping(two);
      await Promise.all([first.connected, second.connected]);
      first.unsubscribe();
      assert.deepEqual(first.state, { type: "unsubscribed" });
      const stop = keepTyping(a.conversation(id));
      try {
        await eventually(() => typers(second)?.[0] === alice, { what: "the second one seeing alice", timeout: 20000 });
      } finally {
        stop();
      }
      assert.equal(one.calls.length, 1, "the unsubscribed one is not called");
      second.unsubscribe();

      const stranger = s.open(server, unique("eve"));
      const refused = stranger.conversation(id).subscribeTyping();
      await assert.rejects(refused.connected, { code: "not_found" });
      assert.equal(refused.state.type, "error");
      assert.equal(refused.state.error.code, "not_found");
    });
  });
}
