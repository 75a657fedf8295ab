// Drives Debian's Chromium (headless, through puppeteer-core; no browser is
// downloaded) over the dashboard while a suite runs. Called by
// integration_tests/dashboard_test.cc, which starts the coordinator and a
// worker and holds the suite's later tests until this script opens the gate.
//
//   node dashboard.mjs --url=http://127.0.0.1:PORT --suite=ID --gate=FILE
//        --screens=DIR [--token=TOKEN] [--runs=N]
//
// Prints one JSON line of measurements; exits 1 with the reason on a failure.
import fs from 'node:fs';
import path from 'node:path';
import puppeteer from 'puppeteer-core';

const args = Object.fromEntries(process.argv.slice(2).map(a => {
  const [k, ...v] = a.replace(/^--/, '').split('=');
  return [k, v.join('=')];
}));
const base = args.url;
const timeout = 60000;
const measured = {};

function check(condition, message) {
  if (!condition) throw new Error(message);
}

async function firstPaint(page) {
  return page.evaluate(() => {
    const paint = performance.getEntriesByName('first-contentful-paint')[0];
    return paint ? paint.startTime : null;
  });
}

const browser = await puppeteer.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  userDataDir: fs.mkdtempSync(path.join(args.screens, 'profile-')),
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--window-size=1280,900'],
  defaultViewport: { width: 1280, height: 900 },
});
let status = 0;
try {
  const page = await browser.newPage();
  page.setDefaultTimeout(timeout);
  const pageErrors = [];
  page.on('pageerror', e => pageErrors.push(e.message));

  if (args.token) {
    await page.goto(`${base}/`, { waitUntil: 'domcontentloaded' });
    check(page.url().includes('/login'), `without a login the dashboard showed ${page.url()}`);
    await page.type('#token', args.token);
    await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
    check(!page.url().includes('/login'), 'the token was refused at the login page');
  }

  // The fleet page lists the running suite.
  await page.goto(`${base}/`, { waitUntil: 'load' });
  await page.waitForSelector(`tr[data-suite="${args.suite}"]`);
  measured.fleet_first_paint_ms = await firstPaint(page);
  await page.screenshot({ path: path.join(args.screens, 'fleet.png') });

  // The suite page: no reload from here on.
  let navigations = 0;
  await page.goto(`${base}/suites/${args.suite}`, { waitUntil: 'load' });
  page.on('framenavigated', frame => { if (frame === page.mainFrame()) navigations++; });
  await page.waitForSelector('[data-count="done"] b');
  measured.suite_first_paint_ms = await firstPaint(page);
  const doneText = () => page.$eval('[data-count="done"] b', el => el.textContent);
  const doneBefore = await doneText();
  check((await page.$$('.failure')).length === 0, 'a failure was shown before any test failed');
  fs.writeFileSync(args.gate, 'open\n');  // the held tests run now
  await page.waitForFunction(before => {
    const el = document.querySelector('[data-count="done"] b');
    return el && el.textContent !== before;
  }, {}, doneBefore);
  await page.waitForSelector('.failure pre');
  const failureText = await page.$eval('.failure pre', el => el.textContent);
  check(failureText.includes('boom'), `the failure shows "${failureText}", not its stderr`);
  // When the first failure came, counted from the submission.
  await page.waitForSelector('[data-count="first failure after"] b', { timeout });
  await page.waitForFunction(() => Number(document.querySelector('canvas.timeline')?.dataset.bars) > 0);
  measured.timeline_bars = await page.$eval('canvas.timeline', el => Number(el.dataset.bars));
  check(navigations === 0, `the suite page reloaded ${navigations} times`);
  // The suite ended: its HTML report shows, drawn before the screenshot.
  const report = await (await page.waitForSelector('iframe.report', { timeout })).contentFrame();
  await report.waitForSelector('h1');
  measured.done_after = await doneText();
  await page.screenshot({ path: path.join(args.screens, 'suite.png'), fullPage: true });

  // A click on the failing test leads to its page, one chart point per run.
  const failedTest = await page.$eval('.failure', el => el.dataset.test);
  await Promise.all([page.waitForNavigation(), page.click('.failure b a')]);
  check(page.url().includes('/tests?'), `the click led to ${page.url()}`);
  await page.waitForSelector('svg.chart');
  measured.test_first_paint_ms = await firstPaint(page);
  const api = await page.evaluate(async () => {
    const response = await fetch('/api/tests' + location.search);
    return response.json();
  });
  const points = await page.$$eval('svg.chart', charts => charts.map(c => c.querySelectorAll('circle.point').length));
  measured.chart_points = points;
  measured.history_runs = api.history.runs.length;
  check(points.every(n => n === api.history.runs.length), `charts have ${points} points for ${api.history.runs.length} runs`);
  if (args.runs) check(api.history.runs.length === Number(args.runs), `${api.history.runs.length} runs in history, not ${args.runs}`);
  check(api.test_id === failedTest, `the test page shows ${api.test_id}, not ${failedTest}`);
  await page.screenshot({ path: path.join(args.screens, 'test.png'), fullPage: true });

  check(pageErrors.length === 0, `script errors on the pages: ${pageErrors.join('; ')}`);
  console.log(JSON.stringify(measured));
} catch (error) {
  console.error(`browser test failed: ${error.message}`);
  status = 1;
} finally {
  await browser.close();
}
process.exit(status);
