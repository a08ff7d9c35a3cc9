// The ros cluster UI: hand-written ES module, no framework, no build step.
// Data comes from the Rancher-style API under /v2-beta and stays live
// through the project's subscription (SSE over fetch, so the same
// Authorization header as every other call).

const $ = (s, r = document) => r.querySelector(s);
const main = $('#main');

// ---- tiny DOM builder (text is always text: no innerHTML) ----
function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === false || v == null) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'value') el.value = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of kids.flat(Infinity)) {
    if (c == null || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}
const badge = (s) => h('span', { class: `badge s-${s}` }, s || '—');
const btn = (label, on, extra = {}) => h('button', { type: 'button', onclick: on, ...extra }, label);

function toast(msg, bad) {
  const d = h('div', { class: bad ? 'bad' : '' }, msg);
  $('#toast').append(d);
  setTimeout(() => d.remove(), bad ? 8000 : 3000);
}

// ---- auth and API ----
let authHeader = localStorage.getItem('ros.auth');
function setAuth(v) {
  authHeader = v;
  if (v) localStorage.setItem('ros.auth', v); else localStorage.removeItem('ros.auth');
  // A browser websocket sends cookies, not headers: keep the JWT there too.
  document.cookie = v && v.startsWith('Bearer ')
    ? `token=${v.slice(7)}; path=/; SameSite=Strict`
    : 'token=; path=/; max-age=0';
  $('#logout').hidden = !v;
}

class ApiError extends Error {
  constructor(status, body) {
    super(body.message || body.code || `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

// The answer's JSON and the store revision a collection was read at.
async function request(method, path, body) {
  const headers = { Accept: 'application/json', 'X-API-No-Challenge': 'true' };
  if (authHeader) headers.Authorization = authHeader;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const r = (method === 'GET' && await early(path))
    || await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await r.text();
  let j;
  try { j = JSON.parse(text); } catch { j = { message: text }; }
  if (r.status === 401) { needLogin(); throw new ApiError(401, j); }
  if (!r.ok) throw new ApiError(r.status, j);
  return { j, rev: Number(r.headers.get('X-Ros-Revision') || 0) };
}
async function api(method, path, body) { return (await request(method, path, body)).j; }

// The answer to a GET the page's head already sent (index.html), once.
function early(path) {
  const b = window.rosBoot;
  const p = b && b.auth === authHeader ? b.pending[path] : null;
  if (p) delete b.pending[path];
  return p;
}
const P = () => `/v2-beta/projects/${state.project}`;

async function act(path, action, body = {}) {
  try {
    await api('POST', `${path}?action=${action}`, body);
    toast(`${action}: requested`);
  } catch (e) { toast(`${action}: ${e.message}`, true); }
}

// ---- state ----
const state = {
  project: localStorage.getItem('ros.project') || '1a5',
  projects: [],
  host: new Map(), stack: new Map(), service: new Map(), container: new Map(),
  apiKey: new Map(), registrationToken: new Map(),
  events: [],
  loaded: false,
};
const gone = (r) => !r || r.state === 'removed' || r.state === 'purged';
const live = (m) => [...m.values()].filter((r) => !gone(r));
const byName = (a, b) => String(a.name || a.hostname || a.id).localeCompare(String(b.name || b.hostname || b.id));

function bucket(type) {
  if (type === 'host') return 'host';
  if (type === 'stack' || type === 'environment') return 'stack';
  if (type === 'service' || /Service$/.test(type || '')) return 'service';
  if (type === 'container' || type === 'instance') return 'container';
  if (type === 'apiKey') return 'apiKey';
  if (type === 'registrationToken') return 'registrationToken';
  return null;
}

function apply(r) {
  if (r.type === 'project') {
    const i = state.projects.findIndex((p) => p.id === r.id);
    if (i >= 0) state.projects[i] = r; else state.projects.push(r);
    return;
  }
  const b = bucket(r.type);
  if (b) state[b].set(r.id, r);
}

// What the pages show first, and the rest (a browser opens six
// connections to a server: the first page's requests fit in them).
const CORE = [['hosts', 'host'], ['containers', 'container'], ['stacks', 'stack'], ['services', 'service']];
const MORE = [['apikeys', 'apiKey'], ['registrationtokens', 'registrationToken']];
// Every collection and the recorded history, in parallel; the pages
// render once the core ones are in. The lowest store revision they were
// read at (subscribing from there misses nothing).
async function loadAll() {
  const pid = state.project;
  const list = ([c]) => request('GET', `${P()}/${c}?limit=3000`);
  const core = Promise.all(CORE.map(list));
  const hist = api('GET', `${P()}/events?limit=500`).catch(() => ({ data: [] }));
  const more = Promise.all(MORE.map(list));
  more.catch(() => {});
  const lists = await core;
  const past = await hist;
  if (pid !== state.project) return null;
  const fill = (kinds, got) => {
    for (const [, k] of kinds) state[k].clear();
    for (const l of got) for (const r of l.j.data || []) apply(r);
  };
  fill(CORE, lists);
  for (const x of past.data || []) {
    addEvent({ rev: x.revision, at: new Date(x.createdTS), type: x.serviceKind || x.resourceType, id: x.resourceId,
      name: x.name || x.resourceId, state: x.state, health: x.healthState, from: x.previousState || null, serviceIds: x.serviceIds || [] });
  }
  sortEvents();
  state.loaded = true;
  // The first page at once; later updates batch into animation frames.
  if (!performance.getEntriesByName('ros-first-render').length) render(false);
  else schedule();
  const rest = await more;
  if (pid !== state.project) return null;
  fill(MORE, rest);
  schedule();
  return Math.min(...lists.concat(rest).map((l) => l.rev));
}

// The event history: recorded by the server (kept across its restarts)
// and extended live from the subscription; one entry per revision and
// resource however it arrived.
const evKeys = new Set();
function addEvent(e) {
  const k = `${e.rev}:${e.id}`;
  if (evKeys.has(k)) return;
  evKeys.add(k);
  state.events.push(e);
}
function sortEvents() {
  state.events.sort((a, b) => b.rev - a.rev || b.at - a.at);
  if (state.events.length > 500) {
    for (const e of state.events.splice(500)) evKeys.delete(`${e.rev}:${e.id}`);
  }
}

async function loadProjects() {
  const l = await api('GET', '/v2-beta/projects?limit=3000');
  state.projects = l.data || [];
  if (!state.projects.some((p) => p.id === state.project) && state.projects.length) {
    state.project = state.projects[0].id;
  }
  renderEnvSelect();
}

// ---- live subscription (SSE over fetch) ----
let liveCtl = null;
let liveGen = 0;
async function subscribe(from) {
  const gen = ++liveGen;
  if (liveCtl) liveCtl.abort();
  let since = from ?? null;
  while (gen === liveGen) {
    const ctl = (liveCtl = new AbortController());
    try {
      const headers = { Accept: 'text/event-stream', 'X-API-No-Challenge': 'true' };
      if (authHeader) headers.Authorization = authHeader;
      const q = since != null ? `?since=${since}` : '';
      const r = await fetch(`${P()}/subscribe${q}`, { headers, signal: ctl.signal });
      if (r.status === 401) { needLogin(); return; }
      if (!r.ok) throw new Error(`subscribe: HTTP ${r.status}`);
      $('#live').classList.add('on');
      if (since == null) await loadAll(); // after subscribing: nothing is missed
      const rd = r.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = '';
      for (;;) {
        const { value, done } = await rd.read();
        if (done) break;
        buf += value;
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const frame = buf.slice(0, i);
          buf = buf.slice(i + 2);
          let data = '';
          for (const line of frame.split('\n')) {
            if (line.startsWith('id: ')) since = line.slice(4);
            else if (line.startsWith('data: ')) data += line.slice(6);
          }
          if (data) onEvent(JSON.parse(data), Number(since));
        }
      }
    } catch (e) {
      if (ctl.signal.aborted) return;
    }
    $('#live').classList.remove('on');
    await new Promise((res) => setTimeout(res, 1000));
  }
}

function onEvent(ev, rev) {
  if (ev.name === 'resync') { loadAll(); return; }
  if (ev.name !== 'resource.change') return;
  const r = ev.data && ev.data.resource;
  if (!r) return;
  const prev = state[bucket(r.type)]?.get(r.id);
  apply(r);
  if (bucket(r.type) !== 'apiKey' && bucket(r.type) !== 'registrationToken'
      && (!prev || prev.state !== r.state || prev.healthState !== r.healthState || prev.scale !== r.scale)) {
    addEvent({ rev, at: new Date(), type: r.type, id: r.id, name: r.name || r.hostname || r.id,
      state: r.state, health: r.healthState, from: prev ? prev.state : null, serviceIds: r.serviceIds || (r.serviceId ? [r.serviceId] : []) });
    sortEvents();
  }
  schedule();
}

// ---- routing and rendering ----
// A live update re-renders the view (new nodes). Between a button's
// pointerdown and its pointerup that would lose the click (the press and
// the release land on different elements), so while a pointer is held on
// the page, live re-renders wait, and one runs after the click is handled.
let pending = false;
let held = false;
let heldRender = false;
function schedule() {
  if (pending) return;
  pending = true;
  requestAnimationFrame(() => {
    pending = false;
    if (held) { heldRender = true; return; }
    render(false);
  });
}
window.addEventListener('pointerdown', () => { held = true; }, true);
const release = () => {
  held = false;
  if (heldRender) { heldRender = false; setTimeout(schedule, 0); }
};
window.addEventListener('pointerup', release, true);
window.addEventListener('pointercancel', release, true);
window.addEventListener('blur', release);

const FORM_VIEWS = new Set(['add-host', 'deploy', 'login', 'exec']);
function route() {
  const parts = (location.hash || '#/hosts').slice(2).split('/');
  return { page: parts[0] || 'hosts', id: parts[1] };
}

function render(navigated) {
  const { page, id } = route();
  if (loginShown) return;
  if (!navigated && FORM_VIEWS.has(page)) return; // keep what the user typed
  if (shell && (page !== 'exec' || id !== shell.id)) { shell.close(); shell = null; }
  for (const a of document.querySelectorAll('#nav a')) {
    a.classList.toggle('on', a.getAttribute('href') === `#/${page}`);
  }
  if (!state.loaded && !FORM_VIEWS.has(page)) return;
  const focusKey = document.activeElement?.dataset?.k;
  const view = VIEWS[page] || VIEWS.hosts;
  const el = view(id);
  main.replaceChildren(el);
  if (!performance.getEntriesByName('ros-first-render').length) performance.mark('ros-first-render');
  if (focusKey) main.querySelector(`[data-k="${CSS.escape(focusKey)}"]`)?.focus();
  else if (navigated) main.focus();
}

// ---- helpers for resources ----
const hostName = (id) => { const x = state.host.get(id); return x ? (x.hostname || x.name || id) : (id || '—'); };
const ctrHealth = (c) => (c.healthState && c.healthState !== 'healthy' ? c.healthState : c.state);
const containersOf = (svc) => live(state.container).filter((c) => (c.serviceIds || []).includes(svc.id) || c.serviceId === svc.id).sort(byName);
const servicesOf = (st) => live(state.service).filter((s) => s.stackId === st.id).sort(byName);
const image = (lc) => String((lc && lc.imageUuid) || '').replace(/^docker:/, '');

function ctrChip(c) {
  return h('a', { class: `ctr ${ctrHealth(c)}`, href: `#/containers/${c.id}`, title: `${c.state}${c.healthState ? ' / ' + c.healthState : ''}` },
    c.name || c.id, ' ', h('span', { class: 'muted' }, c.primaryIpAddress || ''));
}

function labelList(labels) {
  const l = Object.entries(labels || {}).filter(([k]) => !k.startsWith('io.rancher.host.'));
  return l.length ? h('div', { class: 'labels' }, l.map(([k, v]) => h('span', {}, `${k}=${v}`))) : null;
}

function usage(label, used, total, unit) {
  const pct = total > 0 ? Math.min(100, Math.round((used / total) * 100)) : 0;
  return [h('div', { class: 'small muted' }, `${label}: ${total > 0 ? `${Math.round(used)} / ${Math.round(total)} ${unit} (${pct}%)` : 'n/a'}`),
    h('div', { class: 'bar', role: 'progressbar', 'aria-label': label, 'aria-valuenow': pct, 'aria-valuemin': 0, 'aria-valuemax': 100 }, h('i', { style: `width:${pct}%` }))];
}

function actionButtons(r, path, names, extra = {}) {
  return names.filter((a) => r.actions && r.actions[a]).map((a) =>
    btn(extra[a] || a, () => {
      if (a === 'remove' && !confirm(`Remove ${r.name || r.hostname || r.id}?`)) return;
      act(path, a);
    }, { class: a === 'remove' ? 'danger' : '', 'data-k': `${r.id}:${a}` }));
}

// ---- views ----
const VIEWS = {};

VIEWS.hosts = () => {
  const hosts = live(state.host).sort(byName);
  return h('section', {},
    h('h1', {}, 'Hosts', h('a', { class: 'btn primary', href: '#/add-host' }, 'Add Host')),
    hosts.length ? null : h('p', { class: 'muted' }, 'No hosts yet. Add one with its registration command.'),
    h('div', { class: 'grid' }, hosts.map((x) => {
      const ctrs = live(state.container).filter((c) => c.hostId === x.id).sort(byName);
      const cpu = ctrs.reduce((s, c) => s + (c.cpuPercent || 0), 0);
      const mem = ctrs.reduce((s, c) => s + (c.memoryMb || 0), 0);
      const os = (x.info && x.info.osInfo) || {};
      return h('article', { class: 'card host', 'data-host': x.hostname || x.name },
        h('header', {}, h('h2', {}, x.hostname || x.name || x.id),
          h('span', {}, badge(x.state), ' ', x.agentState && x.agentState !== x.state ? badge(x.agentState) : null)),
        h('div', { class: 'small' }, h('b', {}, x.agentIpAddress || '—'), ' · ', x.id),
        h('div', { class: 'small muted' }, [os.operatingSystem, os.kernelVersion && `kernel ${os.kernelVersion}`, os.dockerVersion && `docker ${os.dockerVersion}`].filter(Boolean).join(' · ')),
        labelList(x.labels),
        usage('CPU', cpu, ((x.milliCpu || 0) / 1000) * 100, '%'),
        usage('Memory', mem, x.memory || 0, 'MB'),
        h('div', { class: 'small muted' }, `Disk: ${x.localStorageMb ? Math.round(x.localStorageMb / 1024) + ' GB' : 'n/a'}`),
        h('div', { class: 'ctrs' }, ctrs.length ? ctrs.map(ctrChip) : h('span', { class: 'muted small' }, 'no containers')),
        h('div', { class: 'actions' }, actionButtons(x, `${P()}/hosts/${x.id}`, ['deactivate', 'activate', 'remove'])));
    })));
};

VIEWS['add-host'] = () => {
  const labels = h('input', { type: 'text', id: 'ah-labels', placeholder: 'zone=a,disk=ssd' });
  const ip = h('input', { type: 'text', id: 'ah-ip', placeholder: 'optional: the IP other hosts reach this one on' });
  const cmd = h('pre', { class: 'cmd', id: 'ah-cmd' }, 'Creating a registration token…');
  const cc = h('pre', { class: 'cmd', id: 'ah-cloud' }, '');
  let url = null;
  let token = null;
  let command = null;
  const update = () => {
    if (!url) return;
    const l = labels.value.trim();
    const i = ip.value.trim();
    // Rancher's one line for any Linux machine with Docker: the script
    // fetches ros from this server and starts the agent; options after `--`.
    const opts = [i && `--ip ${i}`, l && `--labels ${l}`].filter(Boolean).join(' ');
    // The token's own line: over HTTPS it checks the cluster CA against
    // the pin before it fetches the script.
    const line = command || `curl -fsSL ${url} | sudo sh`;
    cmd.textContent = `${line}${opts ? ` -s -- ${opts}` : ''}`;
    const server = url.replace(/\/v1\/scripts\/.*$/, '');
    const lines = ['#cloud-config', 'ros:', '  cluster:', '    role: agent', `    server_url: ${server}`, `    token: ${token}`];
    if (i) lines.push(`    agent_ip: ${i}`);
    if (l) {
      lines.push('    labels:');
      for (const kv of l.split(',')) { const [k, v = ''] = kv.split('='); if (k.trim()) lines.push(`      ${k.trim()}: "${v.trim()}"`); }
    }
    cc.textContent = lines.join('\n');
  };
  labels.addEventListener('input', update);
  ip.addEventListener('input', update);
  (async () => {
    try {
      let t = live(state.registrationToken).find((x) => x.state === 'active' && x.registrationUrl);
      if (!t) t = await api('POST', `${P()}/registrationtokens`, {});
      url = t.registrationUrl;
      token = t.token;
      command = t.command;
      update();
    } catch (e) { cmd.textContent = `Cannot create a registration token: ${e.message}`; }
  })();
  const copy = (pre) => async () => {
    try { await navigator.clipboard.writeText(pre.textContent); } catch {
      const r = document.createRange(); r.selectNodeContents(pre);
      const s = getSelection(); s.removeAllRanges(); s.addRange(r); document.execCommand('copy');
    }
    toast('Copied');
  };
  return h('section', {},
    h('h1', {}, 'Add Host'),
    h('p', {}, 'Run this as root on the new host (any Linux with Docker: it fetches ros from this server and starts the agent). The host appears on the Hosts page as soon as its agent registers.'),
    h('div', { class: 'row' }, h('div', {}, h('label', { for: 'ah-labels' }, 'Labels'), labels), h('div', {}, h('label', { for: 'ah-ip' }, 'Agent IP'), ip)),
    h('h2', {}, 'Registration command'), cmd, btn('Copy command', copy(cmd), { id: 'copy-cmd' }),
    h('h2', {}, 'Or: cloud-config for a ros node'), cc, btn('Copy cloud-config', copy(cc)),
    h('p', {}, h('a', { href: '#/hosts' }, '← Hosts')));
};

function stackHealth(st) {
  const svcs = servicesOf(st);
  const ctrs = svcs.flatMap(containersOf);
  const bad = ctrs.filter((c) => c.healthState === 'unhealthy' || c.state === 'error').length;
  const run = ctrs.filter((c) => c.state === 'running').length;
  const want = svcs.filter((s) => s.state === 'active' || s.state === 'upgraded' || s.state === 'upgrading').reduce((n, s) => n + (s.scale || 0), 0);
  let status = 'healthy';
  if (bad || run < want) status = run === 0 && want > 0 ? 'unhealthy' : 'degraded';
  if (svcs.some((s) => /ing$/.test(s.state || '') || s.state === 'upgraded')) status = 'upgrading';
  if (!svcs.length || svcs.every((s) => s.state === 'inactive')) status = 'inactive';
  return { status, run, want, bad, svcs };
}

VIEWS.stacks = () => {
  const stacks = live(state.stack).sort(byName);
  return h('section', {},
    h('h1', {}, 'Stacks', h('a', { class: 'btn primary', href: '#/deploy' }, 'Deploy a stack')),
    stacks.length ? null : h('p', { class: 'muted' }, 'No stacks yet.'),
    h('div', { class: 'grid' }, stacks.map((st) => {
      const hl = stackHealth(st);
      return h('article', { class: 'card stack', 'data-stack': st.name },
        h('header', {}, h('h2', {}, h('a', { href: `#/stacks/${st.id}` }, st.name)), badge(hl.status)),
        h('div', { class: 'small muted' }, `${hl.svcs.length} services · ${hl.run}/${hl.want} containers running${hl.bad ? ` · ${hl.bad} unhealthy` : ''}`),
        h('div', { class: 'bar', 'aria-hidden': 'true' }, h('i', { style: `width:${hl.want ? Math.min(100, (hl.run / hl.want) * 100) : 0}%;background:${hl.status === 'healthy' ? 'var(--ok)' : 'var(--warn)'}` })),
        h('ul', { class: 'small' }, hl.svcs.map((s) => h('li', {}, h('a', { href: `#/services/${s.id}` }, s.name), ' ', badge(s.state), ' ', `${containersOf(s).filter((c) => c.state === 'running').length}/${s.scale ?? '—'}`))),
        h('div', { class: 'actions' }, actionButtons(st, `${P()}/stacks/${st.id}`, ['activateservices', 'deactivateservices', 'remove'], { activateservices: 'Start services', deactivateservices: 'Stop services' })));
    })));
};

function portRules(s) {
  const rules = s.lbConfig && s.lbConfig.portRules;
  if (!rules || !rules.length) return null;
  return h('div', { class: 'small' }, h('b', {}, 'Port rules'),
    h('ul', {}, rules.map((r) => h('li', {}, `${r.protocol || 'http'} ${r.hostname || ''}${r.sourcePort ?? ''}${r.path || ''} → ${state.service.get(r.serviceId)?.name || r.serviceId || r.service || ''}:${r.targetPort ?? ''}`))));
}

function serviceRow(s) {
  const ctrs = containersOf(s);
  const sp = `${P()}/services/${s.id}`;
  const global = s.launchConfig && s.launchConfig.labels && s.launchConfig.labels['io.rancher.scheduler.global'] === 'true';
  const scaleTo = (n) => async () => {
    try { await api('PUT', sp, { scale: n }); } catch (e) { toast(`scale: ${e.message}`, true); }
  };
  return h('article', { class: 'card service', 'data-service': s.name },
    h('header', {}, h('h2', {}, h('a', { href: `#/services/${s.id}` }, s.name), ' ', h('span', { class: 'muted small' }, s.type)),
      h('span', {}, badge(s.state), ' ', s.healthState ? badge(s.healthState) : null)),
    h('div', { class: 'small muted' }, image(s.launchConfig), (s.launchConfig?.ports || []).length ? ` · ports ${(s.launchConfig.ports).join(', ')}` : ''),
    portRules(s),
    global ? h('div', { class: 'small' }, 'global: one per host')
      : h('div', { class: 'scale' }, 'Scale',
        btn('−', scaleTo(Math.max(0, (s.scale || 0) - 1)), { 'aria-label': `Scale ${s.name} down`, 'data-k': `${s.id}:down`, disabled: !s.scale }),
        h('output', { 'aria-live': 'polite', class: 'scale-n' }, s.scale ?? 0),
        btn('+', scaleTo((s.scale || 0) + 1), { 'aria-label': `Scale ${s.name} up`, 'data-k': `${s.id}:up` })),
    h('div', { class: 'ctrs' }, ctrs.length ? ctrs.map(ctrChip) : h('span', { class: 'muted small' }, 'no containers')),
    h('div', { class: 'actions' },
      actionButtons(s, sp, ['activate', 'deactivate', 'restart', 'finishupgrade', 'rollback', 'cancelupgrade', 'remove'],
        { finishupgrade: 'Finish upgrade', rollback: 'Rollback', cancelupgrade: 'Cancel upgrade' }),
      s.actions && s.actions.upgrade ? btn('Upgrade…', () => upgradeDialog(s), { 'data-k': `${s.id}:upgrade` }) : null));
}

function download(name, text) {
  const a = h('a', { href: URL.createObjectURL(new Blob([text || ''], { type: 'text/plain' })), download: name });
  document.body.append(a); a.click(); a.remove();
}

VIEWS.stacks_one = (id) => {
  const st = state.stack.get(id);
  if (!st || gone(st)) return h('p', {}, 'No such stack. ', h('a', { href: '#/stacks' }, '← Stacks'));
  const hl = stackHealth(st);
  return h('section', {},
    h('h1', {}, h('a', { href: '#/stacks' }, 'Stacks'), ' / ', st.name, badge(hl.status)),
    st.description ? h('p', {}, st.description) : null,
    h('div', { class: 'actions' },
      actionButtons(st, `${P()}/stacks/${st.id}`, ['activateservices', 'deactivateservices', 'remove'], { activateservices: 'Start services', deactivateservices: 'Stop services' }),
      st.dockerCompose ? btn('docker-compose.yml', () => download('docker-compose.yml', st.dockerCompose)) : null,
      st.rancherCompose ? btn('rancher-compose.yml', () => download('rancher-compose.yml', st.rancherCompose)) : null),
    h('div', { class: 'grid', style: 'margin-top:1rem' }, hl.svcs.map(serviceRow)),
    st.dockerCompose ? h('details', {}, h('summary', {}, 'Compose files'), h('pre', { class: 'cmd' }, st.dockerCompose), st.rancherCompose ? h('pre', { class: 'cmd' }, st.rancherCompose) : null) : null);
};

function upgradeDialog(s) {
  const lc = s.launchConfig || {};
  const others = live(state.service).filter((x) => x.id !== s.id && x.stackId === s.stackId);
  const img = h('input', { type: 'text', id: 'up-image', value: image(lc) });
  const batch = h('input', { type: 'number', id: 'up-batch', min: 1, value: 1 });
  const interval = h('input', { type: 'number', id: 'up-interval', min: 0, value: 2000 });
  const first = h('input', { type: 'checkbox', id: 'up-first' });
  const to = h('select', { id: 'up-to' }, h('option', { value: '' }, '— in place (new launch config) —'), others.map((o) => h('option', { value: o.id }, o.name)));
  const err = h('div', { class: 'errors', hidden: true });
  const dlg = h('dialog', { 'aria-labelledby': 'up-title' },
    h('form', { method: 'dialog' },
      h('h2', { id: 'up-title' }, `Upgrade ${s.name}`),
      h('label', { for: 'up-image' }, 'Image'), img,
      h('label', { for: 'up-to' }, 'Or upgrade to another service'), to,
      h('div', { class: 'row' }, h('div', {}, h('label', { for: 'up-batch' }, 'Batch size'), batch), h('div', {}, h('label', { for: 'up-interval' }, 'Batch interval (ms)'), interval)),
      h('label', {}, first, ' Start new containers before stopping the old'),
      err,
      h('div', { class: 'actions' },
        h('button', { type: 'submit', class: 'primary', id: 'up-go', value: 'go' }, 'Upgrade'),
        h('button', { type: 'submit', value: 'cancel' }, 'Cancel'))));
  dlg.addEventListener('close', async () => {
    if (dlg.returnValue !== 'go') { dlg.remove(); return; }
    const body = to.value
      ? { toServiceStrategy: { toServiceId: to.value, batchSize: +batch.value || 1, intervalMillis: +interval.value || 0, updateLinks: true } }
      : { inServiceStrategy: { launchConfig: { ...lc, imageUuid: `docker:${img.value.trim()}` }, batchSize: +batch.value || 1, intervalMillis: +interval.value || 0, startFirst: first.checked } };
    try {
      await api('POST', `${P()}/services/${s.id}?action=upgrade`, body);
      toast(`upgrading ${s.name}`);
      dlg.remove();
    } catch (e) { err.hidden = false; err.textContent = e.message; dlg.showModal(); }
  });
  document.body.append(dlg);
  dlg.showModal();
}

function timeline(s, ctrs) {
  const ids = new Set(ctrs.map((c) => c.id));
  const evs = state.events.filter((e) => e.id === s.id || ids.has(e.id) || (e.serviceIds || []).includes(s.id)).slice(0, 60);
  const items = [];
  if (s.upgrade) {
    const st = s.upgrade.inServiceStrategy || s.upgrade.toServiceStrategy || {};
    items.push(h('li', {}, h('b', {}, 'Last upgrade'), ` batch ${st.batchSize ?? '—'}, interval ${st.intervalMillis ?? '—'} ms${st.startFirst ? ', start first' : ''}${st.launchConfig ? `, image ${image(st.launchConfig)}` : ''}`));
  }
  for (const e of evs) {
    items.push(h('li', {}, h('time', { datetime: e.at.toISOString() }, e.at.toLocaleTimeString()), ' ', e.type, ' ', h('b', {}, e.name), ': ', e.from ? `${e.from} → ` : '', e.state, e.health ? ` (${e.health})` : ''));
  }
  return items.length ? h('ul', { class: 'timeline' }, items) : h('p', { class: 'muted' }, 'No recorded changes yet.');
}

VIEWS.services = (id) => {
  const s = state.service.get(id);
  if (!s || gone(s)) return h('p', {}, 'No such service. ', h('a', { href: '#/stacks' }, '← Stacks'));
  const st = state.stack.get(s.stackId);
  const ctrs = containersOf(s);
  return h('section', {},
    h('h1', {}, h('a', { href: '#/stacks' }, 'Stacks'), ' / ', st ? h('a', { href: `#/stacks/${st.id}` }, st.name) : '?', ' / ', s.name),
    serviceRow(s),
    h('h2', {}, 'Containers'),
    h('div', { class: 'tablewrap' }, h('table', {}, h('thead', {}, h('tr', {}, ['Name', 'State', 'Health', 'Host', 'IP', 'Ports', 'Image'].map((t) => h('th', {}, t)))),
      h('tbody', {}, ctrs.map((c) => h('tr', {}, h('td', {}, h('a', { href: `#/containers/${c.id}` }, c.name || c.id)), h('td', {}, badge(c.state)), h('td', {}, c.healthState ? badge(c.healthState) : '—'),
        h('td', {}, hostName(c.hostId)), h('td', {}, c.primaryIpAddress || '—'), h('td', {}, (c.ports || []).join(', ') || '—'), h('td', { class: 'small' }, image(c))))))),
    h('h2', {}, 'Deployment timeline'), timeline(s, ctrs));
};

VIEWS.containers = (id) => {
  const c = state.container.get(id);
  if (!c) return h('p', {}, 'No such container.');
  const cp = `${P()}/containers/${c.id}`;
  const wrap = h('section', {},
    h('h1', {}, c.name || c.id, badge(c.state), c.healthState ? badge(c.healthState) : null),
    h('div', { class: 'small' }, `host ${hostName(c.hostId)} · ${c.primaryIpAddress || 'no IP'} · ${image(c)}`),
    h('div', { class: 'actions' }, actionButtons(c, cp, ['start', 'stop', 'restart', 'remove']),
      c.state === 'running' ? h('a', { class: 'btn', href: `#/exec/${c.id}`, id: 'open-shell' }, 'Shell') : null),
    logsPanel(c));
  return wrap;
};

// The shell: a terminal (xterm.js, loaded only here) on a websocket the
// server relays to the agent of the container's host.
let shell = null;
VIEWS.exec = (id) => {
  const c = state.container.get(id);
  const term = h('div', { class: 'term', id: 'term' });
  const status = h('div', { class: 'small muted', id: 'term-status', role: 'status' }, 'Loading the terminal…');
  const say = (text, bad) => { status.textContent = text; status.classList.toggle('bad', !!bad); };
  const me = { id, close() { this.closed = true; if (this.session) this.session.close(); } };
  shell = me;
  import('/ui/exec.js')
    .then((m) => m.open(term, say, `/v2-beta/projects/${state.project}/containers/${id}`, api))
    .then((s) => { if (me.closed) s.close(); else me.session = s; })
    .catch((e) => say(`The terminal did not load: ${e.message}`, true));
  return h('section', {},
    h('h1', {}, h('a', { href: `#/containers/${id}` }, c ? c.name || id : id), ' / Shell'),
    status, term,
    h('div', { class: 'actions' }, btn('Reconnect', () => render(true)), h('a', { href: `#/containers/${id}` }, '← Container')));
};

// Logs keep polling while their panel is on the page; the panel survives
// re-renders of the container page (kept per container).
const logPanels = new Map();
function logsPanel(c) {
  const keep = logPanels.get(c.id);
  if (keep) {
    if (!keep.polling) keep.restart();
    return keep;
  }
  logPanels.clear();
  const pre = h('pre', { class: 'logs', id: 'logs', tabindex: 0, 'aria-label': 'Container logs' });
  const follow = h('input', { type: 'checkbox', id: 'follow', checked: true });
  let lastNs = 0;
  let text = '';
  const poll = async () => {
    panel.polling = true;
    if (!panel.isConnected && lastNs) { panel.polling = false; return; }
    try {
      const q = lastNs ? `since=${lastNs + 1}` : 'tail=500';
      const r = await api('GET', `/v2-beta/projects/${state.project}/containers/${c.id}/logs?${q}`);
      const atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 20;
      for (const l of r.lines || []) {
        const line = typeof l === 'string' ? l : l.text;
        lastNs = Math.max(lastNs, l.timeNanos || l.time_nanos || 0);
        text += line + '\n';
        pre.append(h('span', { class: l.stream === 'stderr' ? 'err' : '' }, line + '\n'));
      }
      if (atEnd) pre.scrollTop = pre.scrollHeight;
    } catch (e) {
      if (!lastNs) pre.textContent = `Logs unavailable: ${e.message}`;
    }
    if (follow.checked && (panel.isConnected || !lastNs)) setTimeout(poll, 1000);
    else panel.polling = false;
  };
  follow.addEventListener('change', () => { if (follow.checked && !panel.polling) poll(); });
  const panel = h('div', {},
    h('h2', {}, 'Logs'),
    h('div', { class: 'actions' }, h('label', { style: 'font-weight:normal' }, follow, ' Follow'), btn('Download', () => download(`${c.name || c.id}.log`, text))),
    pre);
  panel.restart = () => { panel.polling = true; setTimeout(poll, 0); };
  logPanels.set(c.id, panel);
  panel.restart();
  return panel;
}

function jumpTo(ta, line, col) {
  const lines = ta.value.split('\n');
  let off = 0;
  for (let i = 0; i < line - 1 && i < lines.length; i++) off += lines[i].length + 1;
  const end = off + (lines[line - 1] || '').length;
  ta.focus();
  ta.setSelectionRange(Math.min(off + col - 1, end), end);
  ta.scrollTop = Math.max(0, (line - 3) * 18);
}

VIEWS.deploy = () => {
  const name = h('input', { type: 'text', id: 'dp-name', required: true, autocomplete: 'off' });
  const desc = h('input', { type: 'text', id: 'dp-desc' });
  const dc = h('textarea', { id: 'dp-docker', spellcheck: 'false', placeholder: 'version: "2"\nservices:\n  web:\n    image: nginx' });
  const rc = h('textarea', { id: 'dp-rancher', spellcheck: 'false', placeholder: 'version: "2"\nservices:\n  web:\n    scale: 2', style: 'min-height:6rem' });
  const fileInto = (ta, id) => h('input', { type: 'file', id, accept: '.yml,.yaml,text/yaml', onchange: async (e) => { const f = e.target.files[0]; if (f) ta.value = await f.text(); } });
  const errs = h('div', { class: 'errors', id: 'dp-errors', hidden: true, role: 'alert' });
  const go = h('button', { type: 'submit', class: 'primary', id: 'dp-go' }, 'Deploy');
  const form = h('form', {
    onsubmit: async (e) => {
      e.preventDefault();
      errs.hidden = true;
      go.disabled = true;
      try {
        const st = await api('POST', `${P()}/stacks`, { name: name.value.trim(), description: desc.value || undefined, dockerCompose: dc.value, rancherCompose: rc.value || undefined, startOnCreate: true });
        apply(st);
        try { await api('POST', `${P()}/stacks/${st.id}?action=activateservices`, {}); } catch { /* already active */ }
        location.hash = `#/stacks/${st.id}`;
      } catch (err) {
        errs.hidden = false;
        const msg = err.body && err.body.fieldName ? `${err.body.fieldName}: ${err.message}` : err.message;
        // Each `file:line:column` is a button that selects that line.
        errs.replaceChildren(...msg.split('\n').map((line) => {
          const m = line.match(/(docker|rancher)-compose\.yml:(\d+):(\d+)/);
          if (!m) return h('div', {}, line);
          const at = line.indexOf(m[0]);
          return h('div', {}, line.slice(0, at),
            h('button', { type: 'button', class: 'pos', onclick: () => jumpTo(m[1] === 'docker' ? dc : rc, +m[2], +m[3]) }, m[0]),
            line.slice(at + m[0].length));
        }));
      } finally { go.disabled = false; }
    },
  },
  h('div', { class: 'row' }, h('div', {}, h('label', { for: 'dp-name' }, 'Stack name'), name), h('div', {}, h('label', { for: 'dp-desc' }, 'Description'), desc)),
  h('label', { for: 'dp-docker' }, 'docker-compose.yml'), dc, h('div', { class: 'small' }, 'or upload: ', fileInto(dc, 'dp-docker-file')),
  h('label', { for: 'dp-rancher' }, 'rancher-compose.yml (optional)'), rc, h('div', { class: 'small' }, 'or upload: ', fileInto(rc, 'dp-rancher-file')),
  errs, h('div', { class: 'actions' }, go));
  return h('section', {}, h('h1', {}, h('a', { href: '#/stacks' }, 'Stacks'), ' / Deploy'), form);
};

VIEWS.events = () => h('section', {},
  h('h1', {}, 'Events'),
  h('p', { class: 'muted small' }, 'Every state change in this environment, newest first (the server keeps them across restarts).'),
  state.events.length ? h('div', { class: 'tablewrap' }, h('table', {}, h('thead', {}, h('tr', {}, ['Time', 'Type', 'Name', 'Change'].map((t) => h('th', {}, t)))),
    h('tbody', {}, state.events.slice(0, 300).map((e) => h('tr', {}, h('td', {}, e.at.toLocaleTimeString()), h('td', {}, e.type), h('td', {}, e.name),
      h('td', {}, e.from ? `${e.from} → ` : 'new: ', badge(e.state), e.health ? [' ', badge(e.health)] : null))))))
    : h('p', {}, 'No events yet.'));

let lastSecret = null;
VIEWS.apikeys = () => {
  const keys = live(state.apiKey).sort(byName);
  const name = h('input', { type: 'text', id: 'key-name', placeholder: 'name' });
  const desc = h('input', { type: 'text', id: 'key-desc', placeholder: 'description' });
  return h('section', {},
    h('h1', {}, 'API keys'),
    lastSecret ? h('div', { class: 'card', id: 'new-key', role: 'alert' }, h('b', {}, 'Save the secret now: it is shown only once.'),
      h('pre', { class: 'cmd' }, `Access key: ${lastSecret.publicValue}\nSecret key: ${lastSecret.secretValue}`), btn('Done', () => { lastSecret = null; render(true); })) : null,
    h('form', { class: 'card', onsubmit: async (e) => {
      e.preventDefault();
      try {
        const k = await api('POST', `${P()}/apikeys`, { name: name.value || undefined, description: desc.value || undefined });
        lastSecret = k; apply(k); render(true);
      } catch (err) { toast(err.message, true); }
    } }, h('div', { class: 'row' }, h('div', {}, h('label', { for: 'key-name' }, 'Name'), name), h('div', {}, h('label', { for: 'key-desc' }, 'Description'), desc)),
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary', id: 'key-add' }, 'Add API key'))),
    h('div', { class: 'tablewrap', style: 'margin-top:1rem' }, h('table', {}, h('thead', {}, h('tr', {}, ['Name', 'Access key', 'State', 'Created', ''].map((t) => h('th', {}, t)))),
      h('tbody', {}, keys.map((k) => h('tr', {}, h('td', {}, k.name || '—'), h('td', {}, h('code', {}, k.publicValue)), h('td', {}, badge(k.state)), h('td', { class: 'small' }, k.created || ''),
        h('td', {}, actionButtons(k, `${P()}/apikeys/${k.id}`, ['deactivate', 'activate', 'remove']))))))));
};

VIEWS.envs = () => {
  const name = h('input', { type: 'text', id: 'env-name' });
  return h('section', {},
    h('h1', {}, 'Environments'),
    h('div', { class: 'tablewrap' }, h('table', {}, h('thead', {}, h('tr', {}, ['Name', 'Id', 'State', ''].map((t) => h('th', {}, t)))),
      h('tbody', {}, state.projects.filter((p) => !gone(p)).map((p) => h('tr', {}, h('td', {}, p.name), h('td', {}, p.id), h('td', {}, badge(p.state)),
        h('td', {}, p.id === state.project ? h('b', {}, 'current') : btn('Switch', () => switchProject(p.id)))))))),
    h('form', { class: 'card', style: 'margin-top:1rem', onsubmit: async (e) => {
      e.preventDefault();
      try { const p = await api('POST', '/v2-beta/projects', { name: name.value.trim() }); apply(p); switchProject(p.id); } catch (err) { toast(err.message, true); }
    } }, h('label', { for: 'env-name' }, 'New environment name'), name, h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, 'Create'))));
};

// Stack page: #/stacks/<id>
const listStacks = VIEWS.stacks;
VIEWS.stacks = (id) => (id ? VIEWS.stacks_one(id) : listStacks());

// ---- environments ----
function renderEnvSelect() {
  const sel = $('#env');
  sel.replaceChildren(...state.projects.filter((p) => !gone(p)).map((p) => h('option', { value: p.id, selected: p.id === state.project }, p.name || p.id)));
}
function switchProject(id) {
  state.project = id;
  localStorage.setItem('ros.project', id);
  state.loaded = false;
  state.events = [];
  evKeys.clear();
  renderEnvSelect();
  subscribe();
  location.hash = '#/hosts';
  render(true);
}
$('#env').addEventListener('change', (e) => switchProject(e.target.value));

// ---- login ----
let loginShown = false;
// The text for a 429 of the login brake (Retry-After: seconds).
function braked(r) {
  const s = parseInt(r.headers.get('Retry-After') || '', 10);
  return `Too many failed logins from your address: wait ${Number.isFinite(s) ? s : 'a few'} s before trying again.`;
}
function needLogin() {
  if (loginShown) return;
  loginShown = true;
  liveGen++;
  if (liveCtl) liveCtl.abort();
  setAuth(null);
  const user = h('input', { type: 'text', id: 'login-user', autocomplete: 'username', required: true });
  const pass = h('input', { type: 'password', id: 'login-pass', autocomplete: 'current-password', required: true });
  const err = h('div', { class: 'errors', hidden: true, role: 'alert' });
  main.replaceChildren(h('section', { class: 'login card' },
    h('h1', {}, 'Log in'),
    h('p', { class: 'small muted' }, 'Access control is on. Use the admin account, or an API key (access key / secret key).'),
    h('form', { onsubmit: async (e) => {
      e.preventDefault();
      err.hidden = true;
      try {
        const r = await fetch('/v2-beta/token', { method: 'POST', headers: { 'Content-Type': 'application/json', 'X-API-No-Challenge': 'true' }, body: JSON.stringify({ code: `${user.value}:${pass.value}` }) });
        const j = await r.json().catch(() => ({}));
        // The server's brute-force brake: say how long to wait.
        if (r.status === 429) throw new Error(braked(r));
        let cred = r.ok && j.jwt ? `Bearer ${j.jwt}` : null;
        if (!cred) {
          // An API key logs in with HTTP Basic.
          const basic = `Basic ${btoa(`${user.value}:${pass.value}`)}`;
          const t = await fetch('/v2-beta/projects', { headers: { Authorization: basic, 'X-API-No-Challenge': 'true' } });
          if (t.status === 429) throw new Error(braked(t));
          if (t.ok) cred = basic;
        }
        if (!cred) throw new Error(j.message || 'wrong username or password');
        setAuth(cred);
        loginShown = false;
        await start();
      } catch (e2) { err.hidden = false; err.textContent = e2.message; }
    } }, h('label', { for: 'login-user' }, 'Username or access key'), user, h('label', { for: 'login-pass' }, 'Password or secret key'), pass, err,
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary', id: 'login-go' }, 'Log in')))));
  user.focus();
}
$('#logout').addEventListener('click', () => { needLogin(); });

// ---- start ----
async function start() {
  $('#logout').hidden = !authHeader;
  let rev;
  try {
    // The projects and every collection of the remembered project go out
    // together; the subscription follows from the lists' revision, so the
    // first page waits for one round of requests only.
    const projects = loadProjects();
    const first = loadAll().catch((e) => e);
    await projects;
    rev = await first;
    if (rev instanceof Error) {
      if (rev.status === 401) throw rev;
      rev = null;
    }
    if (rev == null) rev = await loadAll(); // another project was current
  } catch (e) {
    if (e.status !== 401) main.replaceChildren(h('p', { class: 'errors' }, `Cannot reach the API: ${e.message}`));
    return;
  }
  render(true);
  subscribe(rev);
}
window.addEventListener('hashchange', () => render(true));
window.rosUi = { state }; // for the browser tests and the curious
start();
