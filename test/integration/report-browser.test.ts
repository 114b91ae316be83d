// The benchmark report in a real headless Chromium (Debian's /usr/bin/chromium, driven by
// playwright-core, which never downloads a browser of its own): every SVG chart is laid out
// with a non-zero box and its plotted marks, and a screenshot of the charts holds many colours
// rather than a blank or failed render. Skipped, with the reason, without /usr/bin/chromium.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext } from 'playwright-core';
import * as assert from 'uvu/assert';
import { suite } from 'uvu';
import { writeReport } from '../../benchmarks/report-html.js';
import { seedResults } from '../helpers/seed-results.js';

const CHROMIUM = '/usr/bin/chromium';
const test = suite('bench report in headless Chromium');
const reason = existsSync(CHROMIUM) ? undefined : `${CHROMIUM} is not installed (apt-get install chromium)`;
if (reason) console.log(`  skipped: ${reason}`);
const register = reason ? test.skip : test;
let dir = '';
let context: BrowserContext;

test.before(async () => {
  if (reason) return;
  dir = mkdtempSync(join(tmpdir(), 'multifd-report-'));
  // A fresh profile each run; no network, no updates, no GPU: nothing reaches outside.
  context = await chromium.launchPersistentContext(join(dir, 'profile'), {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: { width: 1400, height: 900 },
  });
});

test.after(async () => {
  await context?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

register('every chart renders with a non-zero box and its marks, and the screenshot is colourful', async () => {
  const page = await context.newPage();
  const file = writeReport(join(dir, 'report.html'), { seeds: { file: 'seeds-fixture.json', results: seedResults() }, others: [] });
  await page.goto(`file://${file}`);
  const charts = await page.$$eval('svg.chart', (svgs) =>
    svgs.map((svg) => {
      const box = svg.getBoundingClientRect();
      const marks = Array.from(svg.querySelectorAll('.mark')).map((mark) => (mark as SVGGraphicsElement).getBBox());
      return { width: box.width, height: box.height, marks: marks.length, visibleMarks: marks.filter((m) => m.width > 0 && m.height > 0).length };
    }),
  );
  assert.is(charts.length, 7, 'two throughput charts, one CPU chart, a total-time and a CPU chart per data set');
  for (const chart of charts) {
    assert.ok(chart.width > 300 && chart.height > 150, `chart box ${chart.width}×${chart.height}`);
    assert.ok(chart.marks > 0 && chart.visibleMarks === chart.marks, `${chart.visibleMarks} of ${chart.marks} marks visible`);
  }

  const region = page.locator('.charts');
  const png = await region.screenshot();
  assert.ok(png.byteLength > 20_000, `screenshot of ${png.byteLength} bytes`);
  // The browser decodes its own screenshot into a canvas and counts the colours.
  const colours = await page.evaluate(async (base64) => {
    const image = new Image();
    image.src = `data:image/png;base64,${base64}`;
    await image.decode();
    const canvas = document.createElement('canvas');
    canvas.width = image.width;
    canvas.height = image.height;
    const context2d = canvas.getContext('2d')!;
    context2d.drawImage(image, 0, 0);
    const pixels = context2d.getImageData(0, 0, image.width, image.height).data;
    const seen = new Set<number>();
    for (let i = 0; i < pixels.length; i += 4) seen.add((pixels[i]! << 16) | (pixels[i + 1]! << 8) | pixels[i + 2]!);
    return seen.size;
  }, png.toString('base64'));
  assert.ok(colours >= 50, `${colours} distinct colours in the charts`);
  await page.close();
});

test.run();
