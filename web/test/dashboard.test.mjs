// The dashboard in a real browser (Debian's headless Chromium driven by
// playwright-core), against a running c2d: sign in, create a service from
// the sample repository, deploy it and watch the build log stream and the
// release go live, open the app, change an env var and redeploy, roll back,
// and see a bad form value refused with the API's own message.
//
// Then a webhook made in the page, a signed pull request that makes a
// preview shown in the project's list, and the env's secrets revealed.
//
// Environment: C2D_URL (the gateway), C2D_TOKEN, C2D_REPO (the sample's git
// repository as the API accepts it, with a branch "feature" whose head is
// C2D_PR_SHA), C2D_ARTIFACTS (screenshots of each
// step go there), C2D_CHROMIUM (default /usr/bin/chromium).
// tests/e2e/dashboard_test.sh starts c2d and runs this.
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const env = (k, d) => {
  const v = process.env[k] || d;
  if (!v) throw new Error(`${k} is not set`);
  return v;
};
const base = env('C2D_URL');
const token = env('C2D_TOKEN');
const repo = env('C2D_REPO');
const prSha = env('C2D_PR_SHA');
const artifacts = env('C2D_ARTIFACTS');
mkdirSync(artifacts, { recursive: true });

const started = Date.now();
let step = 0;
function log(what) {
  console.log(`dashboard: ${((Date.now() - started) / 1000).toFixed(1)} s: ${what}`);
}
async function shot(page, name) {
  step += 1;
  await page.screenshot({ path: join(artifacts, `${String(step).padStart(2, '0')}-${name}.png`), fullPage: true });
  log(name);
}

