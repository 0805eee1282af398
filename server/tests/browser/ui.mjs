// The web UI in a real browser (Debian's Chromium, driven by playwright-core):
// single sign-on through the identity provider, the Application list, one
// Application updating live while its sync runs, Sync and Roll back clicked,
// and a user of another group who can neither see nor act on it, in the UI
// or by calling the API directly. Screenshots of every page go to $SHOTS.
// Driven by server/tests/browser.rs, which checks what the clicks wrote.
import path from "node:path";
import { execFileSync } from "node:child_process";

const tools = process.env.PUSHSYNC_UI_TOOLS;
const { chromium } = await import(path.join(tools, "node_modules/playwright-core/index.mjs"));
const base = process.env.BASE;
const shots = process.env.SHOTS;
const kubeconfig = process.env.KUBECONFIG;

const results = {};
const fail = (message) => {
  throw new Error(message);
};
const expect = (condition, message) => {
  if (!condition) fail(message);
};
const kubectl = (...args) => execFileSync("kubectl", ["--kubeconfig", kubeconfig, ...args], { encoding: "utf8" });
const setStatus = (name, status) =>
  kubectl("patch", "application", name, "--subresource=status", "--type=merge", "-p", JSON.stringify({ status }));

const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  // Nothing but loopback: the provider's pages link a web font.
  args: ["--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"],
});

async function logIn(user) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  await page.goto(`${base}/`);
  expect(page.url().startsWith(`${base}/login`), `not sent to the login page: ${page.url()}`);
  await page.screenshot({ path: `${shots}/login.png` });
  await page.click("text=Log in with single sign-on");
  // The provider's own login form.
  await page.waitForSelector('input[name="login"]');
  await page.screenshot({ path: `${shots}/idp-login-${user}.png` });
  await page.fill('input[name="login"]', user);
  await page.fill('input[name="password"]', "any password: the test provider takes any");
  await page.click('button[type="submit"]');
  await page.waitForURL(`${base}/`);
  await page.waitForSelector("#applications");
  return { context, page };
}

const rows = async (page) =>
  page.$$eval("#applications tbody tr", (trs) =>
    trs.map((tr) => ({
      key: tr.dataset.key,
      sync: tr.querySelector('[data-field="sync"]').textContent.trim(),
      health: tr.querySelector('[data-field="health"]').textContent.trim(),
    })),
  );

