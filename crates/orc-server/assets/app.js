// orc dashboard: a small single-page app over the server's JSON API. No build step: plain
// JavaScript, the DOM built with `h()` (text is always set as text, never as HTML), charts by
// uPlot (vendored), the run graph drawn as SVG by topological depth.
"use strict";

(function () {
  const view = document.getElementById("view");
  const live = document.getElementById("live");
  const SVG = "http://www.w3.org/2000/svg";

  // ---- small helpers -------------------------------------------------------------------------

  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
      else if (k === "class") el.className = v;
      else el.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }

  function s(tag, attrs, ...children) {
    const el = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined) continue;
      if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
      else el.setAttribute(k, v);
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined) continue;
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }

  const nf = new Intl.NumberFormat(undefined, { maximumFractionDigits: 2 });
  const num = (v) => (v === null || v === undefined || Number.isNaN(v) ? "–" : nf.format(v));
  // A rate: small ones keep two significant digits rather than rounding to 0.
  const rate = (v) => (v === null || v === undefined ? "–" : v > 0 && v < 0.01 ? v.toPrecision(2) : nf.format(v));
  const int = (v) => (v === null || v === undefined ? "–" : Math.round(v).toLocaleString());
  const pct = (v) => (v === null || v === undefined || !Number.isFinite(v) ? "–" : nf.format(v * 100) + " %");
  const ms = (v) => (v === null || v === undefined ? "–" : v >= 1000 ? nf.format(v / 1000) + " s" : v >= 100 ? Math.round(v) + " ms" : nf.format(v) + " ms");
  function usd(v) {
    if (v === null || v === undefined) return "–";
    if (v === 0) return "$0";
    if (Math.abs(v) < 0.01) return "$" + v.toPrecision(2);
    return "$" + v.toFixed(2);
  }
  function dur(secs) {
    if (secs === null || secs === undefined) return "–";
    if (secs < 1) return Math.round(secs * 1000) + " ms";
    if (secs < 60) return nf.format(secs) + " s";
    const m = Math.floor(secs / 60);
    const rest = Math.round(secs % 60);
    if (m < 60) return m + " min" + (rest ? " " + rest + " s" : "");
    return Math.floor(m / 60) + " h " + (m % 60) + " min";
  }
  function when(unix) {
    if (!unix) return "–";
    const d = new Date(unix * 1000);
    return d.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "medium" });
  }
  function ago(unix) {
    const s = Math.max(0, Date.now() / 1000 - unix);
    if (s < 60) return Math.round(s) + " s ago";
    if (s < 3600) return Math.round(s / 60) + " min ago";
    if (s < 86400) return Math.round(s / 3600) + " h ago";
    return Math.round(s / 86400) + " d ago";
  }
  const STATUS_WORD = {
    completed: "completed", failed: "failed", running: "running", ready: "ready",
    pending: "pending", not_run: "not run", skipped: "skipped", interrupted: "interrupted",
    abandoned: "abandoned", cancelled: "cancelled",
  };
  const badge = (status) =>
    h("span", { class: "badge s-" + status, "data-status": status }, STATUS_WORD[status] || status);
  const json = (v) => h("pre", { class: "json" }, typeof v === "string" ? v : JSON.stringify(v, null, 2));

  // ---- the API -------------------------------------------------------------------------------

  // A token for a server that requires one (beyond loopback), kept in this browser only.
  const token = () => localStorage.getItem("orc.token");
  const headers = () => (token() ? { Authorization: "Bearer " + token() } : {});

  class HttpError extends Error {
    constructor(status, message) { super(message); this.status = status; }
  }

  async function api(path) {
    const r = await fetch(path, { headers: headers() });
    if (!r.ok) {
      let message = r.status + " " + r.statusText;
      try { const b = await r.json(); if (b && b.error && b.error.message) message = b.error.message; } catch (_) { /* no body */ }
      throw new HttpError(r.status, message);
    }
    return r.json();
  }

  // Server-Sent Events over fetch (EventSource cannot send a bearer token), resumed with
  // Last-Event-ID when the connection drops, until `result` or `signal` aborts.
  async function follow(path, onEvent, signal) {
    let last = 0;
    let done = false;
    while (!done && !signal.aborted) {
      try {
        const hs = headers();
        if (last) hs["Last-Event-ID"] = String(last);
        const r = await fetch(path, { headers: hs, signal });
        if (!r.ok) throw new HttpError(r.status, "events: " + r.status);
        const reader = r.body.getReader();
        const dec = new TextDecoder();
        let buf = "";
        for (;;) {
          const { value, done: end } = await reader.read();
          if (end) break;
          buf += dec.decode(value, { stream: true }).replace(/\r\n/g, "\n");
          let cut;
          while ((cut = buf.indexOf("\n\n")) >= 0) {
            const block = buf.slice(0, cut);
            buf = buf.slice(cut + 2);
            const ev = { event: "message", data: "", id: null };
            for (const line of block.split("\n")) {
              if (line.startsWith(":")) continue;
              const i = line.indexOf(":");
              const field = i < 0 ? line : line.slice(0, i);
              const val = i < 0 ? "" : line.slice(i + 1).replace(/^ /, "");
              if (field === "event") ev.event = val;
              else if (field === "data") ev.data += (ev.data ? "\n" : "") + val;
              else if (field === "id") ev.id = val;
            }
            if (!ev.data) continue;
            if (ev.id) last = Number(ev.id) || last;
            let data = null;
            try { data = JSON.parse(ev.data); } catch (_) { data = ev.data; }
            onEvent(ev.event, data);
            if (ev.event === "result") done = true;
          }
        }
        done = true;
      } catch (e) {
        if (signal.aborted) return;
        if (e instanceof HttpError && e.status < 500) return;
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
  }

  function problem(e, what) {
    if (e instanceof HttpError && e.status === 401) return tokenForm();
    if (e instanceof HttpError && e.status === 404)
      return h("div", { class: "empty", "data-empty": what },
        "No data: this server does not offer ", h("code", {}, what), " (", e.message, ").");
    return h("div", { class: "empty error" }, "Could not load ", h("code", {}, what), ": ", e.message);
  }

  function tokenForm() {
    const input = h("input", { type: "password", placeholder: "bearer token", size: 40, autocomplete: "off" });
    return h("form", {
      class: "empty",
      onsubmit: (ev) => { ev.preventDefault(); localStorage.setItem("orc.token", input.value.trim()); route(); },
    }, h("p", {}, "This server requires a bearer token (server.auth). It is kept in this browser only."),
      input, " ", h("button", { class: "primary", type: "submit" }, "Use token"));
  }

  // ---- charts --------------------------------------------------------------------------------

  const PALETTE = ["#3b78b5", "#d08a2c", "#3f9a62", "#9160b0", "#c4464b", "#5a8f9c"];
  const DASHES = [[], [6, 4], [2, 3], [10, 3, 2, 3], [1, 5], [8, 8]];
  const css = (name) => getComputedStyle(document.documentElement).getPropertyValue(name).trim();

  function chart(el, xs, series, fmt) {
    const ink = css("--muted");
    const grid = css("--line");
    const width = Math.max(320, el.clientWidth || el.parentElement.clientWidth - 32);
    const axis = { stroke: ink, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 } };
    const opts = {
      width,
      height: 200,
      legend: { live: true },
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: true } },
      axes: [axis, Object.assign({}, axis, { size: 64, values: (u, vals) => vals.map(fmt) })],
      series: [{}].concat(series.map((sr, i) => ({
        label: sr.label,
        stroke: PALETTE[i % PALETTE.length],
        dash: DASHES[i % DASHES.length],
        width: 2,
        fill: series.length === 1 ? PALETTE[0] + "22" : undefined,
        spanGaps: true,
        // A series with a value or two in the range is points, not an invisible line.
        points: { show: sr.values.filter((v) => v !== null && v !== undefined).length < 3 ? true : undefined, size: 6 },
        value: (u, v) => (v === null || v === undefined ? "–" : fmt(v)),
      }))),
    };
    const plot = new uPlot(opts, [xs].concat(series.map((sr) => sr.values)), el);
    return plot;
  }

  // ---- pages ---------------------------------------------------------------------------------

  let leave = () => {};

  function page(name) {
    for (const a of document.querySelectorAll("nav a")) {
      if (a.dataset.page === name || (name === "run" && a.dataset.page === "runs")) a.setAttribute("aria-current", "page");
      else a.removeAttribute("aria-current");
    }
    view.replaceChildren();
    view.dataset.page = name;
    view.removeAttribute("data-ready");
  }
  const ready = () => view.setAttribute("data-ready", "true");

  const RANGES = [["1 h", 3600, 60], ["6 h", 6 * 3600, 300], ["24 h", 86400, 900], ["7 d", 7 * 86400, 3600]];

  // The time range of the overview and the models page, remembered across visits.
  function rangeSelect(draw) {
    const sel = h("select", { id: "range", "aria-label": "Time range" },
      RANGES.map(([label], i) => h("option", { value: i }, "last " + label)));
    sel.value = localStorage.getItem("orc.range") || "0";
    sel.addEventListener("change", () => { localStorage.setItem("orc.range", sel.value); draw(); });
    return sel;
  }

  async function overview() {
    page("overview");
    const sel = rangeSelect(() => draw());
    const body = h("div", {});
    view.append(
      h("div", { class: "head" },
        h("div", {}, h("h1", {}, "Overview"),
          h("p", { class: "sub" }, "Requests, response time, caches, cost and errors of this server.")),
        h("div", { class: "tools" }, h("label", { class: "field" }, "Range", sel))),
      body);
    let timer = null;
    async function draw() {
      const [, span, step] = RANGES[Number(sel.value)] || RANGES[0];
      const until = Math.ceil(Date.now() / 1000 / step) * step;
      let data;
      try {
        data = await api(`/v1/stats/series?since=${until - span}&until=${until}&step=${step}`);
      } catch (e) {
        body.replaceChildren(problem(e, "/v1/stats/series"));
        ready();
        return;
      }
      const pts = data.points || [];
      body.replaceChildren();
      if (!pts.length) {
        body.append(h("div", { class: "empty", "data-empty": "series" }, "No requests recorded in this range yet."));
        ready();
        return;
      }
      const st = data.step || step;
      const xs = pts.map((p) => p.at);
      const total = (k) => pts.reduce((a, p) => a + (p[k] || 0), 0);
      const requests = total("requests");
      const errors = total("errors");
      const cost = total("cost_usd");
      const caches = {};
      for (const p of pts)
        for (const [name, c] of Object.entries(p.caches || {})) {
          const t = (caches[name] = caches[name] || { hits: 0, misses: 0 });
          t.hits += c.hits || 0; t.misses += c.misses || 0;
        }
      const hits = Object.values(caches).reduce((a, c) => a + c.hits, 0);
      const looks = Object.values(caches).reduce((a, c) => a + c.hits + c.misses, 0);
      const p95s = pts.map((p) => p.latency_p95_ms).filter((v) => v !== null && v !== undefined);
      const busiest = Math.max(...pts.map((p) => p.requests || 0)) / st;
      const card = (label, value, note, key) =>
        h("div", { class: "panel card", "data-figure": key },
          h("div", { class: "label" }, label), h("div", { class: "value" }, value), h("div", { class: "note" }, note));
      body.append(h("div", { class: "grid cards" },
        card("Requests", int(requests), rate(requests / Math.max(1, pts.length * st)) + " /s on average", "requests"),
        card("Peak rate", rate(busiest) + " /s", "busiest " + dur(st), "peak"),
        card("Response p95", p95s.length ? ms(Math.max(...p95s)) : "–", "worst interval", "p95"),
        card("Cache hit rate", looks ? pct(hits / looks) : "–",
          int(looks) + " lookups" + (Object.keys(caches).length > 1 ? " in " + Object.keys(caches).length + " caches" : ""), "cache"),
        card("Model cost", usd(cost), requests ? usd(cost / requests) + " per request" : "", "cost"),
        card("Error rate", requests ? pct(errors / requests) : "–", int(errors) + " errors", "errors")));
      const charts = h("div", { class: "grid charts" });
      body.append(charts);
      const panel = (title, key, now) => {
        const plot = h("div", { class: "plot" });
        charts.append(h("section", { class: "panel chart", "data-chart": key },
          h("h2", {}, title, h("span", { class: "now" }, now)), plot));
        return plot;
      };
      const last = pts[pts.length - 1];
      chart(panel("Request rate", "rate", num((last.requests || 0) / st) + " /s"), xs,
        [{ label: "requests/s", values: pts.map((p) => (p.requests || 0) / st) }], (v) => num(v) + "/s");
      chart(panel("Response time", "latency", "p95 " + ms(last.latency_p95_ms)), xs, [
        { label: "p50", values: pts.map((p) => p.latency_p50_ms) },
        { label: "p95", values: pts.map((p) => p.latency_p95_ms) },
      ], ms);
      const names = Object.keys(caches).sort();
      if (names.length)
        chart(panel("Cache hit rate", "cache", looks ? pct(hits / looks) : ""), xs, names.map((n) => ({
          label: n,
          values: pts.map((p) => {
            const c = (p.caches || {})[n];
            return c && c.hits + c.misses ? (100 * c.hits) / (c.hits + c.misses) : null;
          }),
        })), (v) => nf.format(v) + "%");
      else panel("Cache hit rate", "cache", "").append(h("div", { class: "empty" }, "No cache lookups in this range."));
      chart(panel("Model cost", "cost", usd(cost) + " total"), xs,
        [{ label: "USD per " + dur(st), values: pts.map((p) => p.cost_usd || 0) }], usd);
      chart(panel("Error rate", "errors", requests ? pct(errors / requests) : ""), xs,
        [{ label: "errors", values: pts.map((p) => (p.requests ? (100 * (p.errors || 0)) / p.requests : null)) }],
        (v) => nf.format(v) + "%");
      ready();
    }
    await draw();
    timer = setInterval(() => { if (!document.hidden) draw(); }, 15000);
    leave = () => clearInterval(timer);
  }

  async function runs() {
    page("runs");
    const params = new URLSearchParams(location.hash.split("?")[1] || "");
    const status = h("select", { id: "status", "aria-label": "Status" },
      ["", "running", "completed", "failed", "interrupted", "abandoned"].map((v) =>
        h("option", { value: v }, v ? STATUS_WORD[v] : "any status")));
    status.value = params.get("status") || "";
    const pipeline = h("input", { id: "pipeline", placeholder: "pipeline id", list: "pipelines", value: params.get("pipeline") || "", size: 18 });
    const known = h("datalist", { id: "pipelines" });
    const tbody = h("tbody", {});
    const more = h("button", { type: "button", hidden: true }, "Older runs");
    const count = h("span", { class: "sub" });
    view.append(
      h("div", { class: "head" },
        h("div", {}, h("h1", {}, "Runs"), count),
        h("div", { class: "tools" },
          h("label", { class: "field" }, "Status", status),
          h("label", { class: "field" }, "Pipeline", pipeline, known))),
      h("div", { class: "panel table-wrap" },
        h("table", { id: "runs" },
          h("thead", {}, h("tr", {},
            h("th", {}, "Run"), h("th", {}, "Pipeline"), h("th", {}, "Status"), h("th", {}, "Started"),
            h("th", { class: "num" }, "Duration"), h("th", { class: "num" }, "Steps"), h("th", { class: "num" }, "Cost"))),
          tbody)),
      h("p", {}, more));
    const pipelines = new Set();
    let shown = 50;
    function query() {
      const q = new URLSearchParams();
      if (status.value) q.set("status", status.value);
      if (pipeline.value.trim()) q.set("pipeline", pipeline.value.trim());
      return q;
    }
    function filtersChanged() {
      const q = query().toString();
      history.replaceState(null, "", "#/runs" + (q ? "?" + q : ""));
      shown = 50;
      load();
    }
    status.addEventListener("change", filtersChanged);
    pipeline.addEventListener("change", filtersChanged);
    more.addEventListener("click", () => { shown += 50; load(); });
    async function load() {
      const q = query();
      q.set("limit", String(shown));
      let data;
      try { data = await api("/v1/runs?" + q); } catch (e) {
        tbody.replaceChildren(h("tr", {}, h("td", { colspan: 7 }, problem(e, "/v1/runs"))));
        ready();
        return;
      }
      const rows = data.runs || [];
      for (const r of rows) if (!pipelines.has(r.pipeline_id)) { pipelines.add(r.pipeline_id); known.append(h("option", { value: r.pipeline_id })); }
      tbody.replaceChildren(...rows.map((r) => h("tr", { "data-run": r.run_id },
        h("td", {}, h("a", { href: "#/runs/" + encodeURIComponent(r.run_id), class: "mono" }, r.run_id)),
        h("td", {}, h("a", { href: "#/runs?pipeline=" + encodeURIComponent(r.pipeline_id) }, r.pipeline_id)),
        h("td", {}, badge(r.status)),
        h("td", { title: when(r.started_at) }, ago(r.started_at)),
        h("td", { class: "num" }, dur(r.duration_s)),
        h("td", { class: "num" }, int(r.steps_done)),
        h("td", { class: "num" }, usd(r.cost_usd)))));
      if (!rows.length) tbody.append(h("tr", {}, h("td", { colspan: 7 }, h("div", { class: "empty", "data-empty": "runs" }, "No runs match. Start one with POST /v1/runs or orc run."))));
      count.textContent = rows.length + (data.next_cursor ? "+" : "") + " runs, newest first · updates live";
      more.hidden = !data.next_cursor;
      live.textContent = "updated " + new Date().toLocaleTimeString();
      ready();
    }
    await load();
    const timer = setInterval(() => { if (!document.hidden) load(); }, 2000);
    leave = () => clearInterval(timer);
  }

  // The run page: its step graph, laid out in layers by depth, coloured and labelled by status.
  async function run(id) {
    page("run");
    const ctl = new AbortController();
    leave = () => ctl.abort();
    let g;
    try { g = await api("/v1/runs/" + encodeURIComponent(id) + "/graph"); } catch (e) {
      view.append(problem(e, "/v1/runs/" + id + "/graph"));
      ready();
      return;
    }
    const steps = new Map(g.steps.map((st) => [st.id, st]));
    const runBadge = h("span", {}, badge(g.run.status));
    const summary = h("dl", { class: "kv" });
    const panel = h("aside", { class: "panel record", id: "record" },
      h("p", { class: "sub" }, "Select a step to see its record."));
    const dagWrap = h("div", { class: "panel dag-wrap" });
    view.append(
      h("div", { class: "crumbs" }, h("a", { href: "#/runs" }, "Runs"), " / ",
        h("a", { href: "#/runs?pipeline=" + encodeURIComponent(g.run.pipeline_id) }, g.run.pipeline_id)),
      h("div", { class: "head" },
        h("div", {}, h("h1", { class: "mono" }, g.run.run_id), h("p", { class: "sub" }, g.pipeline.name + " · v" + g.pipeline.version)),
        h("div", { class: "tools" }, runBadge)),
      h("div", { class: "run-layout" },
        h("div", {}, dagWrap, h("div", { class: "panel", style: "margin-top:16px" }, summary)),
        panel));

    function fillSummary(result) {
      const done = g.steps.filter((st) => st.status === "completed").length;
      const items = [
        ["Pipeline", g.run.pipeline_id],
        ["Started", when(g.run.started_at)],
        ["Finished", g.run.finished_at ? when(g.run.finished_at) : "–"],
        ["Duration", result && result.duration !== undefined ? dur(result.duration) : g.run.finished_at ? dur(g.run.finished_at - g.run.started_at) : "running"],
        ["Steps", done + " of " + g.steps.length + " completed"],
        ["Cost", result && result.cost !== undefined && result.cost !== null ? usd(result.cost)
          : usd(g.steps.reduce((a, st) => a + ((st.record && st.record.cost) || 0), 0)) + " so far"],
      ];
      if (result && result.error) items.push(["Error", (result.error_type ? result.error_type + ": " : "") + result.error]);
      summary.replaceChildren(...items.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
    }
    fillSummary(g.run.result);

    // Layers by depth; within a layer, order by the mean position of dependencies (one sweep
    // of the barycentre heuristic), which keeps edges short and uncrossed for common shapes.
    const layers = [];
    for (const st of g.steps) (layers[st.depth] = layers[st.depth] || []).push(st);
    const pos = new Map();
    layers.forEach((layer, d) => {
      if (d > 0) {
        const bary = (st) => st.deps.length ? st.deps.reduce((a, x) => a + (pos.get(x) || 0), 0) / st.deps.length : 0;
        layer.sort((a, b) => bary(a) - bary(b));
      }
      layer.forEach((st, i) => pos.set(st.id, i));
    });
    const W = 184, H = 52, GX = 64, GY = 18, PAD = 12;
    const rows = Math.max(...layers.map((l) => (l ? l.length : 0)));
    const width = PAD * 2 + layers.length * W + (layers.length - 1) * GX;
    const height = PAD * 2 + rows * H + (rows - 1) * GY;
    const xy = new Map();
    layers.forEach((layer, d) => {
      const off = ((rows - layer.length) * (H + GY)) / 2;
      layer.forEach((st, i) => xy.set(st.id, [PAD + d * (W + GX), PAD + off + i * (H + GY)]));
    });
    const svg = s("svg", { class: "dag", width, height, viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": "Step graph of run " + g.run.run_id });
    const edges = [];
    for (const st of g.steps)
      for (const dep of st.deps) {
        const [x1, y1] = xy.get(dep); const [x2, y2] = xy.get(st.id);
        const a = [x1 + W, y1 + H / 2], b = [x2, y2 + H / 2], m = (a[0] + b[0]) / 2;
        const path = s("path", { class: "edge", d: `M${a[0]},${a[1]} C${m},${a[1]} ${m},${b[1]} ${b[0]},${b[1]}`, "marker-end": "url(#arrow)" });
        edges.push([dep, path]);
        svg.append(path);
      }
    svg.prepend(s("defs", {}, s("marker", { id: "arrow", viewBox: "0 0 8 8", refX: 8, refY: 4, markerWidth: 7, markerHeight: 7, orient: "auto" },
      s("path", { d: "M0,0 L8,4 L0,8 z", fill: "var(--muted)" }))));
    const GLYPH = { completed: "✓", failed: "✗", running: "●", ready: "◔", pending: "○", not_run: "○", skipped: "⤼" };
    const nodes = new Map();
    let selected = null;
    for (const st of g.steps) {
      const [x, y] = xy.get(st.id);
      const label = st.id.length > 22 ? st.id.slice(0, 21) + "…" : st.id;
      const what = (st.tool ? st.tool + "." : "") + (typeof st.action === "string" ? st.action : st.kind);
      const glyph = s("text", { class: "glyph", x: W - 12, y: 20, "text-anchor": "end" });
      const meta = s("text", { class: "meta", x: 12, y: 39 });
      const node = s("g", { class: "node", transform: `translate(${x},${y})`, tabindex: 0, role: "button", "data-step": st.id,
        onclick: () => select(st.id), onkeydown: (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); select(st.id); } } },
        s("title", {}, st.id), s("rect", { width: W, height: H, rx: 8 }),
        s("text", { x: 12, y: 20 }, label), glyph, meta);
      nodes.set(st.id, { node, glyph, meta, what });
      svg.append(node);
      paint(st.id);
    }
    dagWrap.append(svg, h("div", { class: "legend", "aria-hidden": "true" },
      ["pending", "running", "completed", "failed", "skipped"].map(badge)));

    function paint(id) {
      const st = steps.get(id), n = nodes.get(id);
      if (!st || !n) return;
      n.node.setAttribute("class", "node s-" + st.status + (selected === id ? " selected" : ""));
      n.node.setAttribute("data-status", st.status);
      n.glyph.textContent = GLYPH[st.status] || "·";
      const r = st.record || {};
      n.meta.textContent = (n.what.length > 16 ? n.what.slice(0, 15) + "…" : n.what) +
        (r.duration !== undefined && r.duration !== null ? " · " + dur(r.duration) : st.status === "running" ? " · running" : "");
      for (const [dep, path] of edges) if (dep === id) path.setAttribute("class", "edge" + (st.status === "completed" ? " done" : ""));
    }

    // A step's result: its envelope's `result`, when it has one.
    const result = (r) => {
      const v = r.value && typeof r.value === "object" && "result" in r.value ? r.value.result : r.value;
      return v === undefined ? null : v;
    };

    function select(id) {
      const prev = selected;
      selected = id;
      if (prev) paint(prev);
      paint(id);
      const st = steps.get(id);
      const r = st.record || {};
      const usage = r.usage || {};
      const rows = [
        ["Status", badge(st.status)],
        ["Action", st.tool ? st.tool + " · " + st.action : String(st.action)],
        ["Depends on", st.deps.length ? st.deps.join(", ") : "nothing"],
        ["Line", st.line ? String(st.line) : "–"],
        ["Model", r.model ? r.model + (r.provider ? " (" + r.provider + ")" : "") + (r.cached ? " · cached" : "") : "–"],
        ["Tokens", r.usage ? int(usage.input_tokens) + " in · " + int(usage.output_tokens) + " out" : "–"],
        ["Cost", r.cost !== undefined && r.cost !== null ? usd(r.cost) : "–"],
        ["Started", r.started_at || "–"],
        ["Finished", r.completed_at || "–"],
        ["Duration", r.duration !== undefined && r.duration !== null ? dur(r.duration) : "–"],
        ["Attempts", r.retries !== undefined ? String(r.retries + 1) : "–"],
      ];
      if (r.reason) rows.push(["Reason", r.reason]);
      const iterations = Object.entries(g.iterations || {}).filter(([k]) => k.startsWith(id + "_"));
      // Through h(), which flattens the optional parts and drops the missing ones.
      panel.replaceChildren(...h("div", {},
        h("h2", { class: "mono" }, id),
        h("dl", { class: "kv" }, rows.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)])),
        r.error ? [h("h3", {}, "Error"), h("pre", { class: "json error" }, (r.error_type ? r.error_type + ": " : "") + r.error)] : null,
        h("h3", {}, "Inputs (as written)"), json(st.params === null ? "none" : st.params),
        result(r) !== null ? [h("h3", {}, "Result"), json(result(r))] : null,
        iterations.length ? [h("h3", {}, "Iterations"), h("div", {}, iterations.map(([k, v]) => h("div", {}, badge(v.status || "completed"), " ", h("span", { class: "mono" }, k))))] : null).childNodes);
    }

    // Live: the run's events (replayed from the start, then followed).
    if (g.run.status === "running") {
      live.textContent = "following run events";
      follow("/v1/runs/" + encodeURIComponent(id) + "/events", (kind, data) => {
        if (kind === "result") {
          // The ended run's records, from the store.
          api("/v1/runs/" + encodeURIComponent(id) + "/graph").then((fresh) => {
            g = fresh;
            for (const st of fresh.steps) { steps.set(st.id, st); paint(st.id); }
            runBadge.replaceChildren(badge(fresh.run.status));
            fillSummary(fresh.run.result);
            if (selected) select(selected);
            live.textContent = "run ended";
            view.setAttribute("data-run-status", fresh.run.status);
          }).catch(() => {});
          return;
        }
        const st = data && steps.get(data.step);
        if (!st) {
          if (data && data.step && kind === "step_finished") g.iterations[data.step] = data.record || { status: data.status };
          return;
        }
        if (kind === "step_ready" && st.status === "pending") st.status = "ready";
        else if (kind === "step_started") st.status = "running";
        else if (kind === "step_finished") { st.status = data.status || (data.record && data.record.status) || st.status; st.record = data.record || st.record; }
        paint(st.id);
        fillSummary(null);
        if (selected === st.id) select(st.id);
      }, ctl.signal);
    } else {
      live.textContent = "";
      view.setAttribute("data-run-status", g.run.status);
    }
    ready();
  }

  async function models() {
    page("models");
    const sel = rangeSelect(() => draw());
    const body = h("div", {});
    view.append(h("div", { class: "head" },
      h("div", {}, h("h1", {}, "Models"), h("p", { class: "sub" }, "Calls, success, latency, tokens and cost per model; the router's decisions.")),
      h("div", { class: "tools" }, h("label", { class: "field" }, "Range", sel))), body);
    async function draw() {
      const [, span] = RANGES[Number(sel.value)] || RANGES[0];
      const until = Math.ceil(Date.now() / 1000);
      let data;
      try { data = await api(`/v1/stats/models?since=${until - span}&until=${until}`); } catch (e) {
        body.replaceChildren(problem(e, "/v1/stats/models"));
        ready();
        return;
      }
      const ms_ = data.models || [];
      const rs = data.routing || [];
      const maxCost = Math.max(0, ...ms_.map((m) => m.cost_usd || 0));
      body.replaceChildren(
        h("section", { class: "panel table-wrap", style: "margin-bottom:16px" }, h("h2", {}, "Models"),
          ms_.length ? h("table", { id: "models" },
            h("thead", {}, h("tr", {}, ["Model", "Provider"].map((t) => h("th", {}, t)),
              ["Calls", "Success", "p50", "p95", "p99", "Tokens in", "Tokens out", "Cost"].map((t) => h("th", { class: "num" }, t)))),
            h("tbody", {}, ms_.map((m) => h("tr", { "data-model": m.model },
              h("td", { class: "mono" }, m.model), h("td", {}, m.provider),
              h("td", { class: "num" }, int(m.calls)),
              h("td", { class: "num" }, pct(m.success_rate), m.errors ? h("div", { class: "sub" }, int(m.errors) + " errors") : null),
              h("td", { class: "num" }, ms(m.latency_p50_ms)), h("td", { class: "num" }, ms(m.latency_p95_ms)), h("td", { class: "num" }, ms(m.latency_p99_ms)),
              h("td", { class: "num" }, int(m.input_tokens)), h("td", { class: "num" }, int(m.output_tokens)),
              h("td", { class: "num" }, usd(m.cost_usd),
                h("div", { style: `height:4px;border-radius:2px;background:var(--accent);opacity:.6;margin-left:auto;width:${maxCost ? Math.max(2, (100 * (m.cost_usd || 0)) / maxCost) : 0}%` }))))))
            : h("div", { class: "empty", "data-empty": "models" }, "No model calls recorded in this range.")),
        h("section", { class: "panel table-wrap" }, h("h2", {}, "Routing decisions"),
          rs.length ? h("table", { id: "routing" },
            h("thead", {}, h("tr", {}, ["When", "Strategy", "Chosen", "Candidates", "Reason"].map((t) => h("th", {}, t)))),
            h("tbody", {}, rs.map((r) => h("tr", {},
              h("td", { title: when(r.at) }, ago(r.at)), h("td", {}, r.strategy), h("td", { class: "mono" }, r.chosen),
              h("td", { class: "mono" }, Array.isArray(r.candidates) ? r.candidates.join(", ") : String(r.candidates ?? "")),
              h("td", {}, r.reason ?? "")))))
            : h("div", { class: "empty", "data-empty": "routing" }, "No routing decisions in this range.")));
      ready();
    }
    await draw();
    const timer = setInterval(() => { if (!document.hidden) draw(); }, 15000);
    leave = () => clearInterval(timer);
  }

  // The daily report: its figures as cards, its lists as tables, whatever their names.
  async function report() {
    page("report");
    const params = new URLSearchParams(location.hash.split("?")[1] || "");
    const date = h("input", { type: "date", id: "date", value: params.get("date") || new Date().toISOString().slice(0, 10) });
    const body = h("div", {});
    view.append(h("div", { class: "head" },
      h("div", {}, h("h1", {}, "Daily report"), h("p", { class: "sub" }, "One UTC day: runs, requests, throughput, response time, caches, errors and costs.")),
      h("div", { class: "tools" }, h("label", { class: "field" }, "Day", date))), body);
    // Units go with the values (`$`, `ms`, `/s`, `%`), not in the titles.
    const title = (k) => k.replace(/_(usd|ms|rps|s)$/, "").replace(/_/g, " ").replace(/^./, (c) => c.toUpperCase());
    const fmtKey = (k, v) => {
      if (typeof v !== "number") return v === null ? "–" : String(v);
      if (/^(since|until|at|minute|.*_at)$/.test(k) && v > 1e9) return when(v);
      if (/usd|cost/.test(k)) return usd(v);
      if (/_ms$/.test(k)) return ms(v);
      if (/rate$|ratio$/.test(k) && v <= 1) return pct(v);
      if (/per_s|_rps$|throughput/.test(k)) return num(v) + " /s";
      return Number.isInteger(v) ? int(v) : num(v);
    };
    function render(obj) {
      const cards = [], rest = [];
      for (const [k, v] of Object.entries(obj)) {
        // The day's bounds are the chosen day itself.
        if (k === "since" || k === "until" || k === "date") continue;
        if (v === null || typeof v !== "object") cards.push(h("div", { class: "panel card", "data-figure": k }, h("div", { class: "label" }, title(k)), h("div", { class: "value" }, fmtKey(k, v))));
        else rest.push([k, v]);
      }
      const out = [];
      if (cards.length) out.push(h("div", { class: "grid cards" }, cards));
      for (const [k, v] of rest) {
        const sec = h("section", { class: "panel table-wrap", style: "margin-bottom:16px", "data-section": k }, h("h2", {}, title(k)));
        if (Array.isArray(v)) {
          if (!v.length) sec.append(h("div", { class: "sub" }, "none"));
          else if (typeof v[0] === "object" && v[0] !== null) {
            const cols = Object.keys(v[0]);
            sec.append(h("table", {}, h("thead", {}, h("tr", {}, cols.map((c) => h("th", {}, title(c))))),
              h("tbody", {}, v.map((row) => h("tr", {}, cols.map((c) => h("td", {}, typeof row[c] === "object" && row[c] !== null ? JSON.stringify(row[c]) : fmtKey(c, row[c]))))))));
          } else sec.append(h("div", {}, v.join(", ")));
        } else {
          const flat = Object.entries(v).every(([, x]) => x === null || typeof x !== "object");
          if (flat) sec.append(h("dl", { class: "kv" }, Object.entries(v).flatMap(([a, b]) => [h("dt", {}, title(a)), h("dd", {}, fmtKey(a, b))])));
          else sec.append(...render(v));
        }
        out.push(sec);
      }
      return out;
    }
    async function draw() {
      history.replaceState(null, "", "#/report?date=" + date.value);
      let data;
      try { data = await api("/v1/reports/daily?date=" + encodeURIComponent(date.value)); } catch (e) {
        body.replaceChildren(problem(e, "/v1/reports/daily"));
        ready();
        return;
      }
      body.replaceChildren(...render(data));
      ready();
    }
    date.addEventListener("change", draw);
    await draw();
  }

  // ---- routing -------------------------------------------------------------------------------

  function route() {
    leave();
    leave = () => {};
    live.textContent = "";
    const hash = location.hash.replace(/^#/, "") || "/";
    const path = hash.split("?")[0];
    let m;
    if (path === "/" || path === "") return overview();
    if (path === "/runs") return runs();
    if ((m = path.match(/^\/runs\/(.+)$/))) return run(decodeURIComponent(m[1]));
    if (path === "/models") return models();
    if (path === "/report") return report();
    page("none");
    view.append(h("div", { class: "empty" }, "No such page. ", h("a", { href: "#/" }, "Overview")));
    ready();
  }

  window.addEventListener("hashchange", route);
  route();
})();
