// Loads pages in Debian's chromium (driven by playwright-core) and reports, for each page and
// viewport width, what a person would meet: axe-core's violations, the <img> attributes, layout
// shift, where the first Tab and the skip link take the keyboard, and whether sticky table
// headers and first columns stay in view when their box is scrolled. Used by
// tests/test_summary_browser.py; prints one JSON document.
//
//   node tests/browser_pages.js '<json: {"pages": [{"name", "url"}], "widths": [1350, 390],
//                                        "height": 700, "screenshots": "<dir or empty>"}>'
//
// Needs CALIB_NODE_MODULES (bin/_browser_env.sh installs axe-core and playwright-core there).
"use strict";

const path = require("path");
const fs = require("fs");
const os = require("os");

const modules = process.env.CALIB_NODE_MODULES;
const { chromium } = require(path.join(modules, "playwright-core"));
const AXE = path.join(modules, "axe-core", "axe.min.js");

const CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
  "--disable-dev-shm-usage"];

async function inspect(page) {
  return page.evaluate(async () => {
    const rect = (el) => { const r = el.getBoundingClientRect(); return { top: r.top, left: r.left, width: r.width, height: r.height }; };
    const images = [...document.querySelectorAll("img")].map((img) => ({
      src: img.getAttribute("src"), srcset: img.getAttribute("srcset"), sizes: img.getAttribute("sizes"),
      width: img.getAttribute("width"), height: img.getAttribute("height"), loading: img.getAttribute("loading"),
      fetchpriority: img.getAttribute("fetchpriority"), alt: img.getAttribute("alt"),
      shown: rect(img), complete: img.complete, naturalWidth: img.naturalWidth, currentSrc: img.currentSrc,
    }));
    let shift = 0;
    await new Promise((resolve) => {
      new PerformanceObserver((list) => {
        for (const e of list.getEntries()) if (!e.hadRecentInput) shift += e.value;
      }).observe({ type: "layout-shift", buffered: true });
      setTimeout(resolve, 200);
    });
    const loadShift = shift;  // before this script scrolls anything
    // Sticky parts: scroll each table box (or, for a table not in a box, the page) and see what stays.
    const sticky = [];
    for (const table of document.querySelectorAll("table")) {
      const head = table.querySelector("thead th");
      if (!head || getComputedStyle(table.querySelector("thead")).display === "none") continue;
      const box = table.closest(".table-box");
      const entry = { table: table.id, box: !!box };
      if (box) {
        // as a person would: bring the box into view first (off screen it is not rendered)
        box.scrollIntoView({ block: "start" });
        await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
        box.scrollTop = 0; box.scrollLeft = 0;
        const top0 = rect(box).top;
        entry.scrollable_down = box.scrollHeight > box.clientHeight;
        box.scrollTop = Math.min(400, box.scrollHeight);
        entry.head_offset = rect(head).top - top0;
        entry.scrolled_down = box.scrollTop;
        box.scrollTop = 0;
        const firstCell = table.querySelector("tbody tr td");
        box.scrollLeft = Math.min(300, box.scrollWidth);
        entry.scrolled_right = box.scrollLeft;
        entry.first_column_offset = firstCell ? rect(firstCell).left - rect(box).left : null;
        box.scrollLeft = 0;
        window.scrollTo(0, 0);
      } else {
        // the page scrolls: room below the table lets it scroll past the table's top
        const spacer = document.body.appendChild(document.createElement("div"));
        spacer.style.height = "3000px";
        const start = table.getBoundingClientRect().top + window.scrollY;
        const within = table.getBoundingClientRect().height - 2 * rect(head).height;
        window.scrollTo(0, start + Math.max(0, Math.min(300, within)));
        entry.scrolled_down = window.scrollY - start;
        entry.head_offset = rect(head).top;
        window.scrollTo(0, 0);
        spacer.remove();
      }
      sticky.push(entry);
    }
    const description = document.querySelector('meta[name="description"]');
    const icon = document.querySelector('link[rel="icon"]');
    return {
      title: document.title, description: description && description.content, icon: icon && icon.href,
      images, layout_shift: loadShift, scroll_shift: shift - loadShift, sticky,
      invalid: [...document.querySelectorAll('[aria-invalid="true"]')].map((el) => ({
        id: el.id, value: el.value, type: el.type, describedby: el.getAttribute("aria-describedby"),
        description: (document.getElementById(el.getAttribute("aria-describedby") || "") || {}).textContent || null,
      })),
      overflow_x: document.documentElement.scrollWidth - document.documentElement.clientWidth,
    };
  });
}

