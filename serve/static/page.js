"use strict";
// The search page. Its state lives in the URL (q, mode, phrase, filter, k, exhaustive,
// offset, open), so a search can be bookmarked, shared, and walked with back/forward.
// Every node is built from text, never from HTML strings.

const $ = (sel) => document.querySelector(sel);
const el = (tag, attrs = {}, ...children) => {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "text") node.textContent = v; else node.setAttribute(k, v === true ? "" : v);
  }
  for (const child of children) if (child !== null && child !== undefined && child !== "") node.append(child);
  return node;
};
const pct = (share) => `${Math.round(100 * share)}%`;
const baseName = (path) => (path || "").split(/[\\/]/).pop().split("#")[0];
const FIELDS = ["q", "mode", "phrase", "filter", "k", "exhaustive", "offset"];
const RECENT = "latestore.recent";

let summary = null;
let current = {key: null, hits: [], data: null};  // the results on screen
let opener = null;  // the card that opened the viewer, to give focus back
let searches = 0;  // numbers the searches, so only the latest one's answer is shown

function status(message, error = false) {
  $("#status").textContent = message;
  $("#status").className = error ? "error" : "";
}

// -- URL state -------------------------------------------------------------------
function stateFromUrl() {
  const p = new URLSearchParams(location.search);
  const state = {};
  for (const f of FIELDS) if (p.has(f)) state[f] = p.get(f);
  if (p.has("open")) state.open = p.get("open");
  return state;
}

function urlOf(state) {
  const p = new URLSearchParams();
  for (const f of [...FIELDS, "open"]) {
    const v = state[f];
    if (v === undefined || v === null || v === "" || (f === "offset" && v === "0") || (f === "k" && v === "10") || (f === "exhaustive" && v !== "1")) continue;
    p.set(f, v);
  }
  const qs = p.toString();
  return qs ? `?${qs}` : location.pathname;
}

function go(state, replace = false) {
  history[replace ? "replaceState" : "pushState"](state, "", urlOf(state));
  render(state);
}

function formState() {
  return {
    q: $("#q").value.trim(), mode: $("#mode").value, phrase: $("#phrase").value.trim(),
    filter: $("#filter").value.trim(), k: $("#k").value, exhaustive: $("#exhaustive").checked ? "1" : "",
    offset: "0",
  };
}

function fillForm(state) {
  $("#q").value = state.q || "";
  $("#mode").value = state.mode || "";
  $("#phrase").value = state.phrase || "";
  $("#filter").value = state.filter || "";
  const k = /^[1-9][0-9]*$/.test(state.k || "") ? state.k : "10";
  // A k from a link that the list lacks is added, so the form says what was searched.
  if (![...$("#k").options].some((o) => o.value === k)) $("#k").append(el("option", {text: k}));
  $("#k").value = k;
  $("#exhaustive").checked = state.exhaustive === "1";
}

// -- rendering ---------------------------------------------------------------------
async function render(state) {
  fillForm(state);
  if (!state.q) {
    current = {key: null, hits: [], data: null};
    $("#results-section").hidden = true;
    $("#start").hidden = false;
    status("");
    showStart();
    closeViewer(false);
    return;
  }
  // The same search whatever the spelling of its defaults: no second request for it.
  const norm = {...state, k: state.k || "10", offset: state.offset || "0", exhaustive: state.exhaustive === "1" ? "1" : ""};
  const key = JSON.stringify(FIELDS.map((f) => norm[f] || ""));
  if (key !== current.key) await runSearch(state, key);
  if (state.open) await openPage(Number(state.open), state); else closeViewer(false);
}

async function api(path, body) {
  const init = body === undefined ? {credentials: "same-origin"}
    : {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body), credentials: "same-origin"};
  const response = await fetch(path, init);
  const data = await response.json().catch(() => ({error: "BadResponse", message: `HTTP ${response.status}`}));
  if (!response.ok) throw Object.assign(new Error(data.message || response.statusText), {name: data.error || "HTTPError"});
  return data;
}

