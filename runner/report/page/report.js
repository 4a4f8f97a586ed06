"use strict";
// Sorting and filtering of the kpbench report's table; the page works (unsorted, unfiltered)
// without it.
(function () {
  const table = document.getElementById("results");
  if (!table) {
    return;
  }
  const body = table.tBodies[0];
  const rows = Array.from(body.rows);
  const headers = Array.from(table.tHead.rows[0].cells);
  const filters = Array.from(document.querySelectorAll("select[data-filter]"));
  const search = document.getElementById("search");
  const shown = document.getElementById("shown");

  function applyFilters() {
    const chosen = filters.filter((s) => s.value !== "").map((s) => [s.dataset.filter, s.value]);
    const text = search.value.trim().toLowerCase();
    let visible = 0;
    for (const row of rows) {
      const keep = chosen.every(([name, value]) => row.dataset[name] === value)
        && (text === "" || row.dataset.label.toLowerCase().includes(text));
      row.hidden = !keep;
      visible += keep ? 1 : 0;
    }
    shown.value = `${visible} of ${rows.length} rows`;
  }

  function sortKey(row, index, numeric) {
    const cell = row.cells[index];
    if (numeric) {
      return cell.dataset.value === "" ? null : Number(cell.dataset.value);
    }
    const text = cell.textContent.trim();
    return text === "" ? null : text;
  }

  function sortBy(header) {
    const numeric = header.dataset.type === "number";
    const current = header.getAttribute("aria-sort");
    // numbers: largest first on the first click; text: A to Z
    const descending = current ? current === "ascending" : numeric;
    const sign = descending ? -1 : 1;
    const index = header.cellIndex;
    const keyed = rows.map((row, order) => [sortKey(row, index, numeric), order, row]);
    keyed.sort((a, b) => {
      if (a[0] === null || b[0] === null) {
        return (a[0] === null) - (b[0] === null) || a[1] - b[1]; // empty cells last
      }
      const by = numeric ? a[0] - b[0] : a[0].localeCompare(b[0], undefined, { numeric: true });
      return sign * by || a[1] - b[1];
    });
    for (const other of headers) {
      other.removeAttribute("aria-sort");
    }
    header.setAttribute("aria-sort", descending ? "descending" : "ascending");
    body.append(...keyed.map((entry) => entry[2]));
  }

  for (const header of headers) {
    header.querySelector("button").addEventListener("click", () => sortBy(header));
  }
  for (const select of filters) {
    select.addEventListener("change", applyFilters);
  }
  search.addEventListener("input", applyFilters);
  applyFilters();
})();
