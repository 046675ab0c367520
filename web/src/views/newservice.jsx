import { api } from '../api.js';
import { Field, Form, ProjectLink, Select } from '../ui.jsx';

// The form's values as the API's ServiceInput: blank fields left out, so the
// API's defaults apply; numbers sent as numbers (a non-number is sent as
// typed, and the API says what is wrong with it).
function serviceInput(data) {
  const text = (k) => String(data.get(k) || '').trim();
  const number = (k) => {
    const v = text(k);
    return v === '' ? undefined : /^-?\d+$/.test(v) ? Number(v) : v;
  };
  const prune = (o) => {
    const out = {};
    for (const [k, v] of Object.entries(o)) {
      if (v !== undefined && v !== '' && !(typeof v === 'object' && Object.keys(v).length === 0)) out[k] = v;
    }
    return out;
  };
  const type = text('type') || 'web';
  return prune({
    name: text('name'),
    type,
    auto_deploy: data.get('auto_deploy') === 'on',
    source: prune({ repo_url: text('source.repo_url'), branch: text('source.branch'), root_dir: text('source.root_dir') }),
    build: prune({ strategy: text('build.strategy'), dockerfile_path: text('build.dockerfile_path') }),
    run: prune({
      start_command: text('run.start_command'),
      port: type === 'web' ? number('run.port') : undefined,
      instance_count: number('run.instance_count'),
      memory_mb: number('run.memory_mb'),
    }),
    health_check: type === 'web' ? prune({ path: text('health_check.path') }) : undefined,
  });
}

export function NewService({ project }) {
  const submit = async (data) => {
    const s = await api('POST', `/v1/projects/${project}/services`, serviceInput(data));
    location.hash = `#/s/${s.id}`;
  };
  return (
    <main id="main" class="narrow">
      <p class="crumbs">
        <a href="#/">Projects</a> / <ProjectLink id={project} /> /
      </p>
      <h1>Create service</h1>
      <Form submit={submit} label="Create service">
        {(error) => (
          <>
            <Field label="Name" name="name" hint="lower-case letters, digits and hyphens; part of its URL" error={error} />
            <Field label="Repository URL" name="source.repo_url" hint="https://…, or a path under the platform's repository root" error={error} />
            <Field label="Branch" name="source.branch" placeholder="main" error={error} />
            <Field label="Root directory" name="source.root_dir" placeholder="/" error={error} />
            <Select label="Type" name="type" options={[['web', 'web (serves HTTP)'], ['worker', 'worker (no URL)']]} error={error} />
            <Field label="Port the app listens on" name="run.port" inputMode="numeric" placeholder="8080" error={error} />
            <Field label="Instances" name="run.instance_count" inputMode="numeric" placeholder="1" error={error} />
            <Field label="Memory (MB)" name="run.memory_mb" inputMode="numeric" placeholder="512" error={error} />
            <Field label="Start command" name="run.start_command" hint="blank: the image's own" error={error} />
            <Select label="Build" name="build.strategy" options={[['auto', 'auto-detect (a Dockerfile if there is one)'], ['dockerfile', 'Dockerfile']]} error={error} />
            <Field label="Dockerfile path" name="build.dockerfile_path" placeholder="Dockerfile" error={error} />
            <Field label="Health check path" name="health_check.path" placeholder="/" error={error} />
            <div class="field check">
              <input id="f-auto_deploy" name="auto_deploy" type="checkbox" defaultChecked />
              <label for="f-auto_deploy">Deploy on every push (with a webhook)</label>
            </div>
          </>
        )}
      </Form>
    </main>
  );
}
