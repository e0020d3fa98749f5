// A browser bridge for Ward's end-to-end tests (tests/compat/browser.py starts it).
//
// It drives Debian's Chromium (never a downloaded browser) through playwright-core and speaks
// JSON lines: one request per line on stdin, `{"id": N, "op": "...", ...args}`, and exactly one
// response per request on stdout, `{"id": N, "ok": true, "result": ...}` or
// `{"id": N, "ok": false, "error": "message"}`. Requests are handled one at a time, in order.
// Logs go to stderr only: stdout carries nothing but responses.
//
// One browser per process; each `newPage` is a fresh, isolated browser context (its own cookies
// and storage) with one page in it. WebAuthn ceremonies use a CDP virtual authenticator, which
// must be added before the page navigates to the relying party.
//
// Environment: WARD_CHROMIUM (default /usr/bin/chromium), WARD_BROWSER_DEBUG=1 (log each op).

import { createInterface } from 'node:readline';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { chromium } from 'playwright-core';

const EXECUTABLE = process.env.WARD_CHROMIUM || '/usr/bin/chromium';
const DEBUG = process.env.WARD_BROWSER_DEBUG === '1';
const DEFAULT_TIMEOUT_MS = 10_000;
const LAUNCH_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--no-first-run',
];
const AUTHENTICATOR_DEFAULTS = {
  protocol: 'ctap2',
  transport: 'internal',
  hasResidentKey: true,
  hasUserVerification: true,
  isUserVerified: true,
  automaticPresenceSimulation: true,
};
const MAX_ERROR_CHARS = 4000;
const MAX_URL_CHARS = 200;
// `() => ...`, `x => ...`, `async (a) => ...`, `function (a) {...}`: called with `arg`.
const FUNCTION_SOURCE = /^\s*(async\s+)?(function\b|\([^)]*\)\s*=>|[A-Za-z_$][\w$]*\s*=>)/;
// Playwright colours its call logs.
const ANSI = /\u001b\[[0-9;]*m/g;

// Nothing but responses may reach stdout.
console.log = console.info = console.debug = (...args) => console.error(...args);

const log = (...args) => console.error('[driver]', ...args);

let browser = null;
let nextPageId = 1;
const pages = new Map();

class BridgeError extends Error {}

async function getBrowser() {
  if (!browser) {
    browser = await chromium.launch({
      executablePath: EXECUTABLE,
      headless: true,
      args: LAUNCH_ARGS,
      timeout: 30_000,
    });
    const launched = browser;
    launched.on('disconnected', () => {
      log('the browser disconnected');
      // Its pages are gone; the next newPage launches a new browser.
      if (browser === launched) {
        browser = null;
        pages.clear();
      }
    });
  }
  return browser;
}

function required(args, name) {
  const value = args[name];
  if (value === undefined || value === null) {
    throw new BridgeError(`missing argument "${name}"`);
  }
  return value;
}

function pageState(args) {
  const id = required(args, 'page');
  const state = pages.get(id);
  if (!state) {
    throw new BridgeError(`no open page with id ${JSON.stringify(id)}`);
  }
  return state;
}

function timeoutOf(args) {
  return args.timeout ?? DEFAULT_TIMEOUT_MS;
}

function locatorOf(state, args) {
  return state.page.locator(required(args, 'selector'));
}

// One CDP session per page, created on first use; the WebAuthn domain is enabled with it.
async function webauthn(state) {
  if (!state.cdp) {
    state.cdp = await state.context.newCDPSession(state.page);
    await state.cdp.send('WebAuthn.enable', { enableUI: false });
  }
  return state.cdp;
}

function urlMatcher(args) {
  if (args.regex !== undefined && args.regex !== null) {
    return new RegExp(args.regex, args.flags || '');
  }
  return required(args, 'url');
}

async function newPage(args) {
  const b = await getBrowser();
  const options = { ignoreHTTPSErrors: true };
  if (args.viewport) options.viewport = args.viewport;
  if (args.locale) options.locale = args.locale;
  if (args.userAgent) options.userAgent = args.userAgent;
  if (args.colorScheme) options.colorScheme = args.colorScheme;
  if (args.javaScriptEnabled === false) options.javaScriptEnabled = false;
  const context = await b.newContext(options);
  context.setDefaultTimeout(DEFAULT_TIMEOUT_MS);
  context.setDefaultNavigationTimeout(DEFAULT_TIMEOUT_MS);
  const page = await context.newPage();
  const id = `p${nextPageId++}`;
  const state = { id, context, page, cdp: null, errors: [], lastResponse: null };
  // Chromium reports CSP violations ("Refused to ...") as console errors.
  page.on('console', (message) => {
    if (message.type() === 'error') {
      const { url, lineNumber } = message.location();
      state.errors.push({ kind: 'console', text: message.text(), url: url || null, line: lineNumber ?? null });
    }
  });
  page.on('pageerror', (error) => {
    state.errors.push({ kind: 'pageerror', text: String(error.stack || error.message || error), url: page.url(), line: null });
  });
  page.on('response', (response) => {
    const request = response.request();
    if (request.isNavigationRequest() && response.frame() === page.mainFrame()) {
      state.lastResponse = response;
    }
  });
  pages.set(id, state);
  return id;
}

async function closeState(state) {
  pages.delete(state.id);
  await state.context.close().catch((error) => log(`closing ${state.id}:`, error.message));
}

async function cookieList(state, args) {
  const urls = args.urls ?? (args.url ? [args.url] : undefined);
  const cookies = await state.context.cookies(urls);
  return cookies.map((c) => ({
    name: c.name,
    value: c.value,
    domain: c.domain,
    path: c.path,
    expires: c.expires,
    httpOnly: c.httpOnly,
    secure: c.secure,
    sameSite: c.sameSite,
  }));
}

const OPS = {
  async ping() {
    const b = await getBrowser();
    return { version: b.version(), executable: EXECUTABLE };
  },

  newPage,

  async closePage(args) {
    await closeState(pageState(args));
    return null;
  },

  // -- WebAuthn virtual authenticators ------------------------------------------------------

  async addAuthenticator(args) {
    const cdp = await webauthn(pageState(args));
    const options = { ...AUTHENTICATOR_DEFAULTS, ...(args.options || {}) };
    const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', { options });
    return authenticatorId;
  },

  async removeAuthenticator(args) {
    const cdp = await webauthn(pageState(args));
    await cdp.send('WebAuthn.removeVirtualAuthenticator', { authenticatorId: required(args, 'authenticatorId') });
    return null;
  },

  async credentials(args) {
    const cdp = await webauthn(pageState(args));
    const { credentials } = await cdp.send('WebAuthn.getCredentials', {
      authenticatorId: required(args, 'authenticatorId'),
    });
    return credentials;
  },

  async removeCredential(args) {
    const cdp = await webauthn(pageState(args));
    await cdp.send('WebAuthn.removeCredential', {
      authenticatorId: required(args, 'authenticatorId'),
      credentialId: required(args, 'credentialId'),
    });
    return null;
  },

  async setUserVerified(args) {
    const cdp = await webauthn(pageState(args));
    await cdp.send('WebAuthn.setUserVerified', {
      authenticatorId: required(args, 'authenticatorId'),
      isUserVerified: Boolean(required(args, 'isUserVerified')),
    });
    return null;
  },

  async setPresenceSimulation(args) {
    const cdp = await webauthn(pageState(args));
    await cdp.send('WebAuthn.setAutomaticPresenceSimulation', {
      authenticatorId: required(args, 'authenticatorId'),
      enabled: Boolean(required(args, 'enabled')),
    });
    return null;
  },

  // Any other Chrome DevTools Protocol call on the page's session (an escape hatch).
  async cdp(args) {
    const cdp = await webauthn(pageState(args));
    return await cdp.send(required(args, 'method'), args.params || {});
  },

  // -- Navigation -----------------------------------------------------------------------------

  async goto(args) {
    const { page } = pageState(args);
    const url = required(args, 'url');
    const response = await page.goto(url, { timeout: timeoutOf(args), waitUntil: args.waitUntil || 'load' });
    return { url: page.url(), status: response ? response.status() : null };
  },

  async reload(args) {
    const { page } = pageState(args);
    const response = await page.reload({ timeout: timeoutOf(args), waitUntil: args.waitUntil || 'load' });
    return { url: page.url(), status: response ? response.status() : null };
  },

  async url(args) {
    return pageState(args).page.url();
  },

  async waitForUrl(args) {
    const { page } = pageState(args);
    await page.waitForURL(urlMatcher(args), { timeout: timeoutOf(args), waitUntil: args.waitUntil || 'load' });
    return page.url();
  },

  async waitForLoadState(args) {
    const { page } = pageState(args);
    await page.waitForLoadState(args.state || 'load', { timeout: timeoutOf(args) });
    return null;
  },

  async responseHeaders(args) {
    const { lastResponse } = pageState(args);
    if (!lastResponse) {
      throw new BridgeError('no main-frame navigation response yet');
    }
    return { url: lastResponse.url(), status: lastResponse.status(), headers: await lastResponse.allHeaders() };
  },

  // -- Actions -------------------------------------------------------------------------------

  async click(args) {
    const state = pageState(args);
    const options = { timeout: timeoutOf(args) };
    if (args.force) options.force = true;
    if (args.button) options.button = args.button;
    await locatorOf(state, args).click(options);
    return null;
  },

  async fill(args) {
    const state = pageState(args);
    await locatorOf(state, args).fill(String(required(args, 'value')), { timeout: timeoutOf(args) });
    return null;
  },

  async press(args) {
    const state = pageState(args);
    const key = required(args, 'key');
    if (args.selector) {
      await locatorOf(state, args).press(key, { timeout: timeoutOf(args) });
    } else {
      await state.page.keyboard.press(key);
    }
    return null;
  },

  async check(args) {
    const state = pageState(args);
    await locatorOf(state, args).setChecked(args.checked ?? true, { timeout: timeoutOf(args) });
    return null;
  },

  async selectOption(args) {
    const state = pageState(args);
    return await locatorOf(state, args).selectOption(required(args, 'values'), { timeout: timeoutOf(args) });
  },

  // -- Reading the page ------------------------------------------------------------------------

  async text(args) {
    const state = pageState(args);
    return await locatorOf(state, args).innerText({ timeout: timeoutOf(args) });
  },

  async texts(args) {
    return await locatorOf(pageState(args), args).allInnerTexts();
  },

  async attr(args) {
    const state = pageState(args);
    return await locatorOf(state, args).getAttribute(required(args, 'name'), { timeout: timeoutOf(args) });
  },

  async count(args) {
    return await locatorOf(pageState(args), args).count();
  },

  async value(args) {
    const state = pageState(args);
    return await locatorOf(state, args).inputValue({ timeout: timeoutOf(args) });
  },

  async content(args) {
    return await pageState(args).page.content();
  },

  async waitFor(args) {
    const state = pageState(args);
    await locatorOf(state, args).first().waitFor({ state: args.state || 'visible', timeout: timeoutOf(args) });
    return null;
  },

  // A JavaScript expression, or a function source called with `arg`; promises are awaited.
  async evaluate(args) {
    const { page } = pageState(args);
    const expression = required(args, 'expression');
    if (FUNCTION_SOURCE.test(expression)) {
      // Playwright serialises a real function back to source and calls it with `arg` in the page.
      const fn = new Function(`return (${expression});`)();
      return await page.evaluate(fn, args.arg);
    }
    return await page.evaluate(expression);
  },

  async screenshot(args) {
    const { page } = pageState(args);
    const path = required(args, 'path');
    mkdirSync(dirname(path), { recursive: true });
    await page.screenshot({ path, fullPage: args.fullPage ?? true, timeout: timeoutOf(args) });
    return path;
  },

  async cookies(args) {
    return await cookieList(pageState(args), args);
  },

  async consoleErrors(args) {
    const state = pageState(args);
    const errors = state.errors.slice();
    if (args.clear) state.errors.length = 0;
    return errors;
  },
};

function shorten(url) {
  return url.length > MAX_URL_CHARS ? `${url.slice(0, MAX_URL_CHARS)}…` : url;
}

function describe(request) {
  const parts = [request.op];
  if (request.selector !== undefined) parts.push(`selector=${JSON.stringify(request.selector)}`);
  if (request.url !== undefined) parts.push(`url=${JSON.stringify(shorten(String(request.url)))}`);
  if (request.regex !== undefined) parts.push(`regex=${JSON.stringify(request.regex)}`);
  const state = typeof request.page === 'string' ? pages.get(request.page) : undefined;
  if (state && !state.page.isClosed()) parts.push(`on ${shorten(state.page.url())}`);
  return parts.join(' ');
}

function errorMessage(request, error) {
  const message = error instanceof BridgeError ? error.message : String(error && error.message ? error.message : error);
  const full = `${describe(request)}: ${message.replace(ANSI, '').trimEnd()}`;
  return full.length > MAX_ERROR_CHARS ? `${full.slice(0, MAX_ERROR_CHARS)}…` : full;
}

function respond(response) {
  process.stdout.write(`${JSON.stringify(response)}\n`);
}

async function shutdown(code) {
  for (const state of [...pages.values()]) {
    await closeState(state);
  }
  if (browser) {
    await browser.close().catch((error) => log('closing the browser:', error.message));
    browser = null;
  }
  process.exitCode = code;
}

async function handle(line) {
  let request;
  try {
    request = JSON.parse(line);
  } catch (error) {
    respond({ id: null, ok: false, error: `request is not JSON: ${error.message}` });
    return false;
  }
  const id = request && request.id !== undefined ? request.id : null;
  if (DEBUG) log('->', line.length > 500 ? `${line.slice(0, 500)}…` : line);
  if (!request || typeof request.op !== 'string') {
    respond({ id, ok: false, error: 'request has no "op"' });
    return false;
  }
  if (request.op === 'close') {
    await shutdown(0);
    respond({ id, ok: true, result: null });
    return true;
  }
  const op = Object.hasOwn(OPS, request.op) ? OPS[request.op] : undefined;
  if (!op) {
    respond({ id, ok: false, error: `unknown op "${request.op}"; known: ${Object.keys(OPS).join(', ')}, close` });
    return false;
  }
  try {
    const result = await op(request);
    respond({ id, ok: true, result: result === undefined ? null : result });
  } catch (error) {
    const message = errorMessage(request, error);
    if (DEBUG) log('<- error:', message);
    respond({ id, ok: false, error: message });
  }
  return false;
}

async function main() {
  const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
  for await (const line of lines) {
    if (!line.trim()) continue;
    if (await handle(line)) {
      lines.close();
      return;
    }
  }
  // stdin closed without "close": the test process went away.
  await shutdown(0);
}

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    shutdown(1).finally(() => process.exit(1));
  });
}

main().catch((error) => {
  log('fatal:', error && error.stack ? error.stack : error);
  shutdown(2).finally(() => process.exit(2));
});
