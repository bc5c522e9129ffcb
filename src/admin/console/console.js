// hookgate console: plain JavaScript over the /v1 admin API. The token lives in
// sessionStorage (this tab only) and goes out in the Authorization header of every call,
// including the live stream, which is read with fetch() rather than EventSource (which cannot
// send headers): the token never appears in a URL.
"use strict";

const TOKEN_KEY = "hookgate-token";
let current = null; // the page being shown: { stop() } to end its streams and timers

// ------------------------------------------------------------------------------------ helpers

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const badge = (text) => el("span", { class: `badge ${text}` }, text);
const when = (at) => (at ? new Date(at).toLocaleString() : "");
const token = () => sessionStorage.getItem(TOKEN_KEY);

function flash(message) {
  const box = document.getElementById("flash");
  box.textContent = message;
  box.hidden = false;
  setTimeout(() => { box.hidden = true; }, 6000);
}

class ApiError extends Error {
  constructor(status, problem) {
    super((problem && (problem.detail || problem.title)) || `HTTP ${status}`);
    this.status = status;
  }
}

async function api(method, path, body) {
  const headers = { Authorization: `Bearer ${token()}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const json = await response.json().catch(() => null);
  if (response.status === 401) {
    signOut("The token was refused; sign in again.");
    throw new ApiError(401, json);
  }
  if (!response.ok) throw new ApiError(response.status, json);
  return { json, headers: response.headers };
}

const get = async (path) => (await api("GET", path)).json;

function query(params) {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value !== "" && value !== null && value !== undefined && value !== false) search.set(name, value);
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}

function table(headers, rows) {
  return el("table", {},
    el("thead", {}, el("tr", {}, headers.map((h) => el("th", {}, h)))),
    el("tbody", {}, rows));
}

// A server-sent events stream read with fetch(), resumed with Last-Event-ID after any break.
// onChange gets each change (the parsed `data`), onOpen is told each time the stream is
// connected; stop() ends it.
function follow(path, onChange, onOpen) {
  let lastId = null;
  let controller = null;
  let stopped = false;
  async function run() {
    while (!stopped) {
      controller = new AbortController();
      const headers = { Authorization: `Bearer ${token()}` };
      if (lastId) headers["Last-Event-ID"] = lastId;
      try {
        const response = await fetch(path, { headers, signal: controller.signal });
        if (response.status === 401) { signOut("The token was refused; sign in again."); return; }
        if (!response.ok) throw new Error(`HTTP ${response.status}`);
        if (onOpen) onOpen();
        const reader = response.body.getReader();
        const decoder = new TextDecoder();
        let buffer = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += decoder.decode(value, { stream: true }).replace(/\r\n?/g, "\n");
          let end;
          while ((end = buffer.indexOf("\n\n")) >= 0) {
            const block = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            let id = null;
            let data = "";
            for (const line of block.split("\n")) {
              if (line.startsWith(":")) continue;
              const colon = line.indexOf(":");
              const field = colon < 0 ? line : line.slice(0, colon);
              const text = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
              if (field === "id") id = text;
              else if (field === "data") data += text;
            }
            if (id) lastId = id;
            if (data) onChange(JSON.parse(data));
          }
        }
      } catch (error) {
        if (stopped) return;
      }
      if (!stopped) await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  }
  run();
  return { stop() { stopped = true; if (controller) controller.abort(); } };
}

function describe(change) {
  const parts = [];
  if (change.destination) parts.push(change.destination);
  if (change.kind === "attempt_failed" || (change.kind === "dead_lettered" && change.destination)) {
    parts.push(`attempt ${change.attempt}`);
    parts.push(change.status_code ? `HTTP ${change.status_code}` : "no answer");
    if (change.error) parts.push(change.error);
    if (change.next_attempt_at) parts.push(`next attempt ${when(change.next_attempt_at)}`);
  } else {
    parts.push(change.reason);
  }
  return parts.join(" · ");
}

function changeItem(change, withEvent) {
  return el("li", { "data-kind": change.kind, "data-destination": change.destination || "" },
    el("span", { class: "when" }, when(change.at)),
    badge(change.kind), " ",
    withEvent ? el("a", { href: `#/events/${change.event_id}`, class: "mono" }, change.source, " ", change.event_id.slice(0, 8), " ") : null,
    describe(change));
}

// -------------------------------------------------------------------------------------- pages

const pages = {};

