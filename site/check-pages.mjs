// Load pages of a built site in headless Chromium and report what each shows, as JSON.
//
//   node check-pages.mjs BASE_URL OUT_DIR PAGE=CHARTS[@WINDOW] ...
//
// For each page (a path under BASE_URL), waits until CHARTS Plot charts are drawn (or an
// error shows), then reports per chart its title (the heading above it), the number of
// line and area paths and of points in the lines; the page's errors (uncaught exceptions,
// console errors, failed requests, Framework error cells); every request that did not go to
// BASE_URL's origin (they are blocked); the files fetched; and saves OUT_DIR/<page>.png.
// With @WINDOW, the page's window picker is then set to the option labelled WINDOW and the
// page measured again (reported as "after"). Exits 1 when Chromium cannot run at all.
import {mkdir, mkdtemp, rm} from "node:fs/promises";
import {tmpdir} from "node:os";
import {join} from "node:path";
import puppeteer from "puppeteer-core";

const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const TIMEOUT = Number(process.env.CHECK_PAGES_TIMEOUT_MS ?? 60000);

const [base, out, ...specs] = process.argv.slice(2);
if (!base || !out || !specs.length) {
  console.error("usage: node check-pages.mjs BASE_URL OUT_DIR PAGE=CHARTS[@WINDOW] ...");
  process.exit(2);
}
const origin = new URL(base).origin;
await mkdir(out, {recursive: true});
const profile = await mkdtemp(join(tmpdir(), "check-pages-"));

const browser = await puppeteer.launch({
  executablePath: CHROMIUM,
  headless: true,
  userDataDir: profile,
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage"]
});

// What the charts on the page look like now.
function measure() {
  const charts = [...document.querySelectorAll("svg[class^='plot-']")].map((svg) => {
    let heading = null;
    for (let node = svg.closest(".observablehq") ?? svg; node && !heading; ) {
      node = node.previousElementSibling;
      if (node && /^H[1-3]$/.test(node.tagName)) heading = node.textContent.trim();
    }
    const paths = (mark) => [...svg.querySelectorAll(`g[aria-label='${mark}'] > path`)];
    return {
      title: heading,
      lines: paths("line").length,
      areas: paths("area").length,
      points: paths("line").reduce((n, p) => n + (p.getAttribute("d").match(/[ML]/g) ?? []).length, 0),
      ylabel: svg.querySelector("g[aria-label='y-axis label'] text")?.textContent ?? null
    };
  });
  return {
    charts,
    errors: [...document.querySelectorAll(".observablehq--error")].map((e) => e.textContent),
    window: document.querySelector(".pondfs-window")?.textContent ?? null
  };
}

async function settle(page, charts) {
  await page.waitForFunction((n) =>
    document.querySelectorAll("svg[class^='plot-']").length >= n ||
    document.querySelector(".observablehq--error"), {timeout: TIMEOUT}, charts);
  await page.waitForNetworkIdle({idleTime: 300, timeout: TIMEOUT});
  // Let the charts be painted before a screenshot (two frames, then a moment).
  await page.evaluate(() => new Promise((resolve) =>
    requestAnimationFrame(() => requestAnimationFrame(() => setTimeout(resolve, 500)))));
}

async function check(spec) {
  const [, path, charts, window] = /^(.*?)=(\d+)(?:@(.*))?$/.exec(spec);
  const page = await browser.newPage();
  await page.setViewport({width: 1280, height: 900});
  const report = {path, errors: [], external: [], files: []};
  await page.setRequestInterception(true);
  page.on("request", (request) => {
    const url = request.url();
    if (/^(data|blob):/.test(url) || new URL(url).origin === origin) {
      if (/\/_file\//.test(url)) report.files.push(new URL(url).pathname);
      request.continue();
    } else {
      report.external.push(url);
      request.abort("blockedbyclient");
    }
  });
  page.on("pageerror", (error) => report.errors.push(`pageerror: ${error.message}`));
  page.on("console", (message) => {
    if (message.type() === "error") report.errors.push(`console: ${message.text()}`);
  });
  page.on("requestfailed", (request) => {
    if (!report.external.includes(request.url())) {
      report.errors.push(`requestfailed: ${request.url()} ${request.failure()?.errorText}`);
    }
  });
  page.on("response", (response) => {
    if (response.status() >= 400) report.errors.push(`HTTP ${response.status()}: ${response.url()}`);
  });
  const name = path.replace(/^\/+/, "").replace(/\//g, "_") || "index";
  try {
    const response = await page.goto(new URL(path, base).href, {waitUntil: "load", timeout: TIMEOUT});
    report.status = response.status();
    report.title = await page.title();
    await settle(page, Number(charts));
    Object.assign(report, await page.evaluate(measure));
    await page.screenshot({path: join(out, `${name}.png`), fullPage: true});
    if (window) {
      report.files = [];
      const clicked = await page.evaluate((label) => {
        const option = [...document.querySelectorAll("form label")]
          .find((l) => l.textContent.trim() === label);
        option?.click();
        return Boolean(option);
      }, window);
      if (!clicked) throw new Error(`no window option ${JSON.stringify(window)}`);
      await page.waitForFunction((before) =>
        document.querySelector(".pondfs-window")?.textContent !== before,
        {timeout: TIMEOUT}, report.window);
      await settle(page, Number(charts));
      report.after = {...await page.evaluate(measure), files: report.files};
      await page.screenshot({path: join(out, `${name}@${window.replace(/\W+/g, "-")}.png`),
                             fullPage: true});
    }
  } catch (error) {
    report.errors.push(`check: ${error.message}`);
    await page.screenshot({path: join(out, `${name}.failed.png`), fullPage: true}).catch(() => {});
  }
  await page.close();
  return report;
}

try {
  for (const spec of specs) console.log(JSON.stringify(await check(spec)));
} finally {
  await browser.close();
  await rm(profile, {recursive: true, force: true});
}
