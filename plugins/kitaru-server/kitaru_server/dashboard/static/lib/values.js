// An artifact's value as the dashboard shows it: text, JSON, markdown (HTML the server rendered
// with raw HTML off), or an image; loaded when first shown.

import { api } from './api.js';
import { fmtBytes, h, json, problem } from './dom.js';

const cache = new Map();

export function preview(artifactId) {
  if (!cache.has(artifactId)) {
    cache.set(artifactId, api(`/dashboard/api/artifacts/${encodeURIComponent(artifactId)}/preview`));
  }
  return cache.get(artifactId);
}

/** The body of a preview (see kitaru_server/dashboard/previews.py). */
export function renderPreview(p) {
  switch (p.kind) {
    case 'markdown': {
      const rendered = h('div', { class: 'markdown' });
      // Server-rendered by markdown-it with HTML disabled and link targets checked.
      rendered.innerHTML = p.html;
      const raw = h('pre', { class: 'text', hidden: true }, p.text);
      const toggle = h('button', {
        type: 'button', class: 'small', onclick: () => {
          raw.hidden = !raw.hidden; rendered.hidden = !rendered.hidden;
          toggle.textContent = raw.hidden ? 'source' : 'rendered';
        },
      }, 'source');
      return h('div', { class: 'value' }, toggle, rendered, raw);
    }
    case 'text': return h('pre', { class: 'text' }, p.text);
    case 'json': return h('div', { class: 'value' }, p.note ? h('small', { class: 'muted' }, p.note) : null, json(p.value));
    case 'image':
      return h('img', { class: 'artifact-image', alt: p.name, src: `/dashboard/api/artifacts/${encodeURIComponent(p.artifact_id)}/image` });
    case 'binary': return h('div', { class: 'value' }, h('small', { class: 'muted' }, p.note || 'binary'), p.text ? h('pre', { class: 'text' }, p.text) : null);
    default: return h('p', { class: 'muted' }, p.note || p.kind);
  }
}

/** A collapsible block for one artifact: its name, type and size, and its value when opened. */
export function artifactBlock(a, { open = false, label } = {}) {
  const body = h('div', { class: 'artifact-body' }, h('p', { class: 'muted' }, 'Loading…'));
  const block = h('details', { class: 'artifact', open, dataset: { artifact: a.artifact_id, name: a.name } },
    h('summary', {}, h('strong', {}, label || a.name), ' ',
      h('span', { class: 'muted' }, `${a.direction || ''} · ${a.type_name} · ${fmtBytes(a.size)}`)),
    body);
  let loaded = false;
  const load = async () => {
    if (loaded) return;
    loaded = true;
    const download = h('a', { class: 'download', href: `/api/v1/artifacts/${encodeURIComponent(a.artifact_id)}/download`, download: a.name }, 'download');
    try { body.replaceChildren(renderPreview(await preview(a.artifact_id)), download); } catch (e) { body.replaceChildren(problem(e), download); }
  };
  block.addEventListener('toggle', () => { if (block.open) load(); });
  if (open) load();
  return block;
}
