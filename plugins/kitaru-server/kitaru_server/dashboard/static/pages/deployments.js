// Deployments: each deployed flow with its versions (immutable snapshots) and tags.

import { api, missing } from '../lib/api.js';
import { fmtTime, h, json, problem, replace } from '../lib/dom.js';

const main = document.getElementById('app');
const list = h('section', { id: 'deployments' }, h('p', { class: 'muted' }, 'Loading…'));
replace(main, h('h1', {}, 'Deployments'), list);

const items = (got) => (Array.isArray(got) ? got : got.items || []);

async function start() {
  let found;
  try { found = items(await api('/deployments')); } catch (e) {
    replace(list, missing(e) ? h('p', { class: 'muted' }, 'This server does not offer deployments over HTTP yet.') : problem(e));
    return;
  }
  if (!found.length) { replace(list, h('p', { class: 'muted' }, 'No deployments yet: flow.deploy() or `kitaru flow deploy module:flow`.')); return; }
  replace(list, found.map((d) => h('section', { class: 'card', dataset: { flow: d.flow || d.flow_name || d.name } },
    h('h2', {}, d.flow || d.flow_name || d.name),
    json(d))));
}
start();
