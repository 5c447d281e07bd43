// The page's few behaviours: write a song (streamed, a line at a time), lock lines, redraw
// the others, choose among a line's candidates, edit a line, undo, copy and download.
"use strict";
const $ = (id) => document.getElementById(id);
const FIELDS = ["preset", "prefix", "lines", "line_length", "rhyme", "rhyme_with", "acrostic",
                "temperature", "candidates", "max_copy", "seed"];
// (the seed goes as its digits: a JavaScript number holds integers exactly only to 2**53)
const NUMBERS = new Set(["lines", "temperature", "candidates", "max_copy"]);
let info = {copy_run: 6, presets: {}};
let lines = [];        // {text, rhyme, copied, score, others: [line], locked}
let result = null;     // the last draw's result (sample --json's object)
let undo = [];         // lines before each redraw or choice

function formBody() {
  const body = {};
  for (const name of FIELDS) {
    const value = $(name).value.trim();
    if (value === "" && name !== "prefix") continue;
    body[name] = NUMBERS.has(name) ? Number(value) : $(name).value;
  }
  if (body.acrostic) delete body.lines;  // the acrostic sets the number of lines
  return body;
}

function clearErrors() {
  for (const el of document.querySelectorAll(".error")) el.textContent = "";
  for (const el of document.querySelectorAll(".invalid")) {
    el.classList.remove("invalid"); el.removeAttribute("aria-invalid");
  }
}

function showError(problem) {
  const field = $(problem.field) && FIELDS.includes(problem.field) ? problem.field : "form";
  $("err-" + field).textContent = problem.message;
  if (field !== "form") {
    $(field).classList.add("invalid"); $(field).setAttribute("aria-invalid", "true");
    $(field).setAttribute("aria-describedby", "err-" + field); $(field).focus();
  }
}

function setBusy(busy) {
  document.body.dataset.state = busy ? "drawing" : "idle";
  $("write").disabled = busy;
  $("redraw").disabled = busy || lines.length === 0;
  $("undo").disabled = busy || undo.length === 0;
  for (const id of ["copy", "txt", "json"]) $(id).disabled = busy || lines.length === 0;
}

// One draw: POST the body, read the server-sent events as they come.
async function draw(body, keep) {
  clearErrors(); setBusy(true);
  const began = performance.now();
  let first = null;
  $("status").textContent = "drawing…";
  try {
    const response = await fetch("/api/song/stream", {method: "POST",
      headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)});
    if (!response.ok) { showError(await response.json()); return false; }
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const {value, done} = await reader.read();
      if (done) break;
      buffer += value;
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const event = buffer.slice(0, end); buffer = buffer.slice(end + 2);
        const kind = /^event: (.*)$/m.exec(event)[1];
        const data = JSON.parse(/^data: (.*)$/m.exec(event)[1]);
        if (kind === "line") {
          if (first === null) first = (performance.now() - began) / 1000;
          if (!keep.has(data.index)) lines[data.index] = {...data, locked: false};
          render();
        } else if (kind === "done") {
          result = data;
          data.lines.forEach((line, i) => {
            if (!lines[i] || lines[i].pending) {
              lines[i] = {...line, others: [], locked: keep.has(i)};
            }
            if (keep.has(i)) lines[i].locked = true;
          });
          lines.length = data.lines.length;
          const total = (performance.now() - began) / 1000;
          $("status").textContent = `drawn: first line after ${(first ?? total).toFixed(2)} s, ` +
            `the song after ${total.toFixed(2)} s (drawing ${data.seconds.toFixed(2)} s, ` +
            `seed ${data.settings.seed})` +
            (data.warnings.length ? "; " + data.warnings.join("; ") : "");
        } else if (kind === "error") { showError(data); return false; }
      }
    }
    return true;
  } catch (e) {
    showError({field: "form", message: "the server did not answer: " + e});
    return false;
  } finally { render(); setBusy(false); }
}

async function write(event) {
  event.preventDefault();
  const saved = lines;
  lines = []; undo = []; render();
  if (!(await draw(formBody(), new Set()))) { lines = saved; render(); }
}

async function redraw() {
  const body = formBody(), keep = new Set();
  delete body.seed;  // the seed repeats Write; each redraw draws afresh (its seed is shown)
  body.locked = {};
  lines.forEach((line, i) => { if (line.locked) { body.locked[i] = line.text; keep.add(i); } });
  undo.push(structuredClone(lines));
  lines = lines.map((line) => line.locked ? line : {...line, pending: true});
  render();
  if (!(await draw(body, keep))) { lines = undo.pop(); render(); setBusy(false); }
}

function choose(i, k) {
  undo.push(structuredClone(lines));
  const line = lines[i], other = line.others[k];
  const others = line.others.slice();
  others[k] = {text: line.text, rhyme: line.rhyme, copied: line.copied, score: line.score};
  lines[i] = {...other, others, locked: line.locked, open: true};
  render(); setBusy(false);
  document.querySelector(`#song li[data-index="${i}"] .others button`)?.focus();
}

