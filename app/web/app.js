// ragqa's page: list collections, ask with a streamed answer (SSE over fetch), open citations.
"use strict";

const $ = (id) => document.getElementById(id);
const keyInput = $("api-key");
keyInput.value = localStorage.getItem("ragqa-api-key") || "";
keyInput.addEventListener("change", () => { localStorage.setItem("ragqa-api-key", keyInput.value.trim()); loadCollections(); });

let sources = [];
let controller = null;

function headers(extra = {}) {
  const key = keyInput.value.trim();
  return key ? { ...extra, Authorization: `Bearer ${key}` } : extra;
}

function setStatus(text, isError = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", isError);
}

async function errorText(response) {
  try {
    const body = await response.json();
    return typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
  } catch { return response.statusText; }
}

async function loadCollections() {
  const select = $("collection");
  const response = await fetch("/v1/collections", { headers: headers() });
  if (!response.ok) { setStatus(`collections: ${await errorText(response)}`, true); return; }
  const { collections } = await response.json();
  const previous = select.value;
  select.replaceChildren(...collections.map((c) => new Option(c.status === "broken" ? `${c.name} (broken)` : `${c.name} (${c.documents} docs, ${c.chunks} chunks)`, c.name)));
  if (collections.some((c) => c.name === previous)) select.value = previous;
  if (!collections.length) setStatus("no collection yet: run `ragqa ingest`", true);
}

function escapeHtml(text) {
  return text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}

// The answer as HTML, each [n] a link to the passage it cites.
function renderAnswer(text) {
  return escapeHtml(text).replace(/\[(\d{1,2})\]/g, (whole, n) => {
    const known = Number(n) >= 1 && Number(n) <= sources.length;
    return `<a href="#" class="cite${known ? "" : " missing"}" data-n="${n}" title="${known ? "open passage " + n : "no such passage"}">[${n}]</a>`;
  });
}

function showPassage(n) {
  const source = sources[n - 1];
  if (!source) return;
  $("passage-title").textContent = `[${n}] ${source.doc}`;
  $("passage-meta").textContent = `rank ${source.rank} · similarity ${source.score.toFixed(3)} · chunk ${source.id}`;
  $("passage-text").textContent = source.text;
  $("passage").showModal();
}

document.addEventListener("click", (event) => {
  const link = event.target.closest("a.cite");
  if (link) { event.preventDefault(); showPassage(Number(link.dataset.n)); }
});

function renderSources() {
  $("sources").replaceChildren(...sources.map((s, i) => {
    const li = document.createElement("li");
    li.innerHTML = `<a href="#" class="cite" data-n="${i + 1}">[${i + 1}]</a> <span class="doc"></span> <span class="score"></span><span class="snippet"></span>`;
    li.querySelector(".doc").textContent = s.doc;
    li.querySelector(".score").textContent = `similarity ${s.score.toFixed(3)}`;
    li.querySelector(".snippet").textContent = s.text.slice(0, 160) + (s.text.length > 160 ? "…" : "");
    return li;
  }));
}

// Server-sent events from a POST: fetch's body stream, split into events at blank lines.
async function* readEvents(response) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value.replace(/\r\n?/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let event = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) event = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
      }
      if (data.length) yield { event, data: JSON.parse(data.join("\n")) };
    }
  }
}

async function ask(event) {
  event.preventDefault();
  const question = $("question").value.trim();
  if (!question) return;
  controller = new AbortController();
  $("ask").disabled = true; $("stop").disabled = false;
  $("answer-box").hidden = false;
  const answer = $("answer");
  answer.textContent = ""; answer.classList.add("streaming");
  $("verdict").textContent = ""; sources = []; renderSources();
  setStatus("retrieving…");
  const started = performance.now();
  let text = "";
  try {
    const response = await fetch("/v1/ask", {
      method: "POST",
      headers: headers({ "Content-Type": "application/json", Accept: "text/event-stream" }),
      body: JSON.stringify({
        question, collection: $("collection").value, prompt_mode: $("prompt-mode").value,
        top_k: Number($("top-k").value) || null, stream: true,
      }),
      signal: controller.signal,
    });
    if (!response.ok) throw new Error(await errorText(response));
    for await (const { event: kind, data } of readEvents(response)) {
      if (kind === "sources") { sources = data.sources; renderSources(); setStatus("generating…"); }
      else if (kind === "token") { text += data.text; answer.innerHTML = renderAnswer(text); }
      else if (kind === "done") {
        answer.innerHTML = renderAnswer(data.answer);
        $("verdict").textContent = data.grounded ? "grounded in the passages" : (data.refused ? "the documents do not hold the answer" : "not grounded: no passage is similar enough");
        const t = data.timings_ms;
        setStatus(`first token ${t.first_token ?? "-"} ms · total ${t.total} ms · ${data.usage.completion_tokens} tokens · ${data.model}`);
      } else if (kind === "error") throw new Error(data.detail);
    }
  } catch (error) {
    if (error.name === "AbortError") setStatus(`stopped after ${Math.round(performance.now() - started)} ms`);
    else setStatus(String(error.message || error), true);
  } finally {
    answer.classList.remove("streaming");
    $("ask").disabled = false; $("stop").disabled = true; controller = null;
  }
}

async function showMap() {
  const params = new URLSearchParams();
  const question = $("question").value.trim();
  if (question) params.set("question", question);
  setStatus("projecting the embeddings (t-SNE)…");
  const response = await fetch(`/v1/collections/${encodeURIComponent($("collection").value)}/map.png?${params}`, { headers: headers() });
  if (!response.ok) { setStatus(`map: ${await errorText(response)}`, true); return; }
  const img = $("map");
  if (img.src) URL.revokeObjectURL(img.src);
  img.src = URL.createObjectURL(await response.blob());
  $("map-box").hidden = false;
  setStatus(`map ${response.headers.get("X-Map-Cache") === "hit" ? "from cache" : "computed"}`);
}

$("ask-form").addEventListener("submit", ask);
$("stop").addEventListener("click", () => controller && controller.abort());
$("show-map").addEventListener("click", showMap);
loadCollections();
