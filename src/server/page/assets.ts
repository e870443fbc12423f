/** The page's one inline stylesheet and one inline script, and the Content-Security-Policy that allows exactly them. */
import { createHash } from 'node:crypto';
import { PICTURES_CSS } from './pictures-css.js';

// ---------------------------------------------------------------------------------------
// The document

const BASE_CSS = `
:root{--bg:#f6f7f9;--card:#fff;--fg:#1c2330;--muted:#5b6577;--border:#dde2ea;
--ok:#1a7f37;--ok-bg:#dafbe1;--warn:#8a5a00;--warn-bg:#fff4c2;--bad:#c4212c;--bad-bg:#ffebe9;
--info:#0a5fc2;--info-bg:#ddf0ff;--neutral:#57606a;--neutral-bg:#eaeef2;--blue:#2f6feb;--green:#2da44e;
color-scheme:light dark}
@media (prefers-color-scheme:dark){:root{--bg:#0d1117;--card:#161b22;--fg:#e6edf3;--muted:#9aa4b2;--border:#30363d;
--ok:#56d364;--ok-bg:#12361f;--warn:#e3b341;--warn-bg:#3a2d0c;--bad:#ff7b72;--bad-bg:#44171a;
--info:#79c0ff;--info-bg:#0c2d4f;--neutral:#9aa4b2;--neutral-bg:#262c36}}
*{box-sizing:border-box}
[hidden]{display:none!important}
body{margin:0;background:var(--bg);color:var(--fg);font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
code,pre{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,"Liberation Mono",monospace;font-size:.9em}
.topbar{display:flex;align-items:center;justify-content:space-between;gap:1rem;padding:.6rem 1rem;border-bottom:1px solid var(--border);background:var(--card)}
.brand{font-weight:600}
.brand .muted{font-weight:400}
main,.foot{max-width:78rem;margin:0 auto;padding:1rem}
.card{background:var(--card);border:1px solid var(--border);border-radius:10px;padding:1rem 1.1rem;margin:0 0 1rem}
h1{font-size:1.5rem;margin:0}
h2{font-size:1.1rem;margin:0 0 .75rem}
h3{font-size:1rem;margin:0 0 .5rem;display:flex;align-items:center;gap:.5rem}
.title-row{display:flex;flex-wrap:wrap;align-items:center;gap:.6rem}
.summary{margin:.5rem 0 .75rem;font-size:1.02rem}
.muted{color:var(--muted)}
.vh{position:absolute;width:1px;height:1px;margin:-1px;padding:0;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap;border:0}
.badge{display:inline-flex;align-items:center;gap:.3rem;padding:.1rem .55rem;border-radius:999px;font-size:.85rem;font-weight:600;border:1px solid currentColor;white-space:nowrap}
.badge .icon{font-weight:700}
.tone-ok{color:var(--ok);background:var(--ok-bg)}.tone-warn{color:var(--warn);background:var(--warn-bg)}
.tone-bad{color:var(--bad);background:var(--bad-bg)}.tone-info{color:var(--info);background:var(--info-bg)}
.tone-neutral{color:var(--neutral);background:var(--neutral-bg)}
.facts{display:grid;grid-template-columns:repeat(auto-fill,minmax(9rem,1fr));gap:.5rem 1.25rem;margin:0}
.facts div{min-width:0}.facts .wide{grid-column:1/-1}
dt{font-size:.78rem;text-transform:uppercase;letter-spacing:.04em;color:var(--muted)}
dd{margin:0;overflow-wrap:anywhere}
.alert{border:1px solid currentColor;border-radius:8px;padding:.55rem .75rem;margin-top:.75rem}
.alert .muted{color:inherit;opacity:.85}
.error-text{overflow-wrap:anywhere;white-space:pre-wrap}
.rev{padding:.05rem .3rem;border-radius:4px;background:var(--neutral-bg)}
details.message{display:inline-block;vertical-align:top}
details.message summary{cursor:pointer}
details pre{white-space:pre-wrap;margin:.3rem 0 0;max-width:60ch}
.table-wrap{overflow-x:auto}
table{border-collapse:collapse;width:100%;font-size:.92rem}
th,td{text-align:left;padding:.45rem .6rem;border-bottom:1px solid var(--border);vertical-align:top}
thead th{font-size:.78rem;text-transform:uppercase;letter-spacing:.04em;color:var(--muted);white-space:nowrap}
tbody th{font-weight:600}
.wide-col{min-width:14rem}
tr.drifted{background:var(--warn-bg)}
.sub{display:block;font-size:.82rem;font-weight:400;max-width:28ch;overflow-wrap:anywhere}
.count{font-weight:400;color:var(--muted)}
.colour{display:inline-flex;align-items:center;gap:.35rem}
.colour .dot{width:.7rem;height:.7rem;border-radius:50%;background:var(--neutral);display:inline-block}
.colour-blue .dot{background:var(--blue)}.colour-green .dot{background:var(--green)}
.progress-line{margin:0 0 .4rem}
progress{width:100%;height:.6rem;margin-bottom:.75rem;accent-color:var(--info)}
.waves{list-style:none;margin:0;padding:0;display:grid;gap:.75rem}
.wave{border-left:4px solid var(--border);padding:.25rem 0 .25rem .8rem}
.wave-running{border-color:var(--info)}.wave-healthy{border-color:var(--ok)}.wave-failed{border-color:var(--bad)}
.ri-list{list-style:none;margin:0;padding:0;display:grid;gap:.6rem}
.ri-head{display:flex;flex-wrap:wrap;align-items:center;gap:.5rem;margin-bottom:.3rem}
.path{font-size:.8rem;color:var(--muted);border:1px solid var(--border);border-radius:4px;padding:0 .3rem}
.steps{list-style:none;margin:0;padding:0;display:grid;grid-template-columns:repeat(6,minmax(0,1fr));gap:.3rem}
.step{display:flex;align-items:center;justify-content:center;gap:.3rem;padding:.25rem .3rem;border-radius:6px;font-size:.78rem;font-weight:600;letter-spacing:.02em;border:1px solid var(--border);color:var(--muted)}
.step-done{color:var(--ok);background:var(--ok-bg);border-color:currentColor}
.step-current{color:var(--info);background:var(--info-bg);border:2px solid currentColor}
.step-pending{border-style:dashed}
.step-skipped{text-decoration:line-through;opacity:.7}
.step-failed{color:var(--bad);background:var(--bad-bg);border-color:currentColor}
.diags{list-style:none;margin:0;padding:0;display:grid;gap:.6rem}
.diag{border-left:4px solid var(--bad);padding:.2rem 0 .2rem .75rem}
.diag-warning{border-color:var(--warn)}
.diag p{margin:.25rem 0 0;overflow-wrap:anywhere}
.live{display:inline-flex;align-items:center;gap:.35rem;font-size:.85rem;color:var(--muted)}
.live::before{content:"";width:.55rem;height:.55rem;border-radius:50%;background:var(--neutral)}
.live[data-state=live]{color:var(--ok)}.live[data-state=live]::before{background:var(--ok)}
.live[data-state=reconnecting]{color:var(--warn)}.live[data-state=reconnecting]::before{background:var(--warn)}
.rendered{font-size:.8rem;margin:0}
.foot{font-size:.85rem;color:var(--muted);padding-top:0}
@media (max-width:640px){body{font-size:14px}main{padding:.6rem}.card{padding:.8rem}
.steps{grid-template-columns:repeat(3,minmax(0,1fr))}.topbar{padding:.5rem .6rem}}
`;

