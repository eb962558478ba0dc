// One execution: summary and totals, its pending wait answered from a form generated from the
// wait's schema, operations (resume, retry, cancel, replay with an override), the checkpoint
// tree on a timeline with each call's model and tool calls nested under it, and the selected
// call's inputs, outputs, events, metadata and logs. Live while the execution runs or waits.

import { ApiError, api, every, missing } from '../lib/api.js';
import { badge, facts, fmtDuration, fmtTime, h, json, problem, replace, shortId, span, usageLine } from '../lib/dom.js';
import { schemaForm } from '../lib/schema_form.js';
import { artifactBlock } from '../lib/values.js';

const main = document.getElementById('app');
const execId = main.dataset.exec;
const canOperate = ['operator', 'admin'].includes(main.dataset.scope);
const EVENT = 'event:';

const el = {
  summary: h('section', { class: 'summary', id: 'summary' }),
  actions: h('div', { class: 'actions', id: 'actions' }),
  notice: h('div', { id: 'notice', 'aria-live': 'polite' }),
  wait: h('section', { class: 'wait card', id: 'wait', hidden: true }),
  tree: h('section', { class: 'tree', id: 'tree' }),
  detail: h('section', { class: 'detail', id: 'detail' }),
  flow: h('section', { class: 'flow-io', id: 'flow-io' }),
  waits: h('section', { class: 'waits', id: 'waits' }),
  logs: h('section', { class: 'logs', id: 'logs' }),
  live: h('section', { class: 'live-events', id: 'live', hidden: true }),
  replay: h('section', { class: 'replay card', id: 'replay', hidden: true }),
};
replace(main, el.summary, el.actions, el.notice, el.wait, el.live,
  h('div', { class: 'columns' }, h('div', { class: 'col' }, el.tree), h('div', { class: 'col' }, el.detail)),
  el.flow, el.waits, el.replay, el.logs);

let lastJson = '';
let selected = null;      // call id shown in the detail panel
let waitShown = null;     // name of the wait whose form is on the page
let replayShown = false;

function notice(message, kind = 'ok') {
  replace(el.notice, message ? h('p', { class: kind === 'ok' ? 'ok' : 'error', role: kind === 'ok' ? 'status' : 'alert' }, message) : null);
}

async function operate(label, path, body) {
  notice(`${label}…`);
  try {
    await api(`/executions/${encodeURIComponent(execId)}${path}`, { method: 'POST', body });
    notice(`${label}: done`);
    await refresh(true);
  } catch (e) {
    notice(missing(e) ? `${label} is not offered by this server` : `${label} refused: ${e.message}`, 'error');
  }
}

function events(call) {
  return Object.entries(call.metadata || {})
    .filter(([k]) => k.startsWith(EVENT))
    .map(([k, v]) => ({ id: k.slice(EVENT.length), ...(v || {}) }));
}

function renderSummary(x) {
  const spanS = span(x.started_at, x.ended_at);
  replace(el.summary,
    h('h1', {}, x.flow_name, ' ', badge(x.status)),
    facts([
      ['Execution', h('code', {}, x.exec_id)],
      ['Started', fmtTime(x.started_at)],
      ['Ended', x.ended_at ? fmtTime(x.ended_at) : null],
      ['Duration', fmtDuration(spanS)],
      ['Stack', x.stack_name],
      ['Owner', x.owner],
      ['Deployment', x.deployment ? h('a', { href: '/dashboard/deployments' }, `${x.deployment.flow} v${x.deployment.version}`) : null],
      ['Replay of', x.original_exec_id ? h('a', { href: `/dashboard/executions/${encodeURIComponent(x.original_exec_id)}` }, shortId(x.original_exec_id)) : null],
      ['Checkpoints', String(x.checkpoints.length)],
      ['Model usage', usageLine(x.usage)],
    ]),
    x.failure ? h('div', { class: 'failure' }, h('strong', {}, 'Failure: '), x.failure.message || x.failure.type || JSON.stringify(x.failure),
      x.failure.traceback ? h('details', {}, h('summary', {}, 'traceback'), h('pre', {}, x.failure.traceback)) : null) : null);
  const buttons = [];
  if (canOperate) {
    if (x.resumable && ['waiting', 'running'].includes(x.status)) buttons.push(h('button', { type: 'button', onclick: () => operate('Resume', '/resume') }, 'Resume'));
    if (x.status === 'failed') buttons.push(h('button', { type: 'button', onclick: () => operate('Retry', '/retry') }, 'Retry'));
    if (['running', 'waiting'].includes(x.status)) buttons.push(h('button', { type: 'button', class: 'danger', onclick: () => { if (confirm('Cancel this execution?')) operate('Cancel', '/cancel'); } }, 'Cancel'));
    buttons.push(h('button', { type: 'button', onclick: () => { replayShown = !replayShown; renderReplay(x); } }, 'Replay…'));
  }
  buttons.push(h('a', { class: 'button', href: `/dashboard/diff?a=${encodeURIComponent(x.exec_id)}${x.original_exec_id ? `&b=${encodeURIComponent(x.original_exec_id)}` : ''}` }, 'Compare…'));
  replace(el.actions, buttons);
}

