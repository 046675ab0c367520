import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { session } from './api.js';
import { useRoute } from './hooks.js';
import { NewService } from './views/newservice.jsx';
import { Project } from './views/project.jsx';
import { Projects } from './views/projects.jsx';
import { Service } from './views/service.jsx';
import { SignIn } from './views/signin.jsx';

function Page({ route }) {
  const [kind, id, sub] = route;
  if (kind === 'p' && id && sub === 'new') return <NewService project={id} />;
  if (kind === 'p' && id) return <Project id={id} />;
  if (kind === 's' && id) return <Service id={id} tab={sub || ''} />;
  return <Projects />;
}

function App() {
  const [signedIn, setSignedIn] = useState(Boolean(session.token()));
  const route = useRoute();
  useEffect(() => {
    const out = () => setSignedIn(false);
    window.addEventListener('c2d:signed-out', out);
    return () => window.removeEventListener('c2d:signed-out', out);
  }, []);
  return (
    <>
      <a class="skip" href="#main" onClick={(e) => { e.preventDefault(); document.getElementById('main')?.focus(); }}>
        Skip to content
      </a>
      <header>
        <a class="brand" href="#/">
          c2d
        </a>
        {signedIn && (
          <button type="button" class="small" onClick={() => session.signOut()}>
            Sign out
          </button>
        )}
      </header>
      {signedIn ? <Page route={route} /> : <SignIn onSignedIn={() => setSignedIn(true)} />}
    </>
  );
}

// index.html shows a static header until here, so the first paint needs
// only the stylesheet.
const boot = document.getElementById('boot');
if (boot) boot.remove();
render(<App />, document.getElementById('app'));
