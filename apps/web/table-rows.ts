/**
 * A table body kept current in place: rows and cells are reused, and a cell's text or class is only
 * written when it changed. The page re-renders every second; rebuilding its tables each time lost a
 * screen reader's place in them and any text selected there (a node id being copied).
 */
export interface RowCell {
  text: string;
  className?: string;
}

/** Fill `body` with `rows`, or with one cell spanning `columns` saying `empty` when there are none. */
export function fillRows(
  body: HTMLTableSectionElement,
  rows: readonly (readonly RowCell[])[],
  empty: string,
  columns: number,
): void {
  const wanted: readonly (readonly RowCell[])[] = rows.length > 0 ? rows : [[{ text: empty }]];
  while (body.rows.length > wanted.length) body.deleteRow(-1);
  wanted.forEach((cells, i) => {
    const row = body.rows[i] ?? body.insertRow();
    while (row.cells.length > cells.length) row.deleteCell(-1);
    cells.forEach((c, j) => {
      const td = row.cells[j] ?? row.insertCell();
      if (td.textContent !== c.text) td.textContent = c.text;
      const className = c.className ?? '';
      if (td.className !== className) td.className = className;
      const span = rows.length === 0 ? columns : 1;
      if (td.colSpan !== span) td.colSpan = span;
    });
  });
}
