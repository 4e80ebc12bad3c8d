// Debian's headless Chromium through playwright-core, for the interop tests' page scripts.
// withPage(fn) runs fn(page, errors) in a fresh profile (removed afterwards); errors collects
// the page's uncaught exceptions, and dialogs are accepted.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

export const say = (record) => console.log(JSON.stringify(record));

export async function withPage(fn) {
  const profile = mkdtempSync(join(tmpdir(), "ranvier-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
           "--disable-sync", "--no-first-run"],
    viewport: { width: 1280, height: 1000 },
  });
  try {
    const page = context.pages()[0] || await context.newPage();
    const errors = [];
    page.on("pageerror", (error) => errors.push(String(error)));
    page.on("dialog", (dialog) => dialog.accept());
    await fn(page, errors);
    if (errors.length) throw new Error(`errors in the page: ${errors.join("; ")}`);
    say({ step: "done" });
  } finally {
    await context.close();
    rmSync(profile, { recursive: true, force: true });
  }
}
