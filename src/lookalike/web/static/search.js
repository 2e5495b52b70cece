/* Search page: photo → look-alikes; filters, more/less like this, steering, diversity. */
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const grid = $("grid");
  const status = $("status");
  const heading = $("results-h");
  const form = $("filters");
  const tpl = $("card-tpl");
  const PAGE = 24;

  const state = {
    photo: null,          // File
    positive: [],         // [{id, title}]
    negative: [],
    offset: 0,            // browse pagination
    seq: 0,               // drops stale responses
  };

  // -- filters and tuning ------------------------------------------------------------------
  function filterPairs() {
    const pairs = [];
    const v = (id) => $(id).value.trim();
    if (v("f-category")) pairs.push(["category", v("f-category")]);
    if (v("f-colour")) pairs.push(["colour", v("f-colour")]);
    if (v("f-price-min")) pairs.push(["price_min", v("f-price-min")]);
    if (v("f-price-max")) pairs.push(["price_max", v("f-price-max")]);
    if (v("f-kids")) pairs.push(["kids", v("f-kids")]);
    if ($("f-second-hand").checked) pairs.push(["second_hand", "true"]);
    if (Number(v("f-sust")) > 0) pairs.push(["min_sustainability", v("f-sust")]);
    return pairs;
  }
  function filterObject() {
    const f = {};
    for (const [k, val] of filterPairs()) {
      if (k === "category" || k === "colour") f[k] = [val];
      else if (k === "kids" || k === "second_hand") f[k] = val === "true";
      else f[k] = Number(val);
    }
    return f;
  }
  function tuning() {
    const t = {};
    const dir = $("steer-dir").value;
    const amt = Number($("steer-amt").value);
    if (dir && amt !== 0) t.steer = { [dir]: amt };
    const div = Number($("diversity").value);
    if (div > 0) t.diversity = div;
    if (!$("colour-weight").dataset.untouched) t.colour_weight = Number($("colour-weight").value);
    return t;
  }

  // -- rendering ---------------------------------------------------------------------------
  function card(item, score) {
    const node = tpl.content.firstElementChild.cloneNode(true);
    node.dataset.id = item.id;
    node.dataset.category = LA.attr(item, "category") || "";
    node.dataset.colour = LA.attr(item, "colour") || "";
    if (item.price !== null && item.price !== undefined) node.dataset.price = String(item.price);
    const img = node.querySelector("img");
    img.src = item.image_url;
    img.alt = item.title || "Item photo";
    const sc = node.querySelector(".score");
    if (score === null || score === undefined) sc.remove();
    else {
      sc.textContent = `${Math.round(Math.max(0, score) * 100)}% match`;
      sc.setAttribute("aria-label", `similarity ${Math.round(score * 100)} percent`);
    }
    node.querySelector(".title").textContent = item.title || "Untitled item";
    node.querySelector(".price").textContent = LA.money(item.price, item.currency);
    node.querySelector(".brand").textContent = item.brand || "";
    LA.fillTags(node.querySelector(".tags"), item);
    const shop = node.querySelector(".shop");
    if (item.url) shop.href = item.url; else shop.remove();
    const label = item.title || "this item";
    node.querySelector('[data-act="more"]').setAttribute("aria-label", `More like ${label}`);
    node.querySelector('[data-act="less"]').setAttribute("aria-label", `Less like ${label}`);
    node.querySelector('[data-act="more"]').addEventListener("click", () => example("positive", item));
    node.querySelector('[data-act="less"]').addEventListener("click", () => example("negative", item));
    return node;
  }

  function show(entries, append) {
    if (!append) grid.textContent = "";
    for (const { item, score } of entries) grid.appendChild(card(item, score));
    if (!grid.children.length) {
      const p = document.createElement("p");
      p.className = "empty";
      p.textContent = "Nothing matches these filters. Try widening them.";
      grid.appendChild(p);
    }
  }

  function renderExamples() {
    const list = $("example-list");
    list.textContent = "";
    const all = [...state.positive.map((e) => ["+", e, "positive"]),
                 ...state.negative.map((e) => ["−", e, "negative"])];
    $("examples").hidden = all.length === 0;
    for (const [sign, e, kind] of all) {
      const li = document.createElement("li");
      li.className = `chip ${kind}`;
      const b = document.createElement("button");
      b.type = "button";
      b.textContent = `${sign} ${e.title || e.id} ×`;
      b.setAttribute("aria-label", `Remove ${kind === "positive" ? "more" : "less"} like ${e.title || e.id}`);
      b.addEventListener("click", () => {
        state[kind] = state[kind].filter((x) => x.id !== e.id);
        run();
      });
      li.appendChild(b);
      list.appendChild(li);
    }
  }

  function example(kind, item) {
    const other = kind === "positive" ? "negative" : "positive";
    state[other] = state[other].filter((x) => x.id !== item.id);
    if (!state[kind].some((x) => x.id === item.id)) state[kind].push({ id: item.id, title: item.title });
    LA.toast(kind === "positive" ? `More like “${item.title}”` : `Less like “${item.title}”`);
    run();
  }

  // -- querying ----------------------------------------------------------------------------
  async function run(append = false) {
    const seq = ++state.seq;
    renderExamples();
    grid.setAttribute("aria-busy", "true");
    status.textContent = "Searching…";
    try {
      let entries;
      const t = tuning();
      const hasExamples = state.positive.length || state.negative.length;
      const words = window.LAWords ? window.LAWords.text() : "";  // words.js: the search box
      if (window.LAWords) window.LAWords.show(null);
      if (state.photo) {
        heading.textContent = "Look-alikes of your photo";
        const fd = new FormData();
        fd.append("photo", state.photo);
        fd.append("k", "24");
        for (const [k, v] of filterPairs()) fd.append(k, v);
        for (const e of state.positive) fd.append("positive", e.id);
        for (const e of state.negative) fd.append("negative", e.id);
        if (t.steer) for (const [d, s] of Object.entries(t.steer)) fd.append("steer", `${d}=${s}`);
        if (t.diversity) fd.append("diversity", String(t.diversity));
        if (t.colour_weight !== undefined) fd.append("colour_weight", String(t.colour_weight));
        if (words) fd.append("text", words);
        const data = await LA.api("/search", { method: "POST", body: fd });
        entries = data.results;
        if (words && seq === state.seq) window.LAWords.show(data.understood);
      } else if (words && !hasExamples) {
        heading.textContent = "Matching your words";
        const q = new URLSearchParams(filterPairs());
        q.set("q", words);
        q.set("k", "24");
        const data = await LA.api(`/search/text?${q}`);
        entries = data.results;
        if (seq === state.seq) window.LAWords.show(data.understood);
      } else if (hasExamples) {
        heading.textContent = "Tuned by your picks";
        const body = {
          positive: state.positive.map((e) => e.id), negative: state.negative.map((e) => e.id),
          k: 24, filters: filterObject(), ...t,
        };
        const data = await LA.api("/search/items", {
          method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
        });
        entries = data.results;
      } else {
        heading.textContent = "Browse the catalog";
        if (!append) state.offset = 0;
        const q = new URLSearchParams(filterPairs());
        q.set("offset", String(state.offset));
        q.set("limit", String(PAGE));
        const data = await LA.api(`/items?${q}`);
        entries = data.items.map((item) => ({ item, score: null }));
        state.offset += data.items.length;
        $("load-more").hidden = state.offset >= data.total;
        if (seq !== state.seq) return;
        show(entries, append);
        status.textContent = `${data.total} item${data.total === 1 ? "" : "s"}`;
        return;
      }
      if (seq !== state.seq) return;
      $("load-more").hidden = true;
      show(entries, false);
      status.textContent = `${entries.length} look-alike${entries.length === 1 ? "" : "s"}`;
    } catch (err) {
      if (seq !== state.seq) return;
      status.textContent = "";
      LA.toast(err.message, "error");
    } finally {
      if (seq === state.seq) grid.setAttribute("aria-busy", "false");
    }
  }

  let timer = null;
  function soon() { clearTimeout(timer); timer = setTimeout(() => run(), 250); }

  // -- photo input -------------------------------------------------------------------------
  function usePhoto(file) {
    if (!file) return;
    if (file.type && !file.type.startsWith("image/")) {
      LA.toast("That file is not an image.", "error");
      return;
    }
    state.photo = file;
    state.positive = [];
    state.negative = [];
    const url = URL.createObjectURL(file);
    $("preview-img").src = url;
    $("preview").hidden = false;
    $("drop-text").hidden = true;
    run();
  }
  for (const id of ["photo", "camera"]) {
    $(id).addEventListener("change", (ev) => usePhoto(ev.target.files[0]));
  }
  $("clear-photo").addEventListener("click", () => {
    state.photo = null;
    $("preview").hidden = true;
    $("drop-text").hidden = false;
    $("photo").value = "";
    $("camera").value = "";
    run();
  });
  const drop = $("drop");
  for (const ev of ["dragenter", "dragover"]) {
    drop.addEventListener(ev, (e) => { e.preventDefault(); drop.classList.add("over"); });
  }
  for (const ev of ["dragleave", "drop"]) {
    drop.addEventListener(ev, () => drop.classList.remove("over"));
  }
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    usePhoto(e.dataTransfer.files[0]);
  });
  document.addEventListener("paste", (e) => {
    const f = [...(e.clipboardData?.files || [])].find((x) => x.type.startsWith("image/"));
    if (f) usePhoto(f);
  });

  // -- controls ----------------------------------------------------------------------------
  const outputs = () => {
    const sust = Number($("f-sust").value);
    $("o-sust").textContent = sust > 0 ? sust.toFixed(1) : "any";
    $("o-steer").textContent = Number($("steer-amt").value).toFixed(1);
    $("o-div").textContent = Number($("diversity").value).toFixed(1);
    $("o-cw").textContent = $("colour-weight").dataset.untouched ? "default" : Number($("colour-weight").value).toFixed(1);
  };
  $("colour-weight").addEventListener("input", (e) => { delete e.target.dataset.untouched; });
  form.addEventListener("input", () => { outputs(); soon(); });
  form.addEventListener("change", () => { outputs(); soon(); });
  form.addEventListener("submit", (e) => { e.preventDefault(); run(); });
  form.addEventListener("reset", () => setTimeout(() => {
    $("colour-weight").dataset.untouched = "1";
    outputs();
    run();
  }));
  $("clear-examples").addEventListener("click", () => { state.positive = []; state.negative = []; run(); });
  $("load-more").addEventListener("click", () => run(true));

  async function loadDirections() {
    try {
      const data = await LA.api("/search/directions");
      const sel = $("steer-dir");
      for (const d of data.directions) {
        const o = document.createElement("option");
        o.value = d;
        o.textContent = d.replace(":", ": ");
        sel.appendChild(o);
      }
    } catch (_) { /* steering unavailable: the select stays at "nothing" */ }
  }

  function countFilters() {
    const n = filterPairs().length;
    $("filter-count").textContent = n ? `(${n} on)` : "";
  }
  form.addEventListener("change", countFilters);
  form.addEventListener("input", countFilters);
  form.addEventListener("reset", () => setTimeout(countFilters));
  if (window.matchMedia("(max-width: 760px)").matches) $("filters-box").open = false;
  $("show-results").addEventListener("click", () => {
    $("filters-box").open = false;
    const calm = window.matchMedia("(prefers-reduced-motion: reduce)").matches;
    $("results-h").scrollIntoView({ behavior: calm ? "auto" : "smooth", block: "start" });
  });

  outputs();
  loadDirections();
  const more = new URLSearchParams(location.search).get("more");
  if (more) {
    LA.api(`/items/${encodeURIComponent(more)}`)
      .then((item) => example("positive", item))
      .catch(() => run());
  } else {
    run();
  }
})();
