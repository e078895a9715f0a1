// dops ui: a small hand-written client (no build step, no network beyond this server).
// Views: #/ (operations table), #/op/NAMESPACE/NAME (one operation), #/targets.
// One EventSource on /api/stream says what changed; the page re-asks the server for what it shows.
"use strict";

const CONFIG = JSON.parse(document.getElementById("dops-config").textContent);
const STATES = ["queued", "scheduled", "running", "completed", "failed"];
const view = document.getElementById("view");
let current = null; // the active view: {refresh(changed), close()}

// ------------------------------------------------------------------------------------------ helpers
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function age(iso) {
  if (!iso) return "";
  let s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  if (s < 60) return Math.floor(s) + "s";
  if (s < 3600) return Math.floor(s / 60) + "m" + (s < 600 ? Math.floor(s % 60) + "s" : "");
  if (s < 86400) return Math.floor(s / 3600) + "h" + Math.floor((s % 3600) / 60) + "m";
  return Math.floor(s / 86400) + "d";
}

function seconds(value) {
  if (value === null || value === undefined) return "";
  if (value < 60) return value.toFixed(value < 10 ? 1 : 0) + " s";
  return Math.floor(value / 60) + " m " + Math.round(value % 60) + " s";
}

function stateBadge(state) { return el("span", { class: "state " + state, "data-state": state }, state); }

function progressBar(row) {
  const pct = row.progress === null ? (row.state === "completed" ? 100 : 0) : Math.round(row.progress * 100);
  const fill = el("span", {});
  // Through the CSSOM: the page's Content-Security-Policy (style-src 'self') ignores inline style attributes.
  fill.style.width = pct + "%";
  return el("span", { class: "progress" },
    el("span", { class: "bar " + row.state, title: row.progressLabel || "" }, fill),
    el("span", { class: "pct" }, row.progress === null ? "" : pct + "%"));
}

async function getJSON(url) {
  const response = await fetch(url, { headers: { Accept: "application/json" } });
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}

let flashTimer = null;
function flash(message, isError) {
  const box = document.getElementById("flash");
  box.textContent = message;
  box.className = isError ? "error" : "";
  box.hidden = false;
  clearTimeout(flashTimer);
  flashTimer = setTimeout(() => { box.hidden = true; }, isError ? 8000 : 4000);
}

function banner(message) {
  const box = document.getElementById("banner");
  box.textContent = message || "";
  box.hidden = !message;
}

// ------------------------------------------------------------------------------------------ actions
async function act(namespace, name, action, body) {
  const response = await fetch("/api/operations/" + encodeURIComponent(namespace) + "/" + encodeURIComponent(name) + "/" + action, {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-Dops-Token": CONFIG.token },
    body: JSON.stringify(body || {}),
  });
  const answer = await response.json();
  if (!response.ok) { flash(answer.error || response.statusText, true); return null; }
  flash(answer.message, false);
  return answer;
}

function actionButtons(row, resource) {
  if (CONFIG.readOnly) return el("div", { class: "actions muted" }, "read-only");
  const ns = row.namespace, name = row.name;
  const terminal = row.state === "completed" || row.state === "failed";
  const spec = resource.spec || {};
  const buttons = [];
  const add = (label, action, options) => buttons.push(el("button", {
    type: "button", "data-action": action, class: (options && options.danger) ? "danger" : null,
    onclick: async () => {
      let body = {};
      if (options && options.confirm && !window.confirm(options.confirm)) return;
      if (action === "label") {
        const text = window.prompt("New label for " + name, row.label);
        if (text === null) return;
        body = { label: text };
      }
      if (action === "delete" && row.state === "running") body = { force: true };
      const answer = await act(ns, name, action, body);
      if (!answer) return;
      if (action === "delete") location.hash = "#/";
      else if (action === "rerun" && answer.name) location.hash = "#/op/" + encodeURIComponent(ns) + "/" + encodeURIComponent(answer.name);
      else if (current) current.refresh(null);
    },
  }, label));
  if (spec.rerunnable !== false && !spec.parentId) add("Rerun", "rerun");
  if (!terminal) add("Cancel", "cancel", { danger: true, confirm: "Cancel operation " + name + "? It is marked as failed and its Job is stopped." });
  add(row.pinned ? "Unpin" : "Pin", row.pinned ? "unpin" : "pin");
  add("Label…", "label");
  if (terminal) add(row.archived ? "Unarchive" : "Archive", row.archived ? "unarchive" : "archive");
  add("Delete", "delete", { danger: true, confirm: (row.state === "running" ? "Operation " + name + " is RUNNING: its pod is stopped. " : "") + "Delete operation " + name + "? This cannot be undone." });
  return el("div", { class: "actions" }, buttons);
}