async function keyboard(page) {
  // The first Tab lands on the skip link; following it, the next Tab lands inside its target.
  await page.keyboard.press("Tab");
  const first = await page.evaluate(() => {
    const a = document.activeElement;
    return { tag: a.tagName, text: a.textContent.trim(), href: a.getAttribute("href"),
      visible: a.getBoundingClientRect().top >= 0 };
  });
  await page.keyboard.press("Enter");
  await page.keyboard.press("Tab");
  const next = await page.evaluate((href) => {
    const target = href && href.startsWith("#") ? document.getElementById(href.slice(1)) : null;
    const a = document.activeElement;
    const inside = !!target && (target.contains(a) ||
      !!(target.compareDocumentPosition(a) & Node.DOCUMENT_POSITION_FOLLOWING));
    return { target_exists: !!target, hash: location.hash, after_target: inside, tag: a.tagName,
      text: (a.textContent || "").trim().slice(0, 60) };
  }, first.href);
  return { first, next };
}

(async () => {
  const job = JSON.parse(process.argv[2]);
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), "calib-chromium-"));
  const browser = await chromium.launchPersistentContext(profile, {
    executablePath: "/usr/bin/chromium", headless: true, args: CHROMIUM_FLAGS, bypassCSP: true,
    viewport: { width: 1350, height: 940 },
  });
  const out = [];
  try {
    for (const p of job.pages) {
      for (const width of job.widths) {
        const page = await browser.newPage();
        const messages = [];
        const failed = [];
        page.on("console", (m) => {
          if (m.type() === "error" && !m.text().startsWith("Failed to load resource")) messages.push(m.text());
        });
        page.on("response", (r) => { if (r.status() >= 400) failed.push({ url: r.url(), status: r.status() }); });
        page.on("requestfailed", (r) => failed.push({ url: r.url(), status: null, error: r.failure() && r.failure().errorText }));
        page.on("pageerror", (e) => messages.push(String(e)));
        await page.setViewportSize({ width, height: job.height || 940 });
        const response = await page.goto(p.url, { waitUntil: "load", timeout: 120000 });
        const status = response.status();
        const facts = await inspect(page);
        if (job.screenshots) {
          await page.screenshot({ path: path.join(job.screenshots, `${p.name}-${width}.png`), fullPage: false });
        }
        await page.addScriptTag({ path: AXE });
        const axe = await page.evaluate(async () => {
          const r = await window.axe.run(document, { rules: { "target-size": { enabled: true } } });
          return {
            violations: r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help,
              nodes: v.nodes.slice(0, 5).map((n) => ({ target: n.target, html: n.html.slice(0, 200),
                summary: n.failureSummary })) })),
            passes: r.passes.map((v) => v.id),
            version: window.axe.version,
          };
        });
        await page.reload({ waitUntil: "load" });
        const keys = await keyboard(page);
        out.push({ name: p.name, url: p.url, width, status, console_errors: messages, failed, axe, keyboard: keys, ...facts });
        await page.close();
      }
    }
  } finally {
    await browser.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
  process.stdout.write(JSON.stringify(out));
})().catch((e) => { console.error(e && e.stack || String(e)); process.exit(1); });
