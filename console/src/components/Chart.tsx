// A time-series chart (line, area or bar) drawn by uPlot from ChartData. Resizes with its
// container; times are shown in UTC, as Weir stores them. The container carries
// `data-points` (the number of values drawn) so tests and people can see it change.

import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { xStep, yRange, type ChartData } from '../lib/chart';

export type ChartKind = 'line' | 'area' | 'bar';

/** Series colours: the accent first, then calm companions. */
const PALETTE = ['#0b6e69', '#5b6fd6', '#d08a2e', '#b04a6f', '#6a8f3a', '#7a5cc2', '#2f8fbf', '#8a7a5a'];

function options(data: ChartData, kind: ChartKind, width: number, height: number): uPlot.Options {
  const bars = uPlot.paths.bars?.({ size: [0.6, 48] });
  return {
    width,
    height,
    tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), 'Etc/UTC'),
    scales: {
      x: {
        time: data.time,
        // Bars are centred on their x: leave half a bar of room at each end.
        range:
          kind === 'bar'
            ? (u, min, max) => {
                const half = xStep(u.data[0]) / 2;
                return [min - half, max + half];
              }
            : undefined,
      },
      y: { range: (_u, min, max) => yRange(min, max) },
    },
    legend: { show: data.series.length > 0 },
    cursor: { drag: { x: false, y: false } },
    axes: [
      { stroke: '#5d6670', grid: { stroke: '#eceef0' }, ticks: { stroke: '#d8dce0' } },
      { stroke: '#5d6670', grid: { stroke: '#eceef0' }, ticks: { stroke: '#d8dce0' }, size: 56 },
    ],
    series: [
      { label: data.time ? 'time (UTC)' : 'row' },
      ...data.series.map((s, i) => {
        const color = PALETTE[i % PALETTE.length];
        return {
          label: s.label,
          stroke: color,
          width: 2,
          spanGaps: true,
          points: { show: kind !== 'bar' && data.xs.length < 40, size: 5 },
          fill: kind === 'area' ? color + '33' : kind === 'bar' ? color + 'cc' : undefined,
          paths: kind === 'bar' ? bars : undefined,
        } satisfies uPlot.Series;
      }),
    ],
  };
}

export function Chart({ data, kind, height = 220 }: { data: ChartData; kind: ChartKind; height?: number }) {
  const host = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const shape = useRef('');

  useEffect(() => {
    const el = host.current!;
    const aligned = [data.xs, ...data.series.map((s) => s.values)] as uPlot.AlignedData;
    const width = Math.max(el.clientWidth, 200);
    // Same series and kind: only the data changed, so keep the plot (and its cursor).
    const key = `${kind}|${data.time}|${data.series.map((s) => s.label).join('\u0000')}`;
    if (plot.current && shape.current === key) {
      plot.current.setData(aligned);
    } else {
      plot.current?.destroy();
      plot.current = new uPlot(options(data, kind, width, height), aligned, el);
      shape.current = key;
    }
  }, [data, kind, height]);

  useEffect(() => {
    const el = host.current!;
    const observer = new ResizeObserver(() => {
      const width = Math.max(el.clientWidth, 200);
      if (plot.current && Math.abs(plot.current.width - width) > 1) plot.current.setSize({ width, height });
    });
    observer.observe(el);
    return () => {
      observer.disconnect();
      plot.current?.destroy();
      plot.current = null;
    };
  }, [height]);

  const points = data.series.reduce((n, s) => n + s.values.filter((v) => v !== null).length, 0);
  return <div class="chart" ref={host} data-points={points} data-series={data.series.length} />;
}