// ------------------------------------------------------------------------------------------ table view
function tableView(params) {
  const filters = {
    state: params.get("state") || "", operator: params.get("operator") || "", target: params.get("target") || "",
    label: params.get("label") || "", dataset: params.get("dataset") || "", namespace: params.get("namespace") || "", q: params.get("q") || "", page: parseInt(params.get("page") || "1", 10),
  };
  let inFlight = false, again = false, closed = false;
  const search = el("input", { type: "search", id: "f-search", placeholder: "Search name, label, operator…", value: filters.q });
  const label = el("input", { type: "text", id: "f-label", placeholder: "Label contains…", value: filters.label });
  const operator = el("select", { id: "f-operator" }, el("option", { value: "" }, "any operator"));
  const target = el("select", { id: "f-target" }, el("option", { value: "" }, "any target"));
  const dataset = el("select", { id: "f-dataset", hidden: true }, el("option", { value: "" }, "any dataset"));
  const nsSelect = CONFIG.namespace ? null : el("select", { id: "f-namespace" }, el("option", { value: "" }, "any namespace"));
  const counts = el("div", { class: "counts", id: "counts" });
  const body = el("tbody", { id: "ops" });
  const pager = el("div", { class: "pager", id: "pager" });
  view.replaceChildren(
    el("div", { class: "filters" }, search, label, operator, target, dataset, nsSelect),
    counts,
    el("table", {}, el("thead", {}, el("tr", {},
      ["State", "Progress", "Label", "Operator", "Target", CONFIG.namespace ? null : "Namespace", "Name", "Age"]
        .filter(Boolean).map((h) => el("th", {}, h)))), body),
    pager,
  );

  function navigate(changes) {
    Object.assign(filters, changes);
    if (!("page" in changes)) filters.page = 1;
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(filters)) if (v && !(k === "page" && v === 1)) q.set(k, v);
    history.replaceState(null, "", "#/" + (q.toString() ? "?" + q : ""));
    refresh();
  }
  let typing = null;
  // both text boxes share one pause-in-typing timer, so each applies both boxes' current text
  const typed = () => { clearTimeout(typing); typing = setTimeout(() => navigate({ q: search.value.trim(), label: label.value.trim() }), 200); };
  search.addEventListener("input", typed);
  label.addEventListener("input", typed);
  operator.addEventListener("change", () => navigate({ operator: operator.value }));
  target.addEventListener("change", () => navigate({ target: target.value }));
  dataset.addEventListener("change", () => navigate({ dataset: dataset.value }));
  if (nsSelect) nsSelect.addEventListener("change", () => navigate({ namespace: nsSelect.value }));

  function fillSelect(select, values, chosen) {
    const have = Array.from(select.options).map((o) => o.value).slice(1);
    if (have.join("\n") === values.join("\n")) { select.value = chosen; return; }
    select.replaceChildren(select.options[0], ...values.map((v) => el("option", { value: v }, v)));
    select.value = chosen;
  }

  async function refresh() {
    if (inFlight) { again = true; return; }
    inFlight = true;
    try {
      const q = new URLSearchParams({ page: filters.page, size: 50, facets: 1 });
      for (const k of ["state", "operator", "target", "label", "dataset", "namespace", "q"]) if (filters[k]) q.set(k, filters[k]);
      const data = await getJSON("/api/operations?" + q);
      if (closed) return;
      banner(data.error ? "Kubernetes API: " + data.error : (data.synced ? "" : "Loading operations…"));
      fillSelect(operator, data.facets.operators, filters.operator);
      fillSelect(target, data.facets.targets, filters.target);
      fillSelect(dataset, data.facets.datasets, filters.dataset);
      if (nsSelect) fillSelect(nsSelect, data.facets.namespaces, filters.namespace);
      dataset.hidden = !data.facets.datasets.length && !filters.dataset; // only where operations name datasets
      const all = STATES.reduce((n, s) => n + (data.counts[s] || 0), 0);
      counts.replaceChildren(
        el("button", { type: "button", class: "chip" + (filters.state ? "" : " active"), "data-state": "", onclick: () => navigate({ state: "" }) }, "all", el("b", {}, all)),
        ...STATES.map((s) => el("button", {
          type: "button", class: "chip" + (filters.state === s ? " active" : ""), "data-state": s, onclick: () => navigate({ state: s }),
        }, s, el("b", { "data-count": s }, data.counts[s] || 0))));
      body.replaceChildren(...data.items.map((row) => {
        const href = "#/op/" + encodeURIComponent(row.namespace) + "/" + encodeURIComponent(row.name);
        return el("tr", { class: "op", "data-name": row.name, "data-state": row.state, onclick: () => { location.hash = href; } },
          el("td", {}, stateBadge(row.state)),
          el("td", {}, progressBar(row)),
          el("td", {}, el("a", { href }, row.label), row.pinned ? " 📌" : ""),
          el("td", { class: "muted" }, row.operator),
          el("td", {}, row.target),
          CONFIG.namespace ? null : el("td", {}, row.namespace),
          el("td", { class: "muted" }, row.name),
          el("td", { class: "muted" }, age(row.queuedAt || row.created)));
      }));
      if (!data.items.length) body.replaceChildren(el("tr", {}, el("td", { colspan: 8, class: "muted" }, data.synced ? "No operations match." : "Loading…")));
      filters.page = data.page;
      pager.replaceChildren(
        el("button", { type: "button", id: "prev", disabled: data.page <= 1, onclick: () => navigate({ page: data.page - 1 }) }, "‹ Prev"),
        el("span", { id: "page-info" }, "page " + data.page + " of " + data.pages + " · " + data.total + " operations"),
        el("button", { type: "button", id: "next", disabled: data.page >= data.pages, onclick: () => navigate({ page: data.page + 1 }) }, "Next ›"));
      document.body.dataset.revision = data.revision;
    } catch (err) {
      banner(String(err.message || err));
    } finally {
      inFlight = false;
      if (again && !closed) { again = false; refresh(); }
    }
  }
  refresh();
  return { refresh: () => refresh(), close: () => { closed = true; } };
}

