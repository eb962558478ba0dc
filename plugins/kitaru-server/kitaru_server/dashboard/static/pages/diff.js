// Two executions side by side: their checkpoint calls aligned by call id, which differ
// (status, or output content: artifacts are content-addressed, so equal keys mean equal
// bytes), and a line diff of each differing artifact's value.

import { api } from '../lib/api.js';
import { badge, h, problem, replace, shortId } from '../lib/dom.js';
import { preview, renderPreview } from '../lib/values.js';

const main = document.getElementById('app');
const params = new URLSearchParams(location.search);
const aInput = h('input', { name: 'a', id: 'diff-a', placeholder: 'execution id', value: params.get('a') || '', required: true, class: 'mono' });
const bInput = h('input', { name: 'b', id: 'diff-b', placeholder: 'execution id', value: params.get('b') || '', required: true, class: 'mono' });
const out = h('div', { id: 'diff-result' });
replace(main, h('h1', {}, 'Compare executions'),
  h('form', { class: 'filters', method: 'get', action: '/dashboard/diff' },
    h('label', { for: 'diff-a' }, 'A '), aInput, h('label', { for: 'diff-b' }, 'B '), bInput,
    h('button', { type: 'submit', class: 'primary' }, 'Compare')),
  out);

function textOf(p) {
  if (p.kind === 'json') return JSON.stringify(p.value, null, 2);
  if (p.text !== undefined) return p.text;
  return `(${p.kind}${p.note ? `: ${p.note}` : ''})`;
}

/** A line diff (longest common subsequence) as rows [left, right, kind]. */
export function lineDiff(left, right) {
  const a = left.split('\n');
  const b = right.split('\n');
  if (a.length * b.length > 4e6) return [[left, right, 'change']];
  const n = a.length; const m = b.length;
  const L = Array.from({ length: n + 1 }, () => new Uint32Array(m + 1));
  for (let i = n - 1; i >= 0; i--) for (let j = m - 1; j >= 0; j--) L[i][j] = a[i] === b[j] ? L[i + 1][j + 1] + 1 : Math.max(L[i + 1][j], L[i][j + 1]);
  const rows = [];
  let i = 0; let j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && a[i] === b[j]) { rows.push([a[i], b[j], 'same']); i++; j++; }
    else if (j < m && (i === n || L[i][j + 1] >= L[i + 1][j])) { rows.push([null, b[j], 'add']); j++; }
    else { rows.push([a[i], null, 'del']); i++; }
  }
  return rows;
}

const CONTEXT = 3;  // unchanged lines kept around each change; longer runs are folded

function diffView(left, right) {
  const grid = h('div', { class: 'diff-lines' });
  const rows = lineDiff(left, right);
  const near = rows.map(() => false);
  rows.forEach(([, , kind], i) => {
    if (kind === 'same') return;
    for (let k = Math.max(0, i - CONTEXT); k <= Math.min(rows.length - 1, i + CONTEXT); k++) near[k] = true;
  });
  for (let i = 0; i < rows.length; i++) {
    const [l, r, kind] = rows[i];
    if (kind === 'same' && !near[i]) {
      let j = i;
      while (j < rows.length && rows[j][2] === 'same' && !near[j]) j++;
      grid.append(h('div', { class: 'fold' }, `… ${j - i} unchanged line${j - i === 1 ? '' : 's'}`), h('div', { class: 'fold' }, ''));
      i = j - 1;
      continue;
    }
    grid.append(h('div', { class: l === null ? 'gap' : kind === 'same' ? '' : 'del' }, l ?? ''),
      h('div', { class: r === null ? 'gap' : kind === 'same' ? '' : 'add' }, r ?? ''));
  }
  return grid;
}

async function artifactPair(name, a, b) {
  const box = h('div', { class: 'diff-row', dataset: { artifact: name } }, h('h4', {}, name));
  if (a && b && a.key === b.key) { box.append(h('p', { class: 'muted' }, 'identical'), renderPreview(await preview(a.artifact_id))); return box; }
  const [pa, pb] = await Promise.all([a ? preview(a.artifact_id) : null, b ? preview(b.artifact_id) : null]);
  box.classList.add('changed');
  box.append(diffView(pa ? textOf(pa) : '(none)', pb ? textOf(pb) : '(none)'));
  return box;
}

function outputs(call) {
  const found = new Map();
  for (const a of call?.artifacts || []) if (a.direction !== 'input') found.set(a.name, a);
  return found;
}

async function compare(aId, bId) {
  replace(out, h('p', { class: 'muted' }, 'Loading…'));
  let A; let B;
  try { [A, B] = await Promise.all([api(`/executions/${encodeURIComponent(aId)}`), api(`/executions/${encodeURIComponent(bId)}`)]); } catch (e) { replace(out, problem(e)); return; }
  const callsA = new Map(A.checkpoints.map((c) => [c.call_id, c]));
  const callsB = new Map(B.checkpoints.map((c) => [c.call_id, c]));
  const ids = [...new Set([...callsA.keys(), ...callsB.keys()])];
  const header = h('div', { class: 'diff' },
    [A, B].map((x) => h('div', { class: 'card' }, h('strong', {}, x.flow_name), ' ', badge(x.status), ' ',
      h('a', { class: 'mono', href: `/dashboard/executions/${encodeURIComponent(x.exec_id)}` }, shortId(x.exec_id)))));
  const rows = [];
  let differing = 0;
  for (const id of ids) {
    const ca = callsA.get(id); const cb = callsB.get(id);
    const oa = outputs(ca); const ob = outputs(cb);
    const names = [...new Set([...oa.keys(), ...ob.keys()])];
    const changed = !ca || !cb || ca.status !== cb.status || names.some((n) => oa.get(n)?.key !== ob.get(n)?.key);
    if (changed) differing++;
    const section = h('section', { class: `card diff-call${changed ? ' changed' : ''}`, dataset: { call: id, changed: String(changed) } },
      h('h3', {}, id, ' ', changed ? h('span', { class: 'badge status-waiting' }, 'differs') : h('span', { class: 'badge status-completed' }, 'same')),
      h('div', { class: 'diff' }, [ca, cb].map((c) => h('div', {}, c ? badge(c.status) : h('span', { class: 'muted' }, 'not called')))));
    rows.push(section);
    if (changed) for (const n of names) section.append(await artifactPair(n, oa.get(n), ob.get(n)));
  }
  const results = h('section', { class: 'card' }, h('h3', {}, 'Flow result'));
  if (A.result_artifact || B.result_artifact) results.append(await artifactPair('result', A.result_artifact, B.result_artifact));
  replace(out, header, h('p', {}, `${differing} of ${ids.length} checkpoint calls differ.`), rows, results);
}

if (aInput.value && bInput.value) compare(aInput.value, bInput.value);
else replace(out, h('p', { class: 'muted' }, 'Pick two executions (on the Executions page, tick two and press Compare).'));
