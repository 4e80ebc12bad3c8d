// The room list of Element Web, through matrix-js-sdk's models, run against a homeserver by
// tests/integration/test_js_sdk_element_day.py: node element_rooms.mjs BASE_URL
// Alice starts a direct chat with Bob (is_direct, then m.direct as Element writes it), tags
// rooms favourite and low priority and mutes one with a push rule: a second session of hers
// sees the tags, m.direct and the rule after sync, and the muted room's count stays at 0
// while the direct chat's rises. Alice then upgrades a room to the server's default version:
// the old room holds the tombstone, the new one names its predecessor, keeps its name, and
// Bob follows it; both keep their tags, and Alice her mute, in the new room. An upgraded
// direct chat stays in both users' m.direct. Prints one JSON line per step; exits non-zero
// on the first failure.
import { EventType, NotificationCountType, PushRuleKind } from "matrix-js-sdk";
import { client, login, register, run, say, start, until } from "./element_support.mjs";

const [baseUrl] = process.argv.slice(2);
const text = (body) => ({ msgtype: "m.text", body });

await run(async () => {
  const aliceAccount = await register(baseUrl, "alice");
  const alice = await start(client(baseUrl, aliceAccount));
  const bob = await start(client(baseUrl, await register(baseUrl, "bob")));
  const bobId = bob.getUserId();

  // A direct chat, as Element starts one.
  const { room_id: dm } = await alice.createRoom({ preset: "trusted_private_chat", is_direct: true, invite: [bobId] });
  await alice.setAccountData(EventType.Direct, { [bobId]: [dm] });
  const invited = await until("bob is invited", () => bob.getRoom(dm)?.getMyMembership() === "invite" && bob.getRoom(dm));
  const inviter = invited.getDMInviter() ?? null;
  const isDirect = invited.getMember(bobId)?.events.member?.getContent().is_direct ?? null;
  await bob.joinRoom(dm);
  const { room_id: team } = await alice.createRoom({ preset: "public_chat", name: "team", room_version: "10" });
  await bob.joinRoom(team);
  await until("alice sees bob in both rooms", () => [dm, team].every(
    (id) => alice.getRoom(id)?.getMember(bobId)?.membership === "join"));
  say({ step: "direct chat", inviter, isDirect });

  // Tags and a muted room, seen by a second session.
  await alice.setRoomTag(dm, "m.favourite", { order: 0.5 });
  await alice.setRoomTag(team, "m.lowpriority", {});
  await alice.addPushRule("global", PushRuleKind.Override, team, {
    conditions: [{ kind: "event_match", key: "room_id", pattern: team }], actions: [],
  });
  const laptop = await start(client(baseUrl, await login(baseUrl, aliceAccount, "alice's laptop")));
  const mutedRule = (matrixClient, roomId = team) =>
    matrixClient.pushRules?.global.override?.find((rule) => rule.rule_id === roomId) ?? null;
  // With members loaded lazily, the room list's names and counts come from the sync summary.
  const lazyDm = laptop.getRoom(dm);
  const listed = { name: lazyDm.name, joined: lazyDm.getJoinedMemberCount(), invited: lazyDm.getInvitedMemberCount() };
  await laptop.getRoom(team).loadMembersIfNeeded();
  say({ step: "second session", direct: laptop.getAccountData(EventType.Direct)?.getContent() ?? null, dmListed: listed,
        teamMembers: laptop.getRoom(team).getJoinedMembers().map((member) => member.userId).sort(),
        dmTags: laptop.getRoom(dm).tags, teamTags: laptop.getRoom(team).tags,
        muted: mutedRule(laptop) && { actions: mutedRule(laptop).actions, enabled: mutedRule(laptop).enabled } });
  await alice.deleteRoomTag(team, "m.lowpriority");
  await until("the laptop sees the tag go", () => !("m.lowpriority" in laptop.getRoom(team).tags),
    { describe: () => laptop.getRoom(team).tags });

  const total = (matrixClient, id) => matrixClient.getRoom(id).getUnreadNotificationCount(NotificationCountType.Total);
  const { event_id: quiet } = await bob.sendMessage(team, text("anyone for lunch?"));
  await bob.sendMessage(dm, text("lunch?"));
  await until("the direct chat's count rises", () => total(laptop, dm) === 1 && total(alice, dm) === 1);
  await until("the muted message arrives", () => laptop.getRoom(team).findEventById(quiet));
  say({ step: "muted", team: total(laptop, team), dm: total(laptop, dm), aliceTeam: total(alice, team) });
  await alice.deletePushRule("global", PushRuleKind.Override, team);
  await until("the laptop sees the rule go", () => !mutedRule(laptop));
  await bob.sendMessage(team, text("unmuted now"));
  await until("the unmuted room's count rises", () => total(laptop, team) === 1,
    { describe: () => total(laptop, team) });
  say({ step: "unmuted", team: total(laptop, team) });

  // Room upgrades to the version the server recommends, as Element's /upgraderoom does: the
  // members' favourites, low priorities, mutes and direct chats carry over.
  await alice.setRoomTag(team, "m.favourite", {});
  await alice.addPushRule("global", PushRuleKind.Override, team, {
    conditions: [{ kind: "event_match", key: "room_id", pattern: team }], actions: [],
  });
  await bob.setRoomTag(team, "m.lowpriority", {});
  await bob.setAccountData(EventType.Direct, { [alice.getUserId()]: [dm] });
  const capabilities = await alice.getCapabilities();
  const version = capabilities["m.room_versions"].default;
  const { replacement_room: upgraded } = await alice.upgradeRoom(team, version);
  const tombstone = await until("bob sees the tombstone", () =>
    bob.getRoom(team)?.currentState.getStateEvents(EventType.RoomTombstone, ""));
  await bob.joinRoom(tombstone.getContent().replacement_room);
  const newRoom = await until("alice sees bob in the new room", () => {
    const room = alice.getRoom(upgraded);
    return room?.getMember(bobId)?.membership === "join" && room;
  });
  await until("bob's client has the new room", () => bob.getRoom(upgraded)?.getMyMembership() === "join");
  say({ step: "upgrade", upgraded, version, tombstone: tombstone.getContent().replacement_room,
        predecessor: newRoom.findPredecessor()?.roomId ?? null, newVersion: newRoom.getVersion(),
        name: newRoom.name, history: alice.getRoomUpgradeHistory(upgraded).map((room) => room.roomId),
        bobMayPostInOld: bob.getRoom(team).currentState.maySendMessage(bobId),
        aliceMayPost: newRoom.currentState.maySendMessage(alice.getUserId()) });

  const { event_id: quietAgain } = await bob.sendMessage(upgraded, text("still muted?"));
  await bob.sendMessage(dm, text("still there?"));
  await until("the direct chat's count rises again", () => total(laptop, dm) === 2,
    { describe: () => total(laptop, dm) });
  await until("the muted message arrives", () => laptop.getRoom(upgraded)?.findEventById(quietAgain));
  say({ step: "upgraded settings", aliceTags: laptop.getRoom(upgraded).tags, bobTags: bob.getRoom(upgraded).tags,
        muted: mutedRule(laptop, upgraded)?.conditions ?? null, count: total(laptop, upgraded) });

  // A direct chat upgraded, Bob invited again as Element's upgrade dialog offers.
  const { replacement_room: newDm } = await alice.upgradeRoom(dm, version);
  await alice.invite(newDm, bobId);
  await until("bob is invited to the new direct chat", () => bob.getRoom(newDm)?.getMyMembership() === "invite");
  await bob.joinRoom(newDm);
  const directOf = (matrixClient, other) => matrixClient.getAccountData(EventType.Direct)?.getContent()[other] ?? [];
  await until("the laptop's m.direct has the new direct chat", () => directOf(laptop, bobId).includes(newDm),
    { describe: () => directOf(laptop, bobId) });
  await until("bob's m.direct has it", () => directOf(bob, alice.getUserId()).includes(newDm),
    { describe: () => directOf(bob, alice.getUserId()) });
  say({ step: "direct chat upgraded", newDm, alice: directOf(laptop, bobId), bob: directOf(bob, alice.getUserId()),
        favourite: laptop.getRoom(newDm).tags });
  for (const matrixClient of [alice, bob, laptop]) matrixClient.stopClient();
});
