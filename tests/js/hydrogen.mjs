// Opens the Hydrogen page (tests/js/hydrogen/, built by tests/integration/test_hydrogen.py)
// in headless Chromium: node hydrogen.mjs PAGE_URL
// Prints the page's steps as JSON lines as they come; ends when the page reports done or
// error, and fails on an error.
import { say, withPage } from "./browser.mjs";

const [pageUrl] = process.argv.slice(2);

await withPage(async (page) => {
  await page.goto(pageUrl);
  let printed = 0;
  for (;;) {
    const steps = await page.evaluate(() => window.steps ?? []);
    for (const step of steps.slice(printed)) {
      if (step.step === "error") throw new Error(step.message);
      if (step.step !== "done") say(step);
    }
    printed = steps.length;
    if (steps.some((step) => step.step === "done")) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
});
