import { useEffect, useLayoutEffect, useReducer, useState } from 'preact/hooks';
import { api } from './api.js';

// GET `path` (null: nothing), again every `everyMs` while the page is shown
// (0: once), and on reload(). {data, error, loading}.
export function useApi(path, everyMs = 0) {
  const [state, setState] = useState({ loading: true });
  const [tick, reload] = useReducer((n) => n + 1, 0);
  // A layout effect: the request leaves as soon as the component is in the
  // DOM, not a frame later as useEffect's would.
  useLayoutEffect(() => {
    if (!path) return undefined;
    let live = true;
    api('GET', path).then(
      (data) => live && setState({ data }),
      (error) => live && setState((s) => ({ data: s.data, error })),
    );
    return () => {
      live = false;
    };
  }, [path, tick]);
  useEffect(() => {
    if (!everyMs) return undefined;
    const t = setInterval(() => {
      if (!document.hidden) reload();
    }, everyMs);
    return () => clearInterval(t);
  }, [everyMs]);
  return [state, reload];
}

// The current hash route, e.g. "#/s/svc_123/logs" -> ["s", "svc_123", "logs"].
export function useRoute() {
  const parse = () => location.hash.replace(/^#\/?/, '').split('/').filter(Boolean).map(decodeURIComponent);
  const [route, setRoute] = useState(parse);
  useEffect(() => {
    const on = () => setRoute(parse());
    window.addEventListener('hashchange', on);
    return () => window.removeEventListener('hashchange', on);
  }, []);
  return route;
}