async function runSearch(state, key) {
  const body = {query: state.q, k: Number(state.k || 10), offset: Number(state.offset || 0), explain: true};
  if (state.mode) body.mode = state.mode;
  if (state.phrase) body.phrase = state.phrase;
  if (state.exhaustive === "1") body.exhaustive = true;
  if (state.filter) {
    try { body.filter = JSON.parse(state.filter); }
    catch (err) { return showError(`The filter is not JSON: ${err.message}`); }
  }
  status("Searching…");
  delete document.body.dataset.searched;  // set again when these results are shown
  const started = performance.now();
  const mine = ++searches;
  let data;
  try { data = await api("search", body); }
  catch (err) { return mine === searches ? showError(`${err.name}: ${err.message}`) : null; }
  if (mine !== searches) return;  // a later search (back, forward, typing) replaced this one
  current = {key, hits: data.hits, data};
  remember(state.q);
  $("#start").hidden = true;
  $("#results-section").hidden = false;
  $("#results").replaceChildren(...data.hits.map((hit) => el("li", {}, card(hit))));
  const first = data.offset + 1, last = data.offset + data.hits.length;
  const took = Math.round(performance.now() - started);
  status(data.hits.length ? `Results ${first}–${last} (${data.mode}) in ${took} ms` : "No pages match.");
  $("#results-title").textContent = data.hits.length ? `Results ${first}–${last}` : "Results";
  $("#prev").disabled = data.offset === 0;
  $("#next").disabled = data.next_offset === null;
  $("#page-of").textContent = `page ${Math.floor(data.offset / data.k) + 1}`;
  document.body.dataset.searched = String(data.hits.length);
}

function showError(message) {
  current = {key: null, hits: [], data: null};
  $("#results").replaceChildren();
  $("#results-section").hidden = true;
  status(message, true);
}

// -- start page: the store and what to try -----------------------------------------
async function showStart() {
  if (!summary) {
    try { summary = await api("summary"); } catch (err) { status(`${err.name}: ${err.message}`, true); return; }
    for (const option of $("#mode").options) {
      const mode = summary.modes[option.value];
      if (mode && !mode.available) { option.disabled = true; option.textContent += " (unavailable)"; }
    }
    $("#mode").options[0].textContent = `store default (${summary.default_mode})`;
  }
  const modes = Object.entries(summary.modes).filter(([, m]) => m.available).map(([name]) => name);
  const rows = [
    ["Pages", summary.pages.toLocaleString()], ["Documents", summary.documents.toLocaleString()],
    ["Encoder", `${summary.encoder} (reads page ${summary.reads})`], ["Search modes", modes.join(", ")],
    ["Version", `latestore ${summary.version}`],
  ];
  $("#summary").replaceChildren(...rows.flatMap(([k, v]) => [el("dt", {text: k}), el("dd", {text: v})]));
  const recent = JSON.parse(localStorage.getItem(RECENT) || "[]");
  const [title, queries] = recent.length ? ["Recent searches", recent] : ["Example queries", summary.examples];
  const list = el("ul", {class: "chips"}, ...queries.map((q) => {
    const button = el("button", {type: "button", class: "quiet", text: q});
    button.addEventListener("click", () => go({...formState(), q}));
    return el("li", {}, button);
  }));
  $("#suggestions").replaceChildren(el("h3", {text: title}), queries.length ? list : el("p", {class: "note", text: "The store is empty: add pages with `latestore ingest`."}));
  document.body.dataset.ready = "1";
}

function remember(query) {
  const recent = JSON.parse(localStorage.getItem(RECENT) || "[]").filter((q) => q !== query);
  localStorage.setItem(RECENT, JSON.stringify([query, ...recent].slice(0, 8)));
}

// -- result cards --------------------------------------------------------------------
function title(hit) {
  const name = baseName(hit.document_id) || hit.external_id || `page id ${hit.page_id}`;
  return hit.page_number != null ? `${name} · page ${hit.page_number}` : name;
}

function card(hit) {
  const why = hit.explanation;
  const signals = hit.signals && hit.signals.length ? ` · ${hit.signals.join(" + ")}` : "";
  const id = `hit-${hit.page_id}`;
  const node = el("article", {class: "result", tabindex: "0", "data-page-id": String(hit.page_id), "aria-labelledby": id},
    el("h3", {id, text: title(hit)}),
    el("p", {class: "meta", text: `#${hit.rank} · score ${hit.score.toFixed(3)}${signals}`}),
    readsImages(why) ? figure(hit, 320, why && why.heatmap) : passage(hit.text || "", why ? why.highlights : []),
    bestWords(why));
  const open = () => { opener = node; go({...stateFromUrl(), open: String(hit.page_id)}); };
  node.addEventListener("click", open);
  node.addEventListener("keydown", (event) => { if (event.key === "Enter") { event.preventDefault(); open(); } });
  return node;
}

