// The Hydrogen web client (hydrogen-view-sdk), bundled by tests/integration/test_hydrogen.py
// with esbuild and opened in headless Chromium by tests/js/hydrogen.mjs. The page's query
// says which homeserver, account and rooms: it logs in with the password (Hydrogen uploads
// its device keys before its first sync), reports its rooms, sends a message into the plain
// room and one into the encrypted room, then opens the encrypted room's timeline and waits
// for the message `expect` to arrive decrypted. Steps go to window.steps for the driver.
import { Client, createNavigation, LoadStatus, Platform } from "hydrogen-view-sdk";

const params = new URLSearchParams(location.search);
window.steps = [];
const report = (record) => window.steps.push(record);

async function loggedInClient() {
  const assetPaths = {
    downloadSandbox: "assets/download-sandbox.html",
    worker: "assets/main.js",
    serviceWorker: "sw.js",
    olm: { wasm: "olm/olm.wasm", legacyBundle: "olm/olm_legacy.js", wasmBundle: "olm/olm.js" },
  };
  const platform = new Platform({ container: document.getElementById("app"), assetPaths, config: {},
                                  options: { development: false } });
  platform.setNavigation(createNavigation());
  await platform.init();
  const client = new Client(platform);
  const login = await client.queryLogin(params.get("hs")).result;
  client.startWithLogin(login.password(params.get("user"), params.get("password")));
  const ended = [LoadStatus.Ready, LoadStatus.Error, LoadStatus.LoginFailed];
  await client.loadStatus.waitFor((status) => ended.includes(status)).promise;
  if (client.loginFailure || client.loadError) {
    throw new Error(`login: ${client.loginFailure ?? ""} load: ${client.loadError?.message ?? ""}`);
  }
  return client;
}

async function arrived(timeline, body, seconds = 40) {
  const deadline = Date.now() + seconds * 1000;
  for (;;) {
    const entry = [...timeline.remoteEntries].find((e) => e.content?.body === body);
    if (entry) return entry;
    if (Date.now() > deadline) throw new Error(`"${body}" never arrived decrypted`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

async function main() {
  const { session } = await loggedInClient();
  report({ step: "ready", userId: session.userId, deviceId: session.deviceId,
           rooms: [...session.rooms.values()].map((room) => [room.id, room.name, room.isEncrypted]) });
  const plain = session.rooms.get(params.get("plain_room"));
  const encrypted = session.rooms.get(params.get("encrypted_room"));
  await plain.sendEvent("m.room.message", { msgtype: "m.text", body: "hello from hydrogen" });
  await encrypted.sendEvent("m.room.message", { msgtype: "m.text", body: "secret from hydrogen" });
  report({ step: "queued" });
  const timeline = await encrypted.openTimeline();
  const entry = await arrived(timeline, params.get("expect"));
  report({ step: "read", sender: entry.sender, encrypted: entry.isEncrypted ?? null });
  report({ step: "done" });
}

main().catch((error) => report({ step: "error", message: String(error?.stack ?? error) }));