function renderWait(x) {
  const w = x.pending_wait;
  if (!w) { el.wait.hidden = true; waitShown = null; replace(el.wait); return; }
  if (waitShown === w.name) return;  // keep what the user typed
  waitShown = w.name;
  el.wait.hidden = false;
  const form = schemaForm(w.schema);
  const status = h('div', { 'aria-live': 'polite' });
  const submit = h('button', { type: 'submit', class: 'primary' }, form.gate ? 'Continue' : 'Submit answer');
  const f = h('form', { id: 'wait-form', novalidate: false, onsubmit: async (e) => {
    e.preventDefault();
    if (!f.reportValidity()) return;
    let value;
    try { value = form.read(); } catch (err) { replace(status, problem(err)); return; }
    submit.disabled = true;
    replace(status, h('p', { class: 'muted' }, 'Sending…'));
    try {
      await api(`/executions/${encodeURIComponent(execId)}/input`, { method: 'POST', body: { wait: w.name, value } });
      replace(status, h('p', { class: 'ok', role: 'status' }, 'Answer recorded; the execution continues.'));
      waitShown = null;
      await refresh(true);
    } catch (err) {
      submit.disabled = false;
      replace(status, problem(err instanceof ApiError ? `Refused: ${err.message}` : err));
    }
  } }, form.el, canOperate ? submit : h('p', { class: 'muted' }, 'An operator key is needed to answer.'), status);
  replace(el.wait, h('h2', {}, 'Waiting for input: ', h('code', {}, w.name)),
    w.question ? h('p', { class: 'question' }, w.question) : null,
    w.timeout ? h('small', { class: 'muted' }, `asked ${fmtTime(w.created_at)}`) : null,
    f);
}

function bar(start, end, t0, total) {
  if (!start || !total) return h('div', { class: 'bar-track' });
  const a = (new Date(start).getTime() - t0) / 1000;
  const d = span(start, end) ?? 0;
  const left = Math.max(0, Math.min(100, (a / total) * 100));
  const width = Math.max(0.6, Math.min(100 - left, (d / total) * 100));
  const b = h('div', { class: 'bar' });
  b.style.marginLeft = `${left.toFixed(2)}%`;  // CSSOM, not a style attribute: CSP allows it
  b.style.width = `${width.toFixed(2)}%`;
  return h('div', { class: 'bar-track' }, b);
}

const AGENT_CALLS = new Set(['llm_call', 'tool_call']);

function tokens(usage) {
  if (!usage || (usage.input_tokens == null && usage.output_tokens == null)) return null;
  return h('span', { class: 'muted' }, ` · ${usage.input_tokens ?? 0}→${usage.output_tokens ?? 0} tokens`);
}

