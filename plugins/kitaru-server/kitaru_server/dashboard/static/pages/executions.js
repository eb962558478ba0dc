// Executions: filters (flow, status) kept in the address, live status, pages by cursor, and a
// pick of two executions to compare.

import { api, every } from '../lib/api.js';
import { badge, fmtDuration, fmtTime, h, problem, replace, shortId, span } from '../lib/dom.js';

const STATUSES = ['running', 'waiting', 'completed', 'failed', 'cancelled'];
const main = document.getElementById('app');
const params = new URLSearchParams(location.search);
const picked = new Set();

const flowInput = h('input', { type: 'search', name: 'flow', placeholder: 'any flow', value: params.get('flow') || '' });
const statusSelect = h('select', { name: 'status' }, h('option', { value: '' }, 'any status'),
  STATUSES.map((s) => h('option', { value: s, selected: params.get('status') === s }, s)));
const limitSelect = h('select', { name: 'limit' }, [25, 50, 100, 200].map((n) =>
  h('option', { value: n, selected: String(n) === (params.get('limit') || '50') }, `${n} per page`)));
const live = h('span', { class: 'live muted', 'aria-live': 'polite' });
const compare = h('button', { type: 'button', disabled: true, onclick: () => {
  const [a, b] = [...picked];
  location.assign(`/dashboard/diff?a=${encodeURIComponent(a)}&b=${encodeURIComponent(b)}`);
} }, 'Compare 2 selected');
const form = h('form', { class: 'filters', onsubmit: (e) => { e.preventDefault(); apply(); } },
  h('label', {}, 'Flow ', flowInput), h('label', {}, 'Status ', statusSelect), limitSelect,
  h('button', { type: 'submit' }, 'Filter'), compare, live);
const table = h('table', { class: 'executions' });
const more = h('div', { class: 'more' });
replace(main, h('h1', {}, 'Executions'), form, table, more);

let cursors = [];  // the cursor of each page shown after the first (REST `next_cursor`)

function apply() {
  const q = new URLSearchParams();
  if (flowInput.value.trim()) q.set('flow', flowInput.value.trim());
  if (statusSelect.value) q.set('status', statusSelect.value);
  if (limitSelect.value !== '50') q.set('limit', limitSelect.value);
  history.replaceState(null, '', `${location.pathname}${q.toString() ? `?${q}` : ''}`);
  cursors = [];
  refresh();
}

function query(cursor) {
  return { flow: flowInput.value.trim(), status: statusSelect.value, limit: limitSelect.value, cursor };
}

function row(e) {
  const box = h('input', { type: 'checkbox', 'aria-label': `select ${e.exec_id}`, checked: picked.has(e.exec_id),
    onchange: (ev) => {
      if (ev.target.checked) picked.add(e.exec_id); else picked.delete(e.exec_id);
      compare.disabled = picked.size !== 2;
    } });
  return h('tr', { dataset: { exec: e.exec_id } },
    h('td', {}, box),
    h('td', {}, h('a', { href: `/dashboard/executions/${encodeURIComponent(e.exec_id)}`, class: 'mono' }, shortId(e.exec_id))),
    h('td', {}, e.flow_name),
    h('td', {}, badge(e.status)),
    h('td', {}, fmtTime(e.started_at)),
    h('td', {}, fmtDuration(span(e.started_at, e.ended_at))),
    h('td', {}, e.stack_name || '–'),
    h('td', {}, note(e)));
}

// What the last column says: the wait an execution needs input for, or what it replays.
function note(e) {
  if (e.pending_wait) return `wait '${e.pending_wait.name}'`;
  return e.original_exec_id
    ? h('a', { href: `/dashboard/executions/${encodeURIComponent(e.original_exec_id)}`, class: 'mono' }, `replay of ${shortId(e.original_exec_id)}`)
    : '';
}

async function refresh() {
  const pages = [];
  try {
    let page = await api('/executions', { query: query() });
    pages.push(page);
    for (const c of cursors) { page = await api('/executions', { query: query(c) }); pages.push(page); }
  } catch (e) {
    replace(table, h('tbody', {}, h('tr', {}, h('td', {}, problem(e)))));
    return;
  }
  const items = pages.flatMap((p) => p.items);
  replace(table,
    h('thead', {}, h('tr', {}, ['', 'Execution', 'Flow', 'Status', 'Started', 'Duration', 'Stack', ''].map((t) => h('th', {}, t)))),
    h('tbody', {}, items.length ? items.map(row) : h('tr', {}, h('td', { colspan: 8, class: 'muted' }, 'No executions match.'))));
  const next = pages[pages.length - 1].next_cursor;
  replace(more, next ? h('button', { type: 'button', onclick: () => { cursors.push(next); refresh(); } }, 'Load more') : null);
  live.textContent = `updated ${new Date().toLocaleTimeString()}`;
}

every(2000, refresh);
