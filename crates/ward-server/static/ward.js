// Ward pages: the WebAuthn calls (passkey sign-in, registration, step-up, recovery, approvals)
// and small helpers.
// Loaded from this origin only (no inline script is allowed by the page's CSP).
'use strict';

(function () {
  const csrf = () => {
    const meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : '';
  };

  // A deployment with several organisations names one in its portal links (?org=NAME); the
  // passkey calls of a page nobody is signed in to yet carry it on (its forms and links get it
  // from the server, so they work without this script).
  const org = new URLSearchParams(window.location.search).get('org');
  const withOrg = (url) => (org
    ? `${url}${url.includes('?') ? '&' : '?'}org=${encodeURIComponent(org)}`
    : url);

  const b64uToBuf = (s) => Uint8Array.from(
    atob(s.replace(/-/g, '+').replace(/_/g, '/') + '==='.slice((s.length + 3) % 4)),
    (c) => c.charCodeAt(0)).buffer;
  const bufToB64u = (b) => btoa(String.fromCharCode(...new Uint8Array(b)))
    .replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');

  function creationOptions(json) {
    if (PublicKeyCredential.parseCreationOptionsFromJSON) {
      return PublicKeyCredential.parseCreationOptionsFromJSON(json);
    }
    const o = structuredClone(json);
    o.challenge = b64uToBuf(o.challenge);
    o.user.id = b64uToBuf(o.user.id);
    (o.excludeCredentials || []).forEach((c) => { c.id = b64uToBuf(c.id); });
    return o;
  }

  function requestOptions(json) {
    if (PublicKeyCredential.parseRequestOptionsFromJSON) {
      return PublicKeyCredential.parseRequestOptionsFromJSON(json);
    }
    const o = structuredClone(json);
    o.challenge = b64uToBuf(o.challenge);
    (o.allowCredentials || []).forEach((c) => { c.id = b64uToBuf(c.id); });
    return o;
  }

  function credentialJSON(cred) {
    if (cred.toJSON) return cred.toJSON();
    const r = cred.response;
    const out = { id: cred.id, rawId: bufToB64u(cred.rawId), type: cred.type,
      extensions: cred.getClientExtensionResults(), response: {} };
    out.response.clientDataJSON = bufToB64u(r.clientDataJSON);
    if (r.attestationObject) {
      out.response.attestationObject = bufToB64u(r.attestationObject);
      out.response.transports = r.getTransports ? r.getTransports() : [];
    } else {
      out.response.authenticatorData = bufToB64u(r.authenticatorData);
      out.response.signature = bufToB64u(r.signature);
      if (r.userHandle) out.response.userHandle = bufToB64u(r.userHandle);
    }
    return out;
  }

  async function post(url, body) {
    const response = await fetch(url, {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': csrf() },
      body: JSON.stringify(body || {}),
    });
    let data = {};
    try { data = await response.json(); } catch (_) { /* not JSON */ }
    if (!response.ok) {
      throw new Error(data.error || 'Something went wrong (' + response.status + '). Try again.');
    }
    return data;
  }

  function statusOf(el) {
    const scope = el.closest('section, form') || document;
    return scope.querySelector('[data-status]');
  }

  function show(el, text, isError) {
    const box = statusOf(el);
    if (!box) return;
    box.hidden = false;
    box.textContent = text;
    box.classList.toggle('error', !!isError);
  }

  function explain(err) {
    if (err && err.name === 'NotAllowedError') {
      return 'The request was cancelled or timed out. Try again when you are ready.';
    }
    if (err && err.name === 'InvalidStateError') {
      return 'This authenticator is already registered to your account.';
    }
    if (err && err.name === 'SecurityError') {
      return 'Passkeys only work on this site\'s own address. Check the address bar.';
    }
    return (err && err.message) || 'Something went wrong. Try again.';
  }

  async function withBusy(button, work) {
    if (!window.PublicKeyCredential) {
      show(button, 'This browser does not support passkeys. Use an up-to-date browser.', true);
      return;
    }
    button.disabled = true;
    try {
      await work();
    } catch (err) {
      show(button, explain(err), true);
    } finally {
      button.disabled = false;
    }
  }

  async function signIn(button) {
    show(button, 'Follow the prompt from your device…');
    const start = await post(withOrg('/portal/api/sign-in/start'));
    const cred = await navigator.credentials.get({ publicKey: requestOptions(start.options.publicKey) });
    const done = await post(withOrg('/portal/api/sign-in/finish'), { ceremony: start.ceremony, credential: credentialJSON(cred) });
    window.location.assign(done.redirect || '/portal');
  }

  async function register(form, button) {
    show(button, 'Follow the prompt from your device…');
    const name = (form.querySelector('[name="name"]') || {}).value || 'Passkey';
    const start = await post('/portal/api/passkeys/start');
    const cred = await navigator.credentials.create({ publicKey: creationOptions(start.options.publicKey) });
    const done = await post('/portal/api/passkeys/finish',
      { ceremony: start.ceremony, credential: credentialJSON(cred), name: name });
    window.location.assign(done.redirect || '/portal');
  }

  async function stepUp(button) {
    show(button, 'Confirm with your passkey…');
    const start = await post('/portal/api/step-up/start');
    const cred = await navigator.credentials.get({ publicKey: requestOptions(start.options.publicKey) });
    await post('/portal/api/step-up/finish', { ceremony: start.ceremony, credential: credentialJSON(cred) });
    const next = button.getAttribute('data-next');
    if (next && next.startsWith('/portal')) {
      window.location.assign(next);
    } else {
      window.location.reload();
    }
  }

  // The hosted prompt: the sealed context travels with every call.
  const promptContext = () => {
    const section = document.querySelector('[data-prompt]');
    return section ? section.dataset.context : '';
  };

  async function promptPasskey(button) {
    show(button, 'Follow the prompt from your device…');
    const context = promptContext();
    const start = await post('/prompt/api/passkey/start', { context });
    const cred = await navigator.credentials.get({ publicKey: requestOptions(start.options.publicKey) });
    const done = await post('/prompt/api/passkey/finish',
      { context, ceremony: start.ceremony, credential: credentialJSON(cred) });
    window.location.assign(done.redirect);
  }

  async function promptEnrol(button) {
    show(button, 'Follow the prompt from your device…');
    const context = promptContext();
    const start = await post('/prompt/api/enrol/start', { context });
    const cred = await navigator.credentials.create({ publicKey: creationOptions(start.options.publicKey) });
    const done = await post('/prompt/api/enrol/finish',
      { context, ceremony: start.ceremony, credential: credentialJSON(cred) });
    window.location.assign(done.redirect);
  }

  const sleep = (ms) => new Promise((resolve) => { setTimeout(resolve, ms); });

  async function promptPush(button) {
    button.disabled = true;
    try {
      const context = promptContext();
      const started = await post('/prompt/api/push/start', { context });
      if (started.redirect) {
        window.location.assign(started.redirect);
        return;
      }
      const panel = document.querySelector('[data-push-panel]');
      document.querySelector('[data-push-number]').textContent = started.number;
      panel.hidden = false;
      show(button, 'Waiting for your answer in the Ward app…');
      for (;;) {
        await sleep(1000);
        const status = await post('/prompt/api/push/status', { context, txid: started.txid });
        if (status.redirect) {
          window.location.assign(status.redirect);
          return;
        }
      }
    } catch (err) {
      show(button, explain(err), true);
      button.disabled = false;
    }
  }

  // Account recovery: set up a new passkey with the case's one-time token, then sign in with it
  // once to finish. The token stays in this page's memory so a cancelled prompt can be retried.
  let recoveryToken = null;

  async function recoveryEnrol(button) {
    show(button, 'Follow the prompt from your device…');
    if (!recoveryToken) {
      recoveryToken = (await post('/recovery/api/token')).token;
    }
    const token = recoveryToken;
    let start;
    try {
      start = await post('/recovery/api/enrol/start', { token });
    } catch (err) {
      recoveryToken = null;
      throw err;
    }
    const cred = await navigator.credentials.create({ publicKey: creationOptions(start.options.publicKey) });
    await post('/recovery/api/enrol/finish',
      { token, ceremony: start.ceremony, credential: credentialJSON(cred) });
    window.location.reload();
  }

  async function recoveryConfirm(button) {
    show(button, 'Sign in with the passkey you just set up…');
    const start = await post('/recovery/api/confirm/start');
    const cred = await navigator.credentials.get({ publicKey: requestOptions(start.options.publicKey) });
    const done = await post('/recovery/api/confirm/finish',
      { ceremony: start.ceremony, credential: credentialJSON(cred) });
    const list = document.querySelector('[data-codes]');
    (done.codes || []).forEach((code) => {
      const item = document.createElement('li');
      const text = document.createElement('code');
      text.textContent = code;
      item.appendChild(text);
      list.appendChild(item);
    });
    document.querySelectorAll('[data-confirm-intro], [data-status]').forEach((el) => { el.hidden = true; });
    button.hidden = true;
    document.querySelector('[data-codes-panel]').hidden = false;
  }

  // Approving a colleague's recovery with one's own passkey.
  async function approve(button) {
    show(button, 'Confirm with your passkey…');
    const base = '/portal/api/approvals/' + encodeURIComponent(button.dataset.case);
    const start = await post(base + '/start');
    const cred = await navigator.credentials.get({ publicKey: requestOptions(start.options.publicKey) });
    await post(base + '/finish', { ceremony: start.ceremony, credential: credentialJSON(cred) });
    window.location.reload();
  }

  // The helpdesk console: the caller verification's result, polled until it is decided.
  async function pollVerification(el) {
    const url = '/helpdesk/api/verify/' + encodeURIComponent(el.dataset.txid);
    for (let i = 0; i < 150; i += 1) {
      await sleep(2000);
      let data;
      try {
        const response = await fetch(url, { credentials: 'same-origin' });
        data = await response.json();
        if (!response.ok) throw new Error(data.error || 'The result could not be read.');
      } catch (err) {
        el.textContent = (err && err.message) || 'The result could not be read. Reload the page.';
        el.dataset.state = 'denied';
        return;
      }
      el.textContent = data.message;
      el.dataset.state = data.status;
      if (data.status !== 'pending') return;
    }
  }

  document.addEventListener('DOMContentLoaded', () => {
    document.querySelectorAll('[data-prompt-passkey]').forEach((b) => {
      b.addEventListener('click', () => withBusy(b, () => promptPasskey(b)));
    });
    document.querySelectorAll('[data-prompt-enrol]').forEach((b) => {
      b.addEventListener('click', () => withBusy(b, () => promptEnrol(b)));
    });
    document.querySelectorAll('[data-prompt-push]').forEach((b) => {
      b.addEventListener('click', () => promptPush(b));
    });
    document.querySelectorAll('[data-passkey-signin]').forEach((b) => {
      b.addEventListener('click', () => withBusy(b, () => signIn(b)));
    });
    document.querySelectorAll('form[data-passkey-register]').forEach((f) => {
      f.addEventListener('submit', (e) => {
        e.preventDefault();
        const b = f.querySelector('button[type="submit"]');
        withBusy(b, () => register(f, b));
      });
    });
    document.querySelectorAll('[data-step-up]').forEach((b) => {
      b.addEventListener('click', () => withBusy(b, () => stepUp(b)));
    });
    document.querySelectorAll('[data-recovery-enrol]').forEach((b) => {
      b.addEventListener('click', () => withBusy(b, () => recoveryEnrol(b)));
    });
    document.querySelectorAll('[data-recovery-confirm]').forEach((b) => {
      b.addEventListener('click', () => withBusy(b, () => recoveryConfirm(b)));
    });
    document.querySelectorAll('[data-approve]').forEach((b) => {
      b.addEventListener('click', () => withBusy(b, () => approve(b)));
    });
    document.querySelectorAll('[data-verify-status][data-txid]').forEach((el) => {
      pollVerification(el);
    });
    document.querySelectorAll('form[data-confirm]').forEach((f) => {
      f.addEventListener('submit', (e) => {
        const question = f.getAttribute('data-confirm');
        if (question && !window.confirm(question)) e.preventDefault();
      });
    });
    document.querySelectorAll('[data-copy-codes]').forEach((b) => {
      b.addEventListener('click', async () => {
        const codes = Array.from(document.querySelectorAll('[data-codes] code')).map((c) => c.textContent);
        try {
          await navigator.clipboard.writeText(codes.join('\n'));
          b.textContent = 'Copied';
        } catch (_) {
          b.textContent = 'Copy failed: select the codes instead';
        }
      });
    });
  });
}());