// Refusals are listed by outcome in the cell's title.
function trafficTable(sources) {
  return table(["source", "received", "accepted", "duplicates", "refused"],
    sources.map((s) => el("tr", { "data-source": s.source },
      el("td", {}, s.source),
      el("td", { class: "num received" }, s.received),
      el("td", { class: "num accepted" }, s.accepted),
      el("td", { class: "num duplicate" }, s.duplicate),
      el("td", { class: "num refused", title: Object.entries(s.outcomes)
        .filter(([outcome]) => !["accepted", "duplicate", "handshake"].includes(outcome))
        .map(([outcome, n]) => `${outcome}: ${n}`).join(", ") }, s.refused))));
}

pages.overview = async (root) => {
  const destinations = (await get("/v1/destinations")).items;
  const traffic = (await get("/v1/sources?since=1h")).items;
  const open = await get("/v1/dead-letters?limit=500");
  const pending = destinations.reduce((sum, d) => sum + d.pending, 0);
  const unhealthy = destinations.filter((d) => d.state !== "closed").length;
  const cards = el("div", { class: "cards" },
    [["pending deliveries", pending], ["open dead letters", open.items.length + (open.next_cursor ? "+" : "")],
     ["destinations", destinations.length], ["paused or breaker not closed", unhealthy]]
      .map(([label, value]) => el("div", { class: "card" }, el("div", { class: "value" }, value), el("div", { class: "label" }, label))));
  const feed = el("ol", { class: "timeline", id: "feed" });
  root.append(el("h2", {}, "Overview"), cards,
    el("h3", {}, "Requests in the last hour"), el("div", { id: "traffic" }, trafficTable(traffic)),
    el("div", { class: "columns" },
      el("div", {}, el("h3", {}, "Destination health"), destinationsTable(destinations, false)),
      el("div", {}, el("h3", {}, "Live changes"), feed)));
  const stream = follow("/v1/stream", (change) => {
    feed.prepend(changeItem(change, true));
    while (feed.children.length > 30) feed.lastChild.remove();
  }, () => { feed.dataset.live = "true"; });
  // Receivers add their counts every second; the table follows every few.
  const refresh = setInterval(async () => {
    try {
      const sources = (await get("/v1/sources?since=1h")).items;
      document.getElementById("traffic")?.replaceChildren(trafficTable(sources));
    } catch (error) { /* the next refresh tries again */ }
  }, 3000);
  return { stop: () => { stream.stop(); clearInterval(refresh); } };
};

pages.events = async (root, params) => {
  const fields = ["external_id", "source", "status", "event_type", "since", "until"];
  const form = el("form", { class: "filters", id: "event-search" },
    fields.map((name) => el("label", {}, name === "external_id" ? "provider id" : name,
      name === "status"
        ? el("select", { name, id: `search-${name}` }, ["", "pending", "delivered", "dead_lettered"].map((s) => el("option", { value: s, selected: params.get(name) === s }, s || "any")))
        : el("input", { name, id: `search-${name}`, value: params.get(name) || "", placeholder: name === "since" || name === "until" ? "1h or RFC 3339" : "" }))),
    el("button", { type: "submit", class: "primary", id: "search" }, "Search"));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const values = Object.fromEntries(fields.map((f) => [f, form.elements[f].value.trim()]));
    location.hash = `#/events${query(values)}`;
  });
  const search = Object.fromEntries(fields.map((f) => [f, params.get(f) || ""]));
  const listing = await get(`/v1/events${query({ ...search, limit: 50 })}`);
  root.append(el("h2", {}, "Events"), form,
    table(["received", "source", "provider id", "type", "status", ""],
      listing.items.map((e) => el("tr", { "data-event": e.id },
        el("td", {}, when(e.received_at)), el("td", {}, e.source), el("td", { class: "mono" }, e.external_id),
        el("td", {}, e.event_type || ""), el("td", {}, badge(e.status)),
        el("td", {}, el("a", { href: `#/events/${e.id}`, class: "event-link" }, "details"))))),
    listing.items.length ? null : el("p", { class: "muted", id: "no-events" }, "No event matches."));
};

