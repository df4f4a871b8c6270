// Sort a table by clicking a header (numbers by value, from a cell's
// data-v when it has one), and filter its rows with the box named by
// data-table. Nothing else runs on the page.
"use strict";
for (const table of document.querySelectorAll("table.sortable")) {
  const heads = table.tHead.rows[0].cells;
  for (let col = 0; col < heads.length; col++) {
    const th = heads[col];
    th.addEventListener("click", () => {
      const ascending = th.dataset.dir !== "asc";
      for (const h of heads) delete h.dataset.dir;
      th.dataset.dir = ascending ? "asc" : "desc";
      const numeric = th.dataset.type === "num";
      const key = (row) => {
        const cell = row.cells[col];
        const v = cell.dataset.v !== undefined ? cell.dataset.v : cell.textContent;
        return numeric ? parseFloat(v) : v;
      };
      const order = (a, b) => {
        if (!numeric) return a.localeCompare(b);
        if (Number.isNaN(a)) return Number.isNaN(b) ? 0 : 1;
        if (Number.isNaN(b)) return -1;
        return a - b;
      };
      const body = table.tBodies[0];
      const rows = Array.from(body.rows, (r) => [key(r), r]);
      rows.sort((x, y) => (ascending ? order(x[0], y[0]) : order(y[0], x[0])));
      body.append(...rows.map((x) => x[1]));
    });
  }
}
for (const box of document.querySelectorAll("input.filter")) {
  const table = document.getElementById(box.dataset.table);
  box.addEventListener("input", () => {
    const q = box.value.toLowerCase();
    for (const row of table.tBodies[0].rows) {
      row.hidden = q !== "" && !row.textContent.toLowerCase().includes(q);
    }
  });
}
