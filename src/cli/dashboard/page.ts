// The dashboard's one page: HTML and CSS here, the script in page-script.ts, all inline (no build step, no file to
// serve). The Content-Security-Policy allows exactly this script and this style by their hashes, nothing else: no
// other script, no inline event handler, no image, no frame, requests to this origin only. So even a text that got
// into the page as markup by mistake could not run.
import { createHash } from "node:crypto";
import { PAGE_SCRIPT } from "./page-script.js";

const STYLE = `
body { font: 14px/1.4 system-ui, sans-serif; margin: 0 1.5rem 2rem; color: #1d2430; background: #f6f7f9; }
header { display: flex; gap: 1rem; align-items: baseline; flex-wrap: wrap; }
h1 { font-size: 1.3rem; } h2 { font-size: 1.05rem; margin: 1.4rem 0 .5rem; }
.badge { padding: .1rem .5rem; border-radius: .8rem; background: #dde3ea; } .badge.warn { background: #ffd8a8; }
.cards { display: flex; flex-wrap: wrap; gap: .5rem; }
.card { background: #fff; border: 1px solid #dde3ea; border-radius: 6px; padding: .4rem .8rem; min-width: 7rem; }
.card .v { font-size: 1.3rem; font-weight: 600; }
.charts { display: flex; flex-wrap: wrap; gap: 1rem; }
figure { margin: 0; background: #fff; border: 1px solid #dde3ea; border-radius: 6px; padding: .5rem; }
figcaption { font-weight: 600; } svg { width: 600px; max-width: 100%; height: 150px; display: block; }
svg text { font-size: 11px; fill: #56606e; } .axis { stroke: #c5ccd6; }
.series { fill: none; stroke-width: 2; } .s1 { stroke: #1c7ed6; color: #1c7ed6; }
.s2 { stroke: #f08c00; color: #f08c00; } .s3 { stroke: #2f9e44; color: #2f9e44; }
.key { margin-right: 1rem; font-size: 12px; }
ul#doctor { list-style: none; padding: 0; } #doctor li { background: #fff; border-left: 4px solid #2f9e44;
  margin: .3rem 0; padding: .3rem .6rem; } #doctor li.level-warning { border-color: #f08c00; }
#doctor li.level-error { border-color: #e03131; } #doctor li.compact { padding: .1rem .6rem; font-size: 12px; } .muted { color: #56606e; }
.filters { display: flex; flex-wrap: wrap; gap: .5rem; align-items: end; }
.filters label { display: flex; flex-direction: column; font-size: 12px; }
table { border-collapse: collapse; background: #fff; margin-top: .5rem; width: 100%; }
td, th { border: 1px solid #dde3ea; padding: .2rem .4rem; text-align: left; font-size: 12px; vertical-align: top; }
td.err { max-width: 28rem; white-space: pre-wrap; word-break: break-word; }
#confirm { position: fixed; inset: 10% 15% auto; background: #fff; border: 2px solid #1d2430; padding: 1rem;
  box-shadow: 0 6px 30px #0005; max-height: 75vh; overflow: auto; }
.error { color: #c92a2a; } .ok { color: #2b8a3e; } .level-ok { color: #2b8a3e; } .level-warning { color: #d9480f; }
.level-error { color: #c92a2a; } [hidden] { display: none !important; }
`;

const hash = (text: string) => `'sha256-${createHash("sha256").update(text, "utf8").digest("base64")}'`;

export const PAGE_CSP = [
  "default-src 'none'",
  `script-src ${hash(PAGE_SCRIPT)}`,
  `style-src ${hash(STYLE)}`,
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");

const filter = (name: string, label: string, placeholder: string) =>
  `<label>${label}<input id="f-${name}" placeholder="${placeholder}" autocomplete="off"></label>`;

export const PAGE_HTML = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>prisma-outbox dashboard</title><style>${STYLE}</style></head>
<body>
<header><h1>prisma-outbox</h1><span>schema <b id="schema">…</b></span><span id="mode" class="badge">…</span>
<span id="sampling"></span></header>
<section id="login" hidden><p>This dashboard needs its token.</p>
<input id="token" type="password" autocomplete="off" placeholder="token"> <button id="token-save" type="button">Use</button></section>
<section><div id="cards" class="cards"></div></section>
<h2>Last minutes</h2>
<div class="charts">
<figure><figcaption>Backlog (rows)</figcaption><svg id="chart-backlog" viewBox="0 0 600 150"></svg><div id="chart-backlog-legend"></div></figure>
<figure><figcaption>Throughput (rows/s)</figcaption><svg id="chart-throughput" viewBox="0 0 600 150"></svg><div id="chart-throughput-legend"></div></figure>
<figure><figcaption>Lag (age of the oldest due row)</figcaption><svg id="chart-lag" viewBox="0 0 600 150"></svg><div id="chart-lag-legend"></div></figure>
</div>
<h2>Doctor <button id="doctor-refresh" type="button">Check again</button></h2>
<div id="doctor-level"></div><ul id="doctor"></ul>
<h2>Dead letters</h2>
<div class="filters">
<label>Of<select id="dl-source"><option value="outbox">outbox</option><option value="inbox">inbox</option></select></label>
${filter("exchange", "Exchange", "shop,billing")}${filter("routing-key", "Routing key", "order.*")}
${filter("error", "Error contains", "NO_ROUTE")}${filter("since", "Since", "2026-11-24T03:00Z")}
${filter("until", "Until", "2026-11-25")}${filter("id", "Id or message id", "12,13")}
${filter("handler", "Handler (inbox)", "")}
<button id="dl-apply" type="button">Show</button><span id="actions"></span></div>
<p id="dl-total"></p><p id="action-result"></p>
<table><thead><tr><th>id</th><th>message id</th><th>handler</th><th>exchange</th><th>routing key</th><th>attempts</th>
<th>failed / received at</th><th>last error</th></tr></thead><tbody id="dl-rows"></tbody></table>
<div id="confirm" hidden><p id="confirm-text"></p><p id="confirm-filter" class="muted"></p>
<button id="confirm-yes" type="button">Confirm</button> <button id="confirm-no" type="button">Cancel</button>
<table><tbody id="confirm-rows"></tbody></table></div>
<script>${PAGE_SCRIPT}</script>
</body></html>
`;
