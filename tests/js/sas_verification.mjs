// One matrix-js-sdk client with the SDK's Rust crypto (the stack under Element Web) verifies a
// bot's device with emoji (SAS, to-device), run by tests/granolin/test_live_verification.py:
// node sas_verification.mjs BASE_URL USER_ID ACCESS_TOKEN DEVICE_ID PASSWORD BOT_USER BOT_DEVICE WHO ANSWER WHERE ROOM
// WHO is "user" (this client requests the verification) or "bot" (it waits for the bot's
// request and accepts it); ANSWER is "match" or "mismatch" (what this side says when it
// shows the emoji); WHERE is "to-device" (the bot's device is verified, as "verify session"
// does) or "room" (the request is a message in ROOM, a direct chat, as "verify user" does).
// Prints one JSON line per step; exits non-zero on the first failure.
import * as sdk from "matrix-js-sdk";
import { logger } from "matrix-js-sdk/lib/logger.js";
import { CryptoEvent, VerificationPhase, VerificationRequestEvent, VerifierEvent } from "matrix-js-sdk/lib/crypto-api/index.js";

logger.setLevel("error");
const [baseUrl, userId, accessToken, deviceId, password, botUser, botDevice, who, answer, where, roomId] = process.argv.slice(2);
const say = (record) => console.log(JSON.stringify(record));

function until(what, check, seconds = 60) {
  return new Promise((resolve, reject) => {
    const deadline = Date.now() + seconds * 1000;
    const poll = () => {
      const value = check();
      if (value) return resolve(value);
      if (Date.now() > deadline) return reject(new Error(`not reached within ${seconds} s: ${what}`));
      setTimeout(poll, 100);
    };
    poll();
  });
}

const client = sdk.createClient({ baseUrl, accessToken, userId, deviceId });
await client.initRustCrypto({ useIndexedDB: false });
const crypto = client.getCrypto();
await crypto.bootstrapCrossSigning({
  authUploadDeviceSigningKeys: async (makeRequest) => {
    await makeRequest({ type: "m.login.password", identifier: { type: "m.id.user", user: userId }, password });
  },
});
let received = null;
client.on(CryptoEvent.VerificationRequestReceived, (request) => { received = request; });
const synced = new Promise((resolve) => client.once(sdk.ClientEvent.Sync, resolve));
await client.startClient({ initialSyncLimit: 1 });
await synced;
await crypto.getUserDeviceInfo([botUser], true);
say({ step: "ready", master: (await crypto.getCrossSigningKeyId()) ?? null });

let request;
if (who === "user") {
  request = where === "room" ? await crypto.requestVerificationDM(botUser, roomId)
    : await crypto.requestDeviceVerification(botUser, botDevice);
  await until("the bot is ready", () => request.phase >= VerificationPhase.Ready);
} else {
  request = await until("the bot's request", () => received);
  say({ step: "request received", from: request.otherUserId, device: request.otherDeviceId ?? null,
        room: request.roomId ?? null });
  await request.accept();
}
let outcome = "verified";
if (request.phase < VerificationPhase.Cancelled) {
  const verifier = who === "user" ? await request.startVerification("m.sas.v1")
    : await until("the bot's start", () => request.verifier ?? (request.phase >= VerificationPhase.Cancelled ? "cancelled" : null));
  if (verifier === "cancelled") {
    outcome = "cancelled";
  } else {
    verifier.on(VerifierEvent.ShowSas, (sas) => {
      say({ step: "sas", emoji: sas.sas.emoji ?? null, decimal: sas.sas.decimal ?? null });
      if (answer === "match") sas.confirm(); else sas.mismatch();
    });
    try {
      await verifier.verify();
    } catch (error) {
      outcome = "cancelled";
    }
  }
} else {
  outcome = "cancelled";
}
await until("the request ends", () => request.phase >= VerificationPhase.Cancelled, 30).catch(() => null);
const status = await crypto.getDeviceVerificationStatus(botUser, botDevice);
say({ step: "result", outcome, phase: request.phase, cancellationCode: request.cancellationCode ?? null,
      verified: status?.isVerified() ?? false, locallyVerified: status?.localVerified ?? false,
      crossSigningVerified: status?.crossSigningVerified ?? false });
client.stopClient();
say({ step: "done" });
process.exit(0);
