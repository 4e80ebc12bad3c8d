// Logs in through the 2014 draft's login fallback page in headless Chromium:
// node login_fallback.mjs PAGE_URL USER PASSWORD WRONG_PASSWORD
// First with the wrong password (the page must show the error), then with the right one.
// Prints one JSON line per step; exits non-zero on the first failure.
import { say, withPage } from "./browser.mjs";

const [pageUrl, user, password, wrongPassword] = process.argv.slice(2);

await withPage(async (page) => {
  await page.goto(pageUrl);
  await page.waitForSelector("#login:not([hidden])");
  const submit = async (secret) => {
    await page.fill("#user", user);
    await page.fill("#password", secret);
    await page.click("#submit");
  };
  await submit(wrongPassword);
  await page.waitForSelector("#status.error");
  say({ step: "refused", text: await page.textContent("#status") });
  await submit(password);
  await page.waitForFunction(() => document.getElementById("status").dataset.accessToken);
  say({
    step: "logged in",
    text: await page.textContent("#status"),
    token: await page.evaluate(() => document.getElementById("status").dataset.accessToken),
  });
});
