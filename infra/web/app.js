// The demo chat page: everything it does goes through natter-client, as an app's would.
// DOM is built with createElement and textContent only: nothing a user sent is parsed as HTML.

import { Session, NatterError } from "/natter-client.js";

const $ = (id) => document.getElementById(id);
const QUICK_REACTIONS = ["👍", "❤️", "😂", "🎉"];
const SAFE_SCHEMES = ["http:", "https:", "mailto:", "tel:"];

let session = null;
let me = null;
/** The open conversation: its ref, its subscription, and the message being replied to. */
let open = null;

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (name === "class") node.className = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (value !== undefined && value !== null && value !== false) node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) node.append(child);
  }
  return node;
}

function status(text, isError = false) {
  const node = $("status");
  node.textContent = text;
  node.classList.toggle("error", isError);
}

function report(error) {
  const text = error instanceof NatterError ? `${error.code}: ${error.message}` : String(error?.message ?? error);
  status(text, true);
}

/** A link's URL, if it is one a page may follow. */
function safeUrl(url) {
  try {
    const parsed = new URL(url);
    return SAFE_SCHEMES.includes(parsed.protocol) ? parsed.href : null;
  } catch {
    return null;
  }
}

function link(url, ...children) {
  const href = safeUrl(url);
  return href ? el("a", { href, target: "_blank", rel: "noopener noreferrer" }, ...children) : el("span", {}, ...children);
}

// ---- Content: TalkJS-shaped blocks and text nodes to DOM ----

function renderNodes(nodes) {
  return (nodes ?? []).map(renderNode);
}

function renderNode(node) {
  if (typeof node === "string") return document.createTextNode(node);
  switch (node.type) {
    case "bold": return el("strong", {}, renderNodes(node.children));
    case "italic": return el("em", {}, renderNodes(node.children));
    case "strikethrough": return el("s", {}, renderNodes(node.children));
    case "codeSpan": return el("code", {}, node.text);
    case "link": return link(node.url, renderNodes(node.children));
    case "autoLink": return link(node.url, node.text);
    case "actionLink":
    case "actionButton": return el("button", { type: "button", disabled: true, title: node.action }, renderNodes(node.children));
    case "customEmoji": return el("span", { class: "custom-emoji" }, node.text);
    case "mention": return el("span", { class: "mention" }, "@", node.text);
    case "bulletList": return el("ul", {}, renderNodes(node.children));
    case "bulletPoint": return el("li", {}, renderNodes(node.children));
    default: return document.createTextNode(JSON.stringify(node));
  }
}

function renderBlock(block) {
  switch (block.type) {
    case "text": return el("p", {}, renderNodes(block.children));
    case "file": {
      const href = safeUrl(block.url);
      if (href && block.subtype === "image") return el("a", { href, target: "_blank", rel: "noopener noreferrer" }, el("img", { src: href, alt: block.filename }));
      return el("p", {}, "📎 ", link(block.url, block.filename));
    }
    case "location":
      return el("p", {}, "📍 ", link(`https://www.openstreetmap.org/?mlat=${block.latitude}&mlon=${block.longitude}`, `${block.latitude}, ${block.longitude}`));
    default: return el("p", {}, JSON.stringify(block));
  }
}

// ---- Signing in ----

async function signIn(event) {
  event.preventDefault();
  try {
    let token = $("token").value.trim();
    if (!$("user-label").hidden) {
      const response = await fetch("/@local/token", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ userId: $("user-id").value.trim() }),
      });
      const body = await response.json();
      if (!response.ok) throw new Error(body?.error?.message ?? `token: ${response.status}`);
      token = body.token;
    }
    session?.close();
    session = new Session({ url: location.origin, wsUrl: `${location.origin.replace(/^http/, "ws")}/ws`, token });
    me = session.userId;
    $("whoami").textContent = `signed in as ${me}`;
    $("whoami").hidden = false;
    $("sign-in").hidden = true;
    $("app").hidden = false;
    status("");
    session.on("message", () => renderInbox());
    renderInbox();
    watchConversations();
  } catch (error) {
    report(error);
  }
}

// ---- Conversations ----

/** The conversation list: the user's conversations, latest activity first, live. */
let conversations = { subscription: null, list: [], loadedAll: true };

function watchConversations() {
  conversations.subscription?.unsubscribe();
  conversations = { subscription: null, list: [], loadedAll: true };
  const mine = conversations;
  mine.subscription = session.subscribeConversations((list, loadedAll) => {
    if (conversations !== mine) return;
    mine.list = list;
    mine.loadedAll = loadedAll;
    renderConversationList();
  });
  mine.subscription.terminated.then((state) => {
    if (state.type === "error") report(state.error);
  });
}

