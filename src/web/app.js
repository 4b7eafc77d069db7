// hyperts web console: Hyper-V Manager's three panes over the service's REST API and its live WebSocket.
import { Terminal } from '/vendor/xterm/lib/xterm.mjs';

const IC_NAMES = ['Heartbeat', 'Shutdown', 'Time Synchronization', 'Key-Value Pair Exchange', 'VSS'];

// Sign-in: the API token (typed into the login form) or a one-time login ticket (#ticket=..., never sent to the
// server in a URL) is exchanged for a session, kept for the tab; the token itself is never stored.
// WebSockets open with single-use tickets, so no credential ever appears in a URL.
let session = sessionStorage.getItem('hyperts-session');

async function signIn(init) {
  const r = await fetch('/api/v1/sessions', { method: 'POST', ...init });
  const data = await r.json().catch(() => null);
  if (!r.ok) throw new Error(data?.error?.message ?? `HTTP ${r.status}`);
  session = data.session;
  sessionStorage.setItem('hyperts-session', session);
}

function askToken() {
  return new Promise((resolve) => {
    const d = document.querySelector('#login-dialog');
    const form = document.querySelector('#login-form');
    form.onsubmit = async (ev) => {
      ev.preventDefault();
      const token = new FormData(form).get('token');
      try {
        await signIn({ headers: { authorization: `Bearer ${token}` } });
        form.reset();
        d.close();
        resolve();
      } catch (e) { document.querySelector('#login-error').textContent = e.message; }
    };
    d.showModal();
  });
}

let signingIn = null;
async function ensureSession() {
  if (session) return;
  signingIn ??= (async () => {
    const ticket = new URLSearchParams(location.hash.slice(1)).get('ticket');
    if (ticket) {
      history.replaceState(null, '', location.pathname);
      try { await signIn({ headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ticket }) }); return; } catch { /* used or expired: ask */ }
    }
    await askToken();
  })().finally(() => { signingIn = null; });
  await signingIn;
}

const $ = (sel) => document.querySelector(sel);
const el = (tag, props = {}, ...children) => {
  const e = document.createElement(tag);
  Object.assign(e, props);
  for (const c of children) e.append(c);
  return e;
};

let vms = [];
let selected = null;
let tab = 'summary';
let ics = null;
let events = null;
let snapshots = null;
let drives = null;
let adapters = null;

