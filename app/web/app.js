// ragqa's page: list collections, ask with a streamed answer (SSE over fetch), open citations.
"use strict";

const $ = (id) => document.getElementById(id);
const keyInput = $("api-key");
keyInput.value = localStorage.getItem("ragqa-api-key") || "";
keyInput.addEventListener("change", () => { localStorage.setItem("ragqa-api-key", keyInput.value.trim()); loadCollections(); });

let sources = [];
let citations = [];
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

// The passage; with a citation, its supporting sentence highlighted.
function showPassage(n, citation = null) {
  const source = sources[n - 1];
  if (!source) return;
  $("passage-title").textContent = `[${n}] ${source.doc}`;
  $("passage-meta").textContent = `rank ${source.rank} · similarity ${source.score.toFixed(3)} · chunk ${source.id}`
    + (citation ? ` · support ${citation.support.toFixed(2)}` : "");
  const text = $("passage-text");
  text.replaceChildren();
  if (citation) {
    const mark = document.createElement("mark");
    mark.className = "support";
    mark.textContent = source.text.slice(citation.sentence_start, citation.sentence_end);
    text.append(source.text.slice(0, citation.sentence_start), mark, source.text.slice(citation.sentence_end));
  } else text.textContent = source.text;
  $("passage").showModal();
  if (citation) text.querySelector("mark").scrollIntoView({ block: "center" });
}

function sourceNumber(id) { return sources.findIndex((s) => s.id === id) + 1; }

function openCitation(i) {
  const c = citations[i];
  if (c) showPassage(sourceNumber(c.id), c);
}

document.addEventListener("click", (event) => {
  const link = event.target.closest("a.cite");
  if (link) { event.preventDefault(); showPassage(Number(link.dataset.n)); return; }
  const cited = event.target.closest("[data-citation]");
  if (cited) { event.preventDefault(); openCitation(Number(cited.dataset.citation)); }
});

// The final answer: cited spans open their sentence; spans no passage supports are marked.
function renderGrounded(data) {
  const answer = data.answer;
  const marks = [
    ...data.citations.map((c, i) => ({ start: c.answer_start, end: c.answer_end, cls: "cited", i })),
    ...data.unsupported.map((u) => ({ start: u.start, end: u.end, cls: "unsupported" })),
  ].sort((a, b) => a.start - b.start);
  let html = "", at = 0;
  for (const m of marks) {
    if (m.start < at) continue;
    html += renderAnswer(answer.slice(at, m.start));
    const attrs = m.cls === "cited" ? ` data-citation="${m.i}" title="open the supporting sentence"` : ` title="no passage supports this"`;
    html += `<mark class="${m.cls}"${attrs}>${renderAnswer(answer.slice(m.start, m.end))}</mark>`;
    at = m.end;
  }
  return html + renderAnswer(answer.slice(at));
}

function renderCitations() {
  $("citations").replaceChildren(...citations.map((c, i) => {
    const li = document.createElement("li");
    li.innerHTML = `<a href="#" data-citation="${i}"></a><span class="support-score"></span>`;
    li.querySelector("a").textContent = `[${sourceNumber(c.id)}] “${c.sentence}”`;
    li.querySelector(".support-score").textContent = `support ${c.support.toFixed(2)}`;
    return li;
  }));
}

const VERDICTS = {
  quoted: "quoted from the passages",
  refused: "the documents do not hold the answer",
};

function showResult(data) {
  const answer = $("answer");
  citations = data.citations || [];
  answer.lang = data.language || "en";
  answer.innerHTML = renderGrounded({ ...data, citations, unsupported: data.unsupported || [] });
  renderCitations();
  let verdict = VERDICTS[data.answer_source]
    || (data.grounded ? "every sentence is supported by the passages" : "not supported by the passages: marked sentences");
  if (data.generated_answer) verdict += " (the generated answer was replaced)";
  $("verdict").textContent = verdict;
}

function renderSources() {
  $("sources").replaceChildren(...sources.map((s, i) => {
    const li = document.createElement("li");
    li.innerHTML = `<a href="#" class="cite" data-n="${i + 1}">[${i + 1}]</a> <span class="doc"></span> <span class="heading"></span> <span class="score"></span><span class="snippet"></span>`;
    li.querySelector(".doc").textContent = s.doc;
    // The document's title and the passage's section: shown beside it, not part of its text.
    li.querySelector(".heading").textContent = [s.title, s.section].filter(Boolean).join(" › ");
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
  $("verdict").textContent = ""; sources = []; citations = []; renderSources(); renderCitations();
  setStatus("retrieving…");
  const started = performance.now();
  let text = "";
  const mode = $("mode").value || null;
  const strategy = $("strategy").value;
  // Streaming serves rag and extractive with strategy direct; the rest come in one piece.
  const stream = mode !== "closed_book" && strategy === "direct";
  try {
    const response = await fetch("/v1/ask", {
      method: "POST",
      headers: headers({ "Content-Type": "application/json", Accept: stream ? "text/event-stream" : "application/json" }),
      body: JSON.stringify({
        question, collection: $("collection").value, prompt_mode: $("prompt-mode").value,
        top_k: mode === "closed_book" ? null : Number($("top-k").value) || null, stream, mode, strategy,
      }),
      signal: controller.signal,
    });
    if (!response.ok) throw new Error(await errorText(response));
    if (!stream) {
      const data = await response.json();
      sources = data.sources; renderSources(); showResult(data);
      setStatus(`total ${data.timings_ms.total} ms · ${data.usage.completion_tokens} tokens · ${data.model} · ${data.mode}`);
      return;
    }
    for await (const { event: kind, data } of readEvents(response)) {
      if (kind === "sources") { sources = data.sources; renderSources(); setStatus("generating…"); }
      else if (kind === "token") { text += data.text; answer.innerHTML = renderAnswer(text); }
      else if (kind === "done") {
        // The done event's answer replaces the streamed text (a quote, or a refusal).
        showResult(data);
        const t = data.timings_ms;
        setStatus(`first token ${t.first_token ?? "-"} ms · total ${t.total} ms · ${data.usage.completion_tokens} tokens · ${data.model} · ${data.mode}`);
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

async function upload() {
  const files = $("upload").files;
  const name = $("collection").value || "default";
  if (!files.length) return;
  const form = new FormData();
  for (const f of files) form.append("files", f);
  setStatus(`uploading ${files.length} file(s) to ${name}…`);
  const response = await fetch(`/v1/collections/${encodeURIComponent(name)}/documents`, { method: "POST", headers: headers(), body: form });
  if (!response.ok) { setStatus(`upload: ${await errorText(response)}`, true); return; }
  const { summary } = await response.json();
  setStatus(`uploaded: ${summary.added} added, ${summary.updated} updated, ${summary.skipped.length} skipped`);
  $("upload").value = "";
  loadCollections();
}

$("ask-form").addEventListener("submit", ask);
$("upload").addEventListener("change", upload);
$("stop").addEventListener("click", () => controller && controller.abort());
$("show-map").addEventListener("click", showMap);
loadCollections();
