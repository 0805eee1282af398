// A sync triggered by a signed push, watched live in a real browser: log in
// (the local user `make run` prints), open an Application, send the push
// (the command in $PUSH, e.g. scripts/local-push.sh …), and wait, without
// reloading, until the page shows the pushed revision deployed. Prints what
// the page went through. Driven by tests/e2e/local.rs.
import path from "node:path";
import { execFileSync } from "node:child_process";

const tools = process.env.PUSHSYNC_UI_TOOLS;
const { chromium } = await import(path.join(tools, "node_modules/playwright-core/index.mjs"));
const base = process.env.BASE;
const [namespace, name] = process.env.APP.split("/");
const push = JSON.parse(process.env.PUSH);

const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"],
});
try {
  const page = await (await browser.newContext({ viewport: { width: 1280, height: 900 } })).newPage();
  await page.goto(`${base}/login`);
  await page.fill('input[name="username"]', process.env.UI_USER);
  await page.fill('input[name="password"]', process.env.UI_PASSWORD);
  await page.click('button[type="submit"]');
  await page.waitForSelector("#applications");
  await page.goto(`${base}/applications/${namespace}/${name}`);
  await page.waitForSelector("#app");
  await page.waitForSelector('html[data-live="open"]');
  const revision = () => page.$eval("#app .summary code", (code) => code.textContent.trim());
  const before = await revision();
  if (process.env.SHOTS) await page.screenshot({ path: `${process.env.SHOTS}/push-before.png`, fullPage: true });
  // Every state the page shows from now on, as it changes in place.
  await page.evaluate(() => {
    window.seen = [];
    const note = () => {
      const text = document.querySelector("#app .summary")?.textContent.replace(/\s+/g, " ").trim();
      if (text && window.seen[window.seen.length - 1] !== text) window.seen.push(text);
    };
    new MutationObserver(note).observe(document.querySelector("#app"), { childList: true, subtree: true });
  });
  let navigations = 0;
  page.on("framenavigated", (frame) => {
    if (frame === page.mainFrame()) navigations += 1;
  });
  const sent = execFileSync(push[0], push.slice(1), { encoding: "utf8" });
  if (!sent.startsWith("HTTP/1.1 202")) throw new Error(`the push was not accepted: ${sent}`);
  await page.waitForFunction(
    (old) => {
      const code = document.querySelector("#app .summary code")?.textContent.trim();
      const text = document.querySelector("#app .summary")?.textContent || "";
      return code && code !== old && text.includes("Synced") && text.includes("Healthy");
    },
    before,
    { timeout: 60000 },
  );
  if (process.env.SHOTS) await page.screenshot({ path: `${process.env.SHOTS}/push-after.png`, fullPage: true });
  const after = await revision();
  if (navigations !== 0) throw new Error(`the page reloaded ${navigations} times`);
  console.log(JSON.stringify({ before, after, seen: await page.evaluate(() => window.seen) }));
} finally {
  await browser.close();
}
