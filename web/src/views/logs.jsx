import { useEffect, useRef, useState } from 'preact/hooks';
import { follow } from '../api.js';
import { Alert, Section } from '../ui.jsx';

// A live log: the lines of an SSE endpoint as they come, resumed after a
// dropped connection. `format(ev)` -> text or null (not shown).
export function LiveLog({ path, format, label }) {
  const [lines, setLines] = useState([]);
  const [status, setStatus] = useState('connecting');
  const [error, setError] = useState(null);
  const box = useRef(null);
  useEffect(() => {
    setLines([]);
    setError(null);
    return follow(
      path,
      (ev) => {
        const text = format(ev);
        if (text !== null) setLines((l) => (l.length > 5000 ? l.slice(-4000) : l).concat([[ev.event, text]]));
      },
      (s, e) => {
        setStatus(s);
        if (e) setError(e);
      },
    );
  }, [path]);
  useEffect(() => {
    if (box.current) box.current.scrollTop = box.current.scrollHeight;
  }, [lines]);
  return (
    <div>
      <p class="muted" aria-live="polite">
        {label}: {status === 'open' ? 'live' : status}
      </p>
      <Alert error={error} />
      <pre class="log" ref={box} tabIndex={0} aria-label={label}>
        {lines.map(([kind, text], i) => (
          <span key={i} class={`line ${kind}`}>
            {text}
            {'\n'}
          </span>
        ))}
      </pre>
    </div>
  );
}

function deployLine(ev) {
  const d = ev.data || {};
  if (ev.event === 'build') return d.text;
  if (ev.event === 'deploy') return `[${d.kind}] ${d.message}`;
  if (ev.event === 'end') return `— ${d.state || d.outcome || 'ended'}${d.failure_reason ? `: ${d.failure_reason}` : ''}`;
  return null;
}

export function DeployLog({ id }) {
  return <LiveLog path={`/v1/deployments/${id}/logs`} format={deployLine} label={`Build and release log of ${id}`} />;
}

export function RuntimeLogs({ service }) {
  const format = (ev) => (ev.event === 'log' ? `${ev.data.instance_id ? `${ev.data.instance_id} ` : ''}${ev.data.text}` : null);
  return (
    <Section title="Runtime logs">
      <LiveLog path={`/v1/services/${service.id}/logs`} format={format} label="The app's output" />
    </Section>
  );
}
