// test_apid_docs.js BASE_URL STATION_ID STATION_NAME: the /docs page in
// headless Chromium, driven through chromedriver's WebDriver HTTP API (node's
// fetch; Debian's chromium and chromium-driver, installed by `make deps`).
// Loads BASE_URL/docs, waits for Swagger UI to render the operations of
// /openapi.json, opens GET /stations/{stationId}, presses "Try it out",
// types STATION_ID into the parameter box, presses Execute and checks the
// answer the page shows: status 200 and a body naming STATION_NAME.
// Exits 0 when all of it worked; otherwise prints what failed and exits 1.
// Run by test_apid_docs.c, which starts the stores and apid.
'use strict';

const { spawn } = require('child_process');
const net = require('net');
const fs = require('fs');
const os = require('os');
const path = require('path');

const [base, stationId, stationName] = process.argv.slice(2);
if (!base || !stationId || !stationName) {
	console.error('usage: test_apid_docs.js BASE_URL STATION_ID STATION_NAME');
	process.exit(64);
}
const CHROMEDRIVER = process.env.CHROMEDRIVER || '/usr/bin/chromedriver';
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const STEP_MS = 30000; // each wait; the whole run is bounded by the caller too

function freePort() {
	return new Promise((resolve, reject) => {
		const srv = net.createServer();
		srv.on('error', reject);
		srv.listen(0, '127.0.0.1', () => {
			const { port } = srv.address();
			srv.close(() => resolve(port));
		});
	});
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

let driverUrl;
let driverLog = '';
async function wd(method, url, body) {
	const res = await fetch(driverUrl + url, {
		method,
		headers: { 'Content-Type': 'application/json' },
		body: body === undefined ? undefined : JSON.stringify(body),
	});
	const json = await res.json();
	if (!res.ok)
		throw new Error(`${method} ${url}: ${res.status} ${JSON.stringify(json.value)}`);
	return json.value;
}

// Poll until fn returns a truthy value (exceptions count as "not yet").
async function until(what, fn) {
	const deadline = Date.now() + STEP_MS;
	let last;
	for (;;) {
		try {
			const v = await fn();
			if (v)
				return v;
		} catch (e) {
			last = e;
		}
		if (Date.now() > deadline)
			throw new Error(`timed out waiting for ${what}${last ? ': ' + last.message : ''}`);
		await sleep(200);
	}
}

const ELEMENT = 'element-6066-11e4-a52e-4f735466cecf'; // W3C WebDriver's element key

async function main() {
	const port = await freePort();
	driverUrl = `http://127.0.0.1:${port}`;
	const profile = fs.mkdtempSync(path.join(process.env.TEST_TMPDIR || os.tmpdir(), 'chromium-'));
	const driver = spawn(CHROMEDRIVER, [`--port=${port}`], { stdio: ['ignore', 'pipe', 'pipe'] });
	driver.stdout.on('data', (d) => (driverLog += d));
	driver.stderr.on('data', (d) => (driverLog += d));
	const exited = new Promise((r) => driver.on('exit', r));
	let session;
	try {
		await until('chromedriver', async () => (await wd('GET', '/status')).ready);
		const created = await wd('POST', '/session', {
			capabilities: {
				alwaysMatch: {
					'goog:chromeOptions': {
						binary: CHROMIUM,
						args: ['--headless=new', '--no-sandbox', '--disable-gpu',
							'--disable-dev-shm-usage', '--no-first-run',
							`--user-data-dir=${profile}`, '--window-size=1280,2000'],
					},
				},
			},
		});
		session = `/session/${created.sessionId}`;
		const find = async (css) => (await wd('POST', `${session}/element`,
			{ using: 'css selector', value: css }))[ELEMENT];
		const text = async (el) => wd('GET', `${session}/element/${el}/text`);
		const click = async (el) => wd('POST', `${session}/element/${el}/click`, {});

		await wd('POST', `${session}/url`, { url: `${base}/docs` });
		// Swagger UI rendered the document: its title and every operation
		const title = await until('the API title', async () => text(await find('.info .title')));
		const ops = await until('the operations', async () => {
			const list = await wd('POST', `${session}/elements`,
				{ using: 'css selector', value: '.opblock' });
			return list.length >= 10 ? list.length : 0;
		});
		console.log(`page: "${title.split('\n')[0]}", ${ops} operations`);

		// GET /stations/{stationId}: open, Try it out, type the id, Execute
		const op = '#operations-default-station';
		await click(await until('the station operation',
			() => find(`${op} .opblock-summary-control, ${op} .opblock-summary`)));
		await click(await until('"Try it out"', () => find(`${op} .try-out__btn`)));
		const box = await until('the stationId box',
			() => find(`${op} input[placeholder="stationId"]`));
		await wd('POST', `${session}/element/${box}/value`, { text: stationId });
		await click(await until('"Execute"', () => find(`${op} .execute`)));

		// the answer as the page shows it
		const status = await until('the response status', async () =>
			text(await find(`${op} .live-responses-table .response .response-col_status`)));
		const body = await until('the response body', async () =>
			text(await find(`${op} .live-responses-table .response-col_description pre`)));
		console.log(`response shown: status ${status.trim()}, body ${JSON.stringify(body.slice(0, 300))}`);
		let ok = true;
		if (status.trim() !== '200') {
			console.log(`FAIL: expected status 200, the page shows ${status}`);
			ok = false;
		}
		if (!body.includes(`"stationId": "${stationId}"`) || !body.includes(stationName)) {
			console.log(`FAIL: the body shown lacks the station ${stationId} ${stationName}`);
			ok = false;
		}
		return ok;
	} finally {
		if (session)
			await wd('DELETE', session).catch(() => {});
		driver.kill('SIGTERM');
		await Promise.race([exited, sleep(5000)]);
		fs.rmSync(profile, { recursive: true, force: true });
	}
}

main().then(
	(ok) => process.exit(ok ? 0 : 1),
	(e) => {
		console.log(`FAIL: ${e.message}`);
		if (driverLog)
			console.log(`chromedriver's output:\n${driverLog.slice(-2000)}`);
		process.exit(1);
	},
);