function callItem(x, c, t0, total) {
  const evs = events(c);
  return h('li', { class: `call${selected === c.call_id ? ' selected' : ''}`, dataset: { call: c.call_id } },
    h('button', { type: 'button', class: 'call-row', onclick: () => { selected = c.call_id; renderTree(x); renderDetail(x); } },
      h('span', { class: 'call-name' }, c.call_id, c.type ? h('span', { class: 'tag' }, c.type) : null,
        c.attempts > 1 ? h('span', { class: 'tag' }, `${c.attempts} attempts`) : null),
      badge(c.status), h('span', { class: 'muted dur' }, fmtDuration(c.duration_s)),
      bar(c.started_at, c.ended_at, t0, total)),
    evs.length ? h('ul', { class: 'events' }, evs.map((ev) => h('li', { class: `event kind-${ev.kind}`, dataset: { event: ev.id } },
      h('span', { class: 'tag' }, ev.kind), ' ', ev.id,
      ev.model ? h('span', { class: 'muted' }, ` · ${ev.model}`) : null,
      tokens(ev.usage),
      ev.message ? h('span', { class: 'muted' }, ` · ${ev.message}`) : null))) : null);
}

/** The calls as a tree: a run of an agent's model and tool calls made in the flow body
 * (checkpoints of type llm_call / tool_call, one after another) is nested under one
 * "agent run" entry; calls made inside a checkpoint are nested under that call. */
function renderTree(x) {
  const t0 = x.started_at ? new Date(x.started_at).getTime() : 0;
  const total = span(x.started_at, x.ended_at) || 0;
  const rows = [];
  let group = null;
  for (const c of x.checkpoints) {
    if (AGENT_CALLS.has(c.type)) {
      if (!group) {
        group = { calls: [] };
        rows.push(group);
      }
      group.calls.push(c);
    } else {
      group = null;
      rows.push(c);
    }
  }
  const items = rows.map((r) => {
    if (!r.calls) return callItem(x, r, t0, total);
    const usage = { input_tokens: 0, output_tokens: 0 };
    for (const c of r.calls) { usage.input_tokens += c.usage?.input_tokens ?? 0; usage.output_tokens += c.usage?.output_tokens ?? 0; }
    const models = r.calls.filter((c) => c.type === 'llm_call').length;
    return h('li', { class: 'agent-run', dataset: { group: r.calls[0].call_id } },
      h('div', { class: 'agent-head' }, h('strong', {}, 'agent run'), h('span', { class: 'muted' },
        ` · ${models} model request${models === 1 ? '' : 's'}, ${r.calls.length - models} tool call${r.calls.length - models === 1 ? '' : 's'}`),
        tokens(usage)),
      h('ol', { class: 'calls nested' }, r.calls.map((c) => callItem(x, c, t0, total))));
  });
  replace(el.tree, h('h2', {}, 'Checkpoints'),
    items.length ? h('ol', { class: 'calls' }, items) : h('p', { class: 'muted' }, 'No checkpoint calls yet.'));
}

