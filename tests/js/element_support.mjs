// What the "Element's day" scripts (element_threads.mjs, element_day.mjs, element_rooms.mjs,
// element_restore.mjs, run by tests/integration/test_js_sdk_element_day.py) share: accounts,
// matrix-js-sdk clients made and started as Element Web makes and starts them (threads and
// timelines on, members loaded lazily), waiting for the SDK's models to reach a state, and
// one JSON line per step.
import * as sdk from "matrix-js-sdk";
import { logger } from "matrix-js-sdk/lib/logger.js";

logger.setLevel("error");
export const say = (record) => console.log(JSON.stringify(record));
const suffix = Math.random().toString(36).slice(2, 8);

/** Register `name` (with a random suffix) on the homeserver; its session and password. */
export async function register(baseUrl, name) {
  const password = `${name} password ${suffix}`;
  const session = await sdk.createClient({ baseUrl }).registerRequest({
    username: `${name}${suffix}`, password, auth: { type: "m.login.dummy" },
    initial_device_display_name: `${name}'s first device`,
  });
  return { userId: session.user_id, accessToken: session.access_token, deviceId: session.device_id, password };
}

/** Log `account` in again: a new device (a new session of Element) of the same user. */
export async function login(baseUrl, account, deviceName) {
  const session = await sdk.createClient({ baseUrl }).login("m.login.password", {
    identifier: { type: "m.id.user", user: account.userId },
    password: account.password, initial_device_display_name: deviceName,
  });
  return { ...account, accessToken: session.access_token, deviceId: session.device_id };
}

/** A client of `session` as Element Web creates it: threads on, timelines (permalinks and
 * jumps into history through /context) on. */
export function client(baseUrl, session, options = {}) {
  return sdk.createClient({
    baseUrl, accessToken: session.accessToken, userId: session.userId, deviceId: session.deviceId,
    threadSupport: true, timelineSupport: true, ...options,
  });
}

/** Start `matrixClient` syncing with the options Element Web starts it with (members loaded
 * lazily, pending events apart from the timeline, threads); resolves once its initial sync
 * is in (PREPARED). */
export async function start(matrixClient) {
  const prepared = new Promise((resolve) => {
    const onSync = (state) => {
      if (state === "PREPARED") {
        matrixClient.off(sdk.ClientEvent.Sync, onSync);
        resolve();
      }
    };
    matrixClient.on(sdk.ClientEvent.Sync, onSync);
  });
  await matrixClient.startClient({
    initialSyncLimit: 20, lazyLoadMembers: true, pendingEventOrdering: sdk.PendingEventOrdering.Detached, threadSupport: true,
  });
  await prepared;
  return matrixClient;
}

/** Wait until `check()` gives a truthy value (polled every 50 ms); that value. Fails saying
 * `what` was not reached, with what `check` last gave when `describe` is passed. */
export async function until(what, check, { seconds = 15, describe } = {}) {
  const deadline = Date.now() + seconds * 1000;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) {
      throw new Error(`not reached within ${seconds} s: ${what}${describe ? ` (${JSON.stringify(await describe())})` : ""}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Run the steps of a script: exits 1 with the error on the first failure, 0 after `done`. */
export async function run(steps) {
  try {
    await steps();
  } catch (error) {
    console.error(error?.stack ?? error);
    process.exit(1);
  }
  say({ step: "done" });
  process.exit(0);
}