async function api(method, path, body, retried = false) {
  await ensureSession();
  const headers = { accept: 'application/json', authorization: `Bearer ${session}` };
  if (body !== undefined) headers['content-type'] = 'application/json';
  const r = await fetch(`/api/v1${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  if (r.status === 401 && !retried) {
    // The session ended (idle, or the service restarted): sign in again, then retry once.
    session = null;
    sessionStorage.removeItem('hyperts-session');
    return api(method, path, body, true);
  }
  const text = await r.text();
  const data = text ? JSON.parse(text) : null;
  if (!r.ok) throw new Error(data?.error?.message ?? `HTTP ${r.status}`);
  return data;
}

/** A WebSocket URL with a fresh single-use ticket for exactly this path. */
async function wsUrl(path) {
  const { ticket } = await api('POST', '/tickets', { path });
  const u = new URL(`/api/v1${path}`, location.href);
  u.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
  u.searchParams.set('ticket', ticket);
  return u.href;
}

function showError(msg) {
  const e = $('#error');
  e.textContent = msg;
  e.hidden = false;
  clearTimeout(showError.t);
  showError.t = setTimeout(() => { e.hidden = true; }, 8000);
}

const mb = (b) => `${Math.round(b / 1048576)} MB`;
function uptime(s) {
  const d = Math.floor(s / 86400), h = Math.floor(s / 3600) % 24, m = Math.floor(s / 60) % 60, x = s % 60;
  const hms = [h, m, x].map((v) => String(v).padStart(2, '0')).join(':');
  return d ? `${d}.${hms}` : hms;
}

// ---- VM list -------------------------------------------------------------------------------------------

function renderList() {
  const tbody = $('#vms tbody');
  tbody.replaceChildren(...vms.map((v) => {
    const tr = el('tr', { className: v.name === selected ? 'selected' : '' },
      el('td', { textContent: v.name }),
      el('td', { textContent: v.state, className: `state-${v.state}` }),
      el('td', { textContent: v.state === 'Off' ? '' : `${v.cpuUsage} %` }),
      el('td', { textContent: v.memoryAssignedBytes ? mb(v.memoryAssignedBytes) : '' }),
      el('td', { textContent: v.state === 'Off' ? '' : uptime(v.uptimeSeconds) }),
      el('td', { textContent: v.status }));
    tr.dataset.vm = v.name;
    tr.dataset.state = v.state;
    tr.addEventListener('click', () => select(v.name));
    tr.addEventListener('dblclick', () => openConsole(v.name));
    return tr;
  }));
  $('#empty').hidden = vms.length > 0;
  if (selected && !vms.some((v) => v.name === selected)) select(null);
  renderActions();
  renderDetails();
}

function current() { return vms.find((v) => v.name === selected) ?? null; }

function select(name) {
  if (name !== selected) { ics = null; events = null; drives = null; adapters = null; }
  selected = name;
  for (const tr of document.querySelectorAll('#vms tbody tr')) tr.classList.toggle('selected', tr.dataset.vm === name);
  renderActions();
  renderDetails();
  refreshDetails();
}

// ---- actions -------------------------------------------------------------------------------------------

const ENABLED = {
  connect: () => true,
  start: (s) => s === 'Off' || s === 'Saved',
  shutdown: (s) => s === 'Running',
  turnoff: (s) => s !== 'Off',
  pause: (s) => s === 'Running',
  resume: (s) => s === 'Paused',
  save: (s) => s === 'Running' || s === 'Paused',
  checkpoint: (s) => s === 'Off' || s === 'Running' || s === 'Paused' || s === 'Saved',
  reset: (s) => s === 'Running' || s === 'Paused',
  delete: (s) => s === 'Off' || s === 'Saved',
};

function renderActions() {
  const v = current();
  $('#vm-actions').hidden = !v;
  $('#vm-actions-title').hidden = !v;
  $('#vm-actions-title').textContent = v ? v.name : '';
  if (!v) return;
  for (const b of document.querySelectorAll('#vm-actions button')) b.disabled = !ENABLED[b.dataset.action](v.state);
}

async function act(action) {
  const v = current();
  if (!v) return;
  const path = `/vms/${encodeURIComponent(v.name)}`;
  try {
    switch (action) {
      case 'connect': openConsole(v.name); break;
      case 'start': await api('POST', `${path}/start`, {}); break;
      case 'shutdown': await api('POST', `${path}/stop`, { wait: false }); break;
      case 'turnoff':
        if (!confirm(`Turn off ${v.name}? Turning off a virtual machine is like unplugging it: unsaved data in the guest is lost.`)) return;
        await api('POST', `${path}/stop`, { turnOff: true });
        break;
      case 'pause': await api('POST', `${path}/suspend`, {}); break;
      case 'resume': await api('POST', `${path}/resume`, {}); break;
      case 'save': await api('POST', `${path}/save`, {}); break;
      case 'checkpoint': await api('POST', `${path}/snapshots`, {}); tab = 'checkpoints'; break;
      case 'reset': await api('POST', `${path}/restart`, {}); break;
      case 'delete':
        if (!confirm(`Delete ${v.name}? Its configuration is removed from the inventory.`)) return;
        await api('DELETE', path);
        if (consoleVm === v.name) closeConsole();
        break;
    }
  } catch (e) {
    showError(e.message);
  }
  refreshDetails();
}

// ---- details pane --------------------------------------------------------------------------------------

function dl(pairs) {
  return el('dl', {}, ...pairs.flatMap(([k, v]) => [el('dt', { textContent: k }), el('dd', { textContent: v ?? '' })]));
}

function renderDetails() {
  const v = current();
  $('#details').hidden = !v;
  if (!v) return;
  $('#details-title').textContent = v.name;
  for (const b of document.querySelectorAll('.tabs button')) b.classList.toggle('active', b.dataset.tab === tab);
  const body = $('#details-body');
  const c = v.config;
  if (tab === 'summary') {
    body.replaceChildren(dl([
      ['State', v.state], ['Status', v.status], ['Created', new Date(v.created).toLocaleString()],
      ['Processor', `${c.processor}${v.backend ? ` (running on ${v.backend})` : ''}, ${c.cpus} virtual processor(s)`],
      ['Enlightened', c.enlightened ? 'Yes' : 'No'],
      ['Heartbeat', v.heartbeat ?? (v.state === 'Off' ? '' : 'n/a')],
      ['Operating system', [v.osName, v.osVersion].filter(Boolean).join(' ') || ''],
      ['Integration services', v.heartbeat === 'OK' ? 'Up to date' : v.state === 'Off' ? '' : 'No contact'],
      ['Boot', c.boot.kernel ? `${c.boot.kernel}${c.boot.initrd ? ` + ${c.boot.initrd}` : ''}` : 'default image'],
      ['Command line', c.boot.cmdline], ['COM1', c.com1], ['Notes', c.notes],
    ]));
  } else if (tab === 'memory') {
    body.replaceChildren(dl([
      ['Startup memory', mb(c.memoryBytes)], ['Assigned memory', v.memoryAssignedBytes ? mb(v.memoryAssignedBytes) : '0 MB'],
      ['Dynamic memory', 'Disabled'], ['CPU usage', `${v.cpuUsage} %`], ['Uptime', uptime(v.uptimeSeconds)],
    ]));
  } else if (tab === 'storage') {
    // Hard disks and DVD drives as Hyper-V Manager's settings list them: controller, location, file, sizes.
    const size = (b) => (b === null || b === undefined ? '' : b >= 1073741824 ? `${(b / 1073741824).toFixed(b % 1073741824 ? 2 : 0)} GB` : mb(b));
    const rows = (drives ?? []).map((d) => el('tr', {},
      el('td', { textContent: `${d.controllerType} ${d.controllerNumber}` }),
      el('td', { textContent: String(d.controllerLocation) }),
      el('td', { textContent: d.kind === 'dvd' ? 'DVD drive' : 'Hard drive' }),
      el('td', { textContent: d.path ?? (d.kind === 'dvd' ? 'None (no disc)' : '') }),
      el('td', { textContent: size(d.sizeBytes) }),
      el('td', { textContent: size(d.fileSizeBytes) })));
    body.replaceChildren(
      dl([['SCSI controllers', String(c.hardware?.scsiControllers ?? 0)]]),
      el('table', { id: 'drive-table' },
        el('thead', {}, el('tr', {}, ...['Controller', 'Location', 'Drive', 'Path', 'Size', 'File size'].map((h) => el('th', { textContent: h })))),
        el('tbody', {}, ...rows)),
      ...(drives && !drives.length ? [el('p', { className: 'hint', textContent: 'No drives (hyperts add-vmharddiskdrive adds a disk).' })] : []));
  } else if (tab === 'ics') {
    const rows = (ics ?? []).map((i) => el('tr', {},
      el('td', { textContent: i.name }),
      el('td', {}, Object.assign(el('input', { type: 'checkbox', checked: i.enabled }), {
        onchange: (ev) => api('PUT', `/vms/${encodeURIComponent(v.name)}/integration-services/${encodeURIComponent(i.name)}`, { enabled: ev.target.checked })
          .then((l) => { ics = l; renderDetails(); }, (e) => showError(e.message)),
      })),
      el('td', { textContent: i.status ?? '' }), el('td', { textContent: i.protocol ?? '' })));
    body.replaceChildren(el('table', { id: 'ic-table' },
      el('thead', {}, el('tr', {}, ...['Service', 'Enabled', 'Status', 'Protocol'].map((h) => el('th', { textContent: h })))),
      el('tbody', {}, ...rows)));
  } else if (tab === 'networking') {
    // Per adapter: the guest's addresses as its KVP daemon reports them for the adapter's MAC.
    const rows = (adapters ?? []).map((a) => el('tr', {},
      el('td', { textContent: a.name }), el('td', { textContent: a.macAddress }), el('td', { textContent: a.switchName ?? '(not connected)' }),
      el('td', { textContent: a.status ? (a.status.linkUp ? 'Connected' : 'Disconnected') : '' }),
      el('td', { textContent: a.ipAddresses.join(', ') || (a.status ? 'not reported yet' : '') })));
    body.replaceChildren(dl([
      ['IP addresses', v.ipAddresses.join(', ') || (v.state === 'Running' ? 'not reported by the guest (KVP)' : '')],
      ['OS name (KVP)', v.osName ?? ''], ['OS version (KVP)', v.osVersion ?? ''],
    ]), el('table', { id: 'adapter-table' },
      el('thead', {}, el('tr', {}, ...['Adapter', 'MAC address', 'Switch', 'Status', 'IP addresses'].map((h) => el('th', { textContent: h })))),
      el('tbody', {}, ...rows)),
    ...(adapters && !adapters.length ? [el('p', { className: 'hint', textContent: 'No network adapters (hyperts add-vmnetworkadapter adds one).' })] : []));
  } else if (tab === 'checkpoints') {
    const path = `/vms/${encodeURIComponent(v.name)}/snapshots`;
    const run = (p) => p.then(() => refreshDetails(), (e) => showError(e.message));
    const button = (text, onclick) => el('button', { textContent: text, onclick });
    const rows = (snapshots ?? []).map((s) => el('tr', {},
      el('td', { textContent: `${s.name}${s.current ? '  ◂ Now' : ''}` }),
      el('td', { textContent: new Date(s.creationTime).toLocaleString() }),
      el('td', { textContent: s.parentSnapshotName ?? '' }),
      el('td', { textContent: s.runningState ? 'Running state' : (s.disks ?? []).length ? (s.snapshotType === 'Production' ? 'Disks (guest frozen)' : 'Configuration and disks') : 'Configuration only' }),
      el('td', { textContent: s.snapshotType ?? 'Standard' }),
      el('td', {}, ...(s.disks ?? []).map((d) => el('div', { textContent: `${d.slot}: ${d.path.split('/').pop()}`, title: d.path }))),
      el('td', {},
        button('Apply', () => {
          if (!confirm(`Apply checkpoint '${s.name}' to ${v.name}? The VM's current state is lost (it must be Off or Saved).`)) return;
          run(api('POST', `${path}/${encodeURIComponent(s.id)}/restore`, {}));
        }),
        button('Rename...', () => {
          const n = prompt(`New name of checkpoint '${s.name}'`, s.name);
          if (n !== null && n !== s.name) run(api('PATCH', `${path}/${encodeURIComponent(s.id)}`, { name: n }));
        }),
        button('Delete...', () => { if (confirm(`Delete checkpoint '${s.name}'?`)) run(api('DELETE', `${path}/${encodeURIComponent(s.id)}`)); }))));
    body.replaceChildren(el('table', { id: 'checkpoint-table' },
      el('thead', {}, el('tr', {}, ...['Checkpoint', 'Created', 'Parent', 'Holds', 'Type', 'Disks', ''].map((h) => el('th', { textContent: h })))),
      el('tbody', {}, ...rows)));
  } else if (tab === 'events') {
    body.replaceChildren(el('table', {}, el('tbody', {}, ...(events ?? []).slice().reverse().map((e) => el('tr', {},
      el('td', { textContent: new Date(e.time).toLocaleTimeString() }),
      el('td', { textContent: e.from && e.to ? `${e.from} → ${e.to}` : '' }),
      el('td', { textContent: e.message }))))));
  }
}

