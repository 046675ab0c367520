import { api } from '../api.js';
import { useApi } from '../hooks.js';
import { Field, Form, Section } from '../ui.jsx';

export function Projects() {
  const [state, reload] = useApi('/v1/projects?page_size=100');
  const create = async (data, form) => {
    const p = await api('POST', '/v1/projects', { name: data.get('name') });
    form.reset();
    reload();
    location.hash = `#/p/${p.id}`;
  };
  const projects = (state.data && state.data.projects) || [];
  return (
    <main id="main">
      <h1>Projects</h1>
      <Section title="Your projects" state={state}>
        {projects.length === 0 ? (
          <p class="muted">No project yet: make one below.</p>
        ) : (
          <ul class="cards">
            {projects.map((p) => (
              <li key={p.id}>
                <a href={`#/p/${p.id}`}>{p.name}</a> <span class="muted">{p.role}</span>
              </li>
            ))}
          </ul>
        )}
      </Section>
      <Section title="New project">
        <Form submit={create} label="Create project" class="inline-form">
          {(error) => <Field label="Name" name="name" hint="lower-case letters, digits and hyphens" error={error} />}
        </Form>
      </Section>
    </main>
  );
}
