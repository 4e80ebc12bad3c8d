// Element Web's "restore from backup on a new device", with matrix-js-sdk's Rust crypto, run
// against a homeserver by tests/integration/test_js_sdk_element_day.py:
// node element_restore.mjs BASE_URL
// Alice's first device bootstraps cross-signing and secret storage with a new recovery key
// and a new key backup (as Element's "set up recovery" does); Bob and she chat in an
// encrypted room, in a thread too (counted apart by the server), Bob edits a message, and the
// room keys reach her backup. Alice logs in on a new device, which cannot read that history
// until she enters the recovery key: it loads the backup key from secret storage, restores
// the backup, decrypts the earlier messages, the thread's and the edit (shown in place of
// the message), and cross-signs itself with the keys from secret storage, which her first
// device sees. Prints one JSON line per step; exits non-zero on the first failure.
import { EventType } from "matrix-js-sdk";
import { decodeRecoveryKey } from "matrix-js-sdk/lib/crypto-api/recovery-key.js";
import { client, login, register, run, say, start, until } from "./element_support.mjs";

const [baseUrl] = process.argv.slice(2);

/** Crypto callbacks that hand out one secret storage key: Element asks its user for it. */
function secretStorageKeyHolder() {
  const holder = { key: null };
  holder.callbacks = {
    getSecretStorageKey: async ({ keys }) => {
      const keyId = Object.keys(keys).find((id) => holder.key && (holder.key.id === null || holder.key.id === id));
      return keyId ? [keyId, holder.key.privateKey] : null;
    },
    cacheSecretStorageKey: (keyId, keyInfo, privateKey) => { holder.key = { id: keyId, privateKey }; },
  };
  return holder;
}

async function withCrypto(session, holder) {
  const matrixClient = client(baseUrl, session, { cryptoCallbacks: holder?.callbacks ?? {} });
  await matrixClient.initRustCrypto({ useIndexedDB: false });
  return matrixClient;
}

const authWith = (account) => async (makeRequest) => {
  await makeRequest({ type: "m.login.password", identifier: { type: "m.id.user", user: account.userId }, password: account.password });
};

