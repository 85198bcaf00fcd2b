// The login page, shown when the server requires a token (GET /v1/auth/me says so) and
// the browser has no session. Logging in posts the token once; the server answers
// with an HttpOnly session cookie, so no script of the page keeps the token.

import { useState } from 'preact/hooks';
import { errorFrom } from './api/client';

export function Login({ reason }: { reason?: string }) {
  const [token, setToken] = useState('');
  const [error, setError] = useState<string | undefined>(reason);
  const [busy, setBusy] = useState(false);

  async function submit(e: Event) {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      const response = await fetch('/v1/auth/login', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
        body: JSON.stringify({ token: token.trim() }),
      });
      if (!response.ok) throw await errorFrom(response);
      location.reload();
    } catch (err) {
      setError(err instanceof Error ? err.message : String(err));
      setBusy(false);
    }
  }

  return (
    <main id="main" class="login" data-page="login">
      <form class="card login-card" onSubmit={submit} aria-labelledby="login-title">
        <h1 id="login-title">Log in to Weir</h1>
        <p class="lede">This server requires a token. Ask its operator for one, or use the token it was started with.</p>
        <label class="field">
          <span class="field-label">Token</span>
          <input
            type="password"
            name="token"
            autocomplete="current-password"
            value={token}
            onInput={(e) => setToken((e.target as HTMLInputElement).value)}
            required
            autofocus
          />
        </label>
        {error && (
          <div class="error-box" role="alert">
            {error}
          </div>
        )}
        <div class="form-row">
          <button class="btn primary" type="submit" disabled={busy || !token.trim()}>
            {busy ? 'Logging in…' : 'Log in'}
          </button>
        </div>
      </form>
    </main>
  );
}