pages.event = async (root, params, id) => {
  const status = el("div", { id: "event-status" });
  const timeline = el("ol", { class: "timeline", id: "timeline" });
  const payload = el("pre", { id: "payload" });
  const headers = el("div", { id: "headers" });
  root.append(el("h2", {}, "Event ", el("span", { class: "mono" }, id)), status,
    el("div", { class: "columns" },
      el("div", {}, el("h3", {}, "Timeline"), timeline),
      el("div", {}, el("h3", {}, "Payload"), payload, el("h3", {}, "Headers"), headers)));

  async function refresh() {
    const event = await get(`/v1/events/${id}`);
    const replayable = event.dead_letters;
    const actions = el("div", { class: "actions" },
      replayable.map((d) => el("button", { type: "button", class: "primary replay", "data-dead-letter": d.id,
        onclick: async (e) => {
          e.target.disabled = true;
          try { await api("POST", `/v1/dead-letters/${d.id}/replay`); } catch (error) { flash(error.message); }
          refresh();
        } }, "Replay dead letter ", d.id.slice(0, 8))),
      el("button", { type: "button", id: "redeliver", onclick: async (e) => {
        e.target.disabled = true;
        try { await api("POST", `/v1/events/${id}/redeliver`); } catch (error) { flash(error.message); }
        refresh();
      } }, "Redeliver"));
    status.replaceChildren(
      el("p", {}, "Source ", el("b", {}, event.source), " · provider id ", el("span", { class: "mono", id: "external-id" }, event.external_id),
        event.event_type ? ` · type ${event.event_type}` : "", " · received ", when(event.received_at), " · ",
        el("span", { id: "status" }, badge(event.status))),
      table(["destination", "state", "attempts", "next attempt", "last status", "last error"],
        event.deliveries.map((d) => el("tr", { "data-destination": d.destination },
          el("td", {}, d.destination), el("td", { class: "state" }, badge(d.state)),
          el("td", { class: "num" }, `${d.attempts} / ${d.max_attempts}`), el("td", {}, when(d.next_attempt_at)),
          el("td", {}, d.last_status || ""), el("td", {}, d.last_error || "")))),
      actions);
  }
  await refresh();
  const request = await get(`/v1/events/${id}/request`);
  if (request.payload !== undefined) {
    try { payload.textContent = JSON.stringify(JSON.parse(request.payload), null, 2); } catch { payload.textContent = request.payload; }
  } else {
    payload.textContent = `(binary, base64) ${request.payload_base64}`;
  }
  headers.append(table(["name", "value"], request.headers.map(([n, v]) => el("tr", {}, el("td", { class: "mono" }, n), el("td", { class: "mono" }, v)))));
  let pending = null;
  const stream = follow(`/v1/events/${id}/stream`, (change) => {
    timeline.append(changeItem(change, false));
    // Changes come in bursts (a delivery and its event): refresh once per burst.
    clearTimeout(pending);
    pending = setTimeout(() => refresh().catch((e) => flash(e.message)), 150);
  });
  return { stop: () => { stream.stop(); clearTimeout(pending); } };
};

pages["dead-letters"] = async (root, params) => {
  const fields = ["source", "destination", "since", "until"];
  const form = el("form", { class: "filters", id: "dead-letter-filters" },
    fields.map((name) => el("label", {}, name, el("input", { name, value: params.get(name) || "" }))),
    el("label", {}, "replayed too", el("input", { type: "checkbox", name: "include_replayed", checked: params.get("include_replayed") === "true" })),
    el("button", { type: "submit", class: "primary" }, "Filter"));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const values = Object.fromEntries(fields.map((f) => [f, form.elements[f].value.trim()]));
    values.include_replayed = form.elements.include_replayed.checked ? "true" : "";
    location.hash = `#/dead-letters${query(values)}`;
  });
  const filter = Object.fromEntries(fields.map((f) => [f, params.get(f) || ""]));
  const listing = await get(`/v1/dead-letters${query({ ...filter, include_replayed: params.get("include_replayed") || "", limit: 100 })}`);
  const progress = el("div", { id: "bulk-progress" });
  let timer = null;
  const bulk = el("button", { type: "button", id: "replay-all", onclick: async () => {
    const body = Object.fromEntries(Object.entries(filter).filter(([, v]) => v));
    const filtered = Object.keys(body).length > 0;
    if (!confirm(filtered ? "Replay every open dead letter matching these filters?" : "Replay EVERY open dead letter?")) return;
    if (!filtered) body.all = true;
    bulk.disabled = true;
    try {
      let operation = (await api("POST", "/v1/dead-letters/replay", body)).json;
      const bar = el("progress", { max: 1, value: 0 });
      const text = el("span", {});
      progress.replaceChildren(bar, " ", text);
      const show = () => {
        bar.max = Math.max(operation.matched, 1);
        bar.value = operation.replayed + operation.failed;
        text.textContent = `${operation.state}: ${operation.replayed} replayed, ${operation.failed} failed of ${operation.matched}`;
      };
      show();
      timer = setInterval(async () => {
        operation = await get(operation.href);
        show();
        if (operation.state !== "running") clearInterval(timer);
      }, 500);
    } catch (error) { flash(error.message); bulk.disabled = false; }
  } }, "Replay all matching");
  root.append(el("h2", {}, "Dead letters"), form, el("div", { class: "actions" }, bulk, progress),
    table(["created", "source", "destination", "attempts", "failure", "last error", "", ""],
      listing.items.map((d) => el("tr", { "data-dead-letter": d.id },
        el("td", {}, when(d.created_at)), el("td", {}, d.source), el("td", {}, d.destination),
        el("td", { class: "num" }, d.attempts), el("td", {}, badge(d.failure_kind)), el("td", {}, d.last_error || ""),
        el("td", {}, el("a", { href: `#/events/${d.event_id}` }, "event")),
        el("td", {}, d.replayed_at ? el("span", { class: "muted" }, "replayed") : el("button", { type: "button", class: "replay", onclick: async (e) => {
          e.target.disabled = true;
          try { await api("POST", `/v1/dead-letters/${d.id}/replay`); e.target.replaceWith(el("span", { class: "muted" }, "replayed")); } catch (error) { flash(error.message); e.target.disabled = false; }
        } }, "Replay"))))));
  return { stop: () => clearInterval(timer) };
};

