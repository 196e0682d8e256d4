// The status page's filter, sort, map zoom and reload, without a round trip. Without JavaScript the
// same links and the form do it on the server (?q=...&sort=...), and the map is a fixed view. The state
// lives in the fragment (#q=...&sort=...), so a filtered view can be bookmarked and reloaded.
"use strict";

(function () {
  document.documentElement.classList.add("scripted");

  // A page that stays current: reloaded after the next refresh, or marked stale when a reload would
  // disturb the reader (typing in the filter, another tab in front).
  const body = document.body;
  const renderedAt = Number(body.dataset.renderedAt);
  const nextRefresh = Number(body.dataset.nextRefresh);
  const staleNote = document.getElementById("stale");
  function markStale() {
    const stamp = document.getElementById("rendered-at");
    stamp.textContent = new Date(renderedAt * 1000).toISOString().replace(".000Z", "Z").replace("T", " ");
    staleNote.hidden = false;
  }
  function reloadWhenDue() {
    const active = document.activeElement;
    if (document.hidden || (active && active.tagName === "INPUT")) {
      markStale();
      return;
    }
    window.location.reload();
  }
  if (renderedAt && nextRefresh && staleNote) {
    // A moment after the refresh, so that it has finished; at least a few seconds apart while it fails.
    const delay = Math.max(nextRefresh * 1000 + 1500 - Date.now(), 5000);
    window.setTimeout(reloadWhenDue, delay);
    document.addEventListener("visibilitychange", function () {
      if (!document.hidden && Date.now() > nextRefresh * 1000 + 1500) {
        reloadWhenDue();
      }
    });
  }

  // The map: zoom with the wheel or the buttons, pan by dragging; the view box is all that changes.
  const map = document.querySelector("svg.map");
  if (map) {
    const whole = map.viewBox.baseVal;
    const home = [whole.x, whole.y, whole.width, whole.height];
    let view = home.slice();
    const show = function () {
      map.setAttribute("viewBox", view.map(function (value) { return value.toFixed(1); }).join(" "));
    };
    const zoom = function (factor, cx, cy) {
      const width = Math.min(home[2], Math.max(home[2] / 40, view[2] * factor));
      const scale = width / view[2];
      view = [cx - (cx - view[0]) * scale, cy - (cy - view[1]) * scale, width, view[3] * scale];
      show();
    };
    const toMap = function (event) {
      const box = map.getBoundingClientRect();
      return [
        view[0] + ((event.clientX - box.left) / box.width) * view[2],
        view[1] + ((event.clientY - box.top) / box.height) * view[3],
      ];
    };
    map.addEventListener("wheel", function (event) {
      event.preventDefault();
      const at = toMap(event);
      zoom(event.deltaY < 0 ? 0.8 : 1.25, at[0], at[1]);
    }, { passive: false });
    let dragged = null;
    map.addEventListener("pointerdown", function (event) {
      dragged = { x: event.clientX, y: event.clientY, view: view.slice() };
      map.setPointerCapture(event.pointerId);
    });
    map.addEventListener("pointermove", function (event) {
      if (!dragged) {
        return;
      }
      const box = map.getBoundingClientRect();
      view[0] = dragged.view[0] - ((event.clientX - dragged.x) / box.width) * view[2];
      view[1] = dragged.view[1] - ((event.clientY - dragged.y) / box.height) * view[3];
      show();
    });
    map.addEventListener("pointerup", function () {
      dragged = null;
    });
    const controls = document.querySelector(".map-controls");
    controls.hidden = false;
    controls.addEventListener("click", function (event) {
      const button = event.target.closest("button[data-zoom]");
      if (!button) {
        return;
      }
      const kind = button.dataset.zoom;
      if (kind === "reset") {
        view = home.slice();
        show();
      } else {
        zoom(kind === "in" ? 0.5 : 2, view[0] + view[2] / 2, view[1] + view[3] / 2);
      }
    });
  }

  const table = document.getElementById("station-table");
  if (!table) {
    return;
  }
  const tableBody = table.tBodies[0];
  const input = document.getElementById("q");
  const shown = document.getElementById("shown");
  const partial = document.getElementById("partial");
  const complete = table.dataset.complete === "1";
  const rows = Array.from(tableBody.rows);
  const total = complete ? rows.length : Number(shown.dataset.total);
  const columns = { name: 1, available: 3, charging: 4, unavailable: 5, unknown: 6, power: 7 };
  // Every station is on the map, whatever the table shows: typing dims the map at any size.
  const dots = Array.from(document.querySelectorAll(".map circle"));
  const serverSummary = shown.textContent;

  // The same key as the server's ?q= (status_page.filter_key): Unicode lower case.
  function key(text) {
    return text.toLowerCase();
  }
  function stationOfDot(dot) {
    const title = dot.querySelector("title").textContent;
    // "name: 2 available, 0 charging, 1 unavailable, 0 unknown": the counts hold no ": ", so the last one ends
    // the name.
    return key(title.slice(0, title.lastIndexOf(": ")));
  }
  const dotNames = dots.map(stationOfDot);

  function applyFilter(text) {
    const needle = key(text.trim());
    let matching = 0;
    for (const row of rows) {
      const match = !needle || key(row.cells[1].textContent).includes(needle);
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

  function applySort(sortKey) {
    const column = columns[sortKey];
    if (column === undefined) {
      return;
    }
    const collator = new Intl.Collator(undefined, { sensitivity: "base" });
    const name = function (row) {
      return row.cells[1].textContent;
    };
    const sorted = rows.slice().sort(function (a, b) {
      if (sortKey !== "name") {
        const difference = parseFloat(b.cells[column].textContent) - parseFloat(a.cells[column].textContent);
        if (difference !== 0) {
          return difference;
        }
      }
      return collator.compare(name(a), name(b));
    });
    tableBody.append(...sorted);
    for (const header of table.tHead.rows[0].cells) {
      const link = header.querySelector("a[data-sort]");
      header.removeAttribute("aria-sort");
      if (link && link.dataset.sort === sortKey) {
        header.setAttribute("aria-sort", sortKey === "name" ? "ascending" : "descending");
      }
    }
  }

  function state() {
    const params = new URLSearchParams(window.location.hash.slice(1));
    return { q: params.get("q") || "", sort: params.get("sort") || "" };
  }

  function remember(changes) {
    const params = new URLSearchParams(window.location.hash.slice(1));
    for (const [name, value] of Object.entries(changes)) {
      if (value) {
        params.set(name, value);
      } else {
        params.delete(name);
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
