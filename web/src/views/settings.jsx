import { useState } from 'preact/hooks';
import { api } from '../api.js';
import { useApi } from '../hooks.js';
import { Action, Badge, Copy, Field, Form, Section, Select, Table, when } from '../ui.jsx';

// The service's settings pages: env, volumes, webhooks, domains.

export function Env({ service }) {
  const [state, reload] = useApi(`/v1/services/${service.id}/env`);
  const [revealed, setRevealed] = useState(null);
  const env = (revealed || (state.data && state.data.env)) || [];
  const set = async (data, form) => {
    const key = String(data.get('key') || '').trim();
    const value = String(data.get('value') || '');
    const secret = data.get('secret') === 'on';
    await api('PATCH', `/v1/services/${service.id}/env`, { env: { [key]: { value, secret } } });
    form.reset();
    setRevealed(null);
    reload();
  };
  return (
    <Section
      title="Environment"
      state={state}
      actions={
        <Action
          label="Reveal secrets"
          kind="small"
          run={async () => setRevealed((await api('GET', `/v1/services/${service.id}/env?reveal=true`)).env)}
        />
      }
    >
      <p class="muted">Changes apply at the next deploy. Revealing secrets is recorded in the audit log.</p>
      <Table head={['Key', 'Value', 'Actions']}>
        {env.map((v) => (
          <tr key={v.key}>
            <td>
              <code>{v.key}</code>
            </td>
            <td>{v.value === null ? <span class="muted">•••••• (secret)</span> : <code>{v.value}</code>}</td>
            <td>
              <Action
                label="Remove"
                kind="small danger"
                run={async () => {
                  await api('DELETE', `/v1/services/${service.id}/env/${encodeURIComponent(v.key)}`);
                  setRevealed(null);
                  reload();
                }}
              />
            </td>
          </tr>
        ))}
      </Table>
      <Form submit={set} label="Set variable" class="inline-form">
        {(error) => (
          <>
            <Field label="Key" name="key" autocomplete="off" error={error} />
            <Field label="Value" name="value" autocomplete="off" error={error} />
            <div class="field check">
              <input id="f-secret" name="secret" type="checkbox" defaultChecked />
              <label for="f-secret">Secret (masked when shown)</label>
            </div>
          </>
        )}
      </Form>
    </Section>
  );
}

export function Volumes({ service }) {
  const [state, reload] = useApi(`/v1/services/${service.id}/volumes`, 5000);
  const volumes = (state.data && state.data.volumes) || [];
  const create = async (data, form) => {
    const size = String(data.get('size_gb') || '').trim();
    await api('POST', `/v1/services/${service.id}/volumes`, {
      name: data.get('name'),
      mount_path: data.get('mount_path'),
      ...(size ? { size_gb: /^\d+$/.test(size) ? Number(size) : size } : {}),
    });
    form.reset();
    reload();
  };
  return (
    <Section title="Volumes" state={state}>
      <ul class="rows">
        {volumes.map((v) => (
          <li key={v.id}>
            <strong>{v.name}</strong> at <code>{v.mount_path}</code>, {v.size_gb} GB <Badge state={v.state} />{' '}
            <Action
              label="Delete"
              kind="small danger"
              confirm={`Delete volume ${v.name} and its data?`}
              run={async () => {
                await api('DELETE', `/v1/volumes/${v.id}`);
                reload();
              }}
            />
          </li>
        ))}
      </ul>
      <Form submit={create} label="Create volume" class="inline-form">
        {(error) => (
          <>
            <Field label="Name" name="name" error={error} />
            <Field label="Mount path" name="mount_path" placeholder="/data" error={error} />
            <Field label="Size (GB)" name="size_gb" inputMode="numeric" placeholder="1" error={error} />
          </>
        )}
      </Form>
    </Section>
  );
}

export function Webhooks({ service }) {
  const [hooks, reload] = useApi(`/v1/services/${service.id}/webhooks`);
  const [deliveries] = useApi(`/v1/services/${service.id}/webhook-deliveries?page_size=20`, 10000);
  const [made, setMade] = useState(null);
  const create = async (data) => {
    setMade(await api('POST', `/v1/services/${service.id}/webhooks`, { provider: data.get('provider') }));
    reload();
  };
  return (
    <div>
      <Section title="Webhooks" state={hooks}>
        <ul class="rows">
          {((hooks.data && hooks.data.webhooks) || []).map((w) => (
            <li key={w.id}>
              {w.provider}: <code>{location.origin + w.url}</code> <Copy text={location.origin + w.url} />
            </li>
          ))}
        </ul>
        {made && (
          <div class="notice" role="status">
            <p>
              The secret of the new {made.provider} webhook, shown this once: <code>{made.secret}</code> <Copy text={made.secret} />
            </p>
          </div>
        )}
        <Form submit={create} label="Create webhook" class="inline-form">
          {(error) => (
            <Select label="Provider" name="provider" options={['github', 'gitlab']} error={error} />
          )}
        </Form>
      </Section>
      <Section title="Deliveries" state={deliveries}>
        <ul class="rows">
          {((deliveries.data && deliveries.data.deliveries) || []).map((d) => (
            <li key={d.id}>
              {when(d.received_at)} {d.event} {d.ref || ''} <Badge state={d.outcome} /> {d.build_id || ''}
              {d.reason && <span class="muted"> {d.reason}</span>}
              {d.preview_url && (
                <>
                  {' '}
                  preview: <a href={d.preview_url}>{d.preview_url}</a>
                </>
              )}
            </li>
          ))}
        </ul>
      </Section>
    </div>
  );
}

export function Domains({ service }) {
  const [state, reload] = useApi(`/v1/services/${service.id}/domains`, 5000);
  const domains = (state.data && state.data.domains) || [];
  const add = async (data, form) => {
    await api('POST', `/v1/services/${service.id}/domains`, { hostname: data.get('hostname') });
    form.reset();
    reload();
  };
  return (
    <Section title="Domains" state={state}>
      <ul class="rows">
        {domains.map((d) => (
          <li key={d.id}>
            <strong>{d.hostname}</strong> <span class="muted">{d.kind}</span> <Badge state={d.state} />
            {d.error && <span class="alert inline">{d.error}</span>}
            {d.dns_record && (
              <div class="muted">
                Create: <code>{`${d.dns_record.name} ${d.dns_record.type} ${d.dns_record.value}`}</code>
              </div>
            )}
            {d.kind === 'custom' && (
              <Action
                label="Remove"
                kind="small danger"
                run={async () => {
                  await api('DELETE', `/v1/domains/${d.id}`);
                  reload();
                }}
              />
            )}
          </li>
        ))}
      </ul>
      <Form submit={add} label="Add domain" class="inline-form">
        {(error) => <Field label="Hostname" name="hostname" placeholder="www.example.com" error={error} />}
      </Form>
    </Section>
  );
}