function renderConversationList() {
  const items = conversations.list.map((c) => {
    const unread = c.unreadMessageCount ?? 0;
    const last = c.lastMessage;
    const classes = [open?.id === c.id ? "open" : "", c.isUnread ? "unread" : ""].filter(Boolean).join(" ");
    return el("li", { class: classes, "data-conversation-id": c.id, onclick: () => openConversation(c.id) },
      el("div", { class: "title" },
        el("span", { class: "name" }, c.subject || c.id),
        unread > 0 ? el("span", { class: "badge", title: `${unread} unread` }, String(unread)) : null),
      last ? el("div", { class: "preview" }, `${last.sender ? (last.sender.name ?? last.sender.id) + ": " : ""}${last.plaintext}`) : null);
  });
  if (!conversations.loadedAll) {
    items.push(el("li", { class: "more", onclick: () => conversations.subscription.loadMore().catch(report) }, "more…"));
  }
  $("conversation-list").replaceChildren(...items);
}

/** Marks the open conversation read, once per newest message (and not while the page is hidden). */
function markOpenRead() {
  if (!open || document.visibilityState !== "visible") return;
  const newest = open.messages[0]?.id ?? "";
  if (open.readAt === newest) return;
  open.readAt = newest;
  open.ref.markAsRead().catch(report);
}

async function openConversation(conversationId) {
  try {
    const conversation = session.conversation(conversationId);
    // Opening an id nobody uses creates it, with the caller as its first participant.
    const snapshot = (await conversation.get()) ?? (await conversation.set({}), await conversation.get());
    open?.subscription.unsubscribe();
    open?.typing.unsubscribe();
    open = { id: conversationId, ref: conversation, replyTo: null, subscription: null, typing: null, messages: [], readAt: null };
    renderConversationList();
    $("chat").hidden = false;
    $("chat-title").textContent = snapshot?.subject || conversationId;
    setReply(null);
    $("message-list").replaceChildren();
    $("load-state").textContent = "loading…";
    const opened = open;
    $("typing").textContent = "";
    opened.subscription = conversation.subscribeMessages((messages, loadedAll) => {
      if (open !== opened) return;
      renderMessages(messages, loadedAll);
      // Read while it is open: what arrives is read when it shows in a visible page.
      markOpenRead();
    });
    opened.typing = conversation.subscribeTyping(({ users }) => {
      if (open !== opened) return;
      const names = users.map((u) => u.name ?? u.id);
      $("typing").textContent =
        names.length === 0 ? "" :
        names.length === 1 ? `${names[0]} is typing…` :
        `${names.slice(0, -1).join(", ")} and ${names[names.length - 1]} are typing…`;
    });
    opened.subscription.terminated.then(() => {
      if (open === opened && opened.subscription.state.type === "error") report(opened.subscription.state.error);
    });
  } catch (error) {
    report(error);
  }
}

async function invite(event) {
  event.preventDefault();
  try {
    await open.ref.set({ participants: [$("invite-user").value.trim()] });
    status(`added ${$("invite-user").value.trim()}`);
    $("invite-user").value = "";
  } catch (error) {
    report(error);
  }
}

// ---- Messages ----

/** Renders the window (newest first from the client) oldest at the top, keeping the reader's place. */
function renderMessages(messages, loadedAll) {
  const box = $("messages");
  const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 40;
  const fromBottom = box.scrollHeight - box.scrollTop;
  const grew = messages.length > open.messages.length && open.messages.length > 0 &&
    messages[0] === open.messages[0];
  open.messages = messages;
  $("message-list").replaceChildren(...[...messages].reverse().map(renderMessage));
  $("load-state").textContent = loadedAll ? "the beginning of the conversation" : "scroll up for older messages";
  if (grew) box.scrollTop = box.scrollHeight - fromBottom; // older ones came in above
  else if (atBottom || messages[0]?.sender?.id === me) box.scrollTop = box.scrollHeight;
}