async function renderDetail(x) {
  const c = x.checkpoints.find((k) => k.call_id === selected);
  if (!c) { replace(el.detail, h('h2', {}, 'Details'), h('p', { class: 'muted' }, 'Select a checkpoint call to see its inputs, outputs, events, metadata and logs.')); return; }
  const evs = events(c);
  const byName = new Map(c.artifacts.map((a) => [a.name, a]));
  const plainMeta = Object.fromEntries(Object.entries(c.metadata || {}).filter(([k]) => !k.startsWith(EVENT)));
  const eventArtifacts = new Set(evs.flatMap((ev) => Object.values(ev.artifacts || {})));
  const logs = h('div', {}, h('p', { class: 'muted' }, 'Loading logs…'));
  replace(el.detail,
    h('h2', {}, 'Call ', h('code', {}, c.call_id), ' ', badge(c.status)),
    facts([['Type', c.type], ['Attempts', String(c.attempts)], ['Started', fmtTime(c.started_at)],
      ['Duration', fmtDuration(c.duration_s)], ['Model usage', usageLine(c.usage)]]),
    c.error ? h('div', { class: 'failure' }, h('strong', {}, 'Error: '), c.error.message || c.error.type || JSON.stringify(c.error),
      c.error.traceback ? h('details', {}, h('summary', {}, 'traceback'), h('pre', {}, c.error.traceback)) : null) : null,
    h('h3', {}, 'Inputs'), c.artifacts.filter((a) => a.direction === 'input' && !eventArtifacts.has(a.artifact_id)).map((a) => artifactBlock(a)),
    h('h3', {}, 'Output'), c.artifacts.filter((a) => a.direction !== 'input' && !eventArtifacts.has(a.artifact_id)).map((a) => artifactBlock(a, { open: a.direction === 'output' })),
    evs.length ? [h('h3', {}, 'Model and tool calls'), evs.map((ev) => {
      const { id, kind, name, artifacts, ...rest } = ev;
      return h('div', { class: 'event-detail' }, h('h4', {}, h('span', { class: 'tag' }, kind), ' ', id),
        Object.keys(rest).length ? json(rest) : null,
        Object.entries(artifacts || {}).map(([part, aid]) => {
          const a = c.artifacts.find((k) => k.artifact_id === aid) || byName.get(`${id}.${part}`);
          return a ? artifactBlock(a, { label: part }) : null;
        }));
    })] : null,
    Object.keys(plainMeta).length ? [h('h3', {}, 'Metadata'), json(plainMeta)] : null,
    h('h3', {}, 'Logs'), logs);
  try {
    const got = await api(`/executions/${encodeURIComponent(execId)}/logs`, { query: { checkpoint: c.call_id } });
    replace(logs, got.items.length ? h('pre', { class: 'log' }, got.items.map((e) => e.text).join('')) : h('p', { class: 'muted' }, 'No output.'));
  } catch (e) { replace(logs, problem(e)); }
}

function renderFlowIO(x) {
  replace(el.flow, h('h2', {}, 'Flow inputs and result'),
    x.inputs_artifact ? artifactBlock(x.inputs_artifact, { label: 'inputs' }) : h('p', { class: 'muted' }, 'No inputs recorded.'),
    x.result_artifact ? artifactBlock(x.result_artifact, { label: 'result', open: true }) : null);
}

function renderWaits(x) {
  if (!x.waits.length) { replace(el.waits); return; }
  replace(el.waits, h('h2', {}, 'Waits'), h('table', {},
    h('thead', {}, h('tr', {}, ['Wait', 'Status', 'Question', 'Answer'].map((t) => h('th', {}, t)))),
    h('tbody', {}, x.waits.map((w) => h('tr', { dataset: { wait: w.name } }, h('td', {}, h('code', {}, w.name)), h('td', {}, badge(w.status)),
      h('td', {}, w.question || ''), h('td', {}, w.status === 'pending' ? '' : h('code', {}, JSON.stringify(w.value))))))));
}

function renderReplay(x) {
  el.replay.hidden = !replayShown;
  if (!replayShown) return;
  const names = [...new Set(x.checkpoints.map((c) => c.call_id))];
  const at = h('select', { name: 'at', id: 'replay-at', required: true }, names.map((n) => h('option', { value: n }, n)),
    x.waits.map((w) => h('option', { value: w.name }, `wait ${w.name}`)));
  const target = h('select', { name: 'override-target', id: 'replay-target' }, h('option', { value: '' }, 'no override'),
    names.map((n) => h('option', { value: n }, n)));
  const value = h('textarea', { name: 'override', id: 'replay-override', rows: 3, class: 'code', placeholder: 'the override output, as JSON' });
  const flowOverrides = h('textarea', { name: 'flow-overrides', id: 'replay-flow', rows: 2, class: 'code', placeholder: '{"topic": "..."} (optional)' });
  const status = h('div', { 'aria-live': 'polite' });
  const form = h('form', { id: 'replay-form', onsubmit: async (e) => {
    e.preventDefault();
    const body = { at: at.value };
    try {
      if (target.value) body.checkpoint_overrides = { [target.value]: { output: JSON.parse(value.value) } };
      if (flowOverrides.value.trim()) body.flow_overrides = JSON.parse(flowOverrides.value);
    } catch (err) { replace(status, problem(`not valid JSON: ${err.message}`)); return; }
    try {
      const got = await api(`/executions/${encodeURIComponent(execId)}/replay`, { method: 'POST', body });
      const id = got.replay_exec_id || got.results?.[0]?.replay_exec_id || got.exec_id;
      replace(status, h('p', { class: 'ok', role: 'status' }, 'Replay started: ', id ? h('a', { href: `/dashboard/executions/${encodeURIComponent(id)}` }, id) : ''));
    } catch (err) {
      replace(status, problem(missing(err) ? 'this server does not offer replay over HTTP yet' : `Refused: ${err.message}`));
    }
  } },
  h('div', { class: 'field' }, h('label', { for: 'replay-at' }, 'Replay from'), at),
  h('div', { class: 'field' }, h('label', { for: 'replay-target' }, 'Override the output of'), target, value),
  h('div', { class: 'field' }, h('label', { for: 'replay-flow' }, 'Flow input overrides (JSON)'), flowOverrides),
  h('button', { type: 'submit', class: 'primary' }, 'Replay'), status);
  replace(el.replay, h('h2', {}, 'Replay'), h('p', { class: 'muted' },
    'A new execution reuses the calls before the chosen checkpoint; it and everything after run live.'), form);
}

