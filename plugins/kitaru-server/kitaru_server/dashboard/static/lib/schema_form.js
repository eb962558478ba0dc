// A form generated from a JSON schema (what pydantic's `model_json_schema` gives a wait), and
// the value it reads back. Objects become fieldsets, arrays lists with add/remove, enums
// selects, booleans yes/no choices; what the form can't express is edited as JSON. The
// server validates the answer again: the form only helps to give a fitting one.

import { h } from './dom.js';

let counter = 0;
const uid = (name) => `f${++counter}-${String(name).replace(/[^A-Za-z0-9_-]/g, '_')}`;

function deref(schema, root) {
  let s = schema || {};
  for (let i = 0; i < 20 && s.$ref; i++) {
    const path = s.$ref.replace(/^#\//, '').split('/');
    let target = root;
    for (const p of path) target = target?.[p];
    const { $ref, ...rest } = s;
    s = { ...(target || {}), ...rest };
  }
  if (s.allOf && s.allOf.length === 1) {
    const { allOf, ...rest } = s;
    s = { ...deref(allOf[0], root), ...rest };
  }
  return s;
}

function labelFor(id, title, required, description) {
  return [
    h('label', { for: id }, title, required ? h('span', { class: 'req', title: 'required' }, ' *') : null),
    description ? h('small', { class: 'hint' }, description) : null,
  ];
}

function typeOf(s) {
  if (Array.isArray(s.type)) return s.type.find((t) => t !== 'null') ?? 'null';
  return s.type;
}

/** A field for `schema`: {el, read()} where read() returns the value or throws Error. */
function field(schema, root, name, required, label) {
  let s = deref(schema, root);
  let optional = !required;
  const variants = s.anyOf || s.oneOf;
  if (variants) {
    const real = variants.filter((v) => deref(v, root).type !== 'null');
    if (real.length === 1) {
      const { anyOf, oneOf, ...rest } = s;
      s = { ...deref(real[0], root), ...rest };
      optional = optional || real.length < variants.length;
    } else {
      return jsonField(s, name, !optional);
    }
  }
  const title = label || s.title || name;
  const id = uid(name);
  if (s.const !== undefined) {
    return { el: h('p', { class: 'field' }, `${title}: ${JSON.stringify(s.const)}`), read: () => s.const };
  }
  if (Array.isArray(s.enum)) {
    const select = h('select', { id, name, required: !optional },
      optional ? h('option', { value: '' }, '—') : null,
      s.enum.map((v, i) => h('option', { value: String(i), selected: s.default === v }, String(v))));
    return {
      el: h('div', { class: 'field' }, labelFor(id, title, !optional, s.description), select),
      read: () => (select.value === '' ? null : s.enum[Number(select.value)]),
    };
  }
  const type = typeOf(s);
  if (type === 'boolean') {
    const yes = h('input', { type: 'radio', name: id, value: 'true', id: `${id}-yes`, required: !optional, checked: s.default === true });
    const no = h('input', { type: 'radio', name: id, value: 'false', id: `${id}-no`, checked: s.default === false });
    return {
      el: h('fieldset', { class: 'field boolean', dataset: { field: name } },
        h('legend', {}, title, !optional ? h('span', { class: 'req' }, ' *') : null),
        s.description ? h('small', { class: 'hint' }, s.description) : null,
        h('label', { for: `${id}-yes` }, yes, ' Yes'), h('label', { for: `${id}-no` }, no, ' No')),
      read: () => (yes.checked ? true : no.checked ? false : null),
    };
  }
  if (type === 'string') {
    const long = (s.maxLength ?? 1000) > 200 && /text|body|content|description|notes|comment|message|prompt/i.test(name);
    const attrs = {
      id, name, required: !optional, minlength: s.minLength, maxlength: s.maxLength, pattern: s.pattern,
      placeholder: s.examples?.[0],
    };
    let input;
    if (long) input = h('textarea', { ...attrs, rows: 4 }, s.default ?? '');
    else {
      const kind = s.format === 'date' ? 'date' : s.format === 'email' ? 'email' : s.format === 'uri' ? 'url' : 'text';
      input = h('input', { ...attrs, type: kind, value: s.default ?? '' });
    }
    return {
      el: h('div', { class: 'field' }, labelFor(id, title, !optional, s.description), input),
      read: () => (input.value === '' && optional ? (s.default ?? null) : input.value),
    };
  }
  if (type === 'integer' || type === 'number') {
    const input = h('input', {
      id, name, type: 'number', required: !optional, step: type === 'integer' ? 1 : 'any',
      min: s.minimum ?? s.exclusiveMinimum, max: s.maximum ?? s.exclusiveMaximum, value: s.default ?? '',
    });
    return {
      el: h('div', { class: 'field' }, labelFor(id, title, !optional, s.description), input),
      read: () => (input.value === '' ? (optional ? (s.default ?? null) : NaN) : Number(input.value)),
    };
  }
  if (type === 'object' && s.properties) {
    const required = new Set(s.required || []);
    const parts = Object.entries(s.properties).map(([k, sub]) => [k, field(sub, root, k, required.has(k))]);
    return {
      el: h('fieldset', { class: 'field object', dataset: { field: name } }, h('legend', {}, title),
        s.description ? h('small', { class: 'hint' }, s.description) : null, parts.map(([, f]) => f.el)),
      read: () => {
        const out = {};
        for (const [k, f] of parts) {
          const v = f.read();
          if (v !== null || required.has(k)) out[k] = v;
        }
        return out;
      },
    };
  }
  if (type === 'array' && s.items && !Array.isArray(s.items)) {
    const items = [];
    const list = h('div', { class: 'items' });
    const add = (value) => {
      const f = field(s.items, root, `${name}[${items.length}]`, true, `${s.items.title || title} ${items.length + 1}`);
      const row = h('div', { class: 'item' }, f.el);
      const entry = { f, row };
      row.append(h('button', {
        type: 'button', class: 'small', 'aria-label': 'remove',
        onclick: () => { items.splice(items.indexOf(entry), 1); row.remove(); },
      }, '✕'));
      if (value !== undefined) {
        const input = row.querySelector('input,textarea');
        if (input && typeof value !== 'object') input.value = String(value);
      }
      items.push(entry);
      list.append(row);
      row.querySelector('input,textarea,select')?.focus();
    };
    for (const v of s.default || []) add(v);
    return {
      el: h('fieldset', { class: 'field array', dataset: { field: name } }, h('legend', {}, title),
        s.description ? h('small', { class: 'hint' }, s.description) : null, list,
        h('button', { type: 'button', class: 'small add', onclick: () => add() }, `Add ${s.items.title || 'item'}`)),
      read: () => items.map((e) => e.f.read()),
    };
  }
  return jsonField(s, name, !optional);
}

function jsonField(s, name, required) {
  const id = uid(name);
  const area = h('textarea', { id, name, rows: 4, class: 'code', required, placeholder: 'JSON' },
    s.default !== undefined ? JSON.stringify(s.default, null, 2) : '');
  return {
    el: h('div', { class: 'field' }, labelFor(id, `${s.title || name} (JSON)`, required, s.description), area),
    read: () => {
      if (area.value.trim() === '') return null;
      try { return JSON.parse(area.value); } catch (e) { throw new Error(`${s.title || name}: not valid JSON (${e.message})`); }
    },
  };
}

/** The JSON schema in a wait's recorded schema: `{"kind": "type", "json_schema": ..., "repr"}`
 * (kitaru_core.runtime.waits.describe_schema), `{"kind": "none"}` for a plain gate, or None. */
export function jsonSchemaOf(described) {
  if (!described || described.kind === 'none') return null;
  if (described.kind === 'type') return described.json_schema || {};
  return described;  // a bare JSON schema
}

/** The form for a wait's recorded `schema` (none: a plain "continue" gate with no value). */
export function schemaForm(described) {
  const schema = jsonSchemaOf(described);
  if (!schema) return { el: h('p', { class: 'muted' }, 'No value needed: continue the execution.'), read: () => null, gate: true };
  const f = field(schema, schema, 'value', true);
  const expects = described?.repr ? h('small', { class: 'muted schema-type' }, `expects ${described.repr}`) : null;
  return { el: h('div', { class: 'schema-form' }, expects, f.el), read: f.read };
}
