/* Search page: the words box. Loaded before search.js, which asks it for the words
   (LAWords.text) and hands it what the server understood (LAWords.show). The box belongs to the
   filters form (form="filters"): Enter, the Search button or a pause in typing submit that form,
   so a search with words also keeps the filters, the photo and the tuning. */
"use strict";

const LAWords = (() => {
  const input = document.getElementById("q");
  const panel = document.getElementById("words-understood");
  const PAUSE = 600; // ms of no typing before searching

  function text() {
    return input ? input.value.trim() : "";
  }

  const LABELS = {
    price_max: (v) => `at most ${v}`,
    price_min: (v) => `at least ${v}`,
    second_hand: (v) => (v === "true" ? "second-hand" : "new"),
    kids: (v) => (v === "true" ? "kids" : "adults"),
    min_sustainability: (v) => `sustainability ${v}+`,
  };

  function label(m) {
    const values = m.values.join(" or ");
    const what = LABELS[m.field] ? LABELS[m.field](m.values[0]) : `${m.field.replace("_", " ")}: ${values}`;
    return (m.negated ? "not " : "") + what;
  }

  function chip(list, textContent, kind, title) {
    const li = document.createElement("li");
    li.className = `word ${kind}`;
    li.textContent = textContent;
    if (title) li.title = title;
    list.appendChild(li);
  }

  function show(understood) {
    if (!panel) return;
    panel.textContent = "";
    if (!understood) return;
    const list = document.createElement("ul");
    list.className = "words-list";
    list.setAttribute("aria-label", "What your words were understood as");
    for (const m of understood.matches) {
      const how = m.how === "fuzzy" ? `read “${m.phrase}” as ${m.values.join(", ")}` : `“${m.phrase}” (${m.how})`;
      chip(list, label(m), m.negated ? "negated" : "understood", how);
    }
    for (const w of understood.ignored) chip(list, w, "ignored", "Not a word this catalog knows: ignored");
    if (list.children.length) {
      const head = document.createElement("span");
      head.className = "hint";
      head.textContent = understood.ignored.length && !understood.matches.length
        ? "Not understood:" : "Understood:";
      panel.append(head, list);
    }
    for (const note of understood.notes) {
      const p = document.createElement("p");
      p.className = "hint";
      p.textContent = note;
      panel.appendChild(p);
    }
  }

  if (input && input.form) {
    let timer = null;
    input.addEventListener("input", () => {
      clearTimeout(timer);
      timer = setTimeout(() => input.form.requestSubmit(), PAUSE);
    });
    input.form.addEventListener("submit", () => clearTimeout(timer));
  }

  return { text, show };
})();
window.LAWords = LAWords;
