// Threads as Element Web shows them, through matrix-js-sdk's models (Room, Thread, MatrixEvent),
// run against a homeserver by tests/integration/test_js_sdk_element_day.py:
// node element_threads.mjs BASE_URL
// Bob starts two threads in a room he shares with Alice and replies in both; Alice's client
// files the replies under their Thread, counts them per thread (unread_thread_notifications
// in /sync), and a threaded read receipt clears one thread's count and not the other's.
// Alice then replies too; a new session of hers reads each root's bundled m.thread
// aggregation from its initial sync, the thread list (GET /rooms/{id}/threads, all and
// "participated") and a thread's timeline. A mention in a thread highlights it, and "mark as
// read" (an unthreaded receipt) clears every count. Prints one JSON line per step; exits
// non-zero on the first failure.
import { NotificationCountType, ReceiptType, THREAD_RELATION_TYPE } from "matrix-js-sdk";
import { client, login, register, run, say, start, until } from "./element_support.mjs";

const [baseUrl] = process.argv.slice(2);
const text = (body, extra = {}) => ({ msgtype: "m.text", body, ...extra });

await run(async () => {
  const aliceAccount = await register(baseUrl, "alice");
  const alice = await start(client(baseUrl, aliceAccount));
  // Bob only writes: his client does not sync, so a reply's echo from /sync cannot race its
  // /send answer (34.13.0 can throw "not a local echo" when one lands in a thread first).
  const bob = client(baseUrl, await register(baseUrl, "bob"));
  const { room_id: roomId } = await alice.createRoom({ preset: "public_chat", name: "threads" });
  await bob.joinRoom(roomId);
  const room = await until("alice sees bob join", () => {
    const seen = alice.getRoom(roomId);
    return seen?.getMember(bob.getUserId())?.membership === "join" && seen;
  });

  const { event_id: first } = await bob.sendMessage(roomId, text("first thread root"));
  const { event_id: second } = await bob.sendMessage(roomId, text("second thread root"));
  await until("alice sees the roots", () => room.findEventById(second));
  await alice.sendReadReceipt(room.findEventById(second), ReceiptType.Read);
  await until("alice's main timeline is read", () => room.getRoomUnreadNotificationCount() === 0,
    { describe: () => room.getRoomUnreadNotificationCount() });

  const replies = [];
  for (const [root, body] of [[first, "first reply"], [first, "second reply"], [second, "other thread's reply"]]) {
    replies.push((await bob.sendMessage(roomId, root, text(body))).event_id);
  }
  await until("alice sees the replies", () => replies.every((id) => room.findEventById(id)));
  const thread = await until("alice's client has the first thread", () => room.getThread(first));
  await until("the first thread has its two replies", () => thread.length === 2,
    { describe: () => thread.length });
  const counts = (of = room) => ({
    main: of.getRoomUnreadNotificationCount(NotificationCountType.Total),
    first: of.getThreadUnreadNotificationCount(first, NotificationCountType.Total),
    second: of.getThreadUnreadNotificationCount(second, NotificationCountType.Total),
    total: of.getUnreadNotificationCount(NotificationCountType.Total),
  });
  await until("the threads' counts come", () => counts().first === 2 && counts().second === 1,
    { describe: counts });
  const reply = room.findEventById(replies[1]);
  say({ step: "thread replies", threads: room.getThreads().map((t) => t.id).sort(), length: thread.length,
        replyInThread: reply.threadRootId, isThreadRoot: room.findEventById(first).isThreadRoot,
        latestReply: thread.replyToEvent?.getContent().body ?? null, ...counts() });

  await alice.sendReadReceipt(reply, ReceiptType.Read);
  await until("the threaded receipt clears the first thread", () => counts().first === 0, { describe: counts });
  say({ step: "threaded receipt", ...counts() });

  // Sent as a plain request: matrix-js-sdk 34.13.0 may throw when a thread reply's echo comes
  // down a running sync before its own send is answered (Bob's replies go through the SDK).
  const { event_id: own } = await alice.http.authedRequest(
    "PUT", `/rooms/${encodeURIComponent(roomId)}/send/m.room.message/alice-reply-${Date.now()}`, undefined,
    { ...text("alice's reply"), "m.relates_to": { rel_type: "m.thread", event_id: first, is_falling_back: true,
                                                  "m.in_reply_to": { event_id: first } } });
  await until("alice's reply is in the thread", () => thread.length === 3, { describe: () => thread.length });

  // A new session of Alice's: everything it knows comes from the server.
  const later = await start(client(baseUrl, await login(baseUrl, aliceAccount, "alice's laptop")));
  const fresh = later.getRoom(roomId);
  const aggregation = (root) => {
    const bundled = fresh.findEventById(root)?.getServerAggregatedRelation(THREAD_RELATION_TYPE.name);
    return bundled && { count: bundled.count, latest: bundled.latest_event?.content?.body ?? null,
                        latestId: bundled.latest_event?.event_id ?? null, participated: bundled.current_user_participated };
  };
  say({ step: "bundled aggregation", first: aggregation(first), second: aggregation(second), own,
        firstThread: fresh.findEventById(first)?.isThreadRoot ?? null,
        counts: { first: fresh.getThreadUnreadNotificationCount(first), second: fresh.getThreadUnreadNotificationCount(second),
                  main: fresh.getRoomUnreadNotificationCount() } });

  await fresh.createThreadsTimelineSets();
  await fresh.fetchRoomThreads();
  const [all, mine] = fresh.threadsTimelineSets;
  const roots = (set) => set.getLiveTimeline().getEvents().map((event) => event.getId());
  say({ step: "thread list", all: roots(all), mine: roots(mine),
        // what GET /threads bundled with each root (Thread.length can count a reply twice
        // while the SDK fetches a thread's events)
        counts: all.getLiveTimeline().getEvents().map((event) => event.getServerAggregatedRelation(THREAD_RELATION_TYPE.name)?.count ?? null) });

  // Opening the thread on the new session: its timeline comes from /relations.
  const reopened = fresh.getThread(first);
  await until("the new session fetches the thread", () => reopened.initialEventsFetched);
  const threadBodies = reopened.liveTimeline.getEvents().map((event) => event.getContent().body);

  // A mention in a thread highlights it; "mark as read" (an unthreaded receipt) clears all.
  const { event_id: mention } = await bob.sendMessage(roomId, second, text(`${alice.getUserId()}: look`,
    { "m.mentions": { user_ids: [alice.getUserId()] } }));
  const { event_id: last } = await bob.sendMessage(roomId, text("and in the main timeline"));
  const laterCounts = () => ({ ...counts(fresh),
    secondHighlight: fresh.getThreadUnreadNotificationCount(second, NotificationCountType.Highlight),
    highlight: fresh.getUnreadNotificationCount(NotificationCountType.Highlight) });
  await until("the new session counts the mention", () => laterCounts().second === 2 && laterCounts().main === 1,
    { describe: laterCounts });
  say({ step: "thread mention", threadBodies, mention, ...laterCounts() });
  await until("the new session has the last message", () => fresh.findEventById(last));
  await later.sendReadReceipt(fresh.findEventById(last), ReceiptType.Read, true);
  await until("the unthreaded receipt clears every count", () => laterCounts().total === 0, { describe: laterCounts });
  await until("alice's first session sees it too", () => counts().total === 0, { describe: counts });
  say({ step: "marked as read", ...laterCounts(), firstSession: counts() });
  for (const matrixClient of [alice, bob, later]) matrixClient.stopClient();
});
