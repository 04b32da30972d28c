// The demo page in headless Chromium against a real gateway: live updates across two pages
// and from curl, the command lines it prints (run for real), compare-and-set conflicts, a
// gateway killed and restarted under a watching page, and screenshots (tests/browser/screenshots/).

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { promisify } from "node:util";

import { connectCall, eventually, gateway, launch, newPage, root, screenshot, tempDir } from "./harness.mjs";

const run = promisify(execFile);
const SVC = "portway.state.v1.StateService";
let chrome;

before(async () => {
  chrome = await launch();
});
after(async () => {
  await chrome?.close();
});

/** Opens the demo and waits until its watch is live (the pill says connected). */
async function openDemo(origin, viewport) {
  const page = await newPage(chrome.browser, viewport);
  await page.goto(`${origin}/`);
  await page.locator('#conn[data-state="open"]').waitFor({ timeout: 15_000 });
  await page.locator("#events li").first().waitFor();
  return page;
}

const rowValue = (page, key) => page.locator(`#entries tr[data-key="${key}"] td.value`);

describe("the demo page", () => {
  let gw;
  before(async () => {
    gw = await gateway();
  });
  after(async () => {
    await gw?.stop();
  });

  test("a write in page A through gRPC-Web appears in page B through the watch", async () => {
    const origin = `http://localhost:${gw.addr.split(":").pop()}`;
    const a = await openDemo(origin);
    const b = await openDemo(origin);
    await a.fill("#key", "tabs/hello");
    await a.fill("#value", '{"from": "page A"}');
    await a.click("#put");
    await a.locator("#write-result .ok").waitFor();
    assert.match(await a.locator("#write-result").innerText(), /Written at revision \d+/);
    await rowValue(b, "tabs/hello").filter({ hasText: '{"from":"page A"}' }).waitFor();
    const rev = await b.locator('#entries tr[data-key="tabs/hello"] td.num').first().innerText();
    await b.locator(`#events li[data-revision="${rev}"]`).waitFor();

    // A write made with curl, exactly as the page prints it: it appears in both pages.
    await a.fill("#key", "tabs/curl");
    await a.fill("#value", '{"from": "curl"}');
    const curl = await a.locator("#write-commands pre").first().innerText();
    assert.match(curl, new RegExp(`^curl .* ${origin}/${SVC}/Put$`, "s"));
    const { stdout } = await run("bash", ["-c", curl]);
    assert.match(stdout, /"revision":"\d+"/);
    for (const page of [a, b]) await rowValue(page, "tabs/curl").filter({ hasText: '{"from":"curl"}' }).waitFor();

    // And its buf curl line (gRPC-Web, with the schema from reflection).
    await a.fill("#key", "tabs/buf");
    const buf = await a.locator("#write-commands pre").nth(1).innerText();
    assert.match(buf, /^buf curl --protocol grpcweb/);
    await run("bash", ["-c", buf], { env: { ...process.env, PATH: `${path.join(root, "node_modules/.bin")}:${process.env.PATH}` } });
    for (const page of [a, b]) await rowValue(page, "tabs/buf").waitFor();

    await screenshot(b, "demo-two-tabs");
    assert.deepEqual([...a.errors, ...b.errors], []);
    await a.close();
    await b.close();
  });

  test("a compare-and-set conflict shows its typed detail", async () => {
    const page = await openDemo(gw.origin);
    await page.fill("#key", "cas/doc");
    await page.fill("#expected", "0");
    await page.click("#put");
    await page.locator("#write-result .ok").waitFor();
    // Expected revision 0 means "only if absent": the second put conflicts.
    await page.click("#put");
    const box = page.locator("#write-result .error");
    await box.waitFor();
    const text = await box.innerText();
    assert.match(text, /^failed_precondition/);
    assert.match(text, /ConflictDetail/);
    assert.match(text, /key\s+cas\/doc/);
    assert.match(text, /expectedRevision\s+0/);
    assert.match(text, /currentRevision\s+[1-9]/);
    await screenshot(page, "demo-conflict");
    // Bad input is refused in the page, in words.
    await page.fill("#value", "{not json");
    await page.click("#put");
    assert.match(await page.locator("#write-result .error").innerText(), /value is not valid JSON/);
    await page.close();
  });

  test("the Sync panel: acks, a duplicate resend, pushed events", async () => {
    const page = await openDemo(gw.origin);
    await page.click("#sync-open");
    await page.locator("#sync-log li", { hasText: "opened session" }).waitFor();
    await page.fill("#sync-value", '"one"');
    await page.click("#sync-write");
    await page.locator("#sync-log li", { hasText: /^r\d+\s*ack #1$/ }).waitFor();
    await page.locator("#sync-log li", { hasText: "pushed PUT sync/counter" }).waitFor();
    await page.click("#sync-resend");
    await page.locator("#sync-log li", { hasText: "duplicate: already applied" }).waitFor();
    // Its buf curl line replays the session over native gRPC: the server knows the session
    // and acknowledges the write as a duplicate again.
    const buf = await page.locator("#sync-commands pre").first().innerText();
    const { stdout } = await run("bash", ["-c", buf], {
      env: { ...process.env, PATH: `${path.join(root, "node_modules/.bin")}:${process.env.PATH}` },
    });
    assert.match(stdout, /"duplicate": true/);
    await page.click("#sync-close");
    await page.locator("#sync-open:not([disabled])").waitFor();
    await page.close();
  });

  test("many streams on one socket, each with its own credit", async () => {
    const page = await openDemo(gw.origin);
    await page.click("#streams-start");
    await page.locator(".stream").nth(11).waitFor();
    // The fast consumer finishes while slow ones are held back by their credit.
    await page.locator('.stream[data-state="done"]').first().waitFor({ timeout: 20_000 });
    const metas = await page.locator(".stream .meta").allInnerTexts();
    assert.equal(metas.length, 12);
    for (const m of metas) {
      const [, credit] = m.match(/credit (\d+)\/4/);
      const [, buffered] = m.match(/buffered (\d+)/);
      assert.ok(Number(credit) + Number(buffered) <= 4, m);
    }
    assert.match(await page.locator("#streams-summary").innerText(), /calls open on 1 socket/);
    await screenshot(page, "demo-streams");
    await page.click("#streams-stop");
    await page.setViewportSize({ width: 1280, height: 900 });
    await screenshot(page, "demo-wide");
    await page.close();
  });

  test("works in a narrow window", async () => {
    const page = await openDemo(gw.origin, { width: 390, height: 844 });
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `the page is ${overflow}px wider than the window`);
    await screenshot(page, "demo-narrow");
    await page.close();
  });
});

test("kill and restart the gateway: the page reconnects and the watch resumes without gaps or duplicates", async () => {
  const data = tempDir();
  let gw = await gateway({ dataDir: data.dir });
  const addr = gw.addr;
  const page = await openDemo(gw.origin);
  const put = (i) => connectCall(gw.origin, `${SVC}/Put`, { key: `restart/${i % 3}`, value: i });
  for (let i = 1; i <= 5; i++) await put(i);
  const seen = () => page.evaluate(() => window.portwayDemo.seenRevisions.slice());
  await eventually("the first writes on the page", async () => (await seen()).length === 5);

  await gw.kill();
  await page.locator('#conn[data-state="reconnecting"]').waitFor();
  await screenshot(page, "demo-reconnecting");
  gw = await gateway({ dataDir: data.dir, listen: addr });
  // Written before the page is back: they must come from the log when the watch resumes.
  for (let i = 6; i <= 8; i++) await put(i);
  await page.locator('#conn[data-state="open"]').waitFor({ timeout: 20_000 });
  for (let i = 9; i <= 10; i++) await put(i);
  await eventually("every write on the page", async () => (await seen()).length >= 10);
  const revisions = await seen();
  assert.deepEqual(revisions, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  assert.match(await page.locator("#events").innerText(), /resuming from revision 6/);
  await page.close();
  await gw.stop();
  data.remove();
});
