import { api } from '../api.js';
import { useApi } from '../hooks.js';
import { Action, Badge, Field, Form, Section, Select, Table, when } from '../ui.jsx';

// The newest release's state, for the services list.
function ReleaseState({ service }) {
  const [state] = useApi(`/v1/services/${service}/deployments?page_size=1`, 5000);
  const d = state.data && state.data.deployments && state.data.deployments[0];
  return d ? <Badge state={d.state} /> : <span class="muted">not deployed</span>;
}

function Services({ project }) {
  const [state] = useApi(`/v1/projects/${project}/services?page_size=100`);
  const services = (state.data && state.data.services) || [];
  const names = Object.fromEntries(services.map((s) => [s.id, s.name]));
  const actions = (
    <a class="button" href={`#/p/${project}/new`}>
      Create service
    </a>
  );
  return (
    <Section title="Services" state={state} actions={actions}>
      {services.length === 0 ? (
        <p class="muted">No service yet.</p>
      ) : (
        <Table head={['Name', 'Type', 'Release', 'URL']}>
          {services.map((s) => (
            <tr key={s.id}>
              <td>
                <a href={`#/s/${s.id}`}>{s.name}</a>
                {s.preview && (
                  <div class="muted">
                    preview of {names[s.preview.of] || s.preview.of}, pull request #{s.preview.pull_request}
                  </div>
                )}
              </td>
              <td>{s.type}</td>
              <td>
                <ReleaseState service={s.id} />
              </td>
              <td>{s.url ? <a href={s.url}>{s.url}</a> : <span class="muted">none (worker)</span>}</td>
            </tr>
          ))}
        </Table>
      )}
    </Section>
  );
}

function Members({ project }) {
  const [state, reload] = useApi(`/v1/projects/${project}/members`);
  const members = (state.data && state.data.members) || [];
  const add = async (data, form) => {
    await api('POST', `/v1/projects/${project}/members`, { email: data.get('email'), role: data.get('role') });
    form.reset();
    reload();
  };
  return (
    <Section title="Members" state={state}>
      <ul class="rows">
        {members.map((m) => (
          <li key={m.user_id}>
            {m.email} <span class="muted">{m.role}</span>{' '}
            <Action
              label="Remove"
              kind="small danger"
              confirm={`Remove ${m.email} from the project?`}
              run={async () => {
                await api('DELETE', `/v1/projects/${project}/members/${m.user_id}`);
                reload();
              }}
            />
          </li>
        ))}
      </ul>
      <Form submit={add} label="Add member" class="inline-form">
        {(error) => [
          <Field key="e" label="Email" name="email" type="email" error={error} />,
          <Select key="r" label="Role" name="role" options={['viewer', 'developer', 'admin', 'owner']} error={error} />,
        ]}
      </Form>
    </Section>
  );
}

function Backups({ database }) {
  const [state, reload] = useApi(`/v1/databases/${database}/backups?page_size=10`, 10000);
  const backups = (state.data && state.data.backups) || [];
  return (
    <div>
      <Action
        label="Back up now"
        kind="small"
        run={async () => {
          await api('POST', `/v1/databases/${database}/backups`, {});
          reload();
        }}
      />
      <ul class="rows">
        {backups.map((b) => (
          <li key={b.id}>
            {when(b.created_at)} {b.kind} <Badge state={b.state} /> {b.size_bytes ? `${b.size_bytes} bytes` : ''}
          </li>
        ))}
      </ul>
    </div>
  );
}

function Databases({ project }) {
  const [state, reload] = useApi(`/v1/projects/${project}/databases?page_size=50`, 10000);
  const databases = (state.data && state.data.databases) || [];
  const create = async (data, form) => {
    await api('POST', `/v1/projects/${project}/databases`, { name: data.get('name'), engine: data.get('engine') });
    form.reset();
    reload();
  };
  return (
    <Section title="Databases" state={state}>
      <ul class="rows">
        {databases.map((d) => (
          <li key={d.id}>
            <strong>{d.name}</strong> {d.engine} <Badge state={d.state} />
            <details>
              <summary>Backups</summary>
              <Backups database={d.id} />
            </details>
          </li>
        ))}
      </ul>
      <Form submit={create} label="Create database" class="inline-form">
        {(error) => [
          <Field key="n" label="Name" name="name" error={error} />,
          <Select key="e" label="Engine" name="engine" options={['postgres', 'mariadb', 'redis']} error={error} />,
        ]}
      </Form>
    </Section>
  );
}

export function Project({ id }) {
  const [state] = useApi(`/v1/projects/${id}`);
  return (
    <main id="main">
      <p class="crumbs">
        <a href="#/">Projects</a> /
      </p>
      <h1>{state.data ? state.data.name : 'Project'}</h1>
      {state.error && <p class="alert" role="alert">{state.error.message}</p>}
      {state.data && [<Services key="s" project={id} />, <Databases key="d" project={id} />, <Members key="m" project={id} />]}
    </main>
  );
}
