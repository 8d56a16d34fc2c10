// ClusterKit dashboard: polls the node's JSON API (relative URLs, so the
// page works wherever the API is mounted) and renders it. No framework, no
// other origin; every value from the API reaches the page through
// textContent, never as HTML.
'use strict';

(() => {
  const CLUSTER_POLL_MS = 500; // GET ../cluster with If-None-Match
  const HEALTH_POLL_MS = 1000; // GET ../health/detailed and ../handoffs
  const CONFIRM_MS = 4000;     // how long a Remove button stays armed

  const COLORS = {
    empty: '#eef0f3', offlineRow: '#d9dce1', primary: '#1f5fbf', replica: '#86b4ec',
    incoming: '#f09a28', under: '#e4b900', unserved: '#d23c3c', ok: '#b9dfc0',
    label: '#1d232b', labelMuted: '#8a929c', leader: '#1f5fbf',
  };

  const $ = (id) => document.getElementById(id);
  const state = {
    etag: '', view: null, health: null, lastUpdate: 0, error: '',
    rebalance: { active: false, since: 0, fromVersion: 0, max: 0, last: null },
    layout: null, // grid geometry of the last draw, for hover
  };

  // ---- fetching ----------------------------------------------------------

  async function errorText(resp) {
    try {
      const body = await resp.json();
      if (body && body.error) return `${resp.status}: ${body.error}`;
    } catch (_) { /* not JSON */ }
    return `${resp.status} ${resp.statusText}`;
  }

  // parseView parses a /cluster body. Incarnations are etcd lease IDs:
  // int64s that a JavaScript number cannot hold exactly, so they are read
  // as strings.
  function parseView(text) {
    return JSON.parse(text.replace(/"incarnation":(-?\d+)/g, '"incarnation":"$1"'));
  }

  async function pollCluster() {
    try {
      const headers = state.etag ? { 'If-None-Match': state.etag } : {};
      const resp = await fetch('../cluster', { cache: 'no-store', headers });
      if (resp.status === 304) {
        markLive();
      } else if (!resp.ok) {
        throw new Error(await errorText(resp));
      } else {
        const view = parseView(await resp.text());
        state.etag = resp.headers.get('ETag') || '';
        state.view = view;
        markLive();
        render();
        pollHealth(); // the health follows the view
      }
    } catch (e) {
      markDown(e);
    } finally {
      setTimeout(pollCluster, CLUSTER_POLL_MS);
    }
  }

  let healthTimer = 0;
  let healthBusy = false;

  // pollHealth fetches the health and every node's failing handoffs now
  // and then every HEALTH_POLL_MS; a call while a fetch is running is
  // dropped (that fetch reschedules).
  async function pollHealth() {
    if (healthBusy) return;
    clearTimeout(healthTimer);
    healthBusy = true;
    try {
      const [resp, handoffs] = await Promise.all([
        fetch('../health/detailed', { cache: 'no-store' }),
        fetch('../handoffs', { cache: 'no-store' }),
      ]);
      // 503 means critical and still carries the full status.
      if (resp.ok || resp.status === 503) {
        state.health = await resp.json();
        renderHealth();
      }
      if (handoffs.ok) renderHandoffs((await handoffs.json()).failing || []);
    } catch (_) {
      // pollCluster reports the node unreachable.
    } finally {
      healthBusy = false;
      healthTimer = setTimeout(pollHealth, HEALTH_POLL_MS);
    }
  }

  function markLive() {
    state.lastUpdate = Date.now();
    state.error = '';
    renderLive();
  }

  function markDown(err) {
    state.error = String(err && err.message ? err.message : err);
    renderLive();
  }

  function renderLive() {
    const el = $('live');
    if (state.error) {
      el.className = 'live down';
      el.textContent = `no answer from this node (${state.error}); retrying — the page shows the last data it got`;
      document.body.classList.toggle('stale', state.view !== null);
      return;
    }
    document.body.classList.remove('stale');
    el.className = 'live up';
    const age = state.lastUpdate ? Math.round((Date.now() - state.lastUpdate) / 100) / 10 : 0;
    el.textContent = `live · checked ${age.toFixed(1)} s ago`;
  }

  // ---- admin operations -------------------------------------------------

  function token() { return $('token').value.trim(); }

  async function admin(label, path) {
    const status = $('op-status');
    if (!token()) {
      setStatus(status, 'err', `${label}: type the cluster token first (the nodes' ClusterToken).`);
      return false;
    }
    setStatus(status, '', `${label}: sending…`);
    try {
      const resp = await fetch(path, {
        method: 'POST', cache: 'no-store',
        headers: { 'Authorization': `Bearer ${token()}` },
      });
      if (!resp.ok) {
        setStatus(status, 'err', `${label} failed: ${await errorText(resp)}`);
        return false;
      }
      const body = await resp.json();
      setStatus(status, 'ok', `${label}: ${body.status || 'done'} (${new Date().toLocaleTimeString()})`);
      return true;
    } catch (e) {
      setStatus(status, 'err', `${label} failed: cannot reach this node (${e.message})`);
      return false;
    }
  }

  function setStatus(el, cls, text) {
    el.className = cls;
    el.textContent = text;
  }

  // armed is the node whose Remove button waits for its confirming
  // click; it survives the table's re-renders.
  const armed = { id: '', timer: 0 };

  function arm(id) {
    clearTimeout(armed.timer);
    armed.id = id;
    armed.timer = id ? setTimeout(() => arm(''), CONFIRM_MS) : 0;
    for (const btn of document.querySelectorAll('#members button[data-action="remove"]')) showArmed(btn);
  }

  function showArmed(btn) {
    const on = armed.id === btn.dataset.node;
    btn.textContent = on ? `Confirm remove ${btn.dataset.node}` : 'Remove';
    btn.classList.toggle('armed', on);
  }

  // opButton returns a button that runs the node operation verb
  // (drain, cordon, uncordon) on node id.
  function opButton(id, verb, label) {
    const btn = document.createElement('button');
    btn.type = 'button';
    btn.className = 'small op';
    btn.dataset.action = verb;
    btn.dataset.node = id;
    btn.textContent = label;
    btn.addEventListener('click', async () => {
      btn.disabled = true;
      await admin(`${verb} ${id}`, `../nodes/${encodeURIComponent(id)}/${verb}`);
      btn.disabled = false;
    });
    return btn;
  }

  // memberActions returns the buttons of one member's row: drain and
  // cordon, or uncordon when it is under an order; remove.
  function memberActions(m, op) {
    const cell = document.createElement('td');
    cell.className = 'actions';
    if (m.state === 'offline') return cell; // not a live member: nothing to operate
    if (op) {
      cell.appendChild(opButton(m.id, 'uncordon', op.operation === 'draining' ? 'Cancel drain' : 'Uncordon'));
    } else {
      cell.appendChild(opButton(m.id, 'drain', 'Drain'));
      cell.appendChild(opButton(m.id, 'cordon', 'Cordon'));
    }
    const btn = document.createElement('button');
    btn.type = 'button';
    btn.className = 'small remove';
    btn.dataset.action = 'remove';
    btn.dataset.node = m.id;
    showArmed(btn);
    btn.addEventListener('click', async () => {
      if (armed.id !== m.id) {
        arm(m.id);
        return;
      }
      arm('');
      btn.disabled = true;
      await admin(`remove ${m.id}`, `../nodes/${encodeURIComponent(m.id)}/remove`);
      btn.disabled = false;
    });
    cell.appendChild(btn);
    return cell;
  }

  // ---- rendering --------------------------------------------------------

  // holdings counts, per node ID, the partitions it serves as primary or
  // replica and those it is receiving.
  function holdings(view) {
    const h = new Map();
    const get = (id) => {
      if (!h.has(id)) h.set(id, { primaries: 0, replicas: 0, incoming: 0 });
      return h.get(id);
    };
    for (const p of view.partitions) {
      if (p.primary) get(p.primary).primaries++;
      for (const r of p.replicas || []) get(r).replicas++;
      for (const r of p.incoming || []) get(r).incoming++;
    }
    return h;
  }

  // render shows state.view; each render is recorded as a performance
  // measure named clusterkit-render (the benchmark reads it).
  function render() {
    const start = performance.now();
    const v = state.view;
    $('cluster-name').textContent = v.name;
    $('this-node').textContent = v.node;
    $('leader').textContent = v.leader || 'none';
    $('version').textContent = `v${v.assignment_version}`;
    $('shape').textContent = `${v.partition_count} × ${v.replication_factor}`;
    const held = holdings(v);
    renderMembers(v, held);
    renderRebalance(v);
    drawGrid();
    performance.measure('clusterkit-render', { start });
  }

  function cell(text, cls, title) {
    const td = document.createElement('td');
    td.textContent = text;
    if (cls) td.className = cls;
    if (title) td.title = title;
    return td;
  }

  // startedText is a member's start time in local time, the date only
  // when it is not today.
  function startedText(iso) {
    if (!iso) return '–';
    const t = new Date(iso);
    return t.toDateString() === new Date().toDateString() ? t.toLocaleTimeString() : t.toLocaleString();
  }

  function renderMembers(v, held) {
    const tbody = $('members').tBodies[0];
    const rows = [];
    const ops = new Map((v.operations || []).map((o) => [o.node, o]));
    let live = 0;
    for (const m of v.members) {
      if (m.state !== 'offline') live++;
      const tr = document.createElement('tr');
      tr.dataset.node = m.id;
      tr.className = `state-${m.state}`;
      const name = cell(m.id, 'node');
      if (m.id === v.leader) name.appendChild(badge('leader', 'leader'));
      if (m.id === v.node) name.appendChild(badge('this node', 'self'));
      tr.appendChild(name);
      const st = cell('');
      st.appendChild(badge(m.state, `pill state-${m.state}`));
      tr.appendChild(st);
      const op = ops.get(m.id);
      const opCell = cell('', 'operator');
      if (op) opCell.appendChild(badge(operationText(op), `pill ${operationClass(op)}`));
      else opCell.textContent = '–';
      tr.appendChild(opCell);
      tr.appendChild(cell(m.etcd_role || '–', 'etcd', 'role of its embedded etcd member'));
      tr.appendChild(cell(m.zone || '–'));
      tr.appendChild(cell(String(m.weight), 'num'));
      tr.appendChild(cell(m.address || '–', 'mono'));
      tr.appendChild(cell(incarnationHex(m.incarnation), 'mono', 'the etcd lease of this registration (hex)'));
      tr.appendChild(cell(startedText(m.started), '', m.started || ''));
      const h = held.get(m.id) || { primaries: 0, replicas: 0, incoming: 0 };
      tr.appendChild(cell(String(h.primaries), 'num'));
      tr.appendChild(cell(String(h.replicas), 'num'));
      tr.appendChild(cell(String(h.incoming), h.incoming ? 'num incoming' : 'num'));
      tr.appendChild(memberActions(m, op));
      rows.push(tr);
    }
    tbody.replaceChildren(...rows);
    const off = v.members.length - live;
    $('member-count').textContent = `${live} live` + (off ? `, ${off} offline` : '');
  }

  // operationText describes an operator's order on a node.
  function operationText(op) {
    if (op.operation === 'cordoned') return 'cordoned';
    if (!op.applied) return 'draining (planning)';
    return op.done ? 'drained' : `draining: ${op.partitions} left`;
  }

  function operationClass(op) {
    if (op.operation === 'cordoned') return 'op-cordoned';
    return op.done ? 'op-drained' : 'op-draining';
  }

  function incarnationHex(s) {
    if (!s || s === '0') return '–';
    try { return BigInt.asUintN(64, BigInt(s)).toString(16); } catch (_) { return s; }
  }

  function badge(text, cls) {
    const s = document.createElement('span');
    s.className = cls;
    s.textContent = text;
    return s;
  }

  // renderRebalance shows the rebalance in progress as this page sees it:
  // the API exposes whether the map is settled and which nodes are
  // incoming, not the rebalance record, so progress is counted from the
  // incoming handoffs the page has seen since the map became unsettled.
  function renderRebalance(v) {
    const rb = state.rebalance;
    let incoming = 0;
    for (const p of v.partitions) incoming += (p.incoming || []).length;
    const now = Date.now();
    const cur = $('rebalance-current');
    const bar = $('rebalance-bar');
    if (!v.settled) {
      if (!rb.active) Object.assign(rb, { active: true, since: now, fromVersion: v.assignment_version, max: 0 });
      rb.max = Math.max(rb.max, incoming);
      const done = rb.max - incoming;
      if (rb.max === 0) {
        cur.textContent = 'membership changed: waiting for the leader to plan a new map';
        bar.style.width = '0%';
      } else {
        cur.textContent = `in progress: ${done} of ${rb.max} handoffs done, ${incoming} incoming (map v${v.assignment_version})`;
        bar.style.width = `${Math.round((100 * done) / rb.max)}%`;
      }
      cur.className = 'busy';
    } else {
      if (rb.active) {
        rb.active = false;
        rb.last = { start: rb.since, end: now, handoffs: rb.max, from: rb.fromVersion, to: v.assignment_version };
      }
      cur.textContent = 'settled: the map is planned for the current members and nothing is incoming';
      cur.className = 'ok';
      bar.style.width = '100%';
    }
    const api = v.rebalance;
    if (api && api.running) {
      cur.textContent += ` — rebalance #${api.id} (${api.trigger}${api.trigger_node ? ' ' + api.trigger_node : ''}), ${api.moves} moves planned`;
    }
    const last = rb.last;
    let text = last
      ? `last: ${last.handoffs} handoffs, map v${last.from} → v${last.to}, ` +
        `${((last.end - last.start) / 1000).toFixed(1)} s, ended ${new Date(last.end).toLocaleTimeString()} (as seen by this page)`
      : 'no rebalance seen since this page was opened';
    if (api && !api.running) {
      const took = ((Date.parse(api.completed_at) - Date.parse(api.started_at)) / 1000).toFixed(1);
      text += ` · the cluster's last: rebalance #${api.id} (${api.trigger}${api.trigger_node ? ' ' + api.trigger_node : ''}), ` +
        `${api.moves} moves, ${took} s, completed ${new Date(api.completed_at).toLocaleTimeString()}`;
    }
    $('rebalance-last').textContent = text;
    $('maintenance').textContent = v.maintenance ? `ON: ${v.maintenance}` : 'off';
    $('maintenance').className = v.maintenance ? 'warn' : '';
  }

  function renderHealth() {
    const h = state.health;
    const pill = $('health-status');
    pill.textContent = h.status;
    pill.className = `pill health-${h.status}`;
    const list = $('health-reasons');
    const items = (h.reasons && h.reasons.length ? h.reasons : ['every partition has its replicas']).map((r) => {
      const li = document.createElement('li');
      li.textContent = r;
      return li;
    });
    list.replaceChildren(...items);
    const facts = $('health-facts');
    facts.replaceChildren();
    const add = (text, cls) => facts.appendChild(badge(text, cls || ''));
    add(`etcd ${h.etcd_connected ? 'connected' : 'NOT connected'}`, h.etcd_connected ? '' : 'bad');
    add(` · ${h.healthy_nodes}/${h.total_nodes} nodes healthy`);
    add(` · ${h.under_replicated_partitions} under-replicated`, h.under_replicated_partitions ? 'warn' : '');
    add(` · ${h.partitions_without_replica} without a live replica`, h.partitions_without_replica ? 'bad' : '');
    add(` · this node: ${h.pending_handoffs} handoffs pending, `);
    add(`${h.failed_handoffs} failing`, h.failed_handoffs ? 'bad' : '');
  }

  // renderHandoffs lists every node's failing handoffs (GET ../handoffs),
  // stuck ones (failing longer than their node's HandoffTimeout) in red,
  // each with a Cancel button (any node cancels through the leader).
  function renderHandoffs(list) {
    $('handoffs-none').hidden = list.length > 0;
    $('handoffs').replaceChildren(...list.map((f) => {
      const li = document.createElement('li');
      li.className = f.stuck ? 'stuck' : '';
      li.dataset.partition = f.partition;
      li.dataset.node = f.node;
      li.textContent = `partition-${f.partition} → ${f.node}: ${f.attempts} attempts since ` +
        `${new Date(f.failing_since).toLocaleTimeString()}${f.stuck ? ' (STUCK)' : ''}: ${f.last_error} `;
      const btn = document.createElement('button');
      btn.type = 'button';
      btn.className = 'small remove';
      btn.dataset.action = 'cancel-handoff';
      btn.textContent = 'Cancel';
      btn.addEventListener('click', async () => {
        btn.disabled = true;
        await admin(`cancel handoff of partition-${f.partition}`, `../partitions/${f.partition}/cancel-handoff`);
        btn.disabled = false;
      });
      li.appendChild(btn);
      return li;
    }));
  }

  // ---- partition grid ---------------------------------------------------

  // partitionState classifies a partition for the strip above the grid.
  function partitionState(p, live, want) {
    if (!p.primary || !live.has(p.primary)) return 'unserved';
    let serving = 1;
    for (const r of p.replicas || []) if (live.has(r)) serving++;
    if (serving < want) return 'under';
    if ((p.incoming || []).length) return 'incoming';
    return 'ok';
  }

  function drawGrid() {
    const v = state.view;
    const canvas = $('grid');
    if (!v) return;
    const rows = v.members.map((m) => m.id);
    const offline = new Set(v.members.filter((m) => m.state === 'offline').map((m) => m.id));
    // Nodes the map names that are not in the member list (should not
    // happen: the API lists them as offline) still get a row.
    const index = new Map(rows.map((id, i) => [id, i]));
    for (const p of v.partitions) {
      for (const id of [p.primary, ...(p.replicas || []), ...(p.incoming || [])]) {
        if (id && !index.has(id)) { index.set(id, rows.length); rows.push(id); offline.add(id); }
      }
    }
    const live = new Set(rows.filter((id) => !offline.has(id)));
    const want = Math.min(v.replication_factor, live.size);
    const parts = v.partitions.length;

    const ctx = canvas.getContext('2d');
    const font = '12px system-ui, sans-serif';
    ctx.font = font;
    let labelW = 40;
    for (const id of rows) labelW = Math.max(labelW, ctx.measureText(id).width + 12);
    labelW = Math.min(Math.ceil(labelW), 180);
    const avail = Math.max(200, $('grid-wrap').clientWidth - labelW - 4);
    const cellW = Math.max(2, Math.min(24, Math.floor(avail / Math.max(1, parts))));
    const cellH = rows.length <= 24 ? 18 : Math.max(5, Math.min(18, Math.floor(640 / rows.length)));
    const stripH = 8, headerH = stripH + 4;
    const width = labelW + parts * cellW;
    const height = headerH + rows.length * cellH;

    const dpr = window.devicePixelRatio || 1;
    canvas.width = Math.ceil(width * dpr);
    canvas.height = Math.ceil(height * dpr);
    canvas.style.width = `${width}px`;
    canvas.style.height = `${height}px`;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.font = font;
    ctx.textBaseline = 'middle';

    // Row backgrounds and labels.
    for (let r = 0; r < rows.length; r++) {
      const y = headerH + r * cellH;
      ctx.fillStyle = offline.has(rows[r]) ? COLORS.offlineRow : COLORS.empty;
      ctx.fillRect(labelW, y, parts * cellW, cellH);
      ctx.fillStyle = offline.has(rows[r]) ? COLORS.labelMuted : (rows[r] === v.leader ? COLORS.leader : COLORS.label);
      if (cellH >= 9) ctx.fillText(rows[r], 2, y + cellH / 2);
    }
    // Cells: only the nodes holding each partition are drawn, so a draw
    // costs partitions × (RF + incoming) rectangles, not nodes × partitions.
    const gap = cellW >= 4 ? 1 : 0;
    const vgap = cellH >= 8 ? 1 : 0;
    const fill = (id, x, color) => {
      const r = index.get(id);
      if (r === undefined) return;
      ctx.fillStyle = color;
      ctx.fillRect(x, headerH + r * cellH, cellW - gap, cellH - vgap);
    };
    const strip = { unserved: 0, under: 0, incoming: 0 };
    for (let i = 0; i < parts; i++) {
      const p = v.partitions[i];
      const x = labelW + i * cellW;
      for (const id of p.replicas || []) fill(id, x, COLORS.replica);
      for (const id of p.incoming || []) fill(id, x, COLORS.incoming);
      if (p.primary) fill(p.primary, x, COLORS.primary);
      const st = partitionState(p, live, want);
      if (st !== 'ok') strip[st]++;
      ctx.fillStyle = COLORS[st];
      ctx.fillRect(x, 0, cellW - gap, stripH);
    }
    state.layout = { labelW, cellW, cellH, headerH, rows, parts };
    Object.assign(canvas.dataset, { labelW, cellW, cellH, headerH, rows: rows.join(','), parts });
    const notes = [];
    if (strip.unserved) notes.push(`${strip.unserved} without a primary`);
    if (strip.under) notes.push(`${strip.under} under-replicated`);
    if (strip.incoming) notes.push(`${strip.incoming} with incoming nodes`);
    $('grid-summary').textContent = `${parts} partitions × ${rows.length} nodes` + (notes.length ? ` — ${notes.join(', ')}` : '');
  }

  function showTip(ev) {
    const L = state.layout;
    const v = state.view;
    const tip = $('grid-tip');
    if (!L || !v) return;
    const rect = $('grid').getBoundingClientRect();
    const x = ev.clientX - rect.left, y = ev.clientY - rect.top;
    const col = Math.floor((x - L.labelW) / L.cellW);
    if (x < L.labelW || col < 0 || col >= L.parts) { tip.hidden = true; return; }
    const p = v.partitions[col];
    const r = y < L.headerH ? -1 : Math.floor((y - L.headerH) / L.cellH);
    const node = r >= 0 && r < L.rows.length ? L.rows[r] : '';
    let role = '';
    if (node) {
      if (p.primary === node) role = 'primary';
      else if ((p.replicas || []).includes(node)) role = 'replica';
      else if ((p.incoming || []).includes(node)) role = 'incoming';
      else role = 'not held';
    }
    const lines = [`${p.id} · epoch ${p.epoch}`];
    if (node) lines.push(`${node}: ${role}`);
    lines.push(`primary ${p.primary || '—'}`);
    lines.push(`replicas ${(p.replicas || []).join(', ') || '—'}`);
    lines.push(`incoming ${(p.incoming || []).join(', ') || '—'}`);
    tip.textContent = lines.join('\n');
    tip.hidden = false;
    tip.style.left = `${ev.pageX + 14}px`;
    tip.style.top = `${ev.pageY + 14}px`;
  }

  // ---- wiring -----------------------------------------------------------

  function init() {
    const tok = $('token');
    tok.value = sessionStorage.getItem('clusterkit-token') || '';
    tok.addEventListener('input', () => sessionStorage.setItem('clusterkit-token', tok.value));
    $('rebalance-button').addEventListener('click', async (ev) => {
      ev.target.disabled = true;
      await admin('rebalance', '../rebalance');
      ev.target.disabled = false;
    });
    for (const on of ['on', 'off']) {
      $(`maintenance-${on}`).addEventListener('click', async (ev) => {
        ev.target.disabled = true;
        await admin(`maintenance ${on}`, `../maintenance/${on}`);
        ev.target.disabled = false;
      });
    }
    const grid = $('grid');
    grid.addEventListener('mousemove', showTip);
    grid.addEventListener('mouseleave', () => { $('grid-tip').hidden = true; });
    let resizeTimer = 0;
    window.addEventListener('resize', () => {
      clearTimeout(resizeTimer);
      resizeTimer = setTimeout(drawGrid, 100);
    });
    setInterval(renderLive, 1000);
    pollCluster();
    pollHealth();
  }

  init();
})();
