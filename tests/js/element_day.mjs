// A day of chat in Element Web, through matrix-js-sdk's models (Room, MatrixEvent, the room's
// unread counts and relations), run against a homeserver by
// tests/integration/test_js_sdk_element_day.py: node element_day.mjs BASE_URL
// Bob writes to Alice and mentions her: her unread counts rise (the mention highlights), a
// private read receipt and then a public one bring them back to 0 (on a new session of
// hers too, whose counts come from the server alone), and her fully-read marker moves,
// also with a private receipt through /read_markers; Alice sees Bob typing.
// Bob replies to a message and edits it (the edit is shown live and after a new session's
// initial sync); both react to it (the reactions are counted by key, from the timeline and
// from /relations); Bob redacts a reaction and a message. Prints one JSON line per step; exits non-zero on the first failure.
import { EventType, NotificationCountType, ReceiptType, RelationType } from "matrix-js-sdk";
import { client, login, register, run, say, start, until } from "./element_support.mjs";

const [baseUrl] = process.argv.slice(2);
const text = (body, extra = {}) => ({ msgtype: "m.text", body, ...extra });

await run(async () => {
  const aliceAccount = await register(baseUrl, "alice");
  const alice = await start(client(baseUrl, aliceAccount));
  const bob = await start(client(baseUrl, await register(baseUrl, "bob")));
  const { room_id: roomId } = await alice.createRoom({ preset: "private_chat", name: "day", invite: [bob.getUserId()] });
  await until("bob is invited", () => bob.getRoom(roomId)?.getMyMembership() === "invite");
  await bob.joinRoom(roomId);
  const room = await until("alice sees bob join", () => {
    const seen = alice.getRoom(roomId);
    return seen?.getMember(bob.getUserId())?.membership === "join" && seen;
  });
  const counts = (of = room) => ({ total: of.getUnreadNotificationCount(NotificationCountType.Total),
                                   highlight: of.getUnreadNotificationCount(NotificationCountType.Highlight) });
  const seen = (id) => until(`alice sees ${id}`, () => room.findEventById(id));

  // Unread counts and receipts.
  const sent = [];
  for (const content of [text("good morning"), text("coffee?"),
                         text(`${alice.getUserId()}: the standup`, { "m.mentions": { user_ids: [alice.getUserId()] } })]) {
    sent.push((await bob.sendMessage(roomId, content)).event_id);
  }
  await seen(sent[2]);
  await until("alice's counts rise", () => counts().total === 3 && counts().highlight === 1, { describe: counts });
  say({ step: "unread", ...counts(), sent });
  await alice.sendReadReceipt(room.findEventById(sent[1]), ReceiptType.ReadPrivate);
  await until("the private receipt lowers the count", () => counts().total === 1, { describe: counts });
  // Another session of Alice's: its counts come from the server alone.
  const phone = await start(client(baseUrl, await login(baseUrl, aliceAccount, "alice's phone")));
  const onPhone = phone.getRoom(roomId);
  say({ step: "private receipt", ...counts(), phone: counts(onPhone),
        bobSeesPrivate: bob.getRoom(roomId).getEventReadUpTo(alice.getUserId(), true) ?? null });
  await alice.sendReadReceipt(room.findEventById(sent[2]), ReceiptType.Read);
  await until("the public receipt clears the counts", () => counts().total === 0, { describe: counts });
  const bobSees = await until("bob sees alice's receipt",
    () => bob.getRoom(roomId).getEventReadUpTo(alice.getUserId(), true) === sent[2],
    { describe: () => bob.getRoom(roomId).getEventReadUpTo(alice.getUserId(), true) });
  await alice.setRoomReadMarkers(roomId, sent[2]);
  await until("alice's fully-read marker moves", () => room.getAccountData(EventType.FullyRead)?.getContent().event_id === sent[2]);
  await until("the phone's counts clear", () => counts(onPhone).total === 0, { describe: () => counts(onPhone) });
  await until("the phone's fully-read marker moves",
    () => onPhone.getAccountData(EventType.FullyRead)?.getContent().event_id === sent[2]);
  say({ step: "public receipt", ...counts(), bobSeesRead: bobSees && sent[2], phone: counts(onPhone),
        phoneFullyRead: onPhone.getAccountData(EventType.FullyRead)?.getContent().event_id ?? null,
        phoneReadUpTo: onPhone.getEventReadUpTo(alice.getUserId(), true), mention: sent[2] });

  // Element with "send read receipts" off: /read_markers moves the fully-read marker and a
  // private receipt together; Bob, typing, is shown typing.
  await bob.sendTyping(roomId, true, 30000);
  const typing = await until("alice sees bob typing", () => room.getMember(bob.getUserId())?.typing === true);
  await bob.sendTyping(roomId, false, 0);  // Element's composer stops typing as it sends
  const { event_id: later } = await bob.sendMessage(roomId, text("one more thing"));
  await until("bob stops typing", () => room.getMember(bob.getUserId())?.typing === false);
  await until("the phone counts it", () => counts(onPhone).total === 1, { describe: () => counts(onPhone) });
  await seen(later);
  await alice.setRoomReadMarkers(roomId, later, undefined, room.findEventById(later));
  await until("the phone's counts clear again", () => counts(onPhone).total === 0, { describe: () => counts(onPhone) });
  await until("the phone's fully-read marker moves again",
    () => onPhone.getAccountData(EventType.FullyRead)?.getContent().event_id === later);
  say({ step: "read markers", typing, later, phone: counts(onPhone),
        phoneReadUpTo: onPhone.getEventReadUpTo(alice.getUserId(), true),
        bobSees: bob.getRoom(roomId).getEventReadUpTo(alice.getUserId(), true) });
  phone.stopClient();

  // Replies, edits, reactions, redactions.
  const { event_id: original } = await bob.sendMessage(roomId, text("lunch at 12"));
  const { event_id: reply } = await bob.sendMessage(roomId, text("> lunch at 12\n\nor 1?",
    { "m.relates_to": { "m.in_reply_to": { event_id: original } } }));
  await bob.sendMessage(roomId, {
    ...text("* lunch at 1"), "m.new_content": text("lunch at 1"),
    "m.relates_to": { rel_type: RelationType.Replace, event_id: original },
  });
  await seen(reply);
  const message = room.findEventById(original);
  await until("alice sees the edit", () => message.replacingEvent(), { describe: () => message.getContent() });
  say({ step: "reply and edit", replyTo: room.findEventById(reply).replyEventId, body: message.getContent().body,
        edited: message.replacingEventId() !== undefined, original: message.getOriginalContent().body });

  const react = (matrixClient, key) => matrixClient.sendEvent(roomId, EventType.Reaction,
    { "m.relates_to": { rel_type: RelationType.Annotation, event_id: original, key } });
  await react(alice, "👍");
  await react(bob, "👍");
  const { event_id: party } = await react(bob, "🎉");
  await seen(party);
  const annotations = () => {
    const relations = room.relations.getChildEventsForEvent(original, RelationType.Annotation, EventType.Reaction);
    return Object.fromEntries((relations?.getSortedAnnotationsByKey() ?? []).map(([key, events]) => [key, events.size]));
  };
  await until("alice counts the reactions", () => annotations()["👍"] === 2 && annotations()["🎉"] === 1,
    { describe: annotations });
  const listed = await alice.relations(roomId, original, RelationType.Annotation, EventType.Reaction);
  say({ step: "reactions", byKey: annotations(), listed: listed.events.length });

  const { event_id: doomed } = await bob.sendMessage(roomId, text("oops, wrong room"));
  await seen(doomed);
  await bob.redactEvent(roomId, party);
  await bob.redactEvent(roomId, doomed);
  await until("alice sees the redactions", () => room.findEventById(doomed).isRedacted() && !annotations()["🎉"],
    { describe: annotations });

  const laptop = await start(client(baseUrl, await login(baseUrl, aliceAccount, "alice's laptop")));
  const fresh = laptop.getRoom(roomId);
  const freshOriginal = fresh.findEventById(original);
  const freshAnnotations = fresh.relations.getChildEventsForEvent(original, RelationType.Annotation, EventType.Reaction);
  say({ step: "redactions", byKey: annotations(), redacted: room.findEventById(doomed).getContent(),
        redactedBody: fresh.findEventById(doomed)?.getContent().body ?? null,
        redactedOnLaptop: fresh.findEventById(doomed)?.isRedacted() ?? null });
  say({ step: "new session", body: freshOriginal?.getContent().body ?? null,
        edited: freshOriginal?.replacingEventId() ?? null,
        byKey: Object.fromEntries((freshAnnotations?.getSortedAnnotationsByKey() ?? []).map(([key, events]) => [key, events.size])) });
  for (const matrixClient of [alice, bob, laptop]) matrixClient.stopClient();
});
