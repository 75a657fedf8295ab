// Size and first paint of each dashboard page in Debian's Chromium, for
// bench/run_dashboard.py:
//   node measure.mjs --url=http://127.0.0.1:PORT --suite=ID --test=TEST_PAGE_QUERY
// Prints one JSON object: per page, the bytes transferred (document, assets
// and API answers until the page is drawn), first contentful paint and the
// time until its content is drawn, median of --repeat loads.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import puppeteer from 'puppeteer-core';

const args = Object.fromEntries(process.argv.slice(2).map(a => {
  const [k, ...v] = a.replace(/^--/, '').split('=');
  return [k, v.join('=')];
}));
const repeat = Number(args.repeat || 5);
const pages = {
  fleet: { path: '/', ready: 'table tbody tr' },
  suite: { path: `/suites/${args.suite}`, ready: 'canvas.timeline[data-bars]' },
  test: { path: `/tests?${args.test}`, ready: 'svg.chart' },
};

const median = values => values.slice().sort((a, b) => a - b)[Math.floor(values.length / 2)];
// A browser profile of its own, removed at the end.
const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'tf-measure-'));
const browser = await puppeteer.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  userDataDir: profile,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  defaultViewport: { width: 1280, height: 900 },
});
const out = {};
try {
  for (const [name, spec] of Object.entries(pages)) {
    const samples = { bytes: [], first_paint_ms: [], ready_ms: [] };
    for (let i = 0; i < repeat; i++) {
      const page = await browser.newPage();
      const client = await page.createCDPSession();
      await client.send('Network.enable');
      await client.send('Network.setCacheDisabled', { cacheDisabled: true });
      let bytes = 0;
      client.on('Network.loadingFinished', e => { bytes += e.encodedDataLength; });
      const start = Date.now();
      await page.goto(args.url + spec.path, { waitUntil: 'load' });
      await page.waitForSelector(spec.ready, { timeout: 60000 });
      const ready = Date.now() - start;
      const paint = await page.evaluate(() =>
        performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? null);
      samples.bytes.push(bytes);
      samples.first_paint_ms.push(paint);
      samples.ready_ms.push(ready);
      await page.close();
    }
    out[name] = {
      bytes: median(samples.bytes), first_paint_ms: median(samples.first_paint_ms),
      ready_ms: median(samples.ready_ms), samples,
    };
  }
} finally {
  await browser.close();
  fs.rmSync(profile, { recursive: true, force: true });
}
console.log(JSON.stringify(out));
