// The dashboard's load time in Chromium from a cold cache (a fresh browser
// context per run) and its shipped size; tools/bench/dashboard runs it
// against a gateway. Environment: C2D_URL, C2D_TOKEN, C2D_RUNS,
// C2D_CHROMIUM (default /usr/bin/chromium).
import { chromium } from 'playwright-core';

const base = process.env.C2D_URL;
const token = process.env.C2D_TOKEN;
const runs = Number(process.env.C2D_RUNS || 10);

// In the page, before anything loads: the time (ms since navigation start)
// at which `selector` first matches, in window.__ready.
function watch(selector) {
  const check = () => {
    if (window.__ready === undefined && document.querySelector(selector)) window.__ready = performance.now();
  };
  new MutationObserver(check).observe(document, { childList: true, subtree: true });
}

async function measure(browser, { signedIn }) {
  const context = await browser.newContext();
  const page = await context.newPage();
  if (signedIn) await page.addInitScript((t) => sessionStorage.setItem('c2d.token', t), token);
  // Interactive: the sign-in form's button, or the projects list's links,
  // rendered by the app (so its handlers are attached).
  const selector = signedIn ? 'ul.cards a' : 'form button[type=submit]';
  await page.addInitScript(watch, selector);
  const shipped = { js: 0, css: 0 };
  page.on('response', async (r) => {
    const url = r.url();
    const kind = url.endsWith('.js') ? 'js' : url.endsWith('.css') ? 'css' : null;
    if (!kind) return;
    const sizes = await r.request().sizes();
    shipped[kind] += sizes.responseBodySize;
  });
  await page.goto(`${base}/`, { waitUntil: 'load' });
  await page.waitForFunction(
    () => window.__ready !== undefined && performance.getEntriesByName('first-contentful-paint').length > 0,
    null,
    { timeout: 10000 },
  );
  const t = await page.evaluate(() => ({
    fcp: (performance.getEntriesByName('first-contentful-paint')[0] || {}).startTime,
    ready: window.__ready,
  }));
  await context.close();
  return { ...t, shipped };
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
};

const browser = await chromium.launch({
  executablePath: process.env.C2D_CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox'],
});
let worst = 0;
let shipped = null;
try {
  await measure(browser, { signedIn: false }); // the browser's own start-up, not counted
  for (const signedIn of [false, true]) {
    const results = [];
    for (let i = 0; i < runs; i++) results.push(await measure(browser, { signedIn }));
    const fcp = results.map((r) => r.fcp);
    const ready = results.map((r) => r.ready);
    shipped = results[0].shipped;
    worst = Math.max(worst, median(fcp), median(ready));
    console.log(
      `${signedIn ? 'projects page (signed in)' : 'sign-in page'}, ${runs} cold loads: ` +
        `first contentful paint median ${median(fcp).toFixed(0)} ms (max ${Math.max(...fcp).toFixed(0)}), ` +
        `interactive median ${median(ready).toFixed(0)} ms (max ${Math.max(...ready).toFixed(0)})`,
    );
  }
} finally {
  await browser.close();
}
const total = shipped.js + shipped.css;
console.log(`shipped JavaScript + CSS: ${shipped.js} + ${shipped.css} = ${total} bytes over the wire (gzip)`);
console.log(`target: < 300 ms to interactive: ${worst < 300 ? 'met' : 'MISSED'} (${worst.toFixed(0)} ms); ` +
  `< 100 kB shipped: ${total < 100 * 1024 ? 'met' : 'MISSED'}`);
