// Deployments: each deployed flow with where its tags point, its versions (immutable
// snapshots: entrypoint, code package, frozen stack, Python and defaults), an invoke form
// (operator) and moving a tag to a version (admin: a promotion, or a rollback).

import { api, missing } from '../lib/api.js';
import { facts, fmtTime, h, json, problem, replace, shortId } from '../lib/dom.js';

const main = document.getElementById('app');
const scope = main.dataset.scope;
const canInvoke = ['operator', 'admin'].includes(scope);
const canTag = scope === 'admin';
const list = h('section', { id: 'deployments' }, h('p', { class: 'muted' }, 'Loading…'));
replace(main, h('h1', {}, 'Deployments'), list);

const items = (got) => (Array.isArray(got) ? got : got.items || []);

function tagBadges(tags) {
  return Object.entries(tags || {}).map(([t, exclusive]) =>
    h('span', { class: `tag${exclusive ? ' exclusive' : ''}`, title: exclusive ? 'exclusive' : 'shared' }, t));
}

function invokeForm(flow, versions, tags) {
  const choice = h('select', { name: 'target', id: `invoke-${flow}` },
    Object.keys(tags).map((t) => h('option', { value: `tag:${t}` }, `tag ${t}`)),
    versions.map((v) => h('option', { value: `version:${v}` }, `version ${v}`)));
  const inputs = h('textarea', { name: 'inputs', rows: 2, class: 'code', placeholder: '{"topic": "..."} (over the defaults)' });
  const status = h('div', { 'aria-live': 'polite' });
  return h('form', { class: 'invoke', onsubmit: async (e) => {
    e.preventDefault();
    const [kind, value] = choice.value.split(/:(.*)/s);
    const body = kind === 'tag' ? { tag: value } : { version: Number(value) };
    try { body.inputs = inputs.value.trim() ? JSON.parse(inputs.value) : {}; } catch (err) { replace(status, problem(`inputs: not valid JSON (${err.message})`)); return; }
    try {
      const got = await api(`/deployments/${encodeURIComponent(flow)}/invoke`, { method: 'POST', body });
      replace(status, h('p', { class: 'ok', role: 'status' }, `Started version ${got.version}: `,
        h('a', { href: `/dashboard/executions/${encodeURIComponent(got.exec_id)}` }, shortId(got.exec_id))));
    } catch (err) { replace(status, problem(`Refused: ${err.message}`)); }
  } }, h('label', { for: `invoke-${flow}` }, 'Invoke '), choice, inputs, h('button', { type: 'submit', class: 'primary' }, 'Invoke'), status);
}

function moveTag(flow, version, tags, refresh) {
  const tag = h('input', { name: 'tag', placeholder: 'tag', list: `tags-${flow}`, size: 12, required: true });
  return h('form', { class: 'inline', onsubmit: async (e) => {
    e.preventDefault();
    try {
      await api(`/deployments/${encodeURIComponent(flow)}/tags/${encodeURIComponent(tag.value)}`, { method: 'PUT', body: { version, exclusive: true } });
      refresh();
    } catch (err) { e.target.append(problem(err)); }
  } }, h('datalist', { id: `tags-${flow}` }, Object.keys(tags).map((t) => h('option', { value: t }))), tag,
  h('button', { type: 'submit', class: 'small' }, 'Move tag here'));
}

async function start() {
  let flows; let versions;
  try {
    [flows, versions] = await Promise.all([api('/deployments/flows').then(items), api('/deployments').then(items)]);
  } catch (e) {
    replace(list, missing(e) ? h('p', { class: 'muted' }, 'This server does not offer deployments over HTTP yet.') : problem(e));
    return;
  }
  if (!flows.length) {
    replace(list, h('p', { class: 'muted' }, 'No deployments yet: flow.deploy() or `kitaru flow deploy module:flow`.'));
    return;
  }
  replace(list, flows.map((f) => {
    const mine = versions.filter((d) => d.flow === f.flow).sort((a, b) => b.version - a.version);
    return h('section', { class: 'card deployment', dataset: { flow: f.flow } },
      h('h2', {}, f.flow, ' ', h('span', { class: 'muted' }, `latest v${f.latest_version}`)),
      h('p', {}, Object.entries(f.tags || {}).map(([t, vs]) => h('span', { class: 'route' }, h('span', { class: 'tag' }, t), ` → v${vs.join(', v')} `))),
      canInvoke ? invokeForm(f.flow, f.versions, f.tags || {}) : null,
      h('table', { class: 'versions' },
        h('thead', {}, h('tr', {}, ['Version', 'Tags', 'Deployed', 'Entrypoint', 'Stack', 'Python', 'Defaults', ''].map((t) => h('th', {}, t)))),
        h('tbody', {}, mine.map((d) => h('tr', { dataset: { version: d.version } },
          h('td', {}, h('strong', {}, `v${d.version}`)), h('td', {}, tagBadges(d.tags)), h('td', {}, fmtTime(d.created_at)),
          h('td', {}, h('code', {}, d.entrypoint), h('br'), h('small', { class: 'muted' }, `code ${shortId(d.code_package)}`),
            d.commit_sha ? h('small', { class: 'muted' }, ` · ${shortId(d.commit_sha)}${d.commit_dirty ? ' (dirty)' : ''}`) : null),
          h('td', {}, d.stack || '–'), h('td', {}, d.python || '–'),
          h('td', {}, Object.keys(d.defaults || {}).length ? json(d.defaults) : '–'),
          h('td', {}, canTag ? moveTag(f.flow, d.version, f.tags || {}, start) : null,
            h('details', {}, h('summary', {}, 'snapshot'), facts([
              ['Packages', Object.entries(d.packages || {}).map(([k, v]) => `${k} ${v}`).join(', ')],
              ['Parameters', (d.parameters || []).map((p) => p.name).join(', ')],
              ['Options', Object.keys(d.options || {}).length ? JSON.stringify(d.options) : null],
            ]))))))));
  }));
}
start();
