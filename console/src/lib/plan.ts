// Lays out a query's plan graph in layers (sources on top, the sink at the bottom) and
// splits node labels into a heading and details. Pure; PlanGraph draws it.

import type { PlanEdge, PlanNode } from '../api/types';

/** Layers of node ids: a node sits one below the lowest of its inputs. */
export function layers(nodes: PlanNode[], edges: PlanEdge[]): PlanNode[][] {
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const inputs = new Map<number, number[]>();
  for (const e of edges) {
    if (!byId.has(e.from) || !byId.has(e.to)) continue;
    inputs.set(e.to, [...(inputs.get(e.to) ?? []), e.from]);
  }
  const depth = new Map<number, number>();
  const visiting = new Set<number>();
  const depthOf = (id: number): number => {
    const known = depth.get(id);
    if (known !== undefined) return known;
    if (visiting.has(id)) return 0; // A cycle would be a server bug; do not loop on it.
    visiting.add(id);
    const d = Math.max(-1, ...(inputs.get(id) ?? []).map(depthOf)) + 1;
    visiting.delete(id);
    depth.set(id, d);
    return d;
  };
  const out: PlanNode[][] = [];
  for (const n of nodes) (out[depthOf(n.id)] ??= []).push(n);
  return out.filter(Boolean);
}

/** `Aggregate: group by [...]` → heading `Aggregate`, detail `group by [...]`. */
export function splitLabel(node: PlanNode): { heading: string; detail: string } {
  const label = node.label ?? '';
  const colon = label.indexOf(': ');
  if (colon > 0 && colon < 32) return { heading: label.slice(0, colon), detail: label.slice(colon + 2) };
  const kind = node.kind ?? 'operator';
  return { heading: kind.charAt(0).toUpperCase() + kind.slice(1), detail: label };
}
