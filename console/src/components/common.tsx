// Small pieces every page uses: error boxes, figures, empty states, a two-step button.

import type { ComponentChildren } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { ApiError, messageOf } from '../api/client';

/** An error from the API (or anything thrown), as a calm red box. */
export function ErrorBox({ error, title }: { error: unknown; title?: string }) {
  if (!error) return null;
  const api = error instanceof ApiError ? error : null;
  return (
    <div class="error-box" role="alert">
      {title && <strong>{title} </strong>}
      <span class="error-message">{messageOf(error)}</span>
      {api && api.code && !api.code.startsWith('http_') && <span class="error-code">{api.code}</span>}
    </div>
  );
}

/** A labelled figure. */
export function Stat({ label, value, title }: { label: string; value: ComponentChildren; title?: string }) {
  return (
    <div class="stat" title={title}>
      <div class="stat-label">{label}</div>
      <div class="stat-value">{value}</div>
    </div>
  );
}

export function Empty({ children }: { children: ComponentChildren }) {
  return <div class="empty">{children}</div>;
}

export function Loading({ what = 'Loading' }: { what?: string }) {
  return <div class="loading" aria-live="polite">{what}…</div>;
}

/** The heading row of a page: a title, a kicker above it and actions on the right. */
export function PageHeader({
  kicker,
  title,
  children,
}: {
  kicker?: ComponentChildren;
  title: ComponentChildren;
  children?: ComponentChildren;
}) {
  return (
    <header class="page-header">
      <div>
        {kicker && <div class="kicker">{kicker}</div>}
        <h1>{title}</h1>
      </div>
      {children && <div class="actions">{children}</div>}
    </header>
  );
}

/**
 * A button for destructive actions: the first click asks ("Click again to confirm"), the
 * second acts. Resets after a few seconds.
 */
export function ConfirmButton({
  label,
  confirm,
  onConfirm,
  class: cls = '',
}: {
  label: string;
  confirm: string;
  onConfirm: () => void | Promise<void>;
  class?: string;
}) {
  const [armed, setArmed] = useState(false);
  const [busy, setBusy] = useState(false);
  useEffect(() => {
    if (!armed) return;
    const t = setTimeout(() => setArmed(false), 4000);
    return () => clearTimeout(t);
  }, [armed]);
  return (
    <button
      type="button"
      class={`btn danger ${armed ? 'armed' : ''} ${cls}`}
      disabled={busy}
      onClick={async () => {
        if (!armed) return setArmed(true);
        setBusy(true);
        try {
          await onConfirm();
        } finally {
          setBusy(false);
          setArmed(false);
        }
      }}
    >
      {armed ? confirm : label}
    </button>
  );
}

/** A status word as a coloured badge. */
export function Badge({ children, tone = 'neutral' }: { children: ComponentChildren; tone?: 'neutral' | 'good' | 'warn' | 'bad' | 'accent' }) {
  return <span class={`badge ${tone}`}>{children}</span>;
}

export function statusTone(status: string | undefined): 'good' | 'warn' | 'bad' | 'neutral' {
  if (!status) return 'neutral';
  if (/running|live/i.test(status)) return 'good';
  if (/fail|error/i.test(status)) return 'bad';
  if (/stop|paus|start|catch/i.test(status)) return 'warn';
  return 'neutral';
}
