// A matrix-js-sdk client run against a homeserver by tests/integration/test_js_sdk.py:
// logs in with a password, reads the push rules, starts syncing, and reports as JSON lines
// on stdout: {"pushrules": ...}, {"state": "PREPARED" | "SYNCING" | ...}, {"message": body}.
// It stops when stdin closes.
import * as sdk from "matrix-js-sdk";

const [baseUrl, user, password] = process.argv.slice(2);
const say = (record) => process.stdout.write(JSON.stringify(record) + "\n");

const anonymous = sdk.createClient({ baseUrl });
const session = await anonymous.login("m.login.password", {
  identifier: { type: "m.id.user", user },
  password,
  initial_device_display_name: "matrix-js-sdk",
});
const client = sdk.createClient({
  baseUrl,
  accessToken: session.access_token,
  userId: session.user_id,
  deviceId: session.device_id,
});
const rules = await client.getPushRules();
say({ pushrules: Object.keys(rules.global), override: rules.global.override.map((r) => r.rule_id) });
client.on(sdk.ClientEvent.Sync, (state, previous, data) => say({ state, error: data?.error?.message }));
client.on(sdk.RoomEvent.Timeline, (event) => {
  if (event.getType() === "m.room.message") say({ message: event.getContent().body, room: event.getRoomId() });
});
await client.startClient({ initialSyncLimit: 10 });
process.stdin.on("end", () => {
  client.stopClient();
  process.exit(0);
});
process.stdin.resume();
