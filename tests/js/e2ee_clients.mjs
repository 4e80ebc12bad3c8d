// Two matrix-js-sdk clients with the SDK's Rust crypto (the encryption stack of Element Web)
// in one node process, run against a homeserver by tests/integration/test_js_sdk_encryption.py:
// node e2ee_clients.mjs BASE_URL
// Alice and Bob register, bootstrap cross-signing (uploading their keys through interactive
// auth with their password) and make a key backup; Alice creates an encrypted room, invites
// Bob, Bob joins, Alice sends a message and Bob reads it decrypted, then Bob answers and
// Alice reads that. Prints one JSON line per step; exits non-zero on the first failure.
import * as sdk from "matrix-js-sdk";
import { logger } from "matrix-js-sdk/lib/logger.js";

logger.setLevel("error");
const [baseUrl] = process.argv.slice(2);
const say = (record) => console.log(JSON.stringify(record));
const suffix = Math.random().toString(36).slice(2, 8);

async function start(name) {
  const anonymous = sdk.createClient({ baseUrl });
  const password = `${name} password ${suffix}`;
  const session = await anonymous.registerRequest({
    username: `${name}${suffix}`, password, auth: { type: "m.login.dummy" },
    initial_device_display_name: `${name}'s js-sdk`,
  });
  const client = sdk.createClient({
    baseUrl, accessToken: session.access_token, userId: session.user_id, deviceId: session.device_id,
  });
  await client.initRustCrypto({ useIndexedDB: false });
  const crypto = client.getCrypto();
  await crypto.bootstrapCrossSigning({
    authUploadDeviceSigningKeys: async (makeRequest) => {
      await makeRequest({ type: "m.login.password", identifier: { type: "m.id.user", user: session.user_id }, password });
    },
  });
  await crypto.resetKeyBackup();
  const synced = new Promise((resolve) => client.once(sdk.ClientEvent.Sync, resolve));
  await client.startClient({ initialSyncLimit: 10 });
  await synced;
  const status = await crypto.getCrossSigningStatus();
  const backup = await crypto.getActiveSessionBackupVersion();
  say({ step: `${name} ready`, user: session.user_id, device: session.device_id,
        crossSigning: status.publicKeysOnDevice && status.privateKeysCachedLocally.masterKey, backup });
  return client;
}

function decryptedMessage(client, roomId, body) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${client.getUserId()} never read "${body}"`)), 30000);
    const check = async (event) => {
      if (event.getRoomId() !== roomId) return;
      await client.decryptEventIfNeeded(event);
      if (event.getType() === "m.room.message" && event.getContent().body === body) {
        clearTimeout(timer);
        resolve({ encrypted: event.isEncrypted(), sender: event.getSender(), failure: event.decryptionFailureReason ?? null });
      }
    };
    client.on(sdk.RoomEvent.Timeline, check);
    client.on(sdk.MatrixEventEvent.Decrypted, check);
  });
}

async function until(what, check, seconds = 30) {
  const deadline = Date.now() + seconds * 1000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`not reached within ${seconds} s: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

const alice = await start("alice");
const bob = await start("bob");
const { room_id: roomId } = await alice.createRoom({
  invite: [bob.getUserId()],
  initial_state: [{ type: "m.room.encryption", state_key: "", content: { algorithm: "m.megolm.v1.aes-sha2" } }],
});
await until("bob is invited", () => bob.getRoom(roomId)?.getMyMembership() === "invite");
await bob.joinRoom(roomId);
// Alice must see Bob's join before she shares the room key with his devices.
await until("alice sees bob joined", () => alice.getRoom(roomId)?.getMember(bob.getUserId())?.membership === "join");
say({ step: "joined", room: roomId });
const bobReads = decryptedMessage(bob, roomId, "hello bob, in secret");
await alice.sendTextMessage(roomId, "hello bob, in secret");
say({ step: "bob read", ...(await bobReads) });
const aliceReads = decryptedMessage(alice, roomId, "hello alice, also in secret");
await bob.sendTextMessage(roomId, "hello alice, also in secret");
say({ step: "alice read", ...(await aliceReads) });
const bobDevice = bob.getDeviceId();
const seen = await alice.getCrypto().getUserDeviceInfo([bob.getUserId()], true);
const status = await alice.getCrypto().getDeviceVerificationStatus(bob.getUserId(), bobDevice);
say({ step: "bob's device", known: seen.get(bob.getUserId())?.has(bobDevice) ?? false, signedByOwner: status?.signedByOwner ?? false });
const backupVersion = await alice.getCrypto().getActiveSessionBackupVersion();
let backedUp = {};
const deadline = Date.now() + 40000;
while (!(roomId in backedUp)) {
  if (Date.now() > deadline) throw new Error("alice's room key never reached her backup");
  await new Promise((resolve) => setTimeout(resolve, 250));
  ({ rooms: backedUp } = await alice.http.authedRequest("GET", "/room_keys/keys", { version: backupVersion }));
}
say({ step: "backup", version: backupVersion, sessions: Object.keys(backedUp[roomId].sessions).length });
alice.stopClient();
bob.stopClient();
say({ step: "done" });
process.exit(0);