async function refreshDetails() {
  const v = current();
  if (!v) return;
  const path = `/vms/${encodeURIComponent(v.name)}`;
  try {
    if (tab === 'ics') ics = await api('GET', `${path}/integration-services`);
    if (tab === 'events') events = await api('GET', `${path}/events?limit=50`);
    if (tab === 'checkpoints') snapshots = await api('GET', `${path}/snapshots`);
    if (tab === 'networking') adapters = await api('GET', `${path}/network-adapters`);
    if (tab === 'storage') {
      const [disks, dvds] = await Promise.all([api('GET', `${path}/hard-disk-drives`), api('GET', `${path}/dvd-drives`)]);
      drives = [...disks, ...dvds].sort((a, b) => a.controllerType.localeCompare(b.controllerType) || a.controllerNumber - b.controllerNumber || a.controllerLocation - b.controllerLocation);
    }
  } catch (e) { /* the VM may just have been removed */ }
  renderDetails();
}

for (const b of document.querySelectorAll('.tabs button')) b.addEventListener('click', () => { tab = b.dataset.tab; renderDetails(); refreshDetails(); });
for (const b of document.querySelectorAll('#vm-actions button')) b.addEventListener('click', () => act(b.dataset.action));
setInterval(() => { if (tab === 'ics' || tab === 'events' || tab === 'networking') refreshDetails(); }, 3000);

