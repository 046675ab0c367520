import { useState } from 'preact/hooks';
import { useApi } from './hooks.js';

export function when(t) {
  if (!t) return '';
  const d = new Date(t);
  return Number.isNaN(d.getTime()) ? '' : d.toLocaleString();
}

// A state as a badge: its class tells good, bad and in-between apart by
// shape and text as well as colour.
const GOOD = new Set(['live', 'healthy', 'running', 'succeeded', 'active', 'available', 'attached', 'issued', 'accepted']);
const BAD = new Set(['failed', 'unhealthy', 'crashed', 'renewal_failing', 'error', 'rejected']);
export function Badge({ state }) {
  const kind = GOOD.has(state) ? 'good' : BAD.has(state) ? 'bad' : 'other';
  return <span class={`badge ${kind}`}>{state || 'unknown'}</span>;
}

export function Alert({ error }) {
  if (!error) return null;
  return (
    <p class="alert" role="alert">
      {error.message || String(error)}
    </p>
  );
}

// A section that hides itself when the API does not offer what it shows
// (501), and says what failed otherwise.
export function Section({ title, state, children, actions }) {
  if (state && state.error && state.error.status === 501) return null;
  return (
    <section aria-label={title}>
      <div class="section-head">
        <h2>{title}</h2>
        {actions}
      </div>
      {state && state.error && <Alert error={state.error} />}
      {state && state.loading && !state.data ? <p class="muted">Loading…</p> : children}
    </section>
  );
}

// A labelled input whose error is the API's message for that field.
export function Field({ label, name, error, hint, children, ...input }) {
  const id = `f-${name}`;
  const bad = error && error.field === name;
  return (
    <div class={`field${bad ? ' invalid' : ''}`}>
      <label for={id}>{label}</label>
      {children || <input id={id} name={name} aria-invalid={bad ? 'true' : undefined} aria-describedby={bad ? `${id}-err` : hint ? `${id}-hint` : undefined} {...input} />}
      {hint && !bad && <small id={`${id}-hint`}>{hint}</small>}
      {bad && (
        <small id={`${id}-err`} class="field-error">
          {error.message}
        </small>
      )}
    </div>
  );
}

// A button running an async action: disabled while it runs, its error shown
// beside it.
export function Action({ label, run, kind = '', confirm: question }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  const click = async () => {
    if (question && !window.confirm(question)) return;
    setBusy(true);
    setError(null);
    try {
      await run();
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };
  return (
    <span class="action">
      <button type="button" class={kind} disabled={busy} onClick={click}>
        {busy ? `${label}…` : label}
      </button>
      {error && (
        <span class="alert inline" role="alert">
          {error.message}
        </span>
      )}
    </span>
  );
}

// A form whose `submit(formData, form)` calls the API; the API's error goes
// to the field it names (children is `(error) => fields`), else above.
export function Form({ submit, label, children, class: cls = '' }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  const [atField, setAtField] = useState(false);
  const onSubmit = async (e) => {
    e.preventDefault();
    const form = e.currentTarget;
    setBusy(true);
    setError(null);
    try {
      await submit(new FormData(form), form);
    } catch (err) {
      const input = err.field && form.querySelector(`[name="${CSS.escape(err.field)}"]`);
      setAtField(Boolean(input));
      setError(err);
      if (input) input.focus();
    } finally {
      setBusy(false);
    }
  };
  return (
    <form class={`form ${cls}`} onSubmit={onSubmit} noValidate>
      {error && !atField && <Alert error={error} />}
      {children(atField ? error : null)}
      <button type="submit" disabled={busy}>
        {busy ? `${label}…` : label}
      </button>
    </form>
  );
}

// A table with column headings `head`; its rows are the children. On a
// narrow screen it scrolls sideways.
export function Table({ head, children }) {
  return (
    <div class="table">
      <table>
        <thead>
          <tr>
            {head.map((h) => (
              <th key={h} scope="col">
                {h}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>{children}</tbody>
      </table>
    </div>
  );
}

// A labelled <select>: `options` are values, or [value, label] pairs.
export function Select({ label, name, options, error }) {
  return (
    <Field label={label} name={name} error={error}>
      <select id={`f-${name}`} name={name}>
        {options.map((o) => {
          const [value, text] = Array.isArray(o) ? o : [o, o];
          return (
            <option key={value} value={value}>
              {text}
            </option>
          );
        })}
      </select>
    </Field>
  );
}

export function Copy({ text }) {
  const [done, setDone] = useState(false);
  return (
    <button
      type="button"
      class="small"
      onClick={async () => {
        await navigator.clipboard.writeText(text);
        setDone(true);
      }}
    >
      {done ? 'Copied' : 'Copy'}
    </button>
  );
}

// A link to project `id`, by its name once known.
export function ProjectLink({ id }) {
  const [state] = useApi(`/v1/projects/${id}`);
  return <a href={`#/p/${id}`}>{state.data ? state.data.name : 'Project'}</a>;
}