function readsImages(why) {
  return why ? why.positions === "image" : summary ? summary.reads === "images" : false;
}

// The matched passage: a window of the text around its strongest highlight.
function passage(text, highlights, size = 360) {
  if (!text) return el("p", {class: "passage note", text: "(no text)"});
  let start = 0;
  if (highlights.length) {
    const best = highlights.reduce((a, b) => (b.weight > a.weight ? b : a));
    start = Math.max(0, best.start - Math.floor(size / 3));
    const space = text.lastIndexOf(" ", start);
    start = start > 0 && space > start - 40 ? space + 1 : start;
  }
  return marked(text, highlights, start, Math.min(text.length, start + size), "passage");
}

function marked(text, highlights, start, end, cls) {
  const out = el("p", {class: cls});
  if (start > 0) out.append("… ");
  let at = start;
  for (const h of highlights) {
    if (h.end <= at || h.start >= end) continue;
    out.append(text.slice(at, Math.max(at, h.start)));
    const mark = el("mark", {text: text.slice(Math.max(at, h.start), Math.min(h.end, end)), title: `${pct(h.weight)} of the score`});
    mark.style.setProperty("--w", String(Math.min(0.9, 0.3 + 2 * h.weight)));
    out.append(mark);
    at = Math.min(h.end, end);
  }
  out.append(text.slice(at, end) + (end < text.length ? " …" : ""));
  return out;
}

function bestWords(why) {
  if (!why || !why.words) return null;
  const top = why.words.filter((w) => w.kind === "word").sort((a, b) => b.share - a.share).slice(0, 3);
  if (!top.length) return null;
  return el("ul", {class: "best", "aria-label": "Best matching words"}, ...top.map((w) => el("li", {},
    el("span", {text: `${w.text}${w.page_words.length ? ` → “${w.page_words[0]}”` : ""}`}),
    shareBar(w.share, top[0].share))));
}

// A bar as long as the share against the largest share beside it (the top one is full),
// so small shares of a long query are still told apart; the number says the share.
function shareBar(share, largest = share) {
  const bar = el("span", {class: "bar", "aria-hidden": "true"}, el("span"));
  const width = largest > 0 ? Math.round(100 * share / largest) : 0;
  bar.firstChild.style.width = `${Math.max(2, Math.min(100, width))}%`;
  return el("span", {class: "share"}, bar, el("span", {class: "num", text: pct(share)}));
}

// -- images and heatmaps -----------------------------------------------------------
function figure(hit, size, heatmap) {
  const src = size ? `${hit.image_url}?size=${size}` : hit.image_url;
  const img = el("img", {src, alt: `Page image: ${title(hit)}`, class: "thumb"});
  const box = el("div", {class: "figure"}, img);
  if (heatmap) box.append(drawHeatmap(el("canvas", {class: "heatmap", "aria-hidden": "true"}), heatmap));
  return box;
}

// Each patch's value on the heatmap's own scale, from faint yellow (low) to red (high).
function drawHeatmap(canvas, heatmap) {
  const {rows, cols, values, low, high} = heatmap;
  canvas.width = cols; canvas.height = rows;
  const ctx = canvas.getContext("2d");
  let painted = 0;
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) {
    const v = values[r][c];
    if (v === null) continue;
    const t = high > low ? (v - low) / (high - low) : 1;
    ctx.fillStyle = `rgba(255, ${Math.round(200 * (1 - t))}, 0, ${(0.1 + 0.55 * t).toFixed(3)})`;
    ctx.fillRect(c, r, 1, 1);
    painted++;
  }
  canvas.dataset.cells = String(painted);
  return canvas;
}