// ---- console -------------------------------------------------------------------------------------------

let term = null;
let consoleWs = null;
let consoleVm = null;

async function openConsole(name) {
  closeConsole();
  let url;
  try { url = await wsUrl(`/vms/${encodeURIComponent(name)}/console`); } catch (e) { showError(e.message); return; }
  consoleVm = name;
  $('#console-pane').hidden = false;
  $('#console-title').textContent = `${name} on COM1`;
  term = new Terminal({ convertEol: false, cursorBlink: true, fontSize: 13, scrollback: 5000 });
  term.open($('#terminal'));
  const ws = new WebSocket(url);
  ws.binaryType = 'arraybuffer';
  ws.onmessage = (m) => term?.write(new Uint8Array(m.data));
  ws.onclose = (ev) => { if (ev.code >= 4000) term?.write(`\r\n[console closed: ${ev.reason}]\r\n`); };
  const enc = new TextEncoder();
  term.onData((d) => { if (ws.readyState === WebSocket.OPEN) ws.send(enc.encode(d)); });
  consoleWs = ws;
  term.focus();
}

function closeConsole() {
  consoleWs?.close();
  term?.dispose();
  consoleWs = null; term = null; consoleVm = null;
  $('#console-pane').hidden = true;
}
$('#console-close').addEventListener('click', closeConsole);

