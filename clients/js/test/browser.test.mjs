// The demo page in a real browser: headless Chromium (Debian's package, driven by
// playwright-core; no browser is downloaded) with two users in two pages chatting live through
// natter-local on its embedded store. A message, a reply, a reaction, an edit, a delete and an
// inbox message made in one page appear in the other; a conversation written in shows in the
// other's list with an unread badge until opened; typing shows as "… is typing". Screenshots go to
// `target/screenshots/` (the README's comes from there).

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";

import { startServer, repo as repoRoot } from "./harness.mjs";

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const SCREENSHOTS = join(repoRoot, "target", "screenshots");
// Generous: this is how long a page may take to show what the other did, not a measurement.
const SEEN_WITHIN = 20_000;

let gateway;
let browser;

before(async () => {
  // Dev secrets, so that the page can have a token for a typed-in user id.
  gateway = await startServer({ devSecrets: true });
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    // As root in a container, and with the machine's closed network: no sandbox, and nothing
    // in the background that would try to reach the internet.
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  mkdirSync(SCREENSHOTS, { recursive: true });
});

after(async () => {
  await browser?.close();
  await gateway?.stop();
});

/** A page signed in as `userId`, in a context of its own (its own storage). */
async function signedIn(userId) {
  const context = await browser.newContext({ viewport: { width: 1200, height: 760 } });
  const page = await context.newPage();
  const problems = [];
  page.on("pageerror", (error) => problems.push(String(error)));
  page.on("console", (message) => {
    // A failed request is logged by the browser too; the responses are checked below instead.
    if (message.type() === "error" && !message.text().startsWith("Failed to load resource")) {
      problems.push(message.text());
    }
  });
  page.on("response", (response) => {
    const { pathname } = new URL(response.url());
    // Opening a conversation nobody has made yet asks for it first: its 404 is the answer
    // that `get()` turns into `null`.
    const expected = response.status() === 404 && response.request().method() === "GET" &&
      /^\/v1\/conversations\/[^/]+$/.test(pathname);
    if (response.status() >= 400 && !expected) {
      problems.push(`${response.request().method()} ${pathname}: ${response.status()}`);
    }
  });
  await page.goto(gateway.url + "/");
  await page.fill("#user-id", userId);
  await page.click("#sign-in button[type=submit]");
  await page.waitForSelector("#app:not([hidden])");
  await page.waitForSelector(`#whoami:has-text("${userId}")`);
  return { page, problems };
}

async function openConversation(page, conversationId) {
  await page.fill("#conversation-id", conversationId);
  await page.click("#open-conversation button[type=submit]");
  await page.waitForSelector(`#conversation-list li.open[data-conversation-id="${conversationId}"]`);
  await page.waitForSelector("#load-state:has-text('beginning')");
}

/** The message element whose text contains `text`. */
function messageWith(page, text) {
  return page.locator(".message", { hasText: text });
}

