import { useState } from 'preact/hooks';
import { api } from '../api.js';
import { useApi } from '../hooks.js';
import { Action, Alert, Badge, ProjectLink, Section, Table, when } from '../ui.jsx';
import { DeployLog, RuntimeLogs } from './logs.jsx';
import { Domains, Env, Volumes, Webhooks } from './settings.jsx';

const TABS = [
  ['', 'Overview'],
  ['releases', 'Releases'],
  ['logs', 'Logs'],
  ['env', 'Environment'],
  ['volumes', 'Volumes'],
  ['webhooks', 'Webhooks'],
  ['domains', 'Domains'],
];

function Instances({ id }) {
  const [state] = useApi(`/v1/services/${id}/instances`, 3000);
  const instances = (state.data && state.data.instances) || [];
  return (
    <Section title="Instances" state={state}>
      {instances.length === 0 ? (
        <p class="muted">No instance runs.</p>
      ) : (
        <Table head={['Instance', 'State', 'Health', 'Restarts', 'Release']}>
          {instances.map((i) => (
            <tr key={i.id}>
              <td>{i.id}</td>
              <td>
                <Badge state={i.state} />
              </td>
              <td>{i.last_health_check ? `${i.last_health_check.ok ? 'ok' : 'failing'} ${i.last_health_check.detail || ''}` : '—'}</td>
              <td>{i.restarts}</td>
              <td>{i.deployment_id}</td>
            </tr>
          ))}
        </Table>
      )}
    </Section>
  );
}

function Overview({ service, onDeployed }) {
  const [releases, reload] = useApi(`/v1/services/${service.id}/deployments?page_size=5`, 3000);
  const list = (releases.data && releases.data.deployments) || [];
  const live = list.find((d) => d.state === 'live');
  const [building, setBuilding] = useState(null);
  const deploy = async () => {
    const view = await api('POST', `/v1/services/${service.id}/deployments`, {});
    setBuilding(view.id);
    reload();
    if (onDeployed) onDeployed(view.id);
  };
  const rollback = async () => {
    await api('POST', `/v1/services/${service.id}/rollback`, {});
    reload();
  };
  return (
    <div>
      <div class="toolbar">
        <Action label="Deploy" kind="primary" run={deploy} />
        <Action label="Roll back" run={rollback} confirm="Release the previous live release again?" />
      </div>
      <dl class="facts">
        <dt>URL</dt>
        <dd>{service.url ? <a href={service.url}>{service.url}</a> : 'none (worker)'}</dd>
        <dt>Live release</dt>
        <dd>{live ? `${live.id}, revision ${live.revision}, live since ${when(live.live_at)}` : 'none'}</dd>
        <dt>Newest release</dt>
        <dd>{list[0] ? <Badge state={list[0].state} /> : 'none'}</dd>
        {service.preview && (
          <>
            <dt>Preview of</dt>
            <dd>
              <a href={`#/s/${service.preview.of}`}>its parent service</a>, pull request #{service.preview.pull_request}
              (deleted when it closes)
            </dd>
          </>
        )}
        <dt>Repository</dt>
        <dd>
          {service.source.repo_url} ({service.source.branch || 'default branch'})
        </dd>
      </dl>
      {building && <DeployLog id={building} />}
      <Instances id={service.id} />
    </div>
  );
}

function Releases({ service }) {
  const [state, reload] = useApi(`/v1/services/${service.id}/deployments?page_size=20`, 5000);
  const [shown, setShown] = useState(null);
  const list = (state.data && state.data.deployments) || [];
  return (
    <Section title="Releases" state={state}>
      <Table head={['Release', 'State', 'Created', 'Actions']}>
        {list.map((d) => (
          <tr key={d.id}>
            <td>
              {d.id}
              {d.rollback_of && <span class="muted"> (rollback to {d.rollback_of})</span>}
              {d.failure_reason && <div class="alert inline">{d.failure_reason}</div>}
            </td>
            <td>
              <Badge state={d.state} />
            </td>
            <td>{when(d.created_at)}</td>
            <td>
              <button type="button" class="small" onClick={() => setShown(d.build_id || d.id)}>
                Log
              </button>{' '}
              {d.state !== 'live' && d.live_at && (
                <Action
                  label="Roll back to this"
                  kind="small"
                  run={async () => {
                    await api('POST', `/v1/deployments/${d.id}/rollback`, {});
                    reload();
                  }}
                />
              )}
            </td>
          </tr>
        ))}
      </Table>
      {shown && <DeployLog id={shown} />}
    </Section>
  );
}

export function Service({ id, tab = '' }) {
  const [state] = useApi(`/v1/services/${id}`);
  const s = state.data;
  const panels = { releases: Releases, logs: RuntimeLogs, env: Env, volumes: Volumes, webhooks: Webhooks, domains: Domains };
  const Panel = panels[tab];
  return (
    <main id="main">
      <p class="crumbs">
        <a href="#/">Projects</a> / {s && <ProjectLink id={s.project_id} />} /
      </p>
      <h1>{s ? s.name : 'Service'}</h1>
      {state.error && <Alert error={state.error} />}
      {s && (
        <>
          <nav class="tabs" aria-label="Service">
            {TABS.map(([t, name]) => (
              <a key={t} href={`#/s/${id}${t ? `/${t}` : ''}`} aria-current={t === tab ? 'page' : undefined}>
                {name}
              </a>
            ))}
          </nav>
          {Panel ? <Panel service={s} /> : <Overview service={s} />}
        </>
      )}
    </main>
  );
}
