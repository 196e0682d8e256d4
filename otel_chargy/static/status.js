// The status page's filter and sort, without a round trip. Without JavaScript the same links and the
// form do it on the server (?q=...&sort=...). The state lives in the fragment (#q=...&sort=...), so a
// filtered view can be bookmarked and reloaded.
"use strict";

(function () {
  document.documentElement.classList.add("scripted");
  const table = document.getElementById("station-table");
  if (!table) {
    return;
  }
  const body = table.tBodies[0];
  const input = document.getElementById("q");
  const shown = document.getElementById("shown");
  const partial = document.getElementById("partial");
  const complete = table.dataset.complete === "1";
  const rows = Array.from(body.rows);
  const total = complete ? rows.length : Number(shown.dataset.total);
  const columns = { name: 1, available: 3, charging: 4, unavailable: 5, unknown: 6, power: 7 };
  const dots = complete ? Array.from(document.querySelectorAll(".map circle")) : [];
  const serverSummary = shown.textContent;

  function stationOfDot(dot) {
    const title = dot.querySelector("title").textContent;
    // "name: 2 available, 0 charging, 1 unavailable, 0 unknown": the counts hold no ": ", so the last one ends the name.
    return title.slice(0, title.lastIndexOf(": ")).toLocaleLowerCase();
  }
  const dotNames = dots.map(stationOfDot);

  function applyFilter(text) {
    const needle = text.trim().toLocaleLowerCase();
    let matching = 0;
    for (const row of rows) {
      const match = !needle || row.cells[1].textContent.toLocaleLowerCase().includes(needle);
      row.hidden = !match;
      if (match) {
        matching += 1;
      }
    }
    dots.forEach(function (dot, index) {
      dot.classList.toggle("dim", Boolean(needle) && !dotNames[index].includes(needle));
    });
    if (!needle) {
      shown.textContent = serverSummary;
    } else if (complete) {
      shown.textContent = matching + " of " + total + " stations match.";
    } else {
      shown.textContent = matching + " of the " + rows.length + " stations on this page match.";
    }
    if (partial) {
      partial.hidden = complete || !needle;
    }
  }

  function applySort(key) {
    const column = columns[key];
    if (column === undefined) {
      return;
    }
    const collator = new Intl.Collator(undefined, { sensitivity: "base" });
    const name = function (row) {
      return row.cells[1].textContent;
    };
    const sorted = rows.slice().sort(function (a, b) {
      if (key !== "name") {
        const difference = parseFloat(b.cells[column].textContent) - parseFloat(a.cells[column].textContent);
        if (difference !== 0) {
          return difference;
        }
      }
      return collator.compare(name(a), name(b));
    });
    body.append(...sorted);
    for (const header of table.tHead.rows[0].cells) {
      const link = header.querySelector("a[data-sort]");
      header.removeAttribute("aria-sort");
      if (link && link.dataset.sort === key) {
        header.setAttribute("aria-sort", key === "name" ? "ascending" : "descending");
      }
    }
  }

  function state() {
    const params = new URLSearchParams(window.location.hash.slice(1));
    return { q: params.get("q") || "", sort: params.get("sort") || "" };
  }

  function remember(changes) {
    const params = new URLSearchParams(window.location.hash.slice(1));
    for (const [key, value] of Object.entries(changes)) {
      if (value) {
        params.set(key, value);
      } else {
        params.delete(key);
      }
    }
    const fragment = params.toString();
    history.replaceState(null, "", fragment ? "#" + fragment : window.location.pathname + window.location.search);
  }

  input.addEventListener("input", function () {
    applyFilter(input.value);
    remember({ q: input.value.trim() });
  });
  if (complete) {
    // Every station is on the page: sorting needs no round trip. Otherwise the links sort on the server.
    table.tHead.addEventListener("click", function (event) {
      const link = event.target.closest("a[data-sort]");
      if (!link) {
        return;
      }
      event.preventDefault();
      applySort(link.dataset.sort);
      remember({ sort: link.dataset.sort });
    });
  }

  const initial = state();
  if (complete && initial.sort) {
    applySort(initial.sort);
  }
  if (initial.q) {
    input.value = initial.q;
    applyFilter(initial.q);
  }
})();