test("two users chat live in two pages", async () => {
  const conversationId = `demo-${Date.now()}`;
  const alice = await signedIn("alice");
  const bob = await signedIn("bob");

  await openConversation(alice.page, conversationId);
  await alice.page.fill("#invite-user", "bob");
  await alice.page.click("#invite button[type=submit]");
  await alice.page.waitForSelector("#status:has-text('added bob')");
  await openConversation(bob.page, conversationId);

  // A formatted message from alice reaches bob, formatted.
  await alice.page.fill("#compose-text", "hello *bob*, lunch?");
  await alice.page.press("#compose-text", "Enter");
  const inBob = messageWith(bob.page, "lunch?");
  await inBob.waitFor({ timeout: SEEN_WITHIN });
  assert.equal(await inBob.locator(".content strong").textContent(), "bob");
  assert.equal(await inBob.locator(".sender").textContent(), "alice");

  // bob reacts and replies; alice sees both.
  await inBob.locator('button.react[data-emoji="👍"]').click();
  const inAlice = messageWith(alice.page, "lunch?");
  await inAlice.locator('.reaction[data-emoji="👍"]:has-text("1")').waitFor({ timeout: SEEN_WITHIN });
  await inBob.locator("button.reply").click();
  await bob.page.fill("#compose-text", "yes, at noon");
  await bob.page.press("#compose-text", "Enter");
  const reply = messageWith(alice.page, "yes, at noon");
  await reply.waitFor({ timeout: SEEN_WITHIN });
  assert.match(await reply.locator(".quote").textContent(), /lunch\?/);

  // alice edits her message; bob sees the new text, marked edited, with bob's reaction kept.
  alice.page.once("dialog", (dialog) => dialog.accept("hello *bob*, lunch at noon?"));
  await inAlice.locator("button.edit").click();
  const edited = messageWith(bob.page, "lunch at noon?");
  await edited.locator(".edited").waitFor({ timeout: SEEN_WITHIN });
  await edited.locator('.reaction.mine[data-emoji="👍"]').waitFor({ timeout: SEEN_WITHIN });

  // An inbox message from alice to bob shows in bob's inbox panel.
  await alice.page.fill("#inbox-to", "bob");
  await alice.page.fill("#inbox-message", '{"invite": "lunch", "at": 12}');
  await alice.page.click("#inbox-send button[type=submit]");
  await bob.page.locator("#inbox-list li", { hasText: '"invite": "lunch"' }).waitFor({ timeout: SEEN_WITHIN });

  // alice starts a second conversation with bob and writes in it: it shows in bob's list, bold,
  // with an unread badge, while bob still has the first one open.
  const second = `${conversationId}-plans`;
  await openConversation(alice.page, second);
  await alice.page.fill("#invite-user", "bob");
  await alice.page.click("#invite button[type=submit]");
  await alice.page.waitForSelector("#status:has-text('added bob')");
  await alice.page.fill("#compose-text", "are you free on Friday?");
  await alice.page.press("#compose-text", "Enter");
  const secondInBob = bob.page.locator(`#conversation-list li[data-conversation-id="${second}"]`);
  await secondInBob.locator(".badge:text-is('1')").waitFor({ timeout: SEEN_WITHIN });
  assert.match(await secondInBob.getAttribute("class"), /\bunread\b/, "an unread conversation is bold");
  assert.match(await secondInBob.locator(".preview").textContent(), /are you free on Friday\?/);
  // Latest activity first: the second conversation is above the first.
  const order = await bob.page.locator("#conversation-list li[data-conversation-id]").evaluateAll(
    (items) => items.map((li) => li.dataset.conversationId),
  );
  assert.deepEqual(order.slice(0, 2), [second, conversationId]);
  // The open one was read as its messages came in: no badge.
  await bob.page.locator(`#conversation-list li.open[data-conversation-id="${conversationId}"]:not(.unread)`).waitFor({ timeout: SEEN_WITHIN });
  assert.equal(await bob.page.locator(`#conversation-list li[data-conversation-id="${conversationId}"] .badge`).count(), 0);

  // alice types in the first conversation: bob, who has it open, sees that she is typing.
  // The gateway cuts connections every 3 s, and a typing push that a reconnect of bob's drops is
  // not sent again while alice types on: then alice sends what she typed, which ends her typing,
  // and types again (at most three times).
  await openConversation(alice.page, conversationId);
  for (let attempt = 1; ; attempt++) {
    await alice.page.locator("#compose-text").pressSequentially("on my way", { delay: 40 });
    try {
      await bob.page.locator("#typing:has-text('alice is typing…')").waitFor({ timeout: 6000 });
      break;
    } catch (e) {
      if (attempt === 3) throw e;
      await alice.page.press("#compose-text", "Enter");
      await messageWith(bob.page, "on my way").last().waitFor({ timeout: SEEN_WITHIN });
    }
  }
  assert.equal(await alice.page.locator("#typing").textContent(), "", "alice is not told that she is typing");

  await alice.page.screenshot({ path: join(SCREENSHOTS, "demo-alice.png") });
  await bob.page.screenshot({ path: join(SCREENSHOTS, "demo-bob.png") });

  // alice sends what she typed: bob's typing line clears.
  await alice.page.press("#compose-text", "Enter");
  await messageWith(bob.page, "on my way").last().waitFor({ timeout: SEEN_WITHIN });
  await bob.page.waitForFunction(() => document.getElementById("typing").textContent === "", null, { timeout: SEEN_WITHIN });

  // bob deletes his reply; it leaves alice's page.
  await messageWith(bob.page, "yes, at noon").locator("button.delete").click();
  await reply.waitFor({ state: "detached", timeout: SEEN_WITHIN });

  // bob opens the second conversation: it is read, and its badge goes.
  await secondInBob.click();
  await messageWith(bob.page, "are you free on Friday?").waitFor({ timeout: SEEN_WITHIN });
  await bob.page.locator(`#conversation-list li.open[data-conversation-id="${second}"]:not(.unread)`).waitFor({ timeout: SEEN_WITHIN });
  assert.equal(await secondInBob.locator(".badge").count(), 0, "no unread badge once opened");

  assert.deepEqual(alice.problems, [], "alice's page logged errors");
  assert.deepEqual(bob.problems, [], "bob's page logged errors");
});
