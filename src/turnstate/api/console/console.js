// turnstate console: no framework, no build step. Talks to the public API with a bearer key.
"use strict";
(() => {
  const $ = (id) => document.getElementById(id);
  const fields = ["key", "session", "user"];
  for (const f of fields) {
    const saved = localStorage.getItem("turnstate." + f);
    if (saved !== null) $(f).value = saved;
    $(f).addEventListener("change", () => { localStorage.setItem("turnstate." + f, $(f).value); refresh(); });
  }
  const session = () => $("session").value.trim();
  const user = () => $("user").value.trim() || session();
  const enc = encodeURIComponent;

  function headers(extra) {
    const h = Object.assign({}, extra || {});
    const key = $("key").value.trim();
    if (key) h["Authorization"] = "Bearer " + key;
    return h;
  }
  async function api(method, path, body) {
    const init = { method, headers: headers(body ? { "Content-Type": "application/json" } : {}) };
    if (body) init.body = JSON.stringify(body);
    return fetch(path, init);
  }
  function status(text) { $("status").textContent = text; }
  async function problemText(r) {
    try { const p = await r.json(); return `${r.status} ${p.title || ""}: ${p.detail || ""}`; }
    catch (_) { return `${r.status} ${r.statusText}`; }
  }
  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function bubble(role, text) {
    const b = el("div", "msg " + role, text);
    $("log").appendChild(b);
    $("log").scrollTop = $("log").scrollHeight;
    return b;
  }
  function messageItem(m) {
    const li = el("li");
    li.dataset.seq = m.seq;
    li.appendChild(el("span", "role", `#${m.seq} ${m.role}`));
    li.appendChild(document.createTextNode(`${m.content} (${m.tokens} tok)`));
    return li;
  }

  async function send(text) {
    const sid = session();
    if (!sid || !text.trim()) return;
    bubble("user", text);
    const reply = bubble("assistant", "");
    reply.setAttribute("data-streaming", "true");
    $("send").disabled = true;
    status("waiting for the lease and the model...");
    const body = { message: text, stream: true };
    if ($("user").value.trim()) body.user_id = $("user").value.trim();
    try {
      const r = await fetch(`/v1/sessions/${enc(sid)}/turns`, {
        method: "POST",
        headers: headers({ "Content-Type": "application/json", Accept: "text/event-stream" }),
        body: JSON.stringify(body),
      });
      if (!r.ok) { reply.className = "msg error"; reply.textContent = await problemText(r); return; }
      const reader = r.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let cut;
        while ((cut = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          let event = "message", data = "";
          for (const line of block.split("\n")) {
            if (line.startsWith("event: ")) event = line.slice(7);
            else if (line.startsWith("data: ")) data += line.slice(6);
          }
          const payload = data ? JSON.parse(data) : {};
          if (event === "turn") status(`stored as #${payload.seq}${payload.resumed ? " (resumed)" : ""}; streaming...`);
          else if (event === "delta") { reply.textContent += payload.text; $("log").scrollTop = $("log").scrollHeight; }
          else if (event === "done") {
            reply.textContent = payload.reply.content;
            showRecalled(payload.context);
            status(`reply #${payload.reply.seq}: state ${payload.state_ms} ms, model ${payload.model_ms} ms, `
              + `window ${payload.context.messages} messages${payload.context.summary ? " + summary" : ""}`);
          } else if (event === "error") {
            reply.className = "msg error";
            reply.textContent = `${payload.title || "error"}: ${payload.detail || ""}`;
          }
        }
      }
    } catch (err) {
      reply.className = "msg error";
      reply.textContent = String(err);
    } finally {
      reply.removeAttribute("data-streaming");
      $("send").disabled = false;
      await refresh();
    }
  }

  function showRecalled(context) {
    const ul = $("recalled");
    ul.replaceChildren();
    if (!context.facts.length) ul.appendChild(el("li", "muted", "no facts recalled"));
    for (const f of context.facts) ul.appendChild(el("li", "", f));
  }

  async function refresh() {
    const sid = session();
    if (!sid) return;
    const meta = $("meta");
    const r = await api("GET", `/v1/sessions/${enc(sid)}`);
    meta.replaceChildren();
    const row = (k, v) => { meta.appendChild(el("dt", "", k)); meta.appendChild(el("dd", "", v)); };
    if (r.status === 404) {
      row("state", "no such session (yet)");
      $("window").replaceChildren(); $("archive").replaceChildren();
      $("summary").textContent = "none yet"; $("watermark").textContent = "";
    } else if (!r.ok) {
      row("error", await problemText(r));
      return;
    } else {
      const s = await r.json();
      row("last seq", String(s.last_seq));
      row("in window", `${s.hot} messages`);
      row("archived", `${s.archived} messages`);
      row("TTL", s.ttl_seconds === null ? "none" : `${Math.round(s.ttl_seconds)} s`);
      row("lease", s.busy ? "held (a turn is running)" : "free");
      $("summary").textContent = s.summary || "none yet";
      $("summary").className = s.summary ? "" : "muted";
      $("watermark").textContent = `(covers messages up to #${s.summary_upto})`;
      const held = [];
      let after = 0;
      for (;;) {
        const page = await (await api("GET", `/v1/sessions/${enc(sid)}/messages?limit=500&after_seq=${after}`)).json();
        held.push(...page.messages);
        if (page.next_after_seq === null || page.next_after_seq === undefined) break;
        after = page.next_after_seq;
      }
      const cut = Math.max(0, held.length - s.hot);
      $("archive").replaceChildren(...held.slice(0, cut).map(messageItem));
      $("window").replaceChildren(...held.slice(cut).map(messageItem));
    }
    await refreshFacts();
  }

  async function refreshFacts() {
    const ul = $("facts");
    const r = await api("GET", `/v1/users/${enc(user())}/facts?include_superseded=true`);
    ul.replaceChildren();
    if (!r.ok) { ul.appendChild(el("li", "muted", await problemText(r))); return; }
    const body = await r.json();
    if (!body.facts.length) ul.appendChild(el("li", "muted", "none"));
    for (const f of body.facts) {
      const li = el("li", f.superseded_at ? "superseded" : "");
      li.appendChild(el("span", "role", f.key));
      const src = f.session_id ? ` [${f.session_id} #${f.first_seq}-${f.last_seq}]` : "";
      li.appendChild(document.createTextNode(f.text + src + (f.superseded_by ? ` (superseded by ${f.superseded_by})` : "")));
      if (!f.superseded_at) {
        const b = el("button", "forget", "forget");
        b.type = "button";
        b.addEventListener("click", async () => {
          const d = await api("DELETE", `/v1/users/${enc(user())}/facts/${f.id}`);
          status(d.ok ? `forgot fact ${f.id}` : await problemText(d));
          await refreshFacts();
        });
        li.appendChild(b);
      }
      ul.appendChild(li);
    }
  }

  $("send-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const text = $("message").value;
    $("message").value = "";
    send(text);
  });
  $("message").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); $("send-form").requestSubmit(); }
  });
  $("refresh").addEventListener("click", refresh);
  $("delete").addEventListener("click", async () => {
    if (!confirm(`Delete session ${session()} and all it holds?`)) return;
    const r = await api("DELETE", `/v1/sessions/${enc(session())}`);
    status(r.ok ? `deleted ${session()}` : await problemText(r));
    $("log").replaceChildren();
    await refresh();
  });
  refresh();
})();
