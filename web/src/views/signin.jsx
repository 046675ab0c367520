import { api, session } from '../api.js';
import { Field, Form } from '../ui.jsx';

export function SignIn({ onSignedIn }) {
  const submit = async (data) => {
    const token = String(data.get('token') || '').trim();
    if (!token) throw Object.assign(new Error('Enter an API token.'), { field: 'token' });
    session.signIn(token);
    try {
      await api('GET', '/v1/projects?page_size=1');
    } catch (e) {
      session.signOut();
      throw Object.assign(e, { field: 'token' });
    }
    onSignedIn();
  };
  return (
    <main id="main" class="narrow">
      <h1>Sign in to c2d</h1>
      <p>
        Paste an API token: <code>c2d-admin token</code> makes one for an operator, and{' '}
        <code>c2d login</code> keeps yours in <code>~/.config/c2d</code>. It stays in this tab only
        (sessionStorage) and goes to the API in a header, never in a URL.
      </p>
      <Form submit={submit} label="Sign in">
        {(error) => <Field label="API token" name="token" type="password" autocomplete="off" required error={error} />}
      </Form>
    </main>
  );
}
