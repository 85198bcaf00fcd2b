// Entry point: asks the server who we are (GET /v1/auth/me), then mounts the console,
// or the login page when the server requires a token and there is no session. A 401
// from any later request (the session ended) brings the login page back.

import { render } from 'preact';
import { App } from './app';
import { Login } from './Login';
import { UNAUTHORIZED_EVENT, type Me } from './api/client';
import './styles.css';

const root = document.getElementById('app')!;

async function whoAmI(): Promise<Me | undefined> {
  try {
    const response = await fetch('/v1/auth/me', { headers: { Accept: 'application/json' } });
    return response.ok ? ((await response.json()) as Me) : undefined;
  } catch {
    return undefined; // The app shows "cannot reach the server" on its first request.
  }
}

window.addEventListener(UNAUTHORIZED_EVENT, (e) => {
  render(<Login reason={(e as CustomEvent<string>).detail} />, root);
});

void whoAmI().then((me) => {
  if (me?.auth_required && !me.authenticated) {
    render(<Login />, root);
  } else {
    render(<App me={me} />, root);
  }
});