function heatLegend(heatmap) {
  return el("div", {class: "legend", id: "heat-legend"},
    el("p", {text: `Heatmap: ${heatmap.what}.`}),
    el("div", {class: "scale", role: "img", "aria-label": `colour scale from ${heatmap.low.toFixed(3)} (pale) to ${heatmap.high.toFixed(3)} (red)`}),
    el("div", {class: "scale-ends"}, el("span", {text: heatmap.low.toFixed(3)}), el("span", {text: heatmap.high.toFixed(3)})));
}

// -- the page viewer ---------------------------------------------------------------
async function openPage(pageId, state) {
  let hit = current.hits.find((h) => h.page_id === pageId);
  try {
    if (!hit) {  // a bookmarked page beyond the results shown: fetch it and explain it
      const page = await api(`pages/${pageId}`);
      const why = await api(`pages/${pageId}/explain?q=${encodeURIComponent(state.q)}`);
      hit = {...page, score: why.score, rank: null, signals: [], explanation: why};
    }
  } catch (err) { status(`${err.name}: ${err.message}`, true); return; }
  const why = hit.explanation;
  $("#viewer-title").textContent = `${title(hit)}${hit.rank ? ` — result #${hit.rank}` : ""}`;
  const pagePane = document.querySelector(".page-pane");
  const parts = [];
  if (hit.image_url && (readsImages(why) || !hit.text)) parts.push(figure(hit, null, why && why.heatmap));
  else if (hit.text) {
    // It scrolls: focusable, so a keyboard can scroll it too.
    const text = marked(hit.text, why ? why.highlights : [], 0, hit.text.length, "page-text");
    text.tabIndex = 0;
    text.setAttribute("aria-label", "Page text, matched words marked");
    parts.push(text);
  }
  pagePane.replaceChildren(...parts);
  document.querySelector(".why-pane").replaceChildren(...explanation(hit, state));
  const firstMark = pagePane.querySelector(".page-text mark");
  if (firstMark) firstMark.parentElement.scrollTop = Math.max(0, firstMark.offsetTop - 80);
  const viewer = $("#viewer");
  if (viewer.hidden) {
    viewer.hidden = false;
    document.body.style.overflow = "hidden";
    $("#close").focus();
  }
  document.body.dataset.viewing = String(pageId);
}

function explanation(hit, state) {
  const why = hit.explanation;
  const out = [el("h3", {id: "why-title", text: "Why this page"})];
  if (!why) return [...out, el("p", {class: "note", text: "No explanation: the page changed after the search."})];
  const mode = current.data ? current.data.mode : "maxsim";
  const scoreText = mode === "maxsim"
    ? `Score ${why.score.toFixed(3)}: each query token's best similarity with any token of this page, summed.`
    : `Ranked by ${mode} (score ${hit.score.toFixed(3)}). Below: its MaxSim part, ${why.score.toFixed(3)}, the sum of each query token's best similarity on this page.`;
  out.push(el("p", {text: scoreText}));
  if (why.positions === "unknown") {
    out.push(el("p", {class: "note", text: `Where each match sits on the page is not known: ${why.positions_note}.`}));
  }
  if (why.heatmap) out.push(heatLegend(why.heatmap));
  out.push(wordTable(hit, state));
  out.push(el("p", {class: "legend", text: "Share: the word's part of the score. Similarity: its tokens' best similarities summed (a word cut into pieces by the tokenizer has one per piece)."}));
  return out;
}

