// Lighthouse on one signed-in page, through its Node API, with a real cookie jar.
//
//   node scripts/lighthouse_card.mjs <url> <output-prefix> < cookies.json
//
// cookies.json is a list of puppeteer cookies ({name, value, url, path, secure, httpOnly,
// sameSite}), as labs/stack.py page_cookies() returns them. They go into Chromium's own
// cookie store before Lighthouse navigates, so every request the page makes, its own
// fetch() calls included, carries the session the way a phone's browser would. (The CLI's
// --extra-headers "Cookie" did not reach the page's fetch(credentials: "same-origin").)
// Lighthouse's storage reset clears file systems, service workers and caches, not cookies.
//
// Writes <output-prefix>.report.json and <output-prefix>.report.html, like the CLI's
// --output-path. Lighthouse and puppeteer-core come from tools/audit (scripts/audit.sh
// install); ESM ignores NODE_PATH, so they are imported by file path.
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const MODULES = join(dirname(fileURLToPath(import.meta.url)), "..", "tools", "audit",
  "node_modules");
const CHROME_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"];
const CATEGORIES = ["performance", "accessibility", "best-practices"];

async function load(name) {
  // The package's own ESM entry point, as its package.json "exports" names it.
  const manifest = JSON.parse(readFileSync(join(MODULES, name, "package.json"), "utf8"));
  const entry = manifest.exports?.["."]?.import ?? manifest.main;
  return import(pathToFileURL(join(MODULES, name, entry)).href);
}

async function main() {
  const [url, prefix] = process.argv.slice(2);
  if (!url || !prefix) throw new Error("usage: lighthouse_card.mjs <url> <output-prefix>");
  const cookies = JSON.parse(readFileSync(0, "utf8"));
  const { default: puppeteer } = await load("puppeteer-core");
  const { default: lighthouse } = await load("lighthouse");

  const browser = await puppeteer.launch({
    executablePath: process.env.CHROME_PATH || "/usr/bin/chromium",
    headless: true, // the new headless mode (--headless=new)
    args: CHROME_FLAGS,
    // Lighthouse does its own (mobile) emulation; puppeteer's 800x600 would fight it.
    defaultViewport: null,
  });
  try {
    const page = await browser.newPage();
    await page.setCookie(...cookies);
    const result = await lighthouse(url, {
      output: ["json", "html"],
      onlyCategories: CATEGORIES,
      logLevel: "error",
    }, undefined, page);
    if (!result) throw new Error("Lighthouse returned no result");
    const [json, html] = result.report;
    writeFileSync(`${prefix}.report.json`, json);
    writeFileSync(`${prefix}.report.html`, html);
  } finally {
    await browser.close();
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