// ------------------------------------------------------------------------------------------ operation view
function operationView(namespace, name) {
  const key = namespace + "/" + name;
  let closed = false, eventsAt = 0, log = null;
  const head = el("div", { id: "op-head" });
  const cards = el("div", { class: "grid", id: "op-cards" });
  const logBox = el("pre", { id: "log" });
  const logSource = el("div", { class: "muted", id: "log-source" });
  const more = el("div", { class: "grid wide", id: "op-more" });
  view.replaceChildren(head, cards, el("div", { class: "card log-card" },
    el("h3", {}, "Log"), logSource, logBox), more);

  function startLog() {
    log = new EventSource("/api/operations/" + encodeURIComponent(namespace) + "/" + encodeURIComponent(name) + "/log");
    const append = (lines) => {
      const atEnd = logBox.scrollTop + logBox.clientHeight >= logBox.scrollHeight - 4;
      logBox.append(document.createTextNode(lines.join("\n") + "\n"));
      if (atEnd) logBox.scrollTop = logBox.scrollHeight;
    };
    log.addEventListener("lines", (e) => append(JSON.parse(e.data)));
    log.addEventListener("source", (e) => { logSource.textContent = JSON.parse(e.data); });
    log.addEventListener("problem", (e) => { logSource.textContent = JSON.parse(e.data); logSource.className = "error-text"; });
    log.addEventListener("end", () => { log.close(); logBox.dataset.ended = "true"; });
    log.onerror = () => { if (log) log.close(); };
  }

  async function refresh(changed) {
    if (changed && changed.changed && !changed.many && !changed.changed.includes(key)) return;
    const wantEvents = Date.now() - eventsAt > 5000;
    let data;
    try {
      data = await getJSON("/api/operations/" + encodeURIComponent(namespace) + "/" + encodeURIComponent(name) + (wantEvents ? "?events=1" : ""));
    } catch (err) {
      if (!closed) head.replaceChildren(el("h2", {}, name), el("p", { class: "error-text", id: "op-missing" }, String(err.message || err)));
      return;
    }
    if (closed) return;
    const { row, resource, timeline } = data;
    const spec = resource.spec || {}, status = resource.status || {};
    const title = el("h2", {}, row.label, el("span", { class: "sub" }, namespace + "/" + name));
    const stateLine = el("div", {}, stateBadge(row.state), " ", progressBar(row), " ",
      el("span", { class: "muted", id: "progress-label" }, row.progressLabel));
    // The buttons are rebuilt only when what they do changes: a refresh (progress moves every
    // second) that replaced them between a mouse press and its release would swallow the click.
    const actionsKey = JSON.stringify([row.state, row.pinned, row.archived, row.label, spec.rerunnable, spec.parentId]);
    const shown = head.querySelector(":scope > .actions");
    if (shown && shown.dataset.key === actionsKey && head.children.length === 3) {
      head.children[0].replaceWith(title);
      head.children[1].replaceWith(stateLine);
    } else {
      const actions = actionButtons(row, resource);
      actions.dataset.key = actionsKey;
      head.replaceChildren(title, stateLine, actions);
    }
    const result = status.result || {};
    const params = (spec.context || {}).params || {}; // spec.context holds FiftyOne's request_params
    const conditions = status.conditions || [];
    const keep = more.querySelector("#events-card");
    const events = data.events !== null ? data.events : null;
    const newCards = [
      el("div", { class: "card" }, el("h3", {}, "Timeline"), el("ul", { class: "timeline", id: "timeline" },
        timeline.map((t) => el("li", { class: t.at ? "reached " + t.phase : "", "data-phase": t.phase },
          el("b", {}, t.phase), " ", el("span", { class: "muted" }, t.at ? new Date(t.at).toLocaleString() : "—"),
          t.seconds !== null ? el("span", {}, " · " + seconds(t.seconds))
            : (t.at && t.phase === row.state ? el("span", { class: "muted" }, " · " + age(t.at) + " so far") : null))))),
      el("div", { class: "card" }, el("h3", {}, "Details"),
        el("div", {}, "operator: ", el("code", {}, spec.operator || "")),
        el("div", {}, "target: ", el("a", { href: "#/targets" }, row.target)),
        el("div", {}, "pinned: " + (row.pinned ? "yes" : "no") + " · archived: " + (row.archived ? "yes" : "no")),
        status.runLink ? el("div", {}, "run link: ", el("a", { href: status.runLink, id: "run-link", target: "_blank", rel: "noopener" }, status.runLink)) : null,
        status.jobName ? el("div", { class: "muted" }, "job " + status.jobName + (status.podName ? " · pod " + status.podName : "")) : null),
      el("div", { class: "card" }, el("h3", {}, "Params"), el("pre", { class: "json", id: "params" }, JSON.stringify(params, null, 2))),
      el("div", { class: "card" }, el("h3", {}, result.error ? "Error" : "Result"),
        result.error ? el("div", { class: "error-text", id: "error" }, result.errorMessage || result.error)
          : el("pre", { class: "json", id: "result" }, result.result !== undefined ? JSON.stringify(result.result, null, 2) : "—")),
      el("div", { class: "card" }, el("h3", {}, "Conditions"), el("table", { id: "conditions" },
        conditions.map((cnd) => el("tr", {}, el("td", {}, cnd.type), el("td", {}, cnd.status), el("td", {}, cnd.reason || ""), el("td", { class: "muted" }, cnd.message || ""))))),
      events === null && keep ? keep : el("div", { class: "card", id: "events-card" }, el("h3", {}, "Events"),
        events === null ? el("div", { class: "muted" }, "events are not readable") :
          el("table", { id: "events" }, events.map((e) => el("tr", {}, el("td", {}, e.type), el("td", {}, e.reason), el("td", { class: "muted" }, e.object), el("td", {}, e.message))))),
    ];
    if (wantEvents) eventsAt = Date.now();
    cards.replaceChildren(...newCards.slice(0, 4));
    more.replaceChildren(...newCards.slice(4));
    if (!log) startLog();
  }
  refresh(null);
  return { refresh, close: () => { closed = true; if (log) log.close(); } };
}