function wordTable(hit, state) {
  const why = hit.explanation;
  const image = why.positions === "image";
  const words = why.words || why.matches.map((m) => ({text: m.label || `query token ${m.query_token + 1}`, kind: "word", tokens: [m.query_token], similarity: m.similarity, share: m.share, page_words: []}));
  const typedShare = words.filter((w) => w.kind === "word").reduce((s, w) => s + w.share, 0);
  const hasModel = words.some((w) => w.kind !== "word");
  const table = el("table", {class: "why"});
  table.append(el("caption", {text: hasModel ? `Typed words give ${pct(typedShare)} of the score; tokens the model adds give the rest.` : "Each query word's best match on the page."}));
  const head = ["Query word", image ? "Best place on the page" : "Matched on the page", "Similarity", "Share of score"];
  if (image) head.push("Heatmap");
  table.append(el("thead", {}, el("tr", {}, ...head.map((h) => el("th", {scope: "col", text: h})))));
  const body = el("tbody");
  const largest = Math.max(...words.map((w) => w.share));
  words.forEach((w, index) => {
    const best = w.tokens.map((t) => why.matches[t]).sort((a, b) => b.similarity - a.similarity)[0];
    const where = w.page_words.length ? w.page_words.map((p) => `“${p}”`).join(", ") : (best ? best.where : "");
    const row = el("tr", {class: w.kind === "word" ? "word" : "model"},
      el("th", {scope: "row", text: w.kind === "prompt" ? `${w.text} (prompt)` : w.text}),
      el("td", {text: where}),
      el("td", {class: "num", text: w.similarity.toFixed(3)}),
      el("td", {}, shareBar(w.share, largest)));
    if (image) {
      const button = el("button", {type: "button", class: "quiet", "aria-pressed": "false", text: "Show", "aria-label": `Heatmap of “${w.text}”`});
      button.addEventListener("click", () => wordHeatmap(hit, state, why.words ? index : null, button));
      row.append(el("td", {}, button));
    }
    body.append(row);
  });
  table.append(body);
  return table;
}

// A heatmap for one query word, fetched when asked for; pressing it again shows all.
async function wordHeatmap(hit, state, index, button) {
  const pressed = button.getAttribute("aria-pressed") === "true";
  document.querySelectorAll(".why-pane button[aria-pressed]").forEach((b) => b.setAttribute("aria-pressed", "false"));
  let heatmap = hit.explanation.heatmap;
  if (!pressed && index !== null) {
    try { heatmap = (await api(`pages/${hit.page_id}/explain?q=${encodeURIComponent(state.q)}&word=${index}`)).heatmap; }
    catch (err) { status(`${err.name}: ${err.message}`, true); return; }
    button.setAttribute("aria-pressed", "true");
  }
  const canvas = document.querySelector(".page-pane canvas.heatmap");
  if (canvas && heatmap) {
    drawHeatmap(canvas, heatmap);
    canvas.dataset.word = heatmap.word === null ? "" : String(heatmap.word);
    document.querySelector("#heat-legend").replaceWith(heatLegend(heatmap));
  }
}

function closeViewer(navigate = true) {
  const viewer = $("#viewer");
  if (viewer.hidden) return;
  viewer.hidden = true;
  document.body.style.overflow = "";
  delete document.body.dataset.viewing;
  if (navigate) {
    const state = stateFromUrl();
    delete state.open;
    go(state);
  }
  const back = opener || document.querySelector(`article.result[data-page-id="${stateFromUrl().open}"]`);
  if (back && document.contains(back)) back.focus();
  opener = null;
}

// -- wiring ------------------------------------------------------------------------
$("#search").addEventListener("submit", (event) => {
  event.preventDefault();
  go(formState());
});
$("#prev").addEventListener("click", () => {
  const state = stateFromUrl();
  go({...state, offset: String(Math.max(0, Number(state.offset || 0) - Number(state.k || 10))), open: undefined});
  $("#main").focus();
});
$("#next").addEventListener("click", () => {
  const state = stateFromUrl();
  go({...state, offset: String(current.data.next_offset), open: undefined});
  $("#main").focus();
});
$("#close").addEventListener("click", () => closeViewer());
$("#viewer").addEventListener("click", (event) => { if (event.target === $("#viewer")) closeViewer(); });
document.addEventListener("keydown", (event) => {
  if (event.key === "Escape" && !$("#viewer").hidden) { event.preventDefault(); closeViewer(); }
  // Keep Tab inside the open dialog.
  if (event.key === "Tab" && !$("#viewer").hidden) {
    const focusable = [...$("#viewer").querySelectorAll("button, [href], [tabindex]:not([tabindex='-1'])")];
    const first = focusable[0], last = focusable[focusable.length - 1];
    if (event.shiftKey && document.activeElement === first) { event.preventDefault(); last.focus(); }
    else if (!event.shiftKey && document.activeElement === last) { event.preventDefault(); first.focus(); }
  }
});
window.addEventListener("popstate", () => render(stateFromUrl()));
$("#home").addEventListener("click", (event) => { event.preventDefault(); go({}); });
render(stateFromUrl());