function destinationsTable(rows, actions) {
  return table(["source", "destination", "state", "pending", "oldest pending", "last error", actions ? "" : null].filter((h) => h !== null),
    rows.map((d) => el("tr", { "data-destination": `${d.source}/${d.destination}` },
      el("td", {}, d.source), el("td", {}, d.destination), el("td", {}, badge(d.state)),
      el("td", { class: "num" }, d.pending + (d.pending_more ? "+" : "")),
      el("td", {}, d.oldest_pending_age_seconds === null || d.oldest_pending_age_seconds === undefined ? "" : `${d.oldest_pending_age_seconds} s`),
      el("td", {}, d.last_error || ""),
      actions ? el("td", {}, el("button", { type: "button", class: d.paused ? "resume" : "pause", onclick: async (e) => {
        e.target.disabled = true;
        const verb = d.paused ? "resume" : "pause";
        try { await api("POST", `/v1/destinations/${encodeURIComponent(d.source)}/${encodeURIComponent(d.destination)}/${verb}`); } catch (error) { flash(error.message); }
        route();
      } }, d.paused ? "Resume" : "Pause")) : null)));
}

pages.destinations = async (root) => {
  const destinations = (await get("/v1/destinations")).items;
  root.append(el("h2", {}, "Destinations"), destinationsTable(destinations, true));
};

// ------------------------------------------------------------------------------ routing, auth

async function route() {
  if (current && current.stop) current.stop();
  current = null;
  const signedIn = Boolean(token());
  document.getElementById("sign-in-page").hidden = signedIn;
  document.getElementById("nav").hidden = !signedIn;
  const root = document.getElementById("page");
  root.replaceChildren();
  if (!signedIn) { document.getElementById("token").focus(); return; }
  const [path, search] = (location.hash.slice(1) || "/overview").split("?");
  const parts = path.split("/").filter(Boolean);
  const params = new URLSearchParams(search || "");
  let page = parts[0] || "overview";
  const args = [];
  if (page === "events" && parts[1]) { page = "event"; args.push(parts[1]); }
  for (const link of document.querySelectorAll("#nav a")) {
    link.classList.toggle("current", link.dataset.page === parts[0]);
  }
  const render = pages[page];
  if (!render) { root.append(el("p", {}, "No such page.")); return; }
  root.dataset.page = page;
  try {
    current = (await render(root, params, ...args)) || null;
  } catch (error) {
    root.append(el("p", { class: "error", id: "page-error" }, error.message));
  }
}

function signOut(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  document.getElementById("sign-in-error").textContent = message || "";
  route();
}

document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("sign-in-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const input = document.getElementById("token");
    sessionStorage.setItem(TOKEN_KEY, input.value.trim());
    input.value = "";
    try {
      await get("/v1/destinations");
      document.getElementById("sign-in-error").textContent = "";
      if (!location.hash) location.hash = "#/overview";
      route();
    } catch (error) {
      if (error.status !== 401) signOut(error.message);
    }
  });
  document.getElementById("sign-out").addEventListener("click", () => signOut());
  window.addEventListener("hashchange", route);
  route();
});