function renderMessage(message) {
  const mine = message.sender?.id === me;
  const system = message.type === "SystemMessage";
  const ref = open.ref.message(message.id);
  const quote = message.referencedMessage
    ? el("div", { class: "quote" }, `${message.referencedMessage.sender?.name ?? message.referencedMessage.sender?.id ?? "system"}: `, message.referencedMessage.plaintext)
    : null;
  const reactions = message.reactions.map((r) =>
    el("button", {
      type: "button",
      class: r.currentUserReacted ? "reaction mine" : "reaction",
      "data-emoji": r.emoji,
      onclick: () => (r.currentUserReacted ? ref.reaction(r.emoji).remove() : ref.reaction(r.emoji).add()).catch(report),
    }, `${r.emoji} ${r.count}`),
  );
  const actions = system ? [] : [
    ...QUICK_REACTIONS.filter((e) => !message.reactions.some((r) => r.emoji === e)).map((emoji) =>
      el("button", { type: "button", class: "react", "data-emoji": emoji, onclick: () => ref.reaction(emoji).add().catch(report) }, emoji),
    ),
    el("button", { type: "button", class: "reply", onclick: () => setReply(message) }, "Reply"),
    mine ? el("button", { type: "button", class: "edit", onclick: () => edit(ref, message) }, "Edit") : null,
    mine ? el("button", { type: "button", class: "delete", onclick: () => ref.delete().catch(report) }, "Delete") : null,
  ];
  const when = new Date(message.createdAt).toLocaleTimeString();
  return el("li", { class: `message${mine ? " mine" : ""}${system ? " system" : ""}`, "data-message-id": message.id },
    el("div", { class: "meta" },
      el("span", { class: "sender" }, system ? "system" : (message.sender?.name ?? message.sender?.id ?? "")),
      el("time", { datetime: new Date(message.createdAt).toISOString() }, when),
      message.editedAt ? el("span", { class: "edited" }, "(edited)") : null),
    quote,
    el("div", { class: "content" }, message.content.map(renderBlock)),
    el("div", { class: "actions" }, reactions, actions));
}

function setReply(message) {
  if (open) open.replyTo = message;
  $("reply-to").hidden = !message;
  $("reply-to").querySelector("span").textContent = message ? `Replying to: ${message.plaintext.slice(0, 80)}` : "";
}

function edit(ref, message) {
  const text = prompt("Edit message", message.plaintext);
  if (text !== null && text.trim() !== "") ref.edit({ text }).catch(report);
}

async function send(event) {
  event.preventDefault();
  const text = $("compose-text").value;
  if (!text.trim() || !open) return;
  try {
    const replyTo = open.replyTo;
    await open.ref.send(replyTo ? { text, referencedMessage: replyTo.id } : { text });
    $("compose-text").value = "";
    setReply(null);
  } catch (error) {
    report(error);
  }
}

let loadingOlder = false;
async function maybeLoadOlder() {
  const sub = open?.subscription;
  if (!sub || loadingOlder || $("messages").scrollTop > 40) return;
  if (sub.state.type !== "active" || sub.state.loadedAll) return;
  loadingOlder = true;
  try {
    await sub.loadMore(30);
  } catch (error) {
    report(error);
  } finally {
    loadingOlder = false;
  }
}

// ---- The inbox ----

function renderInbox() {
  $("inbox-list").replaceChildren(
    ...session.messages.map((m) =>
      el("li", { "data-inbox-id": m.messageId },
        el("div", { class: "meta" }, `from ${m.senderId ?? "system"}`, el("button", { type: "button", onclick: () => session.deleteMessage(m.messageId).then(renderInbox, report) }, "×")),
        el("pre", {}, JSON.stringify(m.message, null, 1))),
    ),
  );
}

async function sendInbox(event) {
  event.preventDefault();
  try {
    const message = JSON.parse($("inbox-message").value);
    const recipients = $("inbox-to").value.split(",").map((s) => s.trim()).filter(Boolean);
    await session.message(message, recipients);
    $("inbox-message").value = "";
    status(`sent to ${recipients.join(", ")}`);
  } catch (error) {
    report(error);
  }
}

// ---- Start ----

async function start() {
  $("sign-in").addEventListener("submit", signIn);
  $("open-conversation").addEventListener("submit", (event) => {
    event.preventDefault();
    openConversation($("conversation-id").value.trim());
  });
  $("invite").addEventListener("submit", invite);
  $("compose").addEventListener("submit", send);
  $("compose-text").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey) send(event);
  });
  $("compose-text").addEventListener("input", () => open?.ref.markAsTyping());
  $("mark-unread").addEventListener("click", () => {
    if (!open) return;
    // Until the next message comes in, opening it again is what reads it.
    open.readAt = open.messages[0]?.id ?? "";
    open.ref.markAsUnread().catch(report);
  });
  document.addEventListener("visibilitychange", markOpenRead);
  $("cancel-reply").addEventListener("click", () => setReply(null));
  $("messages").addEventListener("scroll", maybeLoadOlder);
  $("inbox-send").addEventListener("submit", sendInbox);
  $("inbox-clear").addEventListener("click", () => session.deleteMessages().then(renderInbox, report));
  try {
    const config = await (await fetch("/@local/demo")).json();
    // With real secrets there is no token to be had for a name: ask for one.
    $("user-label").hidden = !config.devTokens;
    $("user-id").required = config.devTokens;
    $("token-label").hidden = config.devTokens;
  } catch (error) {
    report(error);
  }
}

start();