/** One stylesheet for every page: the fleet page's, and the pictures' (charts, flow sheets). */
export const CSS = BASE_CSS + PICTURES_CSS;

// Kept small and dependency-free. On every status event it fetches the server-rendered
// <main> and swaps it in (one renderer); open <details> stay open; the summary is copied
// into the aria-live region so screen readers hear what changed, not the whole page.
export const SCRIPT = `
(function () {
  var live = document.getElementById('live');
  var announce = document.getElementById('announce');
  if (!live || !window.EventSource || !window.fetch) return;
  live.hidden = false;
  var busy = false, again = false, es = null, retry = null;
  function show(state, text) { live.setAttribute('data-state', state); live.textContent = text; }
  function swap(text) {
    var t = document.createElement('template');
    t.innerHTML = text;
    var next = t.content.querySelector('main');
    var cur = document.querySelector('main');
    if (!next || !cur) return;
    var open = {};
    cur.querySelectorAll('details[open][id]').forEach(function (d) { open[d.id] = true; });
    next.querySelectorAll('details[id]').forEach(function (d) { if (open[d.id]) d.open = true; });
    cur.replaceWith(next);
    if (next.getAttribute('data-title')) document.title = next.getAttribute('data-title');
    var s = next.querySelector('[data-summary]');
    if (s && announce && announce.textContent !== s.textContent) announce.textContent = s.textContent;
  }
  function refresh() {
    if (busy) { again = true; return; }
    busy = true; again = false;
    fetch('/?fragment=1', { cache: 'no-store', headers: { accept: 'text/html' } })
      .then(function (r) { if (!r.ok) throw new Error('HTTP ' + r.status); return r.text(); })
      .then(swap)
      .catch(function () { show('reconnecting', 'Reconnecting…'); })
      .then(function () { busy = false; if (again) refresh(); });
  }
  function connect() {
    retry = null;
    es = new EventSource('/api/v1/events');
    es.onopen = function () { show('live', 'Live'); };
    es.addEventListener('status', function () { show('live', 'Live'); refresh(); });
    es.onerror = function () {
      show('reconnecting', 'Reconnecting…');
      // EventSource retries by itself unless the server refused the stream: then we do.
      if (es.readyState === 2 && !retry) retry = setTimeout(connect, 5000);
    };
  }
  connect();
})();
`;

export function sha256(text: string): string {
  return `'sha256-${createHash('sha256').update(text, 'utf8').digest('base64')}'`;
}

/**
 * Content-Security-Policy for the page: only this inline style and script run, the script may
 * talk to this origin only. Defence in depth should escaping ever miss something.
 */
export const STATUS_PAGE_CSP = [
  "default-src 'none'",
  `style-src ${sha256(CSS)}`,
  `script-src ${sha256(SCRIPT)}`,
  "connect-src 'self'",
  'img-src data:',
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

