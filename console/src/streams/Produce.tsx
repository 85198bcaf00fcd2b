// A small form to produce test records: NDJSON POSTed to /v1/streams/{name}/records,
// prefilled with an example row built from the schema. Shows the server's answer, or its
// error (which names the bad row and column).

import { useState } from 'preact/hooks';
import { ApiError, api } from '../api/client';
import type { IngestResult, Stream } from '../api/types';
import { ErrorBox } from '../components/common';
import { exampleNdjson } from '../lib/sample';

function acceptedText(r: IngestResult): string {
  const where = r.partitions
    .map((p) => (p.first_offset === p.last_offset ? `partition ${p.partition} offset ${p.first_offset}` : `partition ${p.partition} offsets ${p.first_offset}–${p.last_offset}`))
    .join(', ');
  return `Accepted ${r.accepted} ${r.accepted === 1 ? 'record' : 'records'}${where ? ` → ${where}` : ''}.`;
}

export function Produce({ stream, onProduced }: { stream: Stream; onProduced?: () => void }) {
  const [text, setText] = useState(() => exampleNdjson(stream.columns));
  const [busy, setBusy] = useState(false);
  const [result, setResult] = useState<IngestResult | null>(null);
  const [error, setError] = useState<unknown>(null);

  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setResult(null);
    setError(null);
    try {
      setResult(await api.ingest(stream.name, text.trim() + '\n'));
      onProduced?.();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  const row = error instanceof ApiError ? error.body.row : undefined;

  return (
    <form class="produce" onSubmit={submit}>
      <label for="produce-text">
        One JSON object per line. All lines are written, or none.
      </label>
      <textarea
        id="produce-text"
        class="mono"
        rows={4}
        spellcheck={false}
        value={text}
        onInput={(e) => setText((e.target as HTMLTextAreaElement).value)}
        onKeyDown={(e) => {
          if ((e.ctrlKey || e.metaKey) && e.key === 'Enter') void submit(e);
        }}
      />
      <div class="form-row">
        <button type="submit" class="btn primary" disabled={busy || !text.trim()}>
          {busy ? 'Sending…' : 'Produce'}
        </button>
        <button type="button" class="btn" onClick={() => setText(exampleNdjson(stream.columns))}>
          Reset example
        </button>
        {result && <span class="ok-text" role="status">{acceptedText(result)}</span>}
      </div>
      <ErrorBox error={error} title={row !== undefined ? "Nothing was written:" : undefined} />
    </form>
  );
}