async function renderLogs() {
  try {
    const got = await api(`/executions/${encodeURIComponent(execId)}/logs`);
    replace(el.logs, h('details', {}, h('summary', {}, `All output (${got.items.length} chunks)`),
      h('pre', { class: 'log' }, got.items.map((e) => `${e.call_id ? `[${e.call_id}] ` : ''}${e.text}`).join(''))));
  } catch (e) { replace(el.logs, problem(e)); }
}

async function refresh(force = false) {
  let x;
  try { x = await api(`/executions/${encodeURIComponent(execId)}`); } catch (e) {
    replace(el.summary, h('h1', {}, 'Execution ', h('code', {}, execId)), problem(e));
    return e instanceof ApiError && e.status === 404 ? false : true;
  }
  const text = JSON.stringify(x);
  if (force || text !== lastJson) {
    lastJson = text;
    if (selected === null && x.checkpoints.length) selected = x.checkpoints[x.checkpoints.length - 1].call_id;
    renderSummary(x); renderWait(x); renderTree(x); renderDetail(x); renderFlowIO(x); renderWaits(x);
    if (replayShown && force) renderReplay(x);
    renderLogs();
  }
  main.dataset.status = x.status;
  return true;
}

// Live events (server-sent, GET /executions/{id}/events) while the execution runs: each one is
// listed and brings a refresh at once; the stream ends when the run stops or waits.
let stream = null;
let soon = null;
const seen = [];
function follow(status) {
  if (stream || status !== 'running' || typeof EventSource === 'undefined') return;
  stream = new EventSource(`/api/v1/executions/${encodeURIComponent(execId)}/events`);
  stream.onmessage = (m) => {
    let ev;
    try { ev = JSON.parse(m.data); } catch { return; }
    seen.push(ev);
    const p = ev.payload || {};
    const pct = p.data?.percent;
    el.live.hidden = false;
    replace(el.live, h('h2', {}, 'Live events'), h('ol', { class: 'live-list' }, seen.slice(-12).map((e) => {
      const q = e.payload || {};
      return h('li', {}, h('span', { class: 'tag' }, e.kind), ' ', e.checkpoint_id || e.checkpoint_name || 'flow', ' ',
        q.message || '', q.data?.percent != null ? ` (${Math.round(q.data.percent * 100)}%)` : '');
    })), pct != null ? h('progress', { max: 1, value: pct }) : null);
    if (!soon) soon = setTimeout(() => { soon = null; refresh(); }, 200);
  };
  stream.addEventListener('end', () => { stream.close(); stream = null; refresh(); });
  stream.onerror = () => { if (stream && stream.readyState === EventSource.CLOSED) stream = null; };
}

// Live: polled while the page is visible (a finished execution can be retried or resumed).
every(1500, async () => { await refresh(); follow(main.dataset.status); });
