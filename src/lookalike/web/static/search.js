/* Search page: photo → look-alikes; filters, more/less like this, steering, diversity, colour.

   What the page shows (photo, examples, heading, grid) changes only when a search succeeds: a
   request is built from `committed` (what is on screen) plus the change asked for, and only its
   answer commits that change. A failed upload therefore leaves the page as it was, and later
   filter changes do not send the failed file again. */
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const grid = $("grid");
  const status = $("status");
  const heading = $("results-h");
  const form = $("filters");
  const tpl = $("card-tpl");
  const PAGE = 24;
  let bound = Number(grid.dataset.maxResults) || 1000;  // how deep this query's pages reach

  // what the page shows; `wanted` is the state of the latest request in flight (or null)
  const committed = { photo: null, photoUrl: null, positive: [], negative: [] };
  let wanted = null;
  let offset = 0;   // where the next page starts (browse: items; search: the ranking)
  let seq = 0;      // drops stale answers

  // -- filters and tuning ------------------------------------------------------------------
  const LISTS = ["category", "colour", "brand", "size", "currency"];
  const FLAGS = ["kids", "second_hand", "include_sold"];
  function filterPairs() {
    const pairs = [];
    const v = (id) => ($(id) ? $(id).value.trim() : "");
    if (v("f-category")) pairs.push(["category", v("f-category")]);
    if (v("f-colour")) pairs.push(["colour", v("f-colour")]);
    if (v("f-brand")) pairs.push(["brand", v("f-brand")]);
    if (v("f-size")) pairs.push(["size", v("f-size")]);
    if (v("f-price-min")) pairs.push(["price_min", v("f-price-min")]);
    if (v("f-price-max")) pairs.push(["price_max", v("f-price-max")]);
    if (v("f-currency")) pairs.push(["currency", v("f-currency")]);
    if (v("f-kids")) pairs.push(["kids", v("f-kids")]);
    if ($("f-second-hand").checked) pairs.push(["second_hand", "true"]);
    if (Number(v("f-sust")) > 0) pairs.push(["min_sustainability", v("f-sust")]);
    if (Number(v("f-brand-rating")) > 0) pairs.push(["min_brand_rating", v("f-brand-rating")]);
    if ($("f-include-sold").checked) pairs.push(["include_sold", "true"]);
    return pairs;
  }
  function filterObject() {
    const f = {};
    for (const [k, val] of filterPairs()) {
      if (LISTS.includes(k)) f[k] = [val];
      else if (FLAGS.includes(k)) f[k] = val === "true";
      else f[k] = Number(val);
    }
    return f;
  }
  const sortBy = () => $("sort").value;
  // every look-alike search sends every control: the sliders start at the server's defaults
  // (rendered into the page), so what they show is what the search applied
  function tuning() {
    const t = {
      diversity: Number($("diversity").value),
      colour_weight: Number($("colour-weight").value),
    };
    const dir = $("steer-dir").value;
    const amt = Number($("steer-amt").value);
    if (dir && amt !== 0) t.steer = { [dir]: amt };
    return t;
  }

  // -- rendering ---------------------------------------------------------------------------
  const percent = (x) => Math.round(Math.min(1, Math.max(0, x)) * 100);

  function card(item, score, similarity) {
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
      // the score the results were ranked by (match with colour, less the diversity penalty)
      node.dataset.score = String(score);
      sc.textContent = `${percent(score)}% match`;
      sc.setAttribute("aria-label", `match ${percent(score)} percent`);
      sc.title = similarity === null || similarity === undefined
        ? "Ranking score"
        : `Ranking score ${percent(score)}% (shape and style alone: ${percent(similarity)}%)`;
    }
    node.querySelector(".title").textContent = item.title || "Untitled item";
    node.querySelector(".price").textContent = LA.money(item.price, item.currency);
    node.querySelector(".converted").textContent = LA.converted(item);
    node.querySelector(".brand").textContent = item.brand || "";
    LA.fillBrandRating(node.querySelector(".brand-rating"), item);
    LA.fillState(node.querySelector(".state"), item);
    node.dataset.state = item.state || "available";
    node.dataset.brand = item.brand || "";
    node.dataset.sizes = (item.sizes || []).join(";");
    if (item.base_price !== null && item.base_price !== undefined) {
      node.dataset.basePrice = String(item.base_price);
    }
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
    for (const { item, score, similarity } of entries) grid.appendChild(card(item, score, similarity));
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
    const all = [...committed.positive.map((e) => ["+", e, "positive"]),
                 ...committed.negative.map((e) => ["−", e, "negative"])];
    $("examples").hidden = all.length === 0;
    for (const [sign, e, kind] of all) {
      const li = document.createElement("li");
      li.className = `chip ${kind}`;
      const b = document.createElement("button");
      b.type = "button";
      b.textContent = `${sign} ${e.title || e.id} ×`;
      b.setAttribute("aria-label", `Remove ${kind === "positive" ? "more" : "less"} like ${e.title || e.id}`);
      b.addEventListener("click", () => run({ [kind]: committed[kind].filter((x) => x.id !== e.id) }));
      li.appendChild(b);
      list.appendChild(li);
    }
  }

  function renderNotes(notes) {
    const list = $("notes");
    list.textContent = "";
    for (const note of notes) {
      const li = document.createElement("li");
      li.textContent = note;
      list.appendChild(li);
    }
    list.hidden = notes.length === 0;
  }

  function renderPhoto() {
    $("preview").hidden = !committed.photo;
    $("drop-text").hidden = !!committed.photo;
    if (committed.photo) $("preview-img").src = committed.photoUrl;
    else $("preview-img").removeAttribute("src");
  }

  // the words of the search box (words.js), "" without one
  function words() {
    return window.LAWords ? window.LAWords.text() : "";
  }

  function mode(s) {
    if (s.photo) return "photo";
    if (s.positive.length || s.negative.length) return "items";
    return words() ? "words" : "browse";
  }

  // the new state is on screen: photo preview, examples, heading, tuning
  function commit(next) {
    if (next.photo !== committed.photo) {
      if (committed.photoUrl) URL.revokeObjectURL(committed.photoUrl);
      committed.photoUrl = next.photo ? URL.createObjectURL(next.photo) : null;
    }
    committed.photo = next.photo;
    committed.positive = next.positive;
    committed.negative = next.negative;
    renderPhoto();
    renderExamples();
    const m = mode(committed);
    heading.textContent = { photo: "Look-alikes of your photo", items: "Tuned by your picks",
                            words: "Matching your words", browse: "Browse the catalog" }[m];
    $("tune").disabled = m === "browse" || m === "words";
    $("tune-help").hidden = m !== "browse" && m !== "words";
  }

  // -- querying ----------------------------------------------------------------------------
  async function fetchPage(next, from) {
    const t = tuning();
    const m = mode(next);
    const k = from === 0 ? PAGE : Math.min(PAGE, bound - from);
    if (m === "photo") {
      const fd = new FormData();
      fd.append("photo", next.photo);
      fd.append("k", String(k));
      fd.append("offset", String(from));
      fd.append("sort", sortBy());
      for (const [key, v] of filterPairs()) fd.append(key, v);
      for (const e of next.positive) fd.append("positive", e.id);
      for (const e of next.negative) fd.append("negative", e.id);
      if (t.steer) for (const [d, s] of Object.entries(t.steer)) fd.append("steer", `${d}=${s}`);
      fd.append("diversity", String(t.diversity));
      fd.append("colour_weight", String(t.colour_weight));
      const w = words();
      if (w) fd.append("text", w);
      const data = await LA.api("/search", { method: "POST", body: fd });
      return { entries: data.results, next: data.next_offset, total: null, bound: data.bound,
               notes: data.notes, understood: data.understood };
    }
    if (m === "words") {
      const q = new URLSearchParams(filterPairs());
      q.set("q", words());
      q.set("k", String(k));
      q.set("offset", String(from));
      q.set("sort", sortBy());
      const data = await LA.api(`/search/text?${q}`);
      return { entries: data.results, next: data.next_offset, total: null, bound: data.bound,
               notes: data.notes, understood: data.understood };
    }
    if (m === "items") {
      const body = {
        positive: next.positive.map((e) => e.id), negative: next.negative.map((e) => e.id),
        k, offset: from, sort: sortBy(), filters: filterObject(), ...t,
      };
      const data = await LA.api("/search/items", {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
      });
      return { entries: data.results, next: data.next_offset, total: null, bound: data.bound,
               notes: data.notes };
    }
    const q = new URLSearchParams(filterPairs());
    q.set("offset", String(from));
    q.set("limit", String(PAGE));
    q.set("sort", sortBy());
    const data = await LA.api(`/items?${q}`);
    const end = from + data.items.length;
    return {
      entries: data.items.map((item) => ({ item, score: null, similarity: null })),
      next: end < data.total ? end : null,
      total: data.total,
      bound: null,
      notes: data.notes,
    };
  }

  // `changes` to the shown state ({photo, positive, negative}); `append`: the next page
  async function run(changes = {}, append = false) {
    const mine = ++seq;
    const base = append ? committed : (wanted || committed);
    const next = { photo: base.photo, positive: base.positive, negative: base.negative, ...changes };
    if (!append) wanted = next;
    const from = append ? offset : 0;
    grid.setAttribute("aria-busy", "true");
    status.textContent = "Searching…";
    try {
      const page = await fetchPage(next, from);
      if (mine !== seq) return;
      wanted = null;
      commit(next);
      show(page.entries, append);
      if (page.bound) bound = page.bound;
      if (window.LAWords) window.LAWords.show(page.understood || null);  // words.js
      offset = page.next === null ? from + page.entries.length : page.next;
      $("load-more").hidden = page.next === null || page.entries.length === 0;
      const shown = grid.querySelectorAll(".card").length;
      const sorted = sortBy() !== "relevance";
      status.textContent = page.total !== null
        ? `${page.total} item${page.total === 1 ? "" : "s"}`
        : `${shown} look-alike${shown === 1 ? "" : "s"}`;
      $("sort-help").hidden = !(sorted && page.total === null);
      renderNotes(page.notes || []);
    } catch (err) {
      if (mine !== seq) return;
      wanted = null;
      status.textContent = "";
      LA.toast(err.message, "error");
    } finally {
      if (mine === seq) grid.setAttribute("aria-busy", "false");
      // a file input keeps a failed file: clear it so choosing the same file again works
      if (changes.photo) { $("photo").value = ""; $("camera").value = ""; }
    }
  }

  function example(kind, item) {
    const other = kind === "positive" ? "negative" : "positive";
    const base = wanted || committed;
    const mine = base[kind].some((x) => x.id === item.id)
      ? base[kind] : [...base[kind], { id: item.id, title: item.title }];
    LA.toast(kind === "positive" ? `More like “${item.title}”` : `Less like “${item.title}”`);
    run({ [kind]: mine, [other]: base[other].filter((x) => x.id !== item.id) });
  }

  let timer = null;
  function soon() { clearTimeout(timer); timer = setTimeout(() => run(), 250); }

  // -- photo input -------------------------------------------------------------------------
  function usePhoto(file) {
    if (!file) return;
    if (file.type && !file.type.startsWith("image/")) {
      LA.toast("That file is not an image.", "error");
      $("photo").value = "";
      $("camera").value = "";
      return;
    }
    run({ photo: file, positive: [], negative: [] });
  }
  for (const id of ["photo", "camera"]) {
    $(id).addEventListener("change", (ev) => usePhoto(ev.target.files[0]));
  }
  $("clear-photo").addEventListener("click", () => run({ photo: null }));
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

  // -- camera: only where there is one ------------------------------------------------------
  // A touch device's browser opens its camera for the `capture` file input; elsewhere the
  // button shows only when the browser reports a camera, and takes the photo itself
  // (desktop browsers ignore `capture` and would open a file chooser).
  const touch = window.matchMedia("(pointer: coarse)").matches
    || "capture" in HTMLInputElement.prototype;
  let stream = null;
  // The outcome lands on <body data-camera="capture|webcam|none"> once known (the check is
  // asynchronous; the browser tests wait for it instead of sleeping).
  async function setUpCamera() {
    if (touch) { $("camera-option").hidden = false; document.body.dataset.camera = "capture"; return; }
    let found = false;
    try {
      const devices = await navigator.mediaDevices.enumerateDevices();
      found = devices.some((d) => d.kind === "videoinput");
    } catch (_) { /* no mediaDevices (not a secure context): no camera button */ }
    $("webcam-open").hidden = !found;
    document.body.dataset.camera = found ? "webcam" : "none";
  }
  function stopCamera() {
    if (stream) stream.getTracks().forEach((t) => t.stop());
    stream = null;
    $("webcam-video").srcObject = null;
  }
  $("webcam-open").addEventListener("click", async () => {
    try {
      stream = await navigator.mediaDevices.getUserMedia({ video: true, audio: false });
    } catch (err) {
      LA.toast(`The camera is not available: ${err.message}`, "error");
      return;
    }
    $("webcam-video").srcObject = stream;
    $("webcam").showModal();
  });
  $("webcam-cancel").addEventListener("click", () => $("webcam").close());
  $("webcam").addEventListener("close", stopCamera);
  $("webcam-snap").addEventListener("click", () => {
    const video = $("webcam-video");
    const canvas = document.createElement("canvas");
    canvas.width = video.videoWidth;
    canvas.height = video.videoHeight;
    canvas.getContext("2d").drawImage(video, 0, 0);
    canvas.toBlob((blob) => {
      $("webcam").close();
      if (blob) usePhoto(new File([blob], "camera.jpg", { type: "image/jpeg" }));
    }, "image/jpeg", 0.92);
  });

  // -- controls ----------------------------------------------------------------------------
  const outputs = () => {
    const sust = Number($("f-sust").value);
    $("o-sust").textContent = sust > 0 ? sust.toFixed(1) : "any";
    const brand = Number($("f-brand-rating").value);
    $("o-brand-rating").textContent = brand > 0 ? brand.toFixed(1) : "any";
    $("o-steer").textContent = Number($("steer-amt").value).toFixed(1);
    const two = (id) => String(Number(Number($(id).value).toFixed(2)));  // 0.25, 0.1, 0
    $("o-div").textContent = two("diversity");
    $("o-cw").textContent = two("colour-weight");
  };
  form.addEventListener("input", () => { outputs(); soon(); });
  form.addEventListener("change", () => { outputs(); soon(); });
  form.addEventListener("submit", (e) => { e.preventDefault(); run(); });
  form.addEventListener("reset", () => setTimeout(() => { outputs(); run(); }));
  $("clear-examples").addEventListener("click", () => run({ positive: [], negative: [] }));
  $("sort").addEventListener("change", () => run());
  $("load-more").addEventListener("click", () => run({}, true));

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
  setUpCamera();
  const more = new URLSearchParams(location.search).get("more");
  if (more) {
    LA.api(`/items/${encodeURIComponent(more)}`)
      .then((item) => example("positive", item))
      .catch(() => run());
  } else {
    run();
  }
})();
