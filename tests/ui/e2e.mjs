// End-to-end test of the web UI in headless Chromium (Debian's), driven by
// playwright-core, against a real server and real agents. Run by
// tests/ui_browser.rs, which owns the cluster: when the page shows the
// registration command, this script prints `RUN_AGENT <url>` and waits
// for `ok` on stdin (the Rust side starts an agent with that URL).
//
// env: ROS_URL (server), SCREENS (directory), PLAYWRIGHT (module path).
import { createInterface } from 'node:readline';
import { mkdirSync, writeFileSync } from 'node:fs';

const { chromium } = await import(process.env.PLAYWRIGHT);
const url = process.env.ROS_URL;
const screens = process.env.SCREENS;
mkdirSync(screens, { recursive: true });
const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const figures = {};
setTimeout(() => { console.log('FAIL: the whole run took over 10 minutes'); process.exit(1); }, 600000).unref();

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-dev-shm-usage'],
});
let step = 'start';
const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
const consoleErrors = [];
page.on('pageerror', (e) => consoleErrors.push(String(e)));
page.setDefaultTimeout(60000);
const shot = (name) => page.screenshot({ path: `${screens}/${name}.png`, fullPage: true });
const log = (m) => console.error(`[ui-e2e] ${m}`);
const expectNoReload = async () => {
  if (!(await page.evaluate(() => window.__sameDocument === true))) throw new Error(`${step}: the page reloaded`);
};