// ------------------------------------------------------------------------------------------ targets view
function targetsView() {
  let closed = false;
  const body = el("tbody", { id: "targets" });
  view.replaceChildren(el("h2", {}, "Delegation targets"), el("table", {}, el("thead", {}, el("tr", {},
    ["Namespace", "Target", "Mode", "Max concurrent", "Running", "Scheduled", "Queued", "Completed", "Failed"].map((h) => el("th", {}, h)))), body));
  async function refresh() {
    try {
      const data = await getJSON("/api/targets");
      if (closed) return;
      body.replaceChildren(...data.items.map((t) => el("tr", { "data-target": t.name },
        el("td", {}, t.namespace), el("td", {}, el("a", { href: "#/?target=" + encodeURIComponent(t.name) }, t.name)),
        el("td", {}, t.defined ? t.mode : "built-in default"),
        el("td", { class: "max" }, t.maxConcurrent === null || t.maxConcurrent === undefined ? "operator default" : t.maxConcurrent),
        ...["running", "scheduled", "queued", "completed", "failed"].map((s) => el("td", { class: s }, t.counts[s])))));
    } catch (err) { banner(String(err.message || err)); }
  }
  refresh();
  let timer = null;
  return {
    refresh: () => { clearTimeout(timer); timer = setTimeout(refresh, 1000); }, // counts change often: at most once a second
    close: () => { closed = true; clearTimeout(timer); },
  };
}

// ------------------------------------------------------------------------------------------ routing + live
function route() {
  if (current) current.close();
  const hash = location.hash.replace(/^#/, "") || "/";
  const [path, query] = hash.split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  if (parts[0] === "op" && parts.length === 3) current = operationView(parts[1], parts[2]);
  else if (parts[0] === "targets") current = targetsView();
  else current = tableView(new URLSearchParams(query || ""));
}

function connect() {
  const live = document.getElementById("live");
  const stream = new EventSource("/api/stream");
  stream.addEventListener("hello", () => { live.classList.add("on"); });
  stream.addEventListener("change", (e) => { if (current) current.refresh(JSON.parse(e.data)); });
  stream.onerror = () => { live.classList.remove("on"); }; // EventSource reconnects by itself
}

document.getElementById("scope").textContent = (CONFIG.namespace ? "namespace " + CONFIG.namespace : "all namespaces") + (CONFIG.readOnly ? " · read-only" : "");
window.addEventListener("hashchange", route);
route();
connect();