// The API directly, to learn what it says (the page must say the same).
async function rest(method, path, body) {
  const res = await fetch(base + path, {
    method,
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, body: await res.json().catch(() => null) };
}

async function appSays(context, url, want, timeoutMs = 120000) {
  const page = await context.newPage();
  const deadline = Date.now() + timeoutMs;
  let last = '';
  try {
    while (Date.now() < deadline) {
      try {
        const res = await page.goto(url, { timeout: 10000 });
        last = (await page.textContent('body')) || '';
        if (res && res.ok() && last.includes(want)) return;
      } catch (e) {
        last = String(e);
      }
      await page.waitForTimeout(1000);
    }
  } finally {
    await page.close();
  }
  throw new Error(`${url} does not answer "${want}" (last: ${last.slice(0, 200)})`);
}

const browser = await chromium.launch({
  executablePath: env('C2D_CHROMIUM', '/usr/bin/chromium'),
  args: ['--no-sandbox'],
});
const failures = [];
let page = null;
try {
  const context = await browser.newContext({ viewport: { width: 1200, height: 900 } });
  page = await context.newPage();
  // Anything the Content-Security-Policy refused, and any script error.
  page.on('console', (m) => {
    if (m.type() === 'error' && !/Failed to load resource/.test(m.text())) failures.push(`console: ${m.text()}`);
  });
  page.on('pageerror', (e) => failures.push(`page error: ${e.message}`));

  // Sign in: a bad token first.
  await page.goto(base + '/');
  await page.getByLabel('API token', { exact: true }).fill('c2d_not-a-token');
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await page.getByRole('alert').or(page.locator('.field-error')).first().waitFor();
  await shot(page, 'bad-token-refused');
  assert.equal(await page.evaluate(() => sessionStorage.getItem('c2d.token')), null);
  // By keyboard alone: the first Tab reaches the skip link, the token field
  // takes the token, Enter signs in.
  await page.reload();
  await page.getByLabel('API token', { exact: true }).waitFor();
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate(() => document.activeElement.textContent.trim()), 'Skip to content');
  await page.getByLabel('API token', { exact: true }).focus();
  await page.keyboard.press('Control+A');
  await page.keyboard.type(token);
  await page.keyboard.press('Enter');
  await page.getByRole('heading', { name: 'Projects', exact: true }).waitFor();
  assert.ok(!page.url().includes(token), 'the token is not in the URL');
  await shot(page, 'signed-in');

  // A project, then a service: a bad value first, refused with the API's message.
  const project = `dash${Date.now().toString(36)}`;
  await page.getByLabel('Name', { exact: true }).fill(project);
  await page.getByRole('button', { name: 'Create project', exact: true }).click();
  await page.getByRole('heading', { name: project, exact: true }).waitFor();
  await page.getByRole('link', { name: 'Create service', exact: true }).click();
  await page.getByRole('heading', { name: 'Create service', exact: true }).waitFor();
  const projectId = decodeURIComponent(page.url().split('#/p/')[1].split('/')[0]);
  await page.getByLabel('Name', { exact: true }).fill('hello');
  await page.getByLabel('Repository URL', { exact: true }).fill(repo);
  await page.getByLabel('Port the app listens on', { exact: true }).fill('eighty');
  const said = await rest('POST', `/v1/projects/${projectId}/services`, {
    name: 'hello', type: 'web', auto_deploy: true, source: { repo_url: repo }, build: { strategy: 'auto' }, run: { port: 'eighty' },
  });
  assert.equal(said.status, 400);
  await page.getByRole('button', { name: 'Create service', exact: true }).click();
  const fieldError = page.locator('#f-run\\.port-err');
  await fieldError.waitFor();
  assert.equal(await fieldError.textContent(), said.body.error.message);
  assert.equal(await page.getByLabel('Port the app listens on', { exact: true }).getAttribute('aria-invalid'), 'true');
  await shot(page, 'bad-port-refused');
  assert.equal((await rest('GET', `/v1/projects/${projectId}/services`)).body.services.length, 0, 'nothing was created');
  await page.getByLabel('Port the app listens on', { exact: true }).fill('8080');
  await page.getByRole('button', { name: 'Create service', exact: true }).click();
  await page.getByRole('heading', { name: 'hello', exact: true }).waitFor();
  const serviceId = page.url().split('#/s/')[1].split('/')[0];
  const service = (await rest('GET', `/v1/services/${serviceId}`)).body;
  await shot(page, 'service-created');

  // An env var, then Deploy: the build log streams, the release goes live.
  async function setEnv(key, value) {
    await page.getByRole('link', { name: 'Environment', exact: true }).click();
    await page.getByLabel('Key', { exact: true }).fill(key);
    await page.getByLabel('Value', { exact: true }).fill(value);
    await page.getByLabel('Secret (masked when shown)', { exact: true }).uncheck();
    await page.getByRole('button', { name: 'Set variable', exact: true }).click();
    await page.getByRole('cell', { name: value, exact: true }).waitFor();
  }
  async function deploy(name) {
    await page.getByRole('link', { name: 'Overview', exact: true }).click();
    await page.getByRole('button', { name: 'Deploy', exact: true }).click();
    const logBox = page.locator('pre.log');
    await logBox.locator('.line.build').first().waitFor({ timeout: 120000 });
    await shot(page, `${name}-build-log-streaming`);
    await logBox.locator('.line.end').waitFor({ timeout: 300000 });
    const text = await logBox.textContent();
    assert.match(text, /deployment\.live/, `the release went live: ${text.slice(-500)}`);
    await shot(page, `${name}-live`);
  }
  await setEnv('GREETING', 'Dashboard');
  await shot(page, 'env-set');
  await deploy('first-deploy');
  await appSays(context, service.url, 'Dashboard from c2d!');
  const app = await context.newPage();
  await app.goto(service.url);
  await shot(app, 'app-answers');
  await app.close();

  // Change the env var and redeploy.
  await setEnv('GREETING', 'Changed');
  await deploy('redeploy');
  await appSays(context, service.url, 'Changed from c2d!');

  // Roll back to the first release.
  await page.getByRole('link', { name: 'Releases', exact: true }).click();
  const rows = page.locator('tbody tr');
  await rows.nth(1).waitFor();
  await rows.nth(1).getByRole('button', { name: 'Roll back to this', exact: true }).click();
  await appSays(context, service.url, 'Dashboard from c2d!');
  await page.reload();
  await rows.first().getByText('live').waitFor({ timeout: 60000 });
  await shot(page, 'rolled-back');

  // A webhook made in the page: its secret shown once; a signed pull request
  // then makes a preview, listed in the project with its pull request.
  await page.getByRole('link', { name: 'Webhooks', exact: true }).click();
  await page.getByRole('button', { name: 'Create webhook', exact: true }).click();
  const notice = page.locator('.notice code');
  await notice.waitFor();
  const secret = await notice.textContent();
  const hookUrl = await page.locator('ul.rows li code').first().textContent();
  await shot(page, 'webhook-secret-shown-once');
  const pr = (action) => JSON.stringify({
    action,
    number: 1,
    pull_request: {
      head: { ref: 'feature', sha: prSha, repo: { full_name: 'acme/hello' } },
      base: { ref: 'main', repo: { full_name: 'acme/hello' } },
    },
  });
  const deliver = async (body, id) => {
    const res = await fetch(hookUrl, {
      method: 'POST',
      headers: {
        'X-GitHub-Event': 'pull_request',
        'X-GitHub-Delivery': id,
        'X-Hub-Signature-256': `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`,
      },
      body,
    });
    return { status: res.status, body: await res.json().catch(() => null) };
  };
  const opened = await deliver(pr('opened'), 'dash-pr-1');
  assert.equal(opened.status, 202, JSON.stringify(opened.body));
  await appSays(context, opened.body.preview.url, 'version 9.9.9', 180000);
  await page.goto(`${base}/#/p/${projectId}`);
  await page.getByText('preview of hello, pull request #1').waitFor();
  await shot(page, 'preview-listed');
  await page.goto(`${base}/#/s/${serviceId}/webhooks`);
  await page.getByText(opened.body.preview.url).first().waitFor();
  const closed = await deliver(pr('closed'), 'dash-pr-2');
  assert.equal(closed.status, 200, JSON.stringify(closed.body));
  await page.goto(`${base}/#/p/${projectId}`);
  await page.getByRole('link', { name: 'hello', exact: true }).waitFor();
  assert.equal(await page.getByText('preview of hello').count(), 0, 'the closed preview is gone');

  // A secret revealed on request (the API audits it).
  await page.goto(`${base}/#/s/${serviceId}/env`);
  await page.getByLabel('Key', { exact: true }).fill('API_KEY');
  await page.getByLabel('Value', { exact: true }).fill('s3cr3t-value');
  await page.getByRole('button', { name: 'Set variable', exact: true }).click();
  await page.getByText('•••••• (secret)').waitFor();
  assert.equal(await page.getByText('s3cr3t-value').count(), 0, 'a secret is masked');
  await page.getByRole('button', { name: 'Reveal secrets', exact: true }).click();
  await page.getByRole('cell', { name: 's3cr3t-value', exact: true }).waitFor();
  await shot(page, 'secret-revealed');
  await page.goto(`${base}/#/s/${serviceId}`);

  // At 360 px wide: nothing wider than the screen.
  await page.setViewportSize({ width: 360, height: 800 });
  await page.getByRole('link', { name: 'Overview', exact: true }).click();
  await page.getByRole('button', { name: 'Deploy', exact: true }).waitFor();
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth);
  await shot(page, 'narrow-360');
  assert.ok(overflow <= 360, `the page is ${overflow} px wide at 360`);

  // Clean up through the API.
  assert.equal((await rest('DELETE', `/v1/services/${serviceId}`)).status < 300, true);
} catch (e) {
  failures.push(e.stack || String(e));
  if (page) await page.screenshot({ path: join(artifacts, 'failed.png'), fullPage: true }).catch(() => {});
} finally {
  await browser.close();
}
if (failures.length) {
  for (const f of failures) console.error(`FAIL: ${f}`);
  process.exit(1);
}
console.log(`dashboard: 1 passed, 0 failed (screenshots in ${artifacts})`);
