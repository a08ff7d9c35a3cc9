// The shell view's terminal: xterm.js (vendored from npm at build time,
// served from /ui/) on a websocket to the server, which relays it to the
// agent of the container's host (`docker exec` with a TTY there). Loaded
// only when a shell opens, so the first page does not carry it.
//
// Frames: binary = terminal bytes both ways; text from the page =
// {"resize": [cols, rows]}; text to the page = an error to show.

import { Terminal } from '/ui/xterm.mjs';
import { FitAddon } from '/ui/addon-fit.mjs';

function stylesheet() {
  if (document.querySelector('link[href="/ui/xterm.css"]')) return;
  const l = document.createElement('link');
  l.rel = 'stylesheet';
  l.href = '/ui/xterm.css';
  document.head.append(l);
}

// Open a shell in the container at `path` (…/containers/<id>) inside
// element `el`; `status(text)` reports the connection; `api` is the
// page's authenticated API call. Returns { close }.
export async function open(el, status, path, api) {
  stylesheet();
  const term = new Terminal({ cursorBlink: true, fontSize: 14, scrollback: 5000,
    fontFamily: 'ui-monospace, SFMono-Regular, Menlo, Consolas, monospace' });
  const fit = new FitAddon();
  term.loadAddon(fit);
  term.open(el);
  const refit = () => { try { fit.fit(); } catch { /* not laid out yet */ } };
  refit();
  window.addEventListener('resize', refit);
  let ws = null;
  let closed = false;
  const close = () => {
    closed = true;
    window.removeEventListener('resize', refit);
    if (ws) ws.close();
    term.dispose();
  };
  status('Starting a shell…');
  let access;
  try {
    access = await api('POST', `${path}/exec`, {});
  } catch (e) {
    status(`Cannot start a shell: ${e.message}`, true);
    return { close, term };
  }
  if (closed) return { close, term };
  // The server names its own address; the page's origin is the one the
  // browser reaches (the same server, perhaps through a proxy).
  const wsPath = new URL(access.url).pathname;
  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  ws = new WebSocket(`${proto}//${location.host}${wsPath}?token=${encodeURIComponent(access.token)}`);
  ws.binaryType = 'arraybuffer';
  const enc = new TextEncoder();
  const resize = () => {
    if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ resize: [term.cols, term.rows] }));
  };
  ws.onopen = () => {
    status('Connected');
    resize();
    term.focus();
  };
  ws.onmessage = (e) => {
    if (typeof e.data === 'string') {
      status(e.data, true);
      term.write(`\r\n\x1b[31m${e.data}\x1b[0m\r\n`);
    } else {
      term.write(new Uint8Array(e.data));
    }
  };
  ws.onclose = () => {
    if (closed) return;
    status('The shell has ended.');
    term.write('\r\n\x1b[2m[session closed]\x1b[0m\r\n');
  };
  term.onData((d) => { if (ws.readyState === WebSocket.OPEN) ws.send(enc.encode(d)); });
  term.onBinary((d) => {
    if (ws.readyState !== WebSocket.OPEN) return;
    const b = new Uint8Array(d.length);
    for (let i = 0; i < d.length; i++) b[i] = d.charCodeAt(i) & 255;
    ws.send(b);
  });
  term.onResize(resize);
  return { close, term };
}