try {
  // Access control may already be on (ROS_UI_USER/ROS_UI_PASSWORD then
  // name the admin): the page starts at the login form.
  const user = process.env.ROS_UI_USER || 'admin';
  let password = process.env.ROS_UI_PASSWORD || 'e2e-secret-pw';
  const login = async (pw) => {
    await page.locator('#login-user').waitFor();
    await page.fill('#login-user', user);
    await page.fill('#login-pass', pw);
    await page.click('#login-go');
  };
  step = 'hosts page';
  await page.goto(`${url}/`);
  await page.locator('article.host, #login-user').first().waitFor();
  const authAtStart = await page.locator('#login-user').count() > 0;
  if (authAtStart) await login(password);
  await page.evaluate(() => { window.__sameDocument = true; });
  await page.locator('article.host').nth(1).waitFor();
  figures.firstRenderMs = await page.evaluate(() => Math.round(performance.getEntriesByName('ros-first-render')[0].startTime));
  figures.domContentLoadedMs = await page.evaluate(() => Math.round(performance.getEntriesByType('navigation')[0].domContentLoadedEventEnd));
  figures.transferBytes = await page.evaluate(() => performance.getEntriesByType('resource').concat(performance.getEntriesByType('navigation'))
    .filter((e) => !e.name.includes('/v2-beta')).reduce((n, e) => n + e.transferSize, 0));
  if ((await page.locator('article.host').count()) !== 2) throw new Error('expected 2 host cards');
  // Again with the server warm (its compressed assets cached).
  await page.reload();
  await page.locator('article.host').nth(1).waitFor();
  figures.authAtStart = authAtStart;
  figures.warmFirstRenderMs = await page.evaluate(() => Math.round(performance.getEntriesByName('ros-first-render')[0].startTime));
  // The first page, loaded 10 more times: navigation start → the host
  // cards in the DOM (the `ros-first-render` mark), and the first paint.
  const samples = [];
  const paints = [];
  for (let i = 0; i < 10; i++) {
    await page.reload();
    await page.locator('article.host').nth(1).waitFor();
    const t = await page.evaluate(() => ({
      render: performance.getEntriesByName('ros-first-render')[0].startTime,
      paint: (performance.getEntriesByName('first-contentful-paint')[0] || {}).startTime,
    }));
    samples.push(Math.round(t.render));
    if (t.paint) paints.push(Math.round(t.paint));
  }
  // Where the last load's time went.
  figures.firstRenderBreakdownMs = await page.evaluate(() => {
    const n = performance.getEntriesByType('navigation')[0];
    const api = performance.getEntriesByType('resource').filter((e) => e.name.includes('/v2-beta'));
    const r = (x) => Math.round(x);
    return { htmlResponseEnd: r(n.responseEnd), domInteractive: r(n.domInteractive),
      firstApiStart: r(Math.min(...api.map((e) => e.startTime))), lastApiEnd: r(Math.max(...api.filter((e) => !e.name.includes('subscribe')).map((e) => e.responseEnd))),
      slowestApi: api.filter((e) => !e.name.includes('subscribe')).map((e) => [e.name.replace(/^.*\/v2-beta/, ''), r(e.duration)]).sort((a, b) => b[1] - a[1]).slice(0, 3),
      render: r(performance.getEntriesByName('ros-first-render')[0].startTime) };
  });
  log(`first page breakdown: ${JSON.stringify(figures.firstRenderBreakdownMs)}`);
  const median = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
  figures.firstRenderSamplesMs = samples;
  figures.firstRenderMedianMs = median(samples);
  figures.firstContentfulPaintMedianMs = paints.length ? median(paints) : null;
  figures.firstPageBytes = await page.evaluate(() => performance.getEntriesByType('navigation')[0].encodedBodySize);
  figures.firstPageRequests = await page.evaluate(() => performance.getEntriesByType('resource').filter((e) => !e.name.includes('/v2-beta')).length);
  log(`first page: median ${figures.firstRenderMedianMs} ms to the host cards over ${samples.length} loads (${samples.join(', ')})`);
  await page.evaluate(() => { window.__sameDocument = true; });
  await shot('01-hosts');

  step = 'add host';
  await page.getByRole('link', { name: 'Add Host' }).click();
  await page.locator('#ah-cmd', { hasText: '| sudo sh' }).waitFor();
  await page.fill('#ah-labels', 'role=e2e');
  const cmd = await page.locator('#ah-cmd').textContent();
  if (!cmd.includes('--labels role=e2e')) throw new Error(`labels not folded into the command: ${cmd}`);
  if (!(await page.locator('#ah-cloud').textContent()).includes('server_url:')) throw new Error('no cloud-config snippet');
  await shot('02-add-host');
  console.log(`RUN_AGENT ${cmd.trim()}`);
  const ack = await lines.next();
  if (ack.value !== 'ok') throw new Error(`agent not started: ${ack.value}`);
  await page.click('#nav a[href="#/hosts"]');
  await page.locator('article.host').nth(2).waitFor();
  await page.locator('article.host[data-host="node3"]').waitFor();
  await expectNoReload();
  await shot('03-host-added');

  step = 'deploy broken compose';
  await page.click('#nav a[href="#/stacks"]');
  await page.getByRole('link', { name: 'Deploy a stack' }).click();
  await page.fill('#dp-name', 'broken');
  await page.fill('#dp-docker', 'version: "2"\nservices:\n  web:\n    image: ros-test/busybox:latest\n    ports:\n      - "notaport"\n');
  await page.click('#dp-go');
  const err = page.locator('#dp-errors');
  await err.waitFor();
  const errText = await err.textContent();
  if (!errText.includes('docker-compose.yml:6:9')) throw new Error(`no positioned error: ${errText}`);
  // The position is a button that selects the line in the editor.
  await err.getByRole('button', { name: 'docker-compose.yml:6:9' }).click();
  const sel = await page.evaluate(() => { const t = document.querySelector('#dp-docker'); return t.value.slice(t.selectionStart, t.selectionEnd); });
  if (sel !== '"notaport"') throw new Error(`the error's position selected ${JSON.stringify(sel)}`);
  log(`broken compose: ${errText.trim()}`);
  await shot('04-deploy-error');

  step = 'deploy';
  await page.fill('#dp-name', 'web');
  await page.fill('#dp-docker', [
    'version: "2"', 'services:', '  app:', '    image: ros-test/busybox:latest',
    '    command: ["sh", "-c", "while true; do echo hello-$$HOSTNAME; sleep 1; done"]', ''].join('\n'));
  await page.fill('#dp-rancher', 'version: "2"\nservices:\n  app:\n    scale: 2\n');
  await page.click('#dp-go');
  const card = page.locator('article.service[data-service="app"]');
  await card.waitFor();
  await card.locator('a.ctr.running').nth(1).waitFor();
  await expectNoReload();
  await shot('05-stack');

  step = 'scale +1';
  await page.getByRole('button', { name: 'Scale app up' }).click();
  await card.locator('output.scale-n', { hasText: '3' }).waitFor();
  await card.locator('a.ctr.running').nth(2).waitFor();
  await expectNoReload();

  const upgrade = async (then) => {
    await card.getByRole('button', { name: 'Upgrade…' }).click();
    await page.fill('#up-batch', '3');
    await page.fill('#up-interval', '0');
    await page.click('#up-go');
    const b = card.getByRole('button', { name: then });
    await b.waitFor({ timeout: 90000 });
    await shot(`06-upgraded-${then.split(' ')[0].toLowerCase()}`);
    await b.click();
    await card.locator('.badge.s-active').first().waitFor({ timeout: 90000 });
    await card.getByRole('button', { name: 'Upgrade…' }).waitFor({ timeout: 90000 });
  };
  step = 'upgrade → finish';
  await upgrade('Finish upgrade');
  step = 'upgrade → rollback';
  await upgrade('Rollback');
  // The rollback settles: three containers, all running, the old ones gone.
  await page.waitForFunction(() => {
    const chips = document.querySelectorAll('article.service[data-service="app"] a.ctr');
    return chips.length === 3 && [...chips].every((c) => c.classList.contains('running'));
  }, null, { timeout: 90000 });
  await expectNoReload();

  step = 'logs';
  await card.locator('a.ctr.running').first().click();
  const logs = page.locator('#logs');
  await logs.locator('text=/hello-(?!.*HOSTNAME)\\S/').first().waitFor();
  const n1 = await logs.locator('span').count();
  await page.waitForFunction((n) => document.querySelectorAll('#logs span').length > n, n1, { timeout: 20000 });
  await shot('07-logs');

  step = 'shell';
  // Docker names a container's host by the first 12 digits of its id.
  const hostname = await page.evaluate(() => {
    const c = window.rosUi.state.container.get(location.hash.split('/')[2]);
    return String(c.externalId || '').slice(0, 12);
  });
  if (hostname.length !== 12) throw new Error(`no docker id for the container: ${hostname}`);
  const before = await page.evaluate(() => performance.getEntriesByType('resource').filter((e) => e.name.includes('xterm')).length);
  if (before) throw new Error('xterm was loaded before the shell opened');
  await page.click('#open-shell');
  await page.locator('#term .xterm').waitFor();
  await page.locator('#term-status', { hasText: 'Connected' }).waitFor();
  await page.locator('#term .xterm-rows', { hasText: '#' }).waitFor(); // the prompt
  await page.locator('#term').click();
  await page.keyboard.type('hostname');
  await page.keyboard.press('Enter');
  await page.waitForFunction((want) => [...document.querySelectorAll('#term .xterm-rows > div')]
    .some((r) => r.textContent.trim() === want), hostname, { timeout: 20000 });
  figures.shellHostname = hostname;
  await shot('07b-shell');
  await page.keyboard.type('exit');
  await page.keyboard.press('Enter');
  await page.locator('#term-status', { hasText: 'ended' }).waitFor();
  await expectNoReload();

  step = 'api key';
  await page.click('#nav a[href="#/apikeys"]');
  await page.fill('#key-name', 'e2e');
  await page.click('#key-add');
  await page.locator('#new-key', { hasText: 'Secret key:' }).waitFor();
  await shot('08-apikey');

  step = 'stacks at a glance';
  await page.click('#nav a[href="#/stacks"]');
  await page.locator('article.stack[data-stack="web"] .badge.s-healthy').waitFor();
  await page.locator('article.stack[data-stack="web"]', { hasText: '3/3 containers running' }).waitFor();

  step = 'events';
  await page.click('#nav a[href="#/events"]');
  await page.locator('main tr', { hasText: 'web-app-' }).first().waitFor();

  step = 'host deactivate/activate';
  await page.click('#nav a[href="#/hosts"]');
  const n3 = page.locator('article.host[data-host="node3"]');
  await n3.getByRole('button', { name: 'deactivate' }).click();
  await n3.locator('.badge.s-inactive').waitFor();
  await n3.getByRole('button', { name: 'activate', exact: true }).click();
  await n3.locator('header .badge.s-active').waitFor();

  step = 'hosts with containers';
  await page.click('#nav a[href="#/hosts"]');
  await page.locator('article.host a.ctr.running').nth(2).waitFor();
  await shot('08b-hosts-containers');

  step = 'phone width';
  await page.setViewportSize({ width: 390, height: 844 });
  await page.click('#nav a[href="#/hosts"]');
  await page.locator('article.host').nth(2).waitFor();
  const overflow = await page.evaluate(() => document.scrollingElement.scrollWidth - window.innerWidth);
  if (overflow > 1) throw new Error(`phone width: the page is ${overflow}px too wide`);
  await shot('09-phone-hosts');
  await page.setViewportSize({ width: 1280, height: 800 });

  step = 'keyboard';
  await page.keyboard.press('Tab');
  const focused = await page.evaluate(() => document.activeElement && document.activeElement.tagName);
  if (!['A', 'BUTTON', 'SELECT', 'INPUT'].includes(focused)) throw new Error(`Tab focused ${focused}`);

  step = 'events after a server restart';
  console.log('RESTART_SERVER');
  const restarted = await lines.next();
  if (restarted.value !== 'ok') throw new Error(`server not restarted: ${restarted.value}`);
  await page.reload();
  await page.locator('article.host, #login-user').first().waitFor();
  if (await page.locator('#login-user').count()) await login(password);
  await page.click('#nav a[href="#/events"]');
  // A freshly loaded page knows only what the server recorded: the
  // containers' creation (before the restart) must be there.
  await page.locator('main tr', { hasText: 'web-app-' }).filter({ hasText: 'new:' }).first().waitFor();
  figures.eventsAfterRestart = await page.locator('main tbody tr').count();
  await shot('09b-events-after-restart');
  // The service's deployment timeline too.
  await page.evaluate(() => {
    const s = [...window.rosUi.state.service.values()].find((x) => x.name === 'app');
    location.hash = `#/services/${s.id}`;
  });
  await page.locator('ul.timeline li', { hasText: 'web-app-' }).first().waitFor();
  await shot('09c-timeline-after-restart');
  await page.click('#nav a[href="#/hosts"]');
  await page.locator('article.host').nth(2).waitFor();

  step = 'login';
  if (!authAtStart) {
    const auth = await page.evaluate(async ([u, p]) => {
      const r = await fetch('/v2-beta/localauthconfigs', { method: 'POST', headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ enabled: true, username: u, password: p }) });
      return r.status;
    }, [user, password]);
    if (auth !== 201) throw new Error(`enabling auth: ${auth}`);
  }
  await page.evaluate(() => localStorage.removeItem('ros.auth'));
  await page.reload();
  await page.locator('#login-user').waitFor();
  await shot('10-login');
  await login('wrong-password');
  await page.locator('.login .errors').waitFor();
  await login(password);
  await page.locator('article.host').nth(2).waitFor();
  await page.locator('#live.on').waitFor();
  await shot('11-after-login');

  if (consoleErrors.length) throw new Error(`page errors: ${consoleErrors.join('; ')}`);
  writeFileSync(`${screens}/figures.json`, JSON.stringify(figures, null, 2));
  console.log(`FIGURES ${JSON.stringify(figures)}`);
  console.log('PASS');
} catch (e) {
  await shot('failed').catch(() => {});
  console.log(`FAIL ${step}: ${e.message}`);
  if (consoleErrors.length) console.log(`page errors: ${consoleErrors.join('; ')}`);
  process.exitCode = 1;
} finally {
  await browser.close();
  process.exit(process.exitCode || 0); // stdin stays open otherwise
}