try {
  // Alice (group team-a) logs in through the provider and sees team-a's Application.
  const alice = await logIn("alice");
  let page = alice.page;
  await page.screenshot({ path: `${shots}/list-alice.png`, fullPage: true });
  const listed = await rows(page);
  const webA = listed.find((row) => row.key === "default/web-a");
  expect(webA && webA.sync === "Synced" && webA.health === "Healthy", `web-a in alice's list: ${JSON.stringify(webA)}`);
  expect(!listed.some((row) => row.key === "default/web-b"), "alice must not see web-b");
  expect(listed.every((row) => row.key === "default/web-a" || row.key.startsWith("default/bulk-")), "alice sees team-a's only");
  expect((await page.textContent("header")).includes("alice"), "the header names alice");

  // Her Application's page; it follows a sync live, without a reload.
  await page.click('a[href="/applications/default/web-a"]');
  await page.waitForSelector("#app");
  await page.screenshot({ path: `${shots}/app.png`, fullPage: true });
  await page.waitForSelector('html[data-live="open"]');
  let navigations = 0;
  page.on("framenavigated", (frame) => {
    if (frame === page.mainFrame()) navigations += 1;
  });
  await page.click('button[data-action="sync"]:not([data-resource])');
  await page.waitForSelector(".result.ok");
  results.syncClicked = await page.textContent(".result");
  setStatus("web-a", {
    sync: { status: "OutOfSync" },
    health: { status: "Progressing", message: "Deployment web-a: 1 of 2 updated replicas available" },
    operationState: { phase: "Running", startedAt: "2026-12-02T10:00:00Z", message: "wave 0: waiting for Deployment web-a" },
  });
  await page.waitForFunction(() => document.querySelector("#app")?.textContent.includes("1 of 2 updated replicas"), null, { timeout: 10000 });
  await page.screenshot({ path: `${shots}/app-sync-running.png`, fullPage: true });
  setStatus("web-a", {
    sync: { status: "Synced" },
    health: { status: "Healthy", message: "" },
    operationState: { phase: "Succeeded", finishedAt: "2026-12-02T10:00:05Z", message: "successfully synced (all tasks run)" },
  });
  await page.waitForFunction(() => document.querySelector("#app")?.textContent.includes("successfully synced"), null, { timeout: 10000 });
  await page.screenshot({ path: `${shots}/app-sync-done.png`, fullPage: true });
  expect(navigations === 0, `the page reloaded ${navigations} times instead of updating in place`);
  results.live = "updated in place";

  // Roll back to the older revision.
  await page.click('button[data-action="rollback"]');
  await page.waitForSelector(".result.ok");
  results.rollbackClicked = await page.textContent(".result");

  // The list follows too.
  await page.goto(`${base}/`);
  await page.waitForSelector('html[data-live="open"]');
  setStatus("web-a", { health: { status: "Degraded", message: "CrashLoopBackOff" } });
  await page.waitForFunction(() => document.querySelector('tr[data-key="default/web-a"] [data-field="health"]')?.textContent.includes("Degraded"), null, { timeout: 10000 });
  results.listLive = "updated in place";

  // Bob (group team-b) sees only team-b's Application and cannot reach team-a's.
  const bob = await logIn("bob");
  page = bob.page;
  const bobs = await rows(page);
  expect(bobs.length === 1 && bobs[0].key === "default/web-b", `bob's list: ${JSON.stringify(bobs).slice(0, 300)}`);
  await page.screenshot({ path: `${shots}/list-bob.png`, fullPage: true });
  const direct = await page.goto(`${base}/applications/default/web-a`);
  expect(direct.status() === 404, `bob opening web-a: ${direct.status()}`);
  await page.screenshot({ path: `${shots}/not-found-bob.png` });
  await page.goto(`${base}/applications/default/web-b`);
  expect(!(await page.$('button[data-action="rollback"]')), "bob may not roll back: no button");
  // The API refuses him too, even with his own valid session and CSRF token.
  const csrf = await page.getAttribute('meta[name="csrf-token"]', "content");
  const headers = { "x-csrf-token": csrf, "content-type": "application/json" };
  const read = await page.request.get(`${base}/api/v1/applications/default/web-a`);
  const act = await page.request.post(`${base}/api/v1/applications/default/web-a/sync`, { headers, data: {} });
  const own = await page.request.post(`${base}/api/v1/applications/default/web-b/rollback`, { headers, data: { revision: "fedcba9" } });
  expect(read.status() === 404 && act.status() === 404, `bob's API calls on web-a: ${read.status()} ${act.status()}`);
  expect(own.status() === 403, `bob rolling back his own (sync role only): ${own.status()}`);
  results.bob = { read: read.status(), act: act.status(), rollbackOwn: own.status() };

  // How long the list takes to load in the browser with many Applications.
  if (process.env.MANY) {
    const started = Date.now();
    const response = await alice.page.goto(`${base}/`, { waitUntil: "load" });
    const loadMs = Date.now() - started;
    const timing = await alice.page.evaluate(() => {
      const [nav] = performance.getEntriesByType("navigation");
      return { domContentLoaded: Math.round(nav.domContentLoadedEventEnd), load: Math.round(nav.loadEventEnd), responseEnd: Math.round(nav.responseEnd) };
    });
    const count = await alice.page.$$eval("#applications tbody tr", (trs) => trs.length);
    expect(response.ok() && count >= Number(process.env.MANY), `rows: ${count}`);
    await alice.page.screenshot({ path: `${shots}/list-many.png` });
    results.many = { rows: count, loadMs, ...timing };
  }
  console.log(JSON.stringify(results));
} finally {
  await browser.close();
}
