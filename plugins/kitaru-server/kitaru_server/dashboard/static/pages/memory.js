// Memory browser: scopes, the keys of the chosen scope with their latest version, a key's
// history, and each version's value.

import { api, missing } from '../lib/api.js';
import { fmtTime, h, problem, replace, shortId } from '../lib/dom.js';
import { artifactBlock } from '../lib/values.js';

const main = document.getElementById('app');
const params = new URLSearchParams(location.search);
const scopeSelect = h('select', { name: 'scope', id: 'memory-scope' });
const keys = h('section', { id: 'memory-keys' });
const history = h('section', { id: 'memory-history' });
replace(main, h('h1', {}, 'Memory'),
  h('form', { class: 'filters', onsubmit: (e) => { e.preventDefault(); showScope(scopeSelect.value); } },
    h('label', { for: 'memory-scope' }, 'Scope '), scopeSelect, h('button', { type: 'submit' }, 'Show')),
  h('div', { class: 'columns' }, h('div', { class: 'col' }, keys), h('div', { class: 'col' }, history)));

const items = (got) => (Array.isArray(got) ? got : got.items || []);
const valueOf = (entry) => (entry.artifact_id ? artifactBlock({ artifact_id: entry.artifact_id, name: entry.key, type_name: `version ${entry.version}`, direction: 'memory' }, { open: true }) : h('p', { class: 'muted' }, 'deleted'));

async function showKey(scope, key) {
  replace(history, h('h2', {}, 'History of ', h('code', {}, key)), h('p', { class: 'muted' }, 'Loading…'));
  try {
    const got = items(await api(`/memory/history/${key.split('/').map(encodeURIComponent).join('/')}`, { query: { scope } }));
    replace(history, h('h2', {}, 'History of ', h('code', {}, key)),
      got.map((v) => h('div', { class: 'card', dataset: { version: v.version } },
        h('strong', {}, `version ${v.version}`), ' ', h('span', { class: 'muted' }, fmtTime(v.created_at)),
        v.exec_id ? [' · by ', h('a', { class: 'mono', href: `/dashboard/executions/${encodeURIComponent(v.exec_id)}` }, shortId(v.exec_id))] : null,
        valueOf(v))));
  } catch (e) { replace(history, problem(e)); }
}

async function showScope(scope) {
  const q = new URLSearchParams(scope ? { scope } : {});
  history.replaceChildren();
  window.history.replaceState(null, '', `${location.pathname}${scope ? `?${q}` : ''}`);
  replace(keys, h('p', { class: 'muted' }, 'Loading…'));
  try {
    const got = items(await api('/memory/entries', { query: { scope } }));
    replace(keys, h('h2', {}, 'Keys'), got.length ? h('table', {},
      h('thead', {}, h('tr', {}, ['Key', 'Version', 'Written', 'By'].map((t) => h('th', {}, t)))),
      h('tbody', {}, got.map((e) => h('tr', { dataset: { key: e.key } },
        h('td', {}, h('button', { type: 'button', class: 'small', onclick: () => showKey(scope, e.key) }, e.key)),
        h('td', {}, String(e.version)), h('td', {}, fmtTime(e.created_at)),
        h('td', {}, e.exec_id ? h('a', { class: 'mono', href: `/dashboard/executions/${encodeURIComponent(e.exec_id)}` }, shortId(e.exec_id)) : '–'))))) :
      h('p', { class: 'muted' }, 'No keys in this scope.'));
  } catch (e) { replace(keys, missing(e) ? h('p', { class: 'muted' }, 'This server does not offer memory over HTTP yet.') : problem(e)); }
}

async function start() {
  try {
    const scopes = items(await api('/memory/scopes'));
    const names = scopes.map((s) => (typeof s === 'string' ? s : s.scope || s.name));
    replace(scopeSelect, names.map((s) => h('option', { value: s, selected: s === params.get('scope') }, s)));
    if (names.length) showScope(scopeSelect.value);
    else replace(keys, h('p', { class: 'muted' }, 'No memory written yet (kitaru.memory.set).'));
  } catch (e) { replace(keys, missing(e) ? h('p', { class: 'muted' }, 'This server does not offer memory over HTTP yet.') : problem(e)); }
}
start();