// ---- create-VM form ------------------------------------------------------------------------------------

const dialog = $('#new-vm-dialog');
$('#ic-boxes').append(...IC_NAMES.map((n) => el('label', { className: 'check' }, el('input', { type: 'checkbox', checked: true, defaultChecked: true, name: `ic:${n}` }), n)));
$('#act-new').addEventListener('click', () => { $('#new-vm-error').textContent = ''; $('#new-vm-form').reset(); dialog.showModal(); });
$('#new-vm-cancel').addEventListener('click', () => dialog.close());
$('#act-refresh').addEventListener('click', async () => { try { vms = await api('GET', '/vms'); renderList(); } catch (e) { showError(e.message); } });
$('#new-vm-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const f = new FormData(ev.target);
  const body = {
    name: f.get('name'), memory: f.get('memory'), cpus: Number(f.get('cpus')), processor: f.get('processor'),
    enlightened: f.get('enlightened') === 'on',
    integrationServices: Object.fromEntries(IC_NAMES.map((n) => [n, f.get(`ic:${n}`) === 'on'])),
  };
  for (const k of ['kernel', 'initrd', 'cmdline']) if (f.get(k)) body[k] = f.get(k);
  try {
    const vm = await api('POST', '/vms', body);
    dialog.close();
    if (!vms.some((v) => v.name === vm.name)) vms = [...vms, vm].sort((a, b) => a.name.localeCompare(b.name));
    renderList();
    select(vm.name);
  } catch (e) {
    $('#new-vm-error').textContent = e.message;
  }
});

// ---- live state ----------------------------------------------------------------------------------------

async function connectLive() {
  let url;
  try { url = await wsUrl('/live'); } catch (e) {
    $('#conn').textContent = 'disconnected: retrying...';
    setTimeout(connectLive, 2000);
    return;
  }
  const ws = new WebSocket(url);
  ws.onopen = () => { $('#conn').textContent = 'connected'; };
  ws.onmessage = (m) => {
    const msg = JSON.parse(m.data);
    if (msg.type === 'vms') { vms = msg.vms; renderList(); }
    if (msg.type === 'event' && msg.event.vmName === selected && (tab === 'events' || tab === 'checkpoints' || tab === 'storage')) refreshDetails();
    if (msg.type === 'event' && msg.event.to && msg.event.vmName === selected && tab === 'ics') refreshDetails();
  };
  ws.onclose = () => { $('#conn').textContent = 'disconnected: retrying...'; setTimeout(connectLive, 2000); };
}

api('GET', '/host').then((h) => { $('#host-name').textContent = h.name; $('#host-actions-title').textContent = h.name; }, (e) => showError(e.message));
connectLive();
