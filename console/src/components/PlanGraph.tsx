// A query's plan as boxes joined by arrows, top to bottom, with each operator's figures
// when the server reports them. HTML boxes in layers (so text wraps at any width) and SVG
// arrows between the layers.

import type { PlanEdge, PlanNode } from '../api/types';
import { formatBytes, formatInt, formatRate } from '../lib/format';
import { layers, splitLabel } from '../lib/plan';

function figures(n: PlanNode): string[] {
  const out: string[] = [];
  if (n.rows_in !== undefined) out.push(`${formatInt(n.rows_in)} in`);
  if (n.rows_out !== undefined) out.push(`${formatInt(n.rows_out)} out`);
  if (n.rows_per_second !== undefined) out.push(formatRate(n.rows_per_second));
  if (n.late_rows) out.push(`${formatInt(n.late_rows)} late`);
  if (n.parallelism !== undefined && n.parallelism > 1) out.push(`×${n.parallelism} tasks`);
  if (n.state_rows !== undefined || n.state_bytes !== undefined) {
    const parts = [n.state_rows !== undefined ? `${formatInt(n.state_rows)} rows` : '', n.state_bytes !== undefined ? formatBytes(n.state_bytes) : '']
      .filter(Boolean)
      .join(', ');
    out.push(`state ${parts}`);
  }
  return out;
}

export function PlanGraph({ nodes, edges }: { nodes: PlanNode[]; edges: PlanEdge[] }) {
  const rows = layers(nodes, edges);
  const where = new Map<number, { layer: number; x: number }>();
  rows.forEach((row, l) => row.forEach((n, i) => where.set(n.id, { layer: l, x: ((i + 0.5) / row.length) * 100 })));
  return (
    <div class="plan" role="img" aria-label={`Plan with ${nodes.length} operators`} data-nodes={nodes.length}>
      {rows.map((row, l) => (
        <>
          {l > 0 && (
            <svg class="plan-arrows" viewBox="0 0 100 24" preserveAspectRatio="none" aria-hidden="true">
              {edges.flatMap((e) => {
                const a = where.get(e.from);
                const b = where.get(e.to);
                if (!a || !b || a.layer >= l || b.layer < l) return [];
                const x1 = a.layer === l - 1 ? a.x : b.x;
                return [<line x1={x1} y1={0} x2={b.x} y2={b.layer === l ? 20 : 24} />];
              })}
            </svg>
          )}
          {l > 0 && (
            <div class="plan-heads" aria-hidden="true">
              {row.map((n) => (
                <span class="plan-head-slot">
                  {edges.some((e) => e.to === n.id && (where.get(e.from)?.layer ?? l) < l) && <span class="plan-head" />}
                </span>
              ))}
            </div>
          )}
          <div class="plan-layer">
            {row.map((n) => {
              const { heading, detail } = splitLabel(n);
              const figs = figures(n);
              return (
                <div class={`plan-node kind-${(n.kind ?? '').replace(/[^a-z]/gi, '')}`} data-inputs={edges.filter((e) => e.to === n.id).length}>
                  <div class="plan-heading">{heading}</div>
                  {detail && <div class="plan-detail">{detail}</div>}
                  {figs.length > 0 && <div class="plan-figures">{figs.join(' · ')}</div>}
                </div>
              );
            })}
          </div>
        </>
      ))}
    </div>
  );
}
