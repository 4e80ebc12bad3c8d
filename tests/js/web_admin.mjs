// Drives the web admin in Debian's headless Chromium with playwright-core:
// node web_admin.mjs BASE_URL ADMIN_USER PASSWORD SCREENSHOT_PATH
// Prints one JSON line per step; exits non-zero on the first failure.
import { say, withPage } from "./browser.mjs";

const [baseUrl, user, password, screenshot] = process.argv.slice(2);

await withPage(async (page) => {
  await page.goto(`${baseUrl}/_ranvier/admin/`);
  await page.fill("#login-user", user);
  await page.fill("#login-password", password);
  await page.click("#login-submit");
  await page.waitForSelector("#dashboard:not([hidden])");
  await page.waitForFunction(() => document.querySelector("#count-users").textContent !== "–");
  say({ step: "logged in", users: await page.textContent("#count-users") });

  // live data: several polls, with requests and persisted events in them
  await page.waitForFunction(() => {
    const s = window.ranvierAdmin.series;
    return s.time.length >= 4 && s.requests.some((v) => v > 0) && s.events.some((v) => v > 0)
      && s.p50.some((v) => v !== null) && s.memory.every((v) => v > 1);
  }, null, { timeout: 30000 });
  const charts = await page.evaluate(() => ({
    canvases: document.querySelectorAll(".chart canvas").length,
    points: window.ranvierAdmin.series.time.length,
    maxEvents: Math.max(...window.ranvierAdmin.series.events),
    maxRequests: Math.max(...window.ranvierAdmin.series.requests),
    memoryMiB: window.ranvierAdmin.series.memory.at(-1),
  }));
  say({ step: "graphs", ...charts });
  await page.screenshot({ path: screenshot, fullPage: true });
  say({ step: "screenshot", path: screenshot });

  await page.click('a[href="#users"]');
  await page.waitForSelector("#users:not([hidden])");
  await page.fill("#new-user-name", "webuser");
  await page.fill("#new-user-password", "web password");
  await page.fill("#new-user-displayname", "Made in the browser");
  await page.click("#new-user-submit");
  const row = 'tr[data-user="@webuser:localhost"]';
  await page.waitForSelector(row);
  say({ step: "created", text: await page.textContent(row) });
  await page.click(`${row} button.danger`);
  await page.waitForSelector(row, { state: "detached" });
  await page.waitForFunction(() => document.querySelector("#message").textContent.includes("deactivated"));
  say({ step: "deactivated", message: await page.textContent("#message") });
});