await run(async () => {
  const aliceAccount = await register(baseUrl, "alice");
  const firstKey = secretStorageKeyHolder();
  const alice = await withCrypto(aliceAccount, firstKey);
  const crypto = alice.getCrypto();
  // Secret storage waits for its account data to come back down /sync: Alice's client syncs.
  await start(alice);
  await crypto.bootstrapCrossSigning({ authUploadDeviceSigningKeys: authWith(aliceAccount) });
  let recoveryKey = null;
  await crypto.bootstrapSecretStorage({
    setupNewSecretStorage: true, setupNewKeyBackup: true,
    createSecretStorageKey: async () => {
      const generated = await crypto.createRecoveryKeyFromPassphrase();
      recoveryKey = generated.encodedPrivateKey;
      return generated;
    },
  });
  const version = await until("alice's backup is active", () => crypto.getActiveSessionBackupVersion());
  say({ step: "recovery set up", secretStorageReady: await crypto.isSecretStorageReady(), version,
        recoveryKey: typeof recoveryKey === "string" && recoveryKey.split(" ").length });

  const bob = await withCrypto(await register(baseUrl, "bob"));
  await start(bob);
  const { room_id: roomId } = await alice.createRoom({
    invite: [bob.getUserId()],
    initial_state: [{ type: EventType.RoomEncryption, state_key: "", content: { algorithm: "m.megolm.v1.aes-sha2" } }],
  });
  await until("bob is invited", () => bob.getRoom(roomId)?.getMyMembership() === "invite");
  await bob.joinRoom(roomId);
  await until("alice sees bob join", () => alice.getRoom(roomId)?.getMember(bob.getUserId())?.membership === "join");
  const history = ["remember the milk", "and the bread"];
  for (const body of history) await alice.sendTextMessage(roomId, body);
  const decryptedBodies = (matrixClient) => matrixClient.getRoom(roomId)?.getLiveTimeline().getEvents()
    .filter((event) => event.isEncrypted() && !event.isDecryptionFailure()).map((event) => event.getContent().body) ?? [];
  const { event_id: noted } = await bob.sendTextMessage(roomId, "noted");
  await until("alice reads bob's answer", () => decryptedBodies(alice).includes("noted"),
    { seconds: 30, describe: () => decryptedBodies(alice) });
  await bob.sendMessage(roomId, { msgtype: "m.text", body: "* noted, thanks", "m.new_content": { msgtype: "m.text", body: "noted, thanks" },
    "m.relates_to": { rel_type: "m.replace", event_id: noted } });
  await until("alice reads bob's edit", () => alice.getRoom(roomId).findEventById(noted)?.getContent().body === "noted, thanks",
    { seconds: 30, describe: () => alice.getRoom(roomId).findEventById(noted)?.getContent() });
  // An encrypted thread.
  const root = alice.getRoom(roomId).getLiveTimeline().getEvents()
    .find((event) => event.getContent().body === history[0]).getId();
  const { event_id: threadReply } = await bob.sendMessage(roomId, root, { msgtype: "m.text", body: "oat milk?" });
  const aliceRoom = alice.getRoom(roomId);
  await until("alice reads the thread reply", () => aliceRoom.getThread(root)?.events
    .some((event) => event.getId() === threadReply && event.getContent().body === "oat milk?"));
  // The SDK counts an encrypted room's notifications itself (34.13.0 leaves an encrypted
  // thread reply out); what the server counts, from the reply's clear m.relates_to:
  const filter = JSON.stringify({ room: { timeline: { limit: 1, unread_thread_notifications: true } } });
  const synced = (await alice.http.authedRequest("GET", "/sync", { filter })).rooms.join[roomId];
  say({ step: "encrypted thread", root, reply: threadReply, server: synced.unread_thread_notifications ?? null,
        serverMain: synced.unread_notifications });
  const backedUp = async () => {
    const { rooms } = await alice.http.authedRequest("GET", "/room_keys/keys", { version });
    return Object.keys(rooms[roomId]?.sessions ?? {}).length >= 2 && Object.keys(rooms[roomId].sessions).length;
  };
  say({ step: "history sent", sessions: await until("both room keys reach the backup", backedUp, { seconds: 40 }) });

  // A new device of Alice's: Element asks for the recovery key.
  const newKey = secretStorageKeyHolder();
  const tablet = await withCrypto(await login(baseUrl, aliceAccount, "alice's tablet"), newKey);
  await start(tablet);
  const encrypted = await until("the tablet has the history", () => {
    const events = tablet.getRoom(roomId)?.getLiveTimeline().getEvents().filter((event) => event.isEncrypted()) ?? [];
    return events.length >= 3 && events;
  });
  await Promise.all(encrypted.map((event) => tablet.decryptEventIfNeeded(event)));
  const before = encrypted.filter((event) => event.isDecryptionFailure()).length;
  newKey.key = { id: null, privateKey: decodeRecoveryKey(recoveryKey) };
  const tabletCrypto = tablet.getCrypto();
  await tabletCrypto.loadSessionBackupPrivateKeyFromSecretStorage();
  const check = await tabletCrypto.checkKeyBackupAndEnable();
  const restored = await tabletCrypto.restoreKeyBackup();
  await until("the tablet decrypts the history", () => encrypted.every((event) => !event.isDecryptionFailure()),
    { describe: () => encrypted.map((event) => event.decryptionFailureReason) });
  const tabletThread = await until("the tablet has the thread", () => tablet.getRoom(roomId).getThread(root));
  await until("the tablet fetches the thread", () => tabletThread.initialEventsFetched);
  const threadReplyOnTablet = await until("the tablet decrypts the thread reply", () => {
    const event = tabletThread.events.find((candidate) => candidate.getId() === threadReply);
    return event && !event.isDecryptionFailure() && event.getContent().body;
  }, { describe: () => tabletThread.events.map((event) => event.getId()) });
  const editedOnTablet = await until("the tablet shows bob's edit", () => {
    const body = tablet.getRoom(roomId).findEventById(noted)?.getContent().body;
    return body === "noted, thanks" && body;
  }, { describe: () => tablet.getRoom(roomId).findEventById(noted)?.getContent() });
  const bodies = encrypted.map((event) => event.getContent().body);
  say({ step: "restored", failedBefore: before, threadReplyOnTablet, editedOnTablet, total: restored.total, imported: restored.imported,
        backupVersion: check?.backupInfo?.version ?? null, trusted: check?.trustInfo?.matchesDecryptionKey ?? null, bodies });

  await tabletCrypto.bootstrapCrossSigning({});
  // The signature reaches the tablet's own view of its device through the device list
  // change /sync reports after the upload.
  const status = await until("the tablet sees its device cross-signed", async () => {
    const current = await tabletCrypto.getDeviceVerificationStatus(tablet.getUserId(), tablet.getDeviceId());
    return current?.crossSigningVerified && current;
  });
  const seenByFirst = await until("the first device sees the tablet cross-signed", async () => {
    const current = await crypto.getDeviceVerificationStatus(alice.getUserId(), tablet.getDeviceId());
    return current?.crossSigningVerified && current;
  });
  const crossSigning = await tabletCrypto.getCrossSigningStatus();
  say({ step: "tablet verified", crossSigningVerified: status.crossSigningVerified,
        seenByFirstDevice: seenByFirst.crossSigningVerified,
        masterKeyCached: crossSigning.privateKeysCachedLocally.masterKey,
        sameMaster: (await tabletCrypto.getCrossSigningKeyId()) === (await crypto.getCrossSigningKeyId()) });
  for (const matrixClient of [alice, bob, tablet]) matrixClient.stopClient();
});
