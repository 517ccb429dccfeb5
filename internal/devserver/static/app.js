// The demo frontend: what a fintech's web app does with the backend's API.
// Plain DOM and fetch; every value from the API is set with textContent.
'use strict';

(() => {
  const POLL_MS = 1000;
  const STORAGE_KEY = 'klavi-link-demo';
  const $ = (id) => document.getElementById(id);

  const state = {
    linkId: null,
    linkURL: null,
    timer: null,
    reportCount: -1,
    polling: false,
    eventsTimer: null,
    eventCount: -1,
  };

  // ---- API -----------------------------------------------------------

  class APIError extends Error {
    constructor(code, message, status) {
      super(message);
      this.code = code;
      this.status = status;
    }
  }

  // api calls the backend and returns the decoded JSON body. Failures
  // become APIError with the backend's stable code and message
  // ({"error":{"code","message"}}), or API Gateway's {"message"}.
  async function api(method, path, body) {
    const init = { method, headers: { Accept: 'application/json' } };
    if (body !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let res;
    try {
      res = await fetch(path, init);
    } catch (e) {
      throw new APIError('network_error', 'The backend could not be reached. Is `make run` still running?', 0);
    }
    const text = await res.text();
    let data = null;
    if (text) {
      try { data = JSON.parse(text); } catch (e) { data = null; }
    }
    if (!res.ok) {
      if (data && data.error && data.error.code) {
        throw new APIError(data.error.code, data.error.message || '', res.status);
      }
      const msg = (data && data.message) || res.statusText || 'Request failed';
      throw new APIError('http_' + res.status, msg, res.status);
    }
    return data;
  }

  // call is api for the calls whose answer the page shows as it came:
  // {status, body} on success and on an API error alike.
  async function call(method, path) {
    let res;
    try {
      res = await fetch(path, { method, headers: { Accept: 'application/json' } });
    } catch (e) {
      return { status: 0, body: null };
    }
    const text = await res.text();
    let body = null;
    try { body = text ? JSON.parse(text) : null; } catch (e) { body = text; }
    return { status: res.status, body };
  }

  // ---- messages ------------------------------------------------------

  function showError(err) {
    $('error-code').textContent = err.code || 'error';
    $('error-message').textContent = err.message || 'Something went wrong.';
    $('error').hidden = false;
  }

  function clearError() {
    $('error').hidden = true;
    $('error-code').textContent = '';
    $('error-message').textContent = '';
  }

  function showBanner(text, kind) {
    const b = $('banner');
    b.textContent = text;
    b.className = 'banner' + (kind ? ' ' + kind : '');
    b.hidden = false;
  }

  // ---- tax id input --------------------------------------------------

  // bareTaxId keeps letters and digits, upper-cased: what the backend
  // validates (CPF: 11 digits; CNPJ: 12 alphanumerics and 2 digits).
  function bareTaxId(v) {
    return v.replace(/[^0-9A-Za-z]/g, '').toUpperCase().slice(0, 14);
  }

  function isCNPJ(bare) {
    return bare.length > 11 || /[A-Z]/.test(bare);
  }

  // maskTaxId formats as the user types: 000.000.000-00 or
  // 00.000.000/0000-00.
  function maskTaxId(bare) {
    const parts = isCNPJ(bare)
      ? [[0, 2, ''], [2, 5, '.'], [5, 8, '.'], [8, 12, '/'], [12, 14, '-']]
      : [[0, 3, ''], [3, 6, '.'], [6, 9, '.'], [9, 11, '-']];
    let out = '';
    for (const [from, to, sep] of parts) {
      if (bare.length <= from) break;
      out += sep + bare.slice(from, to);
    }
    return out;
  }

  function updateTaxIdHint() {
    const bare = bareTaxId($('tax-id').value);
    const hint = $('tax-id-hint');
    hint.className = 'hint';
    if (bare.length === 0) {
      hint.textContent = '11 digits for a CPF, 14 characters for a CNPJ, with or without the mask. The backend checks the digits.';
    } else if (!isCNPJ(bare)) {
      hint.textContent = bare.length === 11 ? 'CPF: 11 digits.' : 'CPF: ' + bare.length + ' of 11 digits.';
      if (bare.length === 11) hint.className = 'hint ok';
    } else {
      hint.textContent = bare.length === 14 ? 'CNPJ: 14 characters.' : 'CNPJ: ' + bare.length + ' of 14 characters.';
      if (bare.length === 14) hint.className = 'hint ok';
    }
  }

  // ---- create --------------------------------------------------------

  async function createLink(ev) {
    ev.preventDefault();
    clearError();
    const typed = $('tax-id').value.trim();
    const body = {
      redirectURL: location.origin + '/?returned=1',
      externalInfo: { source: 'local-demo' },
    };
    if (typed !== '') {
      body[isCNPJ(bareTaxId(typed)) ? 'businessTaxId' : 'personalTaxId'] = typed;
    }
    const email = $('email').value.trim();
    const phone = $('phone').value.trim();
    if (email) body.email = email;
    if (phone) body.phone = phone;

    const button = $('create-link');
    button.disabled = true;
    try {
      const link = await api('POST', '/links', body);
      remember({ linkId: link.linkId, linkURL: link.linkURL, expiresAt: link.expiresAt });
      showLink(link.linkId, link.linkURL, link.expiresAt);
      showBanner('Link created. Open the consent page to authorise as the end user would.');
      startPolling();
    } catch (err) {
      showError(err);
    } finally {
      button.disabled = false;
    }
  }

  function showLink(linkId, linkURL, expiresAt) {
    state.linkId = linkId;
    state.linkURL = linkURL || null;
    state.reportCount = -1;
    $('link-id').textContent = linkId;
    const open = $('open-consent');
    if (linkURL) {
      open.href = linkURL;
      open.hidden = false;
    } else {
      open.removeAttribute('href');
      open.hidden = true;
    }
    $('link-expires').textContent = formatTime(expiresAt) || '—';
    $('tax-id-masked').textContent = '—';
    $('step-link').hidden = false;
    $('step-status').hidden = false;
    $('step-events').hidden = false;
    $('lifecycle').hidden = true;
    startEvents();
  }

  function remember(v) {
    try { sessionStorage.setItem(STORAGE_KEY, JSON.stringify(v)); } catch (e) { /* private mode */ }
  }

  function recall() {
    try { return JSON.parse(sessionStorage.getItem(STORAGE_KEY) || 'null'); } catch (e) { return null; }
  }

  function reset() {
    stopPolling();
    stopEvents();
    try { sessionStorage.removeItem(STORAGE_KEY); } catch (e) { /* ignore */ }
    state.linkId = null;
    state.linkURL = null;
    state.reportCount = -1;
    $('step-link').hidden = true;
    $('step-status').hidden = true;
    $('step-events').hidden = true;
    $('lifecycle').hidden = true;
    $('banner').hidden = true;
    clearError();
    for (const id of ['consents', 'report-requests', 'reports', 'events']) {
      $(id).tBodies[0].replaceChildren();
    }
    setStatus('');
    $('tax-id').focus();
  }

  // ---- polling -------------------------------------------------------

  function startPolling() {
    stopPolling();
    state.polling = true;
    poll();
  }

  function stopPolling() {
    state.polling = false;
    if (state.timer) clearTimeout(state.timer);
    state.timer = null;
  }

  async function poll() {
    if (!state.polling || !state.linkId) return;
    const linkId = state.linkId;
    try {
      const view = await api('GET', '/links/' + encodeURIComponent(linkId));
      if (linkId !== state.linkId) return;
      await render(view);
      $('poll-state').textContent = 'updated ' + new Date().toLocaleTimeString();
    } catch (err) {
      // 404: no such link; 410: its data was deleted.
      if (err.status === 404 || err.status === 410) {
        $('banner').hidden = true;
        showError(err);
        stopPolling();
        return;
      }
      $('poll-state').textContent = 'retrying… (' + err.code + ')';
    }
    if (state.polling) state.timer = setTimeout(poll, POLL_MS);
  }

  function setStatus(status) {
    const badge = $('link-status');
    badge.textContent = status;
    badge.dataset.status = status;
  }

  async function render(view) {
    setStatus(view.status);
    $('tax-id-masked').textContent = view.taxIdMasked || '—';

    fillTable('consents', view.consents, (c) => ({
      data: { consentId: c.consentId, status: c.status },
      cells: [code(c.consentId), text(c.institutionCode), badge(c.status), text(formatTime(c.updatedAt))],
    }));
    fillTable('report-requests', view.reportRequests, (r) => ({
      data: { requestId: r.requestId },
      cells: [code(r.requestId), text(r.institutionCode), text((r.products || []).join(', ')), text(formatTime(r.requestedAt))],
    }));
    $('request-reports').disabled = !view.consents.some((c) => c.status === 'AUTHORISED');

    // The link view has no storage keys: fetch them (a local-only route)
    // when the reports change.
    if (view.reports.length !== state.reportCount) {
      const stored = await api('GET', '/dev/links/' + encodeURIComponent(view.linkId) + '/reports');
      const downloads = await Promise.all(stored.reports.map((r) => downloadURL(view.linkId, r.productReportId)));
      state.reportCount = view.reports.length;
      fillTable('reports', stored.reports, (r, i) => ({
        data: { product: r.productName, reportId: r.productReportId },
        cells: [code(r.productName), code(r.productReportId), text(formatBytes(r.bytes), 'num'),
          text(formatTime(r.receivedAt)), link('open', r.href, 'open-report'),
          downloads[i] ? link('download', downloads[i], 'download-report') : text('')],
      }));
    }
  }

  // downloadURL asks the API for a report's download URL (a presigned S3
  // GET in a deployment), as a fintech's frontend does; null when it
  // gives none.
  async function downloadURL(linkId, reportId) {
    try {
      const meta = await api('GET', '/links/' + encodeURIComponent(linkId) + '/reports/' + encodeURIComponent(reportId));
      return meta && typeof meta.url === 'string' ? meta.url : null;
    } catch (e) {
      return null;
    }
  }

  function fillTable(id, items, row) {
    const body = $(id).tBodies[0];
    const rows = (items || []).map((item, i) => {
      const r = row(item, i);
      const tr = document.createElement('tr');
      for (const [k, v] of Object.entries(r.data)) tr.dataset[k] = v || '';
      tr.append(...r.cells);
      return tr;
    });
    body.replaceChildren(...rows);
    const empty = $(id + '-empty');
    if (empty) empty.hidden = rows.length > 0;
  }

  function text(v, cls) {
    const td = document.createElement('td');
    td.textContent = v == null || v === '' ? '—' : String(v);
    if (cls) td.className = cls;
    return td;
  }

  function code(v) {
    const td = document.createElement('td');
    const c = document.createElement('code');
    c.textContent = v || '—';
    td.append(c);
    return td;
  }

  function badge(status) {
    const td = document.createElement('td');
    const b = document.createElement('span');
    b.className = 'badge';
    b.dataset.status = status;
    b.textContent = status;
    td.append(b);
    return td;
  }

  function link(label, href, cls) {
    const td = document.createElement('td');
    const a = document.createElement('a');
    a.textContent = label;
    a.href = href;
    a.target = '_blank';
    a.rel = 'noopener';
    a.className = cls;
    td.append(a);
    return td;
  }

  function formatTime(v) {
    if (!v) return '';
    const d = new Date(v);
    return isNaN(d) || d.getFullYear() < 2000 ? '' : d.toLocaleString();
  }

  function formatBytes(n) {
    if (typeof n !== 'number') return '';
    if (n < 1024) return n + ' B';
    if (n < 1024 * 1024) return (n / 1024).toFixed(1) + ' KB';
    return (n / 1024 / 1024).toFixed(1) + ' MB';
  }

  // ---- manual report request ----------------------------------------

  async function requestReports() {
    if (!state.linkId) return;
    clearError();
    const button = $('request-reports');
    button.disabled = true;
    try {
      const res = await api('POST', '/links/' + encodeURIComponent(state.linkId) + '/reports', {});
      const n = (res.requests || []).length;
      showBanner('Asked Klavi for reports again: ' + n + (n === 1 ? ' request.' : ' requests.'), 'ok');
    } catch (err) {
      showError(err);
    } finally {
      button.disabled = false;
    }
  }

  // ---- revoke and delete ---------------------------------------------

  // lifecycle calls POST /links/{linkId}/revoke or DELETE /links/{linkId}
  // and shows the answer as it came: the 202 body, or the error's code.
  // The link's status after it shows in the badge as polling goes on.
  async function lifecycle(method, suffix) {
    if (!state.linkId) return;
    clearError();
    const path = '/links/' + encodeURIComponent(state.linkId) + suffix;
    const buttons = [$('revoke-link'), $('delete-link')];
    for (const b of buttons) b.disabled = true;
    try {
      const res = await call(method, path);
      const ok = res.status >= 200 && res.status < 300;
      $('lifecycle-call').textContent = method + ' ' + path;
      const status = $('lifecycle-status');
      status.dataset.ok = String(ok);
      status.dataset.code = ok ? '' : ((res.body && res.body.error && res.body.error.code) || 'http_' + res.status);
      status.textContent = res.status === 0 ? 'no answer' : res.status + (ok ? '' : ' ' + status.dataset.code);
      $('lifecycle-body').textContent = res.body == null ? '' : (typeof res.body === 'string' ? res.body : JSON.stringify(res.body, null, 2));
      $('lifecycle').hidden = false;
      if (!state.polling) startPolling();
    } finally {
      for (const b of buttons) b.disabled = false;
    }
  }

  // ---- integration events -------------------------------------------

  function startEvents() {
    stopEvents();
    state.eventCount = -1;
    pollEvents();
  }

  function stopEvents() {
    if (state.eventsTimer) clearTimeout(state.eventsTimer);
    state.eventsTimer = null;
  }

  // pollEvents shows the integration events of the current link, as the
  // dev server kept them (GET /dev/events), newest last.
  async function pollEvents() {
    const linkId = state.linkId;
    if (!linkId) return;
    try {
      const events = await api('GET', '/dev/events?linkId=' + encodeURIComponent(linkId));
      if (linkId !== state.linkId) return;
      if (events.length !== state.eventCount) {
        state.eventCount = events.length;
        fillTable('events', events, (e) => {
          const d = document.createElement('td');
          const pre = document.createElement('pre');
          pre.textContent = JSON.stringify(e.detail, null, 2);
          d.append(pre);
          return {
            data: { detailType: e.detailType, eventId: (e.detail && e.detail.eventId) || '' },
            cells: [text(formatTime(e.time)), text(e.detailType, 'detail-type'), code(e.linkId), d],
          };
        });
      }
    } catch (e) {
      // Shown again on the next round.
    }
    if (linkId === state.linkId) state.eventsTimer = setTimeout(pollEvents, POLL_MS);
  }

  // ---- environment footer -------------------------------------------

  async function showEnvironment() {
    try {
      const info = await api('GET', '/dev/info');
      const parts = [
        'Klavi: ' + (info.klavi === 'simulator' ? 'simulator' : info.klaviBaseURL),
        'links: ' + info.linkStore + (info.changeFeed ? ' (change feed)' : ''),
        'reports: ' + info.reportStore,
        'auto report requests: ' + (info.autoRequestReports ? 'on' : 'off'),
      ];
      $('env').replaceChildren(...parts.map((p) => {
        const s = document.createElement('span');
        s.textContent = p;
        return s;
      }));
    } catch (e) {
      // The footer is informative only.
    }
  }

  // ---- start ---------------------------------------------------------

  function resume() {
    const params = new URLSearchParams(location.search);
    const returned = params.get('link_id');
    const saved = recall();
    if (returned) {
      const same = saved && saved.linkId === returned;
      const linkURL = same ? saved.linkURL : null;
      const expiresAt = same ? saved.expiresAt : null;
      remember({ linkId: returned, linkURL, expiresAt });
      showLink(returned, linkURL, expiresAt);
      const error = params.get('error');
      if (error) {
        const why = params.get('error_description');
        showBanner('Back from the consent page: the consent was not given (' + error + (why ? ': ' + why : '') + ').', 'bad');
      } else {
        showBanner('Back from the consent page. Watching the link while Klavi sends events and reports.', 'ok');
      }
      // Keep the address bar clean; the link is remembered for a reload.
      history.replaceState(null, '', location.pathname);
      startPolling();
      return;
    }
    if (saved && saved.linkId) {
      showLink(saved.linkId, saved.linkURL, saved.expiresAt);
      startPolling();
    }
  }

  document.addEventListener('DOMContentLoaded', () => {
    $('link-form').addEventListener('submit', createLink);
    $('tax-id').addEventListener('input', () => {
      const el = $('tax-id');
      el.value = maskTaxId(bareTaxId(el.value));
      updateTaxIdHint();
    });
    $('sample-cpf').addEventListener('click', () => {
      $('tax-id').value = '529.982.247-25';
      updateTaxIdHint();
    });
    $('sample-cnpj').addEventListener('click', () => {
      $('tax-id').value = '11.222.333/0001-81';
      updateTaxIdHint();
    });
    $('reset').addEventListener('click', reset);
    $('request-reports').addEventListener('click', requestReports);
    $('revoke-link').addEventListener('click', () => lifecycle('POST', '/revoke'));
    $('delete-link').addEventListener('click', () => lifecycle('DELETE', ''));
    showEnvironment();
    resume();
  });
})();
