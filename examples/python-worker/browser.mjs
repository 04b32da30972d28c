// The page (index.html) in headless Chromium against a running `run`: a session, a variable,
// a command that reads it, a countdown with its progress. Prints "ok".
//
//     node examples/python-worker/browser.mjs http://127.0.0.1:8080
import { chromium } from "playwright-core";

const origin = process.argv[2];
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"],
});
try {
  const page = await browser.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  await page.goto(origin);
  await page.click("#new-session");
  await page.waitForFunction(() => document.querySelector("#session").textContent !== "none");
  await page.click("#set-var");
  await page.waitForFunction(() => document.querySelector("#session").textContent.includes("GREETING"));
  await page.fill("#command", "printenv");
  await page.fill("#args", "GREETING");
  await page.click("#run");
  await page.waitForFunction(() => document.querySelector("#status").textContent === "exited with 0");
  const printed = await page.textContent("#output");
  if (printed.trim() !== "hello from the browser") throw new Error(`printenv printed ${JSON.stringify(printed)}`);
  await page.fill("#command", "countdown");
  await page.fill("#args", "3");
  await page.click("#run");
  await page.waitForFunction(() => document.querySelector("#status").textContent === "exited with 0");
  const output = await page.textContent("#output");
  const progress = await page.$eval("#progress", (p) => [p.value, p.max]);
  if (!output.includes("liftoff") || progress[0] !== 3 || progress[1] !== 3) {
    throw new Error(`countdown: ${JSON.stringify(output)}, progress ${progress}`);
  }
  await page.fill("#command", "rm");
  await page.click("#run");
  await page.waitForFunction(() => document.querySelector("#status").className === "error");
  const refused = await page.textContent("#status");
  if (!refused.startsWith("invalid_argument: unknown command 'rm'")) throw new Error(`rm: ${refused}`);
  if (errors.length) throw new Error(`page errors: ${errors.join("; ")}`);
  console.log("browser: session, variable, printenv, countdown with progress, a refused command");
  console.log("ok");
} finally {
  await browser.close();
}
