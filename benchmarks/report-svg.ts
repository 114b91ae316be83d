// Inline SVG charts for the benchmark report: a line chart (throughput against channels) and a
// grouped bar chart (CPU %, ours against QEMU). Plain strings, no library and no script, so the
// page stays one self-contained file. Every plotted point or bar carries class "mark", which the
// browser test counts.

/** One line or one bar series. */
export interface Series {
  readonly name: string;
  readonly color: string;
  /** Drawn dashed (QEMU's series). */
  readonly dashed?: boolean;
  /** One value per x label (line chart) or per group (bar chart); null = not measured. */
  readonly values: ReadonlyArray<number | null>;
}

/** A chart: its title, the x labels (channels or groups), the y axis label and the series. */
export interface ChartSpec {
  readonly title: string;
  readonly xLabels: readonly string[];
  readonly yLabel: string;
  readonly series: readonly Series[];
}

const WIDTH = 640;
const HEIGHT = 320;
const PAD = { left: 64, right: 160, top: 34, bottom: 46 };
const PLOT_W = WIDTH - PAD.left - PAD.right;
const PLOT_H = HEIGHT - PAD.top - PAD.bottom;

/** Colours that stay apart for the six methods and their QEMU twins. */
export const PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf'];

/** `&`, `<`, `>` and quotes escaped for HTML text and attributes. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** Lines over equally spaced x labels (channel counts double, so their spacing is logarithmic). */
export function lineChart(spec: ChartSpec): string {
  const max = niceMax(spec.series.flatMap((s) => s.values));
  const x = (i: number) => PAD.left + (spec.xLabels.length === 1 ? PLOT_W / 2 : (i * PLOT_W) / (spec.xLabels.length - 1));
  const y = (v: number) => PAD.top + PLOT_H - (v / max) * PLOT_H;
  const body = spec.series.map((s) => {
    const points = s.values.flatMap((v, i) => (v === null ? [] : [[x(i), y(v)] as const]));
    const path = points.length > 1 ? `<polyline fill="none" stroke="${s.color}" stroke-width="2.5"${s.dashed ? ' stroke-dasharray="7 4"' : ''} points="${points.map(([px, py]) => `${px.toFixed(1)},${py.toFixed(1)}`).join(' ')}"/>` : '';
    const marks = points.map(([px, py]) => `<circle class="mark" cx="${px.toFixed(1)}" cy="${py.toFixed(1)}" r="4" fill="${s.color}"/>`).join('');
    return path + marks;
  });
  return frame(spec, max, spec.xLabels.map((label, i) => [label, x(i)]), body.join(''));
}

/** Bars grouped by x label, one bar per series in each group. */
export function barChart(spec: ChartSpec): string {
  const max = niceMax(spec.series.flatMap((s) => s.values));
  const groupW = PLOT_W / spec.xLabels.length;
  const barW = Math.max(2, (groupW * 0.8) / spec.series.length);
  const bars = spec.series.flatMap((s, si) =>
    s.values.flatMap((v, gi) => {
      if (v === null) return [];
      const h = (v / max) * PLOT_H;
      const bx = PAD.left + gi * groupW + groupW * 0.1 + si * barW;
      return [`<rect class="mark" x="${bx.toFixed(1)}" y="${(PAD.top + PLOT_H - h).toFixed(1)}" width="${(barW - 1).toFixed(1)}" height="${Math.max(h, 1).toFixed(1)}" fill="${s.color}"${s.dashed ? ' fill-opacity="0.55" stroke="#333" stroke-dasharray="3 2"' : ''}><title>${escapeHtml(`${s.name}, ${spec.xLabels[gi]}: ${format(v)}`)}</title></rect>`];
    }),
  );
  return frame(spec, max, spec.xLabels.map((label, i) => [label, PAD.left + (i + 0.5) * groupW]), bars.join(''));
}

/** Axes, grid, labels and legend around the plotted body. */
function frame(spec: ChartSpec, max: number, ticks: ReadonlyArray<readonly [string, number]>, body: string): string {
  const grid = [0, 0.25, 0.5, 0.75, 1].map((f) => {
    const gy = PAD.top + PLOT_H - f * PLOT_H;
    return `<line x1="${PAD.left}" x2="${PAD.left + PLOT_W}" y1="${gy}" y2="${gy}" stroke="#ddd"/><text x="${PAD.left - 6}" y="${gy + 4}" text-anchor="end">${format(f * max)}</text>`;
  });
  // Many labels (a group per method and channel count) would run into each other: slant them.
  const slant = ticks.length > 6;
  const ty = PAD.top + PLOT_H + (slant ? 12 : 18);
  const xTicks = ticks.map(([label, tx]) =>
    slant
      ? `<text x="${tx.toFixed(1)}" y="${ty}" text-anchor="end" font-size="10" transform="rotate(-30 ${tx.toFixed(1)} ${ty})">${escapeHtml(label)}</text>`
      : `<text x="${tx.toFixed(1)}" y="${ty}" text-anchor="middle">${escapeHtml(label)}</text>`,
  );
  const legend = spec.series.map(
    (s, i) =>
      `<g transform="translate(${PAD.left + PLOT_W + 14},${PAD.top + i * 18})"><line x1="0" x2="18" y1="6" y2="6" stroke="${s.color}" stroke-width="3"${s.dashed ? ' stroke-dasharray="5 3"' : ''}/><text x="24" y="10">${escapeHtml(s.name)}</text></g>`,
  );
  return (
    `<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${WIDTH} ${HEIGHT}" width="${WIDTH}" height="${HEIGHT}" role="img" aria-label="${escapeHtml(spec.title)}">` +
    `<text class="title" x="${PAD.left}" y="20">${escapeHtml(spec.title)}</text>` +
    grid.join('') +
    `<line x1="${PAD.left}" x2="${PAD.left}" y1="${PAD.top}" y2="${PAD.top + PLOT_H}" stroke="#333"/>` +
    `<line x1="${PAD.left}" x2="${PAD.left + PLOT_W}" y1="${PAD.top + PLOT_H}" y2="${PAD.top + PLOT_H}" stroke="#333"/>` +
    xTicks.join('') +
    `<text x="14" y="${PAD.top + PLOT_H / 2}" transform="rotate(-90 14 ${PAD.top + PLOT_H / 2})" text-anchor="middle">${escapeHtml(spec.yLabel)}</text>` +
    body +
    legend.join('') +
    `</svg>`
  );
}

/** A round axis maximum at or above every value (1 when nothing was measured). */
function niceMax(values: ReadonlyArray<number | null>): number {
  const max = Math.max(0, ...values.filter((v): v is number => v !== null));
  if (max <= 0) return 1;
  const step = 10 ** Math.floor(Math.log10(max));
  return [1, 2, 2.5, 5, 10].map((m) => m * step).find((m) => m >= max)!;
}

function format(value: number): string {
  if (value >= 1000) return `${+(value / 1000).toFixed(1)}k`;
  return value >= 10 ? value.toFixed(0) : +value.toFixed(2) + '';
}