async function edit(i, text) {
  if (text === lines[i].text || !text.trim()) { render(); return; }
  undo.push(structuredClone(lines));
  lines[i] = {...lines[i], text, rhyme: null, copied: null, score: null, locked: true};
  render(); setBusy(false);
  const response = await fetch("/api/describe", {method: "POST",
    headers: {"Content-Type": "application/json"}, body: JSON.stringify({lines: [text]})});
  if (response.ok && lines[i].text === text) {
    const [line] = await response.json();
    Object.assign(lines[i], {rhyme: line.rhyme, copied: line.copied}); render();
  }
}

function element(tag, props, ...children) {
  const el = Object.assign(document.createElement(tag), props);
  el.append(...children);
  return el;
}

function copyMark(line) {
  return line.copied != null && line.copied >= copyRun() ? `copies ${line.copied} characters` : "";
}

function copyRun() {
  const n = result && result.settings.max_copy;
  return n ? n : info.copy_run;
}

function render() {
  const list = $("song");
  // the focus stays on the same control of the same line when the list is drawn again
  const active = document.activeElement;
  const focused = active?.closest?.("#song > li")?.dataset.index;
  const control = active?.className?.split?.(" ")[0];
  list.replaceChildren(...lines.map((line, i) => {
    const text = element("input", {className: "text", value: line.text ?? "",
      ariaLabel: `line ${i + 1}`, onchange: (e) => edit(i, e.target.value)});
    const lock = element("button", {type: "button", className: "lock", textContent:
      line.locked ? "locked" : "lock", title: "Keep this line when redrawing",
      onclick: () => { line.locked = !line.locked; render(); lock.focus(); }});
    lock.setAttribute("aria-pressed", String(!!line.locked));
    const row = element("div", {className: "row"}, text,
      element("span", {className: "rhyme", textContent: line.rhyme ?? "", title: "rhyme group"}),
      element("span", {className: "copied", textContent: copyMark(line)}), lock);
    const li = element("li", {className: [line.locked && "locked", line.pending && "pending"]
      .filter(Boolean).join(" ")}, row);
    li.dataset.index = i;
    if (line.others && line.others.length) {
      const toggle = element("button", {type: "button", className: "show",
        textContent: `others (${line.others.length})`,
        onclick: () => { line.open = !line.open; render(); }});
      toggle.setAttribute("aria-expanded", String(!!line.open));
      row.append(toggle);
      if (line.open) li.append(element("ol", {className: "others"}, ...line.others.map((o, k) =>
        element("li", {}, element("button", {type: "button", onclick: () => choose(i, k)},
          element("span", {className: "candidate", textContent: o.text}),
          ` · ${o.rhyme ?? "-"}${copyMark(o) ? " · " + copyMark(o) : ""}`)))));
    }
    return li;
  }));
  if (focused !== undefined && control) {
    list.querySelector(`#song > li[data-index="${focused}"] .${control}`)?.focus();
  }
}

function songText() { return lines.map((line) => line.text).join("\n"); }

function songJson() {  // as `lyricgen sample --json` prints it: a list of one result
  const {seconds, warnings, ...rest} = result;
  const kept = lines.map(({text, rhyme, copied, score}) => ({text, rhyme, copied, score}));
  return JSON.stringify([{...rest, text: songText().slice(rest.prefix_used.length),
                          lines: kept}], null, 2);
}

function download(name, text, type) {
  const url = URL.createObjectURL(new Blob([text + "\n"], {type}));
  element("a", {href: url, download: name}).click();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

async function loadInfo() {
  info = await (await fetch("/api/info")).json();
  const ppl = info.val_ppl == null ? "no validation" : `val ppl ${info.val_ppl.toFixed(2)}`;
  $("info").textContent = `${info.checkpoint}: corpus ${info.corpus}, ${info.model}, ` +
    `${(info.parameters / 1e6).toFixed(1)}M parameters, ${info.epochs} epochs, ${ppl}`;
  for (const name of Object.keys(info.presets)) {
    $("preset").append(element("option", {value: name, textContent: name}));
  }
}

$("preset").addEventListener("change", () => {  // a preset fills the fields it sets
  const table = info.presets[$("preset").value] || {};
  for (const [key, value] of Object.entries(table)) {
    if ($(key) && key !== "preset") $(key).value = value;
  }
});
$("form").addEventListener("submit", write);
$("redraw").addEventListener("click", redraw);
$("undo").addEventListener("click", () => { lines = undo.pop(); render(); setBusy(false); });
$("copy").addEventListener("click", async () => {
  if (navigator.clipboard) {
    await navigator.clipboard.writeText(songText());
  } else {  // a page reached over plain http from another machine has no clipboard API
    const area = element("textarea", {value: songText()});
    document.body.append(area);
    area.select();
    document.execCommand("copy");
    area.remove();
  }
  $("status").textContent = "copied the song as text";
});
$("txt").addEventListener("click", () => download("song.txt", songText(), "text/plain"));
$("json").addEventListener("click", () => download("song.json", songJson(), "application/json"));
document.addEventListener("keydown", (e) => {  // Ctrl+Enter (or Cmd+Enter): redraw
  if (e.key === "Enter" && (e.ctrlKey || e.metaKey) && !$("redraw").disabled) {
    e.preventDefault();
    redraw();
  }
});
loadInfo();
